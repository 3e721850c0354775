"""Order pools: scenarios that change the store get an order of their own.

A cancellation, an address change or a refund changes the order for good, so a scenario that
quoted a fixed order id would pass once and fail on every later run against the same database (or
when another test got there first). Such a scenario names the kind of order it needs instead
(``uses: {o: processing}``) and writes ``${o.order_id}`` / ``${o.email}`` where the customer types
them; the runner reserves a distinct matching order for each scenario from the generated orders
of the demo store (never the well-known ``DEMO`` orders that docs and other tests rely on). The
seed sets orders aside for the pools the scenario files use (``store/seed_pools.py``, sized for
every file under ``tests/`` in one run with half as many again to spare; a test checks it).

Eligibility uses the store's own rules (``store.policies``), with a safety margin of two days at
the edge of a refund or return window so that an order cannot drift out of its pool mid-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from store import policies
from store.policies import DecisionCode, OrderStatus

# What a scenario may write as ${name.field}.
FIXTURE_FIELDS = (
    "order_id",
    "username",
    "email",
    "full_name",
    "tracking_number",
    "carrier",
    "total",
    "status",
    "shipping_address",
)
# What a scenario's ``store:`` section may check on a reserved order after the conversation.
STORE_FIELDS = (
    "status",
    "shipping_address",
    "refund_status",
    "refund_method",
    "refund_count",
    "return_status",
    "refund_amount",
    "refund_reason",
    "return_reason",
    "other_orders_unchanged",
)
EDGE_MARGIN = timedelta(days=2)


@dataclass(frozen=True)
class Candidate:
    """An order as the pools see it (plain values, read from the store)."""

    order_id: str
    status: str
    membership: str
    ordered_at: datetime
    delivered_at: datetime | None
    total: Decimal
    refunds: int
    returns: int
    username: str
    email: str
    full_name: str
    tracking_number: str | None
    carrier: str | None
    shipping_address: str

    @property
    def since(self) -> datetime:
        """Where refund and return windows start (as ``bot.actions.forms.window_start``)."""
        return self.delivered_at or self.ordered_at

    def fields(self) -> dict[str, str]:
        return {
            "order_id": self.order_id,
            "username": self.username,
            "email": self.email,
            "full_name": self.full_name,
            "tracking_number": self.tracking_number or "",
            "carrier": self.carrier or "",
            "total": f"{self.total:.2f}",
            "status": self.status,
            "shipping_address": self.shipping_address,
        }


def _clear_of_edge(c: Candidate, now: datetime, days: int | None) -> bool:
    """True when the order is not within EDGE_MARGIN of its window's end (either side)."""
    if days is None:
        return True
    end = c.since + timedelta(days=days)
    return abs(end - now) > EDGE_MARGIN


def _refund(c: Candidate, now: datetime, limit: Decimal) -> policies.PolicyDecision:
    return policies.check_refund(c.status, c.membership, c.since, c.total, now, limit)


def _fresh_refund(code: DecisionCode) -> Callable[[Candidate, datetime, Decimal], bool]:
    """Delivered, with no refund or return yet, clear of the refund window's edge, and the refund
    check answers ``code`` (OK: refunded at once; NEEDS_APPROVAL: above the automatic limit)."""

    def check(c: Candidate, now: datetime, limit: Decimal) -> bool:
        d = _refund(c, now, limit)
        return (
            c.status == OrderStatus.DELIVERED
            and not c.refunds
            and not c.returns
            and d.code == code
            and _clear_of_edge(c, now, policies.refund_window_days(c.membership))
        )

    return check


_refundable = _fresh_refund(DecisionCode.OK)
_refund_above_limit = _fresh_refund(DecisionCode.NEEDS_APPROVAL)


def _outside_refund_window(c: Candidate, now: datetime, limit: Decimal) -> bool:
    return (
        c.status == OrderStatus.DELIVERED
        and not c.refunds
        and _refund(c, now, limit).code == DecisionCode.OUTSIDE_WINDOW
        and _clear_of_edge(c, now, policies.refund_window_days(c.membership))
    )


def _returnable(c: Candidate, now: datetime, limit: Decimal) -> bool:
    d = policies.check_return(c.status, c.membership, c.since, now, has_open_return=bool(c.returns))
    return (
        c.status == OrderStatus.DELIVERED
        and not c.refunds
        and d.allowed
        and _clear_of_edge(c, now, policies.return_window_days(c.membership))
    )


def _status(status: OrderStatus) -> Callable[[Candidate, datetime, Decimal], bool]:
    return lambda c, now, limit: c.status == status and not c.returns


POOLS: dict[str, tuple[str, Callable[[Candidate, datetime, Decimal], bool]]] = {
    "processing": ("not shipped yet: can be cancelled or re-addressed", _status(OrderStatus.PROCESSING)),
    "shipped": ("in transit", _status(OrderStatus.SHIPPED)),
    "delivered": ("delivered, any age", _status(OrderStatus.DELIVERED)),
    "refundable": ("delivered, inside the refund window, at or under the automatic limit", _refundable),
    "refund_above_limit": ("delivered, inside the window, above the automatic limit", _refund_above_limit),
    "outside_refund_window": ("delivered, outside the membership's refund window", _outside_refund_window),
    "returnable": ("delivered, inside the return window, no return or refund yet", _returnable),
    "refund_requested": ("a refund is already under way", _status(OrderStatus.REFUND_REQUESTED)),
    "refunded": ("already refunded", _status(OrderStatus.REFUNDED)),
    "cancelled": ("cancelled before shipping", _status(OrderStatus.CANCELLED)),
}


def matches(pool: str, candidate: Candidate, now: datetime, limit: Decimal) -> bool:
    return POOLS[pool][1](candidate, now, limit)
