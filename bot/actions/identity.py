"""Who the customer has proven to be, re-checked against the store whenever an order is touched.

The tracker's slots say ``verified: true`` and ``verified_username`` once a form verified the
customer, but a tracker is only what the caller of the action server sent: every action that reads
or changes an order asks the store here whether that identity owns that order, at the moment it
runs, and treats a claim the store does not confirm as no verification at all (and as a failed try,
so forged trackers run into the same lockout as guesses in the chat: ``store.verification``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rasa_sdk import Tracker

from bot.actions import extract
from bot.actions.runtime import services
from store import policies
from store.service import OrderView
from store.verification import VerificationGuard


def _now() -> datetime:
    return datetime.now(UTC)


# The clock of the lockout window; tests replace it to move past the window without sleeping.
clock: Callable[[], datetime] = _now


def guard() -> VerificationGuard:
    s = services()
    if s.sessions is None:
        raise RuntimeError("identity verification needs the gateway's database (runtime.configure(sessions=...))")
    return VerificationGuard(
        s.orders,
        s.sessions,
        max_attempts=s.settings.max_verification_attempts,
        lockout=timedelta(minutes=s.settings.verification_lockout_min),
        clock=lambda: clock(),
    )


def minutes_left(until: datetime | None) -> int:
    """Whole minutes until ``until`` (at least 1), for "try again in N minutes"."""
    if until is None:
        return max(1, math.ceil(services().settings.verification_lockout_min))
    return max(1, math.ceil((until - clock()).total_seconds() / 60))


def owns(order: OrderView, username: str | None) -> bool:
    """Whether the proven identity ``username`` is the order's customer (email accepted too)."""
    return bool(username) and policies.identity_matches(order.customer, str(username))


def claimed_order(tracker: Tracker) -> str | None:
    return extract.order_id(tracker.get_slot("order_id"))


def verified_order(tracker: Tracker) -> OrderView | None:
    """The tracker's order when the tracker says verified AND the store confirms the verified identity
    owns it right now; ``None`` otherwise (not verified, unknown order, or someone else's)."""
    if not tracker.get_slot("verified"):
        return None
    order_id = claimed_order(tracker)
    if order_id is None:
        return None
    order = services().orders.get_order(order_id)
    if order is None or not owns(order, tracker.get_slot("verified_username")):
        return None
    return order


def proven_username(tracker: Tracker) -> str | None:
    """The verified identity, only when the store confirms it owns the tracker's order."""
    order = verified_order(tracker)
    return order.customer.username if order is not None else None
