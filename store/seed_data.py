"""The demo store's fixed tables: ABCD's brands, products and customers, and the name and address
pools the generated customers are drawn from (used by ``store.seed``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from store.policies import MembershipLevel

BRANDS = ("Calvin Klein", "Guess", "Michael Kors", "Tommy Hilfiger")
# Category → price range in dollars (ABCD's products are shirts, jeans, boots and jackets).
CATEGORIES: dict[str, tuple[int, int]] = {
    "shirt": (25, 79),
    "jeans": (39, 119),
    "boots": (59, 189),
    "jacket": (79, 249),
}
SIZES: dict[str, Sequence[str]] = {
    "shirt": ("XS", "S", "M", "L", "XL"),
    "jacket": ("S", "M", "L", "XL"),
    "jeans": ("28x30", "30x32", "32x32", "34x32", "36x34"),
    "boots": ("7", "8", "8.5", "9", "10", "11"),
}
COLOURS = ("black", "navy", "white", "grey", "khaki", "olive", "burgundy", "denim blue", "brown")
CARRIERS = ("UPS", "FedEx", "USPS", "DHL")
FIRST_NAMES = (
    "Alessandro",
    "Joyce",
    "Albert",
    "David",
    "Sanya",
    "Crystal",
    "Chloe",
    "Rodriguez",
    "Joseph",
    "Norman",
    "Maria",
    "James",
    "Aisha",
    "Wei",
    "Olga",
    "Ivan",
    "Priya",
    "Lucas",
    "Emma",
    "Noah",
    "Sofia",
    "Mateo",
    "Hana",
    "Kenji",
    "Fatima",
    "Omar",
    "Grace",
    "Ethan",
    "Mia",
    "Daniel",
)
LAST_NAMES = (
    "Phoenix",
    "Wu",
    "Sanders",
    "Williams",
    "Afzal",
    "Minh",
    "Zhang",
    "Domingo",
    "Banter",
    "Bouchard",
    "Garcia",
    "Smith",
    "Khan",
    "Chen",
    "Petrova",
    "Ivanov",
    "Patel",
    "Silva",
    "Johnson",
    "Brown",
    "Rossi",
    "Lopez",
    "Tanaka",
    "Sato",
    "Haddad",
    "Nguyen",
    "Kowalski",
    "Murphy",
    "Okafor",
    "Schmidt",
)
STREETS = (
    "1st Ave",
    "Lexington Ave",
    "Lincoln Ave",
    "Main St",
    "Elm St",
    "Oak St",
    "Pine St",
    "Maple Ave",
    "Washington Blvd",
    "Cedar Ln",
    "Park Ave",
    "2nd St",
    "Sunset Blvd",
    "Kennedy St",
)
CITIES = (
    ("San Mateo", "NY"),
    ("La Fayette", "TX"),
    ("Raleigh", "MI"),
    ("Jacksonville", "FL"),
    ("Brighton", "MA"),
    ("Monterey", "CA"),
    ("Newark", "NJ"),
    ("Springfield", "IL"),
    ("Baltimore", "MD"),
    ("Portland", "OR"),
    ("Austin", "TX"),
    ("Denver", "CO"),
)


@dataclass(frozen=True)
class Person:
    full_name: str
    username: str
    level: MembershipLevel
    phone: str
    address: str
    zip_code: str


# ABCD's customers (names from the ontology; Crystal Minh's and Alessandro Phoenix's details from
# the sample conversations).
DEMO_PEOPLE: tuple[Person, ...] = (
    Person(
        "Crystal Minh",
        "cminh730",
        MembershipLevel.BRONZE,
        "(977) 625-2661",
        "6821 1st Ave, San Mateo, NY 75227",
        "75227",
    ),
    Person(
        "Alessandro Phoenix",
        "aphoenix939",
        MembershipLevel.GOLD,
        "(727) 760-7806",
        "8865 Lexington Ave, La Fayette, TX 86229",
        "86229",
    ),
    Person(
        "Joyce Wu", "jwu477", MembershipLevel.BRONZE, "(859) 787-9085", "9998 Lincoln Ave, Raleigh, MI 14573", "14573"
    ),
    Person(
        "Albert Sanders",
        "asanders308",
        MembershipLevel.GUEST,
        "(312) 555-0148",
        "4120 Main St, Springfield, IL 62704",
        "62704",
    ),
    Person(
        "David Williams",
        "dwilliams615",
        MembershipLevel.BRONZE,
        "(410) 555-0199",
        "2875 Elm St, Baltimore, MD 21201",
        "21201",
    ),
    Person(
        "Sanya Afzal", "safzal207", MembershipLevel.SILVER, "(503) 555-0133", "731 Oak St, Portland, OR 97205", "97205"
    ),
    Person(
        "Chloe Zhang",
        "czhang841",
        MembershipLevel.SILVER,
        "(617) 555-0172",
        "5562 Park Ave, Brighton, MA 02135",
        "02135",
    ),
    Person(
        "Rodriguez Domingo",
        "rdomingo118",
        MembershipLevel.GUEST,
        "(904) 555-0111",
        "1290 Maple Ave, Jacksonville, FL 32202",
        "32202",
    ),
    Person(
        "Joseph Banter",
        "jbanter553",
        MembershipLevel.SILVER,
        "(973) 555-0164",
        "3310 Washington Blvd, Newark, NJ 07102",
        "07102",
    ),
    Person(
        "Norman Bouchard",
        "nbouchard772",
        MembershipLevel.GOLD,
        "(831) 555-0125",
        "8004 Cedar Ln, Monterey, CA 93940",
        "93940",
    ),
)
