"""Deterministic demo data modelled on ABCD's customers and products.

``seed(factory, reference)`` fills an empty database: the well-known ``DEMO`` orders (fixed ids,
customers and dates relative to ``reference``), about 170 generated orders from a fixed random
seed, and the orders set aside for the conversation scenarios' order pools (``store.seed_pools``,
each for a customer of its own), so the same reference date always gives the same database. Dates
are relative to ``reference`` (default: now) so that refund/return windows stay meaningful
whenever it runs. The fixed tables (names, products, ABCD's customers) are in ``store.seed_data``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from store.models import Customer, Order, OrderItem, Refund, ReturnRequest
from store.policies import (
    MembershipLevel,
    OrderStatus,
    PaymentMethod,
    RefundMethod,
    RefundStatus,
    ReturnStatus,
    return_window_days,
)
from store.seed_data import (
    BRANDS,
    CARRIERS,
    CATEGORIES,
    CITIES,
    COLOURS,
    DEMO_PEOPLE,
    FIRST_NAMES,
    LAST_NAMES,
    SIZES,
    STREETS,
    Person,
)
from store.seed_pools import add_pool_orders

RANDOM_SEED = 20191106  # the purchase date of ABCD's first sample conversation
GENERATED_CUSTOMERS = 62
GENERATED_ORDERS = 170


class DemoOrder(NamedTuple):
    """A well-known order: its id and the identity fields that verify it."""

    order_id: str
    username: str
    email: str


# Well-known orders the tests and docs rely on (dates relative to the seed's reference date;
# "limit" is the default auto refund limit, 150.00):
#   processing            Joyce Wu (bronze), ordered 6 hours ago — cancellable, address changeable
#   shipped               Crystal Minh (bronze), ABCD's order, shipped 2 days ago by UPS
#   delivered_recent      Albert Sanders (guest), delivered 5 days ago, 117.00 — refundable
#   delivered_old_bronze  David Williams (bronze), delivered 120 days ago — outside 90 days
#   delivered_guest_old   Rodriguez Domingo (guest), delivered 45 days ago — outside 30 days
#   refund_requested      Alessandro Phoenix (gold), ABCD's order, refund requested 3 days ago
#   refunded              Sanya Afzal (silver), refunded to a gift card
#   cancelled             Chloe Zhang (silver), cancelled before shipping
#   big_amount_delivered  Joseph Banter (silver), delivered 10 days ago, 389.00 — above the limit
#   gold_delivered_old    Norman Bouchard (gold), delivered 400 days ago — gold has no window
#   return_started        Joyce Wu (bronze), delivered 12 days ago, return label issued
DEMO: dict[str, DemoOrder] = {
    "processing": DemoOrder("5120648393", "jwu477", "jwu477@email.com"),
    "shipped": DemoOrder("3348917502", "cminh730", "cminh730@email.com"),
    "delivered_recent": DemoOrder("2290417365", "asanders308", "asanders308@email.com"),
    "delivered_old_bronze": DemoOrder("6604183527", "dwilliams615", "dwilliams615@email.com"),
    "delivered_guest_old": DemoOrder("3070512298", "rdomingo118", "rdomingo118@email.com"),
    "refund_requested": DemoOrder("7916676427", "aphoenix939", "aphoenix939@email.com"),
    "refunded": DemoOrder("4471209856", "safzal207", "safzal207@email.com"),
    "cancelled": DemoOrder("8835026714", "czhang841", "czhang841@email.com"),
    "big_amount_delivered": DemoOrder("9182736450", "jbanter553", "jbanter553@email.com"),
    "gold_delivered_old": DemoOrder("1357924680", "nbouchard772", "nbouchard772@email.com"),
    "return_started": DemoOrder("7705318846", "jwu477", "jwu477@email.com"),
}

_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)


def _email(username: str) -> str:
    return f"{username}@email.com"


def _tracking_number(rng: random.Random, carrier: str) -> str:
    """Tracking numbers in each carrier's usual shape (UPS 1Z…, FedEx 12 digits, …)."""
    digits = "0123456789"
    if carrier == "UPS":
        return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16))
    if carrier == "FedEx":
        return "".join(rng.choice(digits) for _ in range(12))
    if carrier == "USPS":
        return "9400" + "".join(rng.choice(digits) for _ in range(18))
    return "".join(rng.choice(digits) for _ in range(10))  # DHL


class _Builder:
    """Builds ORM objects; the only source of randomness is ``self.rng``."""

    def __init__(self, reference: datetime, auto_refund_limit: Decimal) -> None:
        self.rng = random.Random(RANDOM_SEED)
        self.ref = reference
        self.limit = auto_refund_limit
        self.customers: dict[str, Customer] = {}
        self.addresses: dict[str, str] = {}
        self.orders: list[Order] = []
        self.used_ids = {d.order_id for d in DEMO.values()}

    # --- customers ----------------------------------------------------------------------------

    def add_customer(self, p: Person) -> Customer:
        c = Customer(
            username=p.username,
            full_name=p.full_name,
            email=_email(p.username),
            phone=p.phone,
            membership_level=p.level.value,
            zip_code=p.zip_code,
            created_at=self.ref - timedelta(days=self.rng.randint(600, 1500)),
        )
        self.customers[p.username] = c
        self.addresses[p.username] = p.address
        return c

    def random_person(self) -> Person:
        rng = self.rng
        while True:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            username = f"{first[0]}{last}{rng.randint(100, 999)}".lower()
            if username not in self.customers:
                break
        level = rng.choices(list(MembershipLevel), weights=(25, 30, 25, 20))[0]
        city, state = rng.choice(CITIES)
        zip_code = f"{rng.randint(1000, 99999):05d}"
        address = f"{rng.randint(100, 9999)} {rng.choice(STREETS)}, {city}, {state} {zip_code}"
        phone = f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        return Person(f"{first} {last}", username, level, phone, address, zip_code)

    # --- orders -------------------------------------------------------------------------------

    def new_order_id(self) -> str:
        while True:
            oid = str(self.rng.randint(10**9, 10**10 - 1))
            if oid not in self.used_ids:
                self.used_ids.add(oid)
                return oid

    def random_items(self) -> list[OrderItem]:
        rng = self.rng
        items = []
        for _ in range(rng.choices((1, 2, 3), weights=(75, 20, 5))[0]):
            category = rng.choice(list(CATEGORIES))
            low, high = CATEGORIES[category]
            items.append(
                OrderItem(
                    product_name=f"{rng.choice(BRANDS)} {category}",
                    category=category,
                    size=rng.choice(SIZES[category]),
                    colour=rng.choice(COLOURS),
                    quantity=rng.choices((1, 2), weights=(90, 10))[0],
                    unit_price=Decimal(rng.randint(low, high)) - Decimal("0.01") * rng.choice((0, 1)),
                )
            )
        return items

    def make_order(
        self,
        customer: Customer,
        status: OrderStatus,
        items: list[OrderItem],
        *,
        order_id: str | None = None,
        ordered_at: datetime,
        shipped_at: datetime | None = None,
        delivered_at: datetime | None = None,
        payment_method: PaymentMethod | None = None,
        address: str | None = None,
        carrier: str | None = None,
    ) -> Order:
        rng = self.rng
        tracking = None
        if shipped_at is not None:
            carrier = carrier or rng.choice(CARRIERS)
            tracking = _tracking_number(rng, carrier)
        else:
            carrier = None
        total = sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))
        order = Order(
            order_id=order_id or self.new_order_id(),
            customer=customer,
            status=status.value,
            ordered_at=ordered_at,
            shipped_at=shipped_at,
            delivered_at=delivered_at,
            carrier=carrier,
            tracking_number=tracking,
            shipping_address=address or self.addresses[customer.username],
            payment_method=(payment_method or rng.choice(list(PaymentMethod))).value,
            total=total.quantize(Decimal("0.01")),
            currency="USD",
            items=items,
        )
        self.orders.append(order)
        return order

    def add_refund(
        self, order: Order, status: RefundStatus, created_at: datetime, method: RefundMethod | None = None
    ) -> None:
        reasons = (
            "wrong size",
            "arrived damaged",
            "colour not as pictured",
            "changed my mind",
            "stain on the fabric",
            "ordered twice by mistake",
        )
        order.refunds.append(
            Refund(
                amount=order.total,
                method=(method or self.rng.choice(list(RefundMethod))).value,
                reason=self.rng.choice(reasons),
                status=status.value,
                created_at=created_at,
            )
        )

    def add_return(self, order: Order, status: ReturnStatus, created_at: datetime) -> None:
        reasons = ("wrong size", "wrong colour", "stain", "does not fit")
        code = "RMA-" + "".join(self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
        order.return_requests.append(
            ReturnRequest(reason=self.rng.choice(reasons), rma_code=code, status=status.value, created_at=created_at)
        )

    def shipped_dates(self, delivered_days_ago: float) -> tuple[datetime, datetime, datetime]:
        """(ordered, shipped, delivered) for an order delivered that many days ago."""
        delivered = self.ref - timedelta(days=delivered_days_ago)
        shipped = delivered - timedelta(days=self.rng.uniform(2, 5))
        ordered = shipped - timedelta(days=self.rng.uniform(0.5, 2))
        return ordered, shipped, delivered

    # --- the data set -------------------------------------------------------------------------

    def demo_orders(self) -> None:
        """The ``DEMO`` orders, fully specified so tests can rely on every field that matters."""
        ref = self.ref

        def item(name: str, category: str, size: str, colour: str, price: str, qty: int = 1) -> OrderItem:
            return OrderItem(
                product_name=name, category=category, size=size, colour=colour, quantity=qty, unit_price=Decimal(price)
            )

        self.demo_order(
            "processing",
            OrderStatus.PROCESSING,
            [item("Tommy Hilfiger shirt", "shirt", "M", "navy", "59.00")],
            ordered_at=ref - 6 * _HOUR,
            payment_method=PaymentMethod.PAYPAL,
        )
        self.demo_order(
            "shipped",
            OrderStatus.SHIPPED,
            [item("Michael Kors jeans", "jeans", "30x32", "denim blue", "94.00")],
            ordered_at=ref - 3 * _DAY,
            shipped_at=ref - 2 * _DAY,
            payment_method=PaymentMethod.CREDIT_CARD,
            carrier="UPS",
        )
        self.demo_delivered(
            "delivered_recent",
            5,
            [
                item("Tommy Hilfiger shirt", "shirt", "L", "white", "49.00"),
                item("Guess jeans", "jeans", "32x32", "black", "68.00"),
            ],
        )
        self.demo_delivered(
            "delivered_old_bronze", 120, [item("Calvin Klein jeans", "jeans", "34x32", "grey", "79.00")]
        )
        self.demo_delivered("delivered_guest_old", 45, [item("Guess shirt", "shirt", "S", "burgundy", "39.00")])
        order = self.demo_delivered(
            "refund_requested", 20, [item("Michael Kors shirt", "shirt", "M", "olive", "69.00")]
        )
        order.status = OrderStatus.REFUND_REQUESTED.value
        self.add_refund(order, RefundStatus.REQUESTED, ref - 3 * _DAY, RefundMethod.CREDIT_CARD)
        order = self.demo_delivered("refunded", 40, [item("Calvin Klein boots", "boots", "8", "brown", "129.00")])
        order.status = OrderStatus.REFUNDED.value
        self.add_refund(order, RefundStatus.REFUNDED, ref - 30 * _DAY, RefundMethod.GIFT_CARD)
        self.demo_order(
            "cancelled",
            OrderStatus.CANCELLED,
            [item("Guess jacket", "jacket", "S", "khaki", "139.00")],
            ordered_at=ref - 4 * _DAY,
        )
        self.demo_delivered(
            "big_amount_delivered",
            10,
            [
                item("Michael Kors jacket", "jacket", "L", "black", "239.00"),
                item("Guess boots", "boots", "10", "brown", "150.00"),
            ],
        )
        self.demo_delivered(
            "gold_delivered_old", 400, [item("Tommy Hilfiger jacket", "jacket", "XL", "navy", "120.00")]
        )
        order = self.demo_delivered("return_started", 12, [item("Calvin Klein shirt", "shirt", "S", "white", "45.00")])
        self.add_return(order, ReturnStatus.LABEL_ISSUED, ref - 2 * _DAY)

    def demo_order(self, key: str, status: OrderStatus, items: list[OrderItem], **details: Any) -> Order:
        """The well-known order ``DEMO[key]``, for its customer; ``details`` as ``make_order``'s."""
        demo = DEMO[key]
        return self.make_order(self.customers[demo.username], status, items, order_id=demo.order_id, **details)

    def demo_delivered(self, key: str, days_ago: int, items: list[OrderItem]) -> Order:
        """``DEMO[key]``, delivered ``days_ago`` days ago (shipped three days earlier, ordered one day before that)."""
        delivered = self.ref - days_ago * _DAY
        return self.demo_order(
            key,
            OrderStatus.DELIVERED,
            items,
            ordered_at=delivered - 4 * _DAY,
            shipped_at=delivered - 3 * _DAY,
            delivered_at=delivered,
        )

    def random_order(self, customer: Customer, status: OrderStatus | None = None) -> None:
        """An order of ``customer`` in ``status`` (drawn when not given), with dates and refund to match."""
        rng, ref = self.rng, self.ref
        # weights of: processing, shipped, delivered, cancelled, refund_requested, refunded
        status = status or rng.choices(list(OrderStatus), weights=(12, 15, 45, 8, 10, 10))[0]
        items = self.random_items()
        if status is OrderStatus.PROCESSING:
            self.make_order(customer, status, items, ordered_at=ref - timedelta(hours=rng.uniform(1, 48)))
            return
        if status is OrderStatus.CANCELLED:
            self.make_order(customer, status, items, ordered_at=ref - timedelta(days=rng.uniform(1, 200)))
            return
        if status is OrderStatus.SHIPPED:
            ordered = ref - timedelta(days=rng.uniform(2, 7))
            shipped = ordered + timedelta(hours=rng.uniform(12, 36))
            self.make_order(customer, status, items, ordered_at=ordered, shipped_at=shipped)
            return
        if status is OrderStatus.DELIVERED:
            band = rng.choices(((0.5, 30), (30, 120), (120, 250), (250, 500)), weights=(40, 30, 20, 10))[0]
            days_ago = rng.uniform(*band)
        else:  # refunds are asked for soon after delivery
            days_ago = rng.uniform(2, 60)
        ordered, shipped, delivered = self.shipped_dates(days_ago)
        order = self.make_order(customer, status, items, ordered_at=ordered, shipped_at=shipped, delivered_at=delivered)
        asked = min(delivered + timedelta(days=rng.uniform(0.5, 10)), ref - _HOUR)
        if status is OrderStatus.REFUND_REQUESTED:
            refund_status = (
                RefundStatus.PENDING_APPROVAL
                if order.total > self.limit
                else rng.choice((RefundStatus.REQUESTED, RefundStatus.APPROVED))
            )
            self.add_refund(order, refund_status, asked)
        elif status is OrderStatus.REFUNDED:
            self.add_refund(order, RefundStatus.REFUNDED, asked)
        elif rng.random() < 0.15:
            window = return_window_days(customer.membership_level)
            if window is None or days_ago < window:
                settled = days_ago > 20
                self.add_return(order, ReturnStatus.CLOSED if settled else ReturnStatus.LABEL_ISSUED, asked)

    def build(self) -> list[Customer]:
        for p in DEMO_PEOPLE:
            self.add_customer(p)
        for _ in range(GENERATED_CUSTOMERS):
            self.add_customer(self.random_person())
        self.demo_orders()
        everyone = list(self.customers.values())
        for _ in range(GENERATED_ORDERS):
            self.random_order(self.rng.choice(everyone))
        add_pool_orders(self)  # last, from a random stream of its own: the orders above stay as they are
        return list(self.customers.values())


def seed(
    session_factory: sessionmaker[Session],
    reference: datetime | None = None,
    *,
    auto_refund_limit: Decimal | None = None,
) -> bool:
    """Fill an empty store; returns False (and changes nothing) when customers already exist.

    ``reference`` is "now" for the data set (aware or naive UTC); ``auto_refund_limit`` decides
    which seeded refunds wait for approval and defaults to the configured one.
    """
    if auto_refund_limit is None:
        from settings import get_settings

        auto_refund_limit = get_settings().auto_refund_limit
    ref = (reference or datetime.now(UTC)).replace(microsecond=0)
    if ref.tzinfo is None:
        ref = ref.replace(tzinfo=UTC)
    with transaction(session_factory) as session:
        if session.scalar(select(func.count()).select_from(Customer)):
            return False
        session.add_all(_Builder(ref, Decimal(auto_refund_limit)).build())
    return True
