"""Every business rule of the demo store, in one place, as pure functions.

Nothing here touches the database or the clock: callers pass ``now`` and the configured
``auto_limit`` in, so each rule can be read, tested and changed on its own. The rules follow the
agent guidelines of the ABCD dataset (``benchdata/abcd/guidelines.json``); each docstring names
the guideline it comes from, and says where this store deliberately simplifies it.

A rule answers with a ``PolicyDecision``. ``decision.code`` is one of ``DecisionCode`` and is what
the bot turns into a message; ``decision.detail`` holds JSON-friendly facts for that message
(amounts as strings such as ``"150.00"``, dates as ISO strings, windows as day counts).

Codes:

=========================== ====================================================================
``ok``                      allowed, nothing special
``needs_approval``          allowed, but a person must approve (refund above the auto limit)
``outside_window``          the return/refund window of the membership level has passed
``already_refunded``        the order has been refunded
``refund_already_requested`` a refund is already under way for the order
``cancelled``               the order was cancelled
``cancel_instead``          the order has not shipped yet: cancel it rather than refund/return it
``not_delivered_yet``       the order is on its way; refunds/returns start once it has arrived
``already_shipped``         too late to cancel or redirect: the parcel left the warehouse
``already_delivered``       too late to cancel or redirect: the parcel has arrived
``already_cancelled``       cancelling an order twice
``return_already_started``  a return label (RMA) was already issued for the order
``invalid_amount``          a refund amount of zero or less
``invalid_address``         an empty, too short/long or malformed shipping address
``invalid_refund_method``   a refund method the store does not offer
``order_not_found``         no order with that id (raised by the service, listed for completeness)
=========================== ====================================================================
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol


class OrderStatus(StrEnum):
    """Life cycle of an order.

    ABCD's shipping statuses map onto it: 'Order Received' = processing, 'In Transit' and
    'Out for Delivery' = shipped, 'Delivered' = delivered.
    """

    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"


class MembershipLevel(StrEnum):
    """ABCD membership levels ('Storewide Query > Membership FAQ', 'Membership Privileges')."""

    GUEST = "guest"
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


class RefundMethod(StrEnum):
    """Refund targets of ABCD 'Product Defect > Initiate Refund > Record Reason'.

    ABCD's 'add value' (credit added to the account) is ``store_credit`` here. Gift cards and
    paper checks are mailed to the order's shipping address; credit-card refunds go to the card
    on file.
    """

    CREDIT_CARD = "credit_card"
    GIFT_CARD = "gift_card"
    PAPER_CHECK = "paper_check"
    STORE_CREDIT = "store_credit"


class RefundStatus(StrEnum):
    """Refund life cycle: ``pending_approval`` waits for a person (amount above the auto limit)."""

    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REFUNDED = "refunded"
    REJECTED = "rejected"


class ReturnStatus(StrEnum):
    """Return life cycle: a label (RMA code) is issued, the parcel is received, the case closed."""

    LABEL_ISSUED = "label_issued"
    RECEIVED = "received"
    CLOSED = "closed"


class PaymentMethod(StrEnum):
    """Valid payment methods (ABCD 'Order Issue > Status Payment Method')."""

    CREDIT_CARD = "credit_card"
    DEBIT_CARD = "debit_card"
    PAYPAL = "paypal"


class DecisionCode(StrEnum):
    """Machine-readable outcome of a rule; compares equal to its string value."""

    OK = "ok"
    NEEDS_APPROVAL = "needs_approval"
    OUTSIDE_WINDOW = "outside_window"
    ALREADY_REFUNDED = "already_refunded"
    REFUND_ALREADY_REQUESTED = "refund_already_requested"
    CANCELLED = "cancelled"
    CANCEL_INSTEAD = "cancel_instead"
    NOT_DELIVERED_YET = "not_delivered_yet"
    ALREADY_SHIPPED = "already_shipped"
    ALREADY_DELIVERED = "already_delivered"
    ALREADY_CANCELLED = "already_cancelled"
    RETURN_ALREADY_STARTED = "return_already_started"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_ADDRESS = "invalid_address"
    INVALID_REFUND_METHOD = "invalid_refund_method"
    ORDER_NOT_FOUND = "order_not_found"


@dataclass(frozen=True)
class PolicyDecision:
    """The answer of a rule. Truthy when allowed, so ``if can_cancel(status):`` reads naturally
    (and so an optional decision must be tested with ``is not None``, not by truthiness)."""

    allowed: bool
    needs_approval: bool
    code: DecisionCode
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.allowed


class PolicyViolation(Exception):
    """Raised by the service when a rule refuses an action; nothing has been written then."""

    def __init__(self, code: str, detail: Mapping[str, Any] | None = None) -> None:
        self.code = str(code)
        self.detail: dict[str, Any] = dict(detail or {})
        super().__init__(f"{code}: {self.detail}" if self.detail else code)

    @classmethod
    def from_decision(cls, decision: PolicyDecision) -> PolicyViolation:
        return cls(str(decision.code), decision.detail)


def _ok(**detail: Any) -> PolicyDecision:
    return PolicyDecision(True, False, DecisionCode.OK, detail)


def _no(code: DecisionCode, **detail: Any) -> PolicyDecision:
    return PolicyDecision(False, False, code, detail)


# --- windows ----------------------------------------------------------------------------------

# ABCD 'Product Defect > Return Due to Stain/Color/Size > Membership Privileges':
#   gold: unlimited returns; silver: within the last 6 months; bronze: 90 days; guest: 30 days.
# "6 months" is taken as 180 days so that the window is a fixed number of days.
_WINDOW_DAYS: Mapping[MembershipLevel, int | None] = {
    MembershipLevel.GOLD: None,
    MembershipLevel.SILVER: 180,
    MembershipLevel.BRONZE: 90,
    MembershipLevel.GUEST: 30,
}


def return_window_days(level: MembershipLevel | str) -> int | None:
    """Days a purchase can be returned; ``None`` = unlimited (gold).

    Source: ABCD 'Product Defect > Return Due to Size/Color/Stain > Membership Privileges'. The
    guideline's alternatives for human agents (a receipt, original packaging) are not modelled:
    the bot cannot check a receipt, so the date decides.
    """
    return _WINDOW_DAYS[MembershipLevel(level)]


def refund_window_days(level: MembershipLevel | str) -> int | None:
    """Days a purchase can be refunded; ``None`` = unlimited (gold).

    ABCD gives windows only for returns ('Membership Privileges'); a refund gives the money back
    for the same goods, so the store applies the same window to refunds.
    """
    return _WINDOW_DAYS[MembershipLevel(level)]


def window_deadline(since: datetime, days: int | None) -> datetime | None:
    """Last moment of a window of ``days`` starting at ``since``; ``None`` when unlimited."""
    return None if days is None else since + timedelta(days=days)


def within_window(since: datetime, now: datetime, days: int | None) -> bool:
    """Inclusive check: exactly ``days`` after ``since`` is still inside the window."""
    deadline = window_deadline(since, days)
    return deadline is None or now <= deadline


def _window_detail(since: datetime, days: int | None, level: MembershipLevel) -> dict[str, Any]:
    deadline = window_deadline(since, days)
    return {
        "membership_level": str(level),
        "window_days": days,
        "since": since.date().isoformat(),
        "deadline": deadline.date().isoformat() if deadline else None,
    }


# --- cancel / change address ------------------------------------------------------------------


def _only_while_processing(
    order_status: OrderStatus | str,
    cancelled: DecisionCode,
    shipped: Mapping[str, Any] | None = None,
    delivered: Mapping[str, Any] | None = None,
) -> PolicyDecision:
    """Shared status gate of cancelling and changing the address: allowed only while processing."""
    status = OrderStatus(order_status)
    if status is OrderStatus.PROCESSING:
        return _ok()
    if status is OrderStatus.CANCELLED:
        return _no(cancelled)
    if status is OrderStatus.SHIPPED:
        return _no(DecisionCode.ALREADY_SHIPPED, **(shipped or {}))
    return _no(DecisionCode.ALREADY_DELIVERED, **(delivered or {}))


def can_cancel(order_status: OrderStatus | str) -> PolicyDecision:
    """An order can be cancelled only while it is processing ('Order Received').

    Source: ABCD 'Order Issue > Manage Cancel / Manage Upgrade / Manage Downgrade': once the
    item is 'In Transit', 'Out for Delivery' or 'Delivered' it is too late to change the order;
    the customer waits for it and returns it instead.
    """
    return _only_while_processing(
        order_status,
        DecisionCode.ALREADY_CANCELLED,
        shipped={"suggestion": "return_after_delivery"},
        delivered={"suggestion": "return_or_refund"},
    )


def can_change_address(order_status: OrderStatus | str) -> PolicyDecision:
    """The shipping address can change only before the order ships.

    Source: ABCD 'Shipping Issue > Manage Shipping' and 'Order Issue > Manage ...' ('If the item
    is In Transit, Out for Delivery or Delivered then it is too late'). ABCD lets a human agent
    promise a fix for parcels in transit; a bot cannot redirect a parcel, so it refuses.
    """
    return _only_while_processing(order_status, DecisionCode.CANCELLED)


ADDRESS_MIN_CHARS = 8
ADDRESS_MAX_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_address(text: str) -> PolicyDecision:
    """Validate a new shipping address; on success ``detail['address']`` is the normalised form.

    ABCD 'Enter Details' asks for the full address in one line (street, city, state, zip). We can
    not verify it exists, so we only reject what cannot be an address: empty, shorter than
    ``ADDRESS_MIN_CHARS``, longer than ``ADDRESS_MAX_CHARS``, without any letter, or with control
    characters (which would also break the shipping label). Runs of whitespace are collapsed.
    """
    normalised = " ".join(unicodedata.normalize("NFC", text or "").split())
    problem: str | None = None
    if not normalised:
        problem = "empty"
    elif len(normalised) < ADDRESS_MIN_CHARS:
        problem = "too_short"
    elif len(normalised) > ADDRESS_MAX_CHARS:
        problem = "too_long"
    elif _CONTROL.search(normalised):
        problem = "control_characters"
    elif not any(ch.isalpha() for ch in normalised):
        problem = "no_letters"
    if problem:
        return _no(
            DecisionCode.INVALID_ADDRESS,
            problem=problem,
            min_chars=ADDRESS_MIN_CHARS,
            max_chars=ADDRESS_MAX_CHARS,
        )
    return _ok(address=normalised)


# --- refunds and returns ----------------------------------------------------------------------


def _not_refundable_status(status: OrderStatus) -> PolicyDecision | None:
    """Shared status gate of refunds and returns: only delivered orders qualify."""
    if status is OrderStatus.CANCELLED:
        return _no(DecisionCode.CANCELLED)
    if status is OrderStatus.REFUNDED:
        return _no(DecisionCode.ALREADY_REFUNDED)
    if status is OrderStatus.REFUND_REQUESTED:
        return _no(DecisionCode.REFUND_ALREADY_REQUESTED)
    if status is OrderStatus.PROCESSING:
        return _no(DecisionCode.CANCEL_INSTEAD, suggestion="cancel_order")
    if status is OrderStatus.SHIPPED:
        return _no(DecisionCode.NOT_DELIVERED_YET, suggestion="wait_for_delivery")
    return None


def check_refund(
    status: OrderStatus | str,
    membership: MembershipLevel | str,
    since: datetime,
    amount: Decimal,
    now: datetime,
    auto_limit: Decimal,
) -> PolicyDecision:
    """May this order be refunded, and does a person have to approve it?

    - ``since`` is when the window starts: the delivery date, or the order date when the delivery
      date is unknown (ABCD counts from the purchase date; counting from delivery is kinder to
      slow parcels and never shorter).
    - Only delivered orders qualify. A processing order is cancelled instead (ABCD 'Manage
      Cancel': 'Order Received' → remove the item and refund at once, i.e. cancellation); a
      shipped order must arrive first (ABCD: 'they must wait until the item arrives'). ABCD lets
      human agents refund members early for parcels in transit; the bot leaves that to people.
    - The window is the membership's (``refund_window_days``).
    - Above ``auto_limit`` (``settings.auto_refund_limit``) the refund is allowed but recorded as
      needing approval by a person; at the limit exactly it is automatic.
    """
    level = MembershipLevel(membership)
    refused = _not_refundable_status(OrderStatus(status))
    if refused is not None:
        return refused
    if amount <= 0:
        return _no(DecisionCode.INVALID_AMOUNT, amount=str(amount))
    days = refund_window_days(level)
    if not within_window(since, now, days):
        return _no(DecisionCode.OUTSIDE_WINDOW, **_window_detail(since, days, level))
    detail = {"amount": str(amount), "auto_limit": str(auto_limit), **_window_detail(since, days, level)}
    if amount > auto_limit:
        return PolicyDecision(True, True, DecisionCode.NEEDS_APPROVAL, detail)
    return PolicyDecision(True, False, DecisionCode.OK, detail)


def check_return(
    status: OrderStatus | str,
    membership: MembershipLevel | str,
    since: datetime,
    now: datetime,
    *,
    has_open_return: bool = False,
) -> PolicyDecision:
    """May this order be returned (a prepaid label / RMA code issued)?

    Source: ABCD 'Product Defect > Return Due to Stain/Color/Size': gold unlimited, silver 6
    months, bronze 90 days, guest 30 days (``return_window_days``), counted from ``since`` as in
    ``check_refund``. Only delivered orders can be returned, once: a second request while a label
    is open gets ``return_already_started``; orders with a refund under way or done are handled
    by that refund.
    """
    level = MembershipLevel(membership)
    refused = _not_refundable_status(OrderStatus(status))
    if refused is not None:
        return refused
    if has_open_return:
        return _no(DecisionCode.RETURN_ALREADY_STARTED)
    days = return_window_days(level)
    if not within_window(since, now, days):
        return _no(DecisionCode.OUTSIDE_WINDOW, **_window_detail(since, days, level))
    return _ok(**_window_detail(since, days, level))


# --- identity and input normalisation ---------------------------------------------------------


class HasIdentity(Protocol):
    """Anything with the identity fields on file (an ORM Customer or a CustomerView)."""

    @property
    def username(self) -> str: ...

    @property
    def email(self) -> str: ...


def normalise_identifier(text: str | None) -> str:
    """Trimmed and case-folded, so ' CMinh730@Email.com ' matches 'cminh730@email.com'."""
    return (text or "").strip().casefold()


def identity_matches(customer: HasIdentity, identifier: str | None) -> bool:
    """True when ``identifier`` is the customer's email or username on file.

    Source: ABCD 'Validate Purchase' (username, email address, order id). The order id is checked
    by the caller (it selects the order whose customer is compared here); one of email or
    username is enough, because customers often do not remember their username (ABCD).
    Comparison ignores case and surrounding whitespace; an empty identifier never matches.
    """
    wanted = normalise_identifier(identifier)
    if not wanted:
        return False
    return wanted in (normalise_identifier(customer.email), normalise_identifier(customer.username))


_ORDER_ID = re.compile(r"\d{10}")


def normalise_order_id(text: str | None) -> str | None:
    """The 10-digit order id in ``text`` with spaces/dashes removed, or ``None`` if it is not one.

    Order ids are 10 digits (ABCD, e.g. 3348917502); customers type them with spaces or dashes.
    """
    if text is None:
        return None
    compact = re.sub(r"[\s\-]", "", str(text))
    return compact if _ORDER_ID.fullmatch(compact) else None


_REFUND_METHOD_WORDS: Mapping[str, RefundMethod] = {
    "credit card": RefundMethod.CREDIT_CARD,
    "card": RefundMethod.CREDIT_CARD,
    "gift card": RefundMethod.GIFT_CARD,
    "paper check": RefundMethod.PAPER_CHECK,
    "check": RefundMethod.PAPER_CHECK,
    "cheque": RefundMethod.PAPER_CHECK,
    "store credit": RefundMethod.STORE_CREDIT,
    "add value": RefundMethod.STORE_CREDIT,
    "account credit": RefundMethod.STORE_CREDIT,
}


def parse_refund_method(text: RefundMethod | str | None) -> RefundMethod | None:
    """Map a canonical value ('gift_card') or ABCD wording ('add value', 'paper check') to a method."""
    if isinstance(text, RefundMethod):
        return text
    key = normalise_identifier(text).replace("_", " ").replace("-", " ")
    key = " ".join(key.split())
    try:
        return RefundMethod(key.replace(" ", "_"))
    except ValueError:
        return _REFUND_METHOD_WORDS.get(key)
