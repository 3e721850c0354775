"""Orders the seed sets aside for the conversation scenarios' order pools (``scenarios/pools.py``).

A scenario that writes (cancels, re-addresses, refunds, returns) reserves an order of its own from
a pool, so one run needs as many orders of a kind as its scenarios use. The generated orders of
``store.seed`` hold only some fifteen to thirty-five of each kind, fewer than the scenario files use
(``processing`` above all), so the seed adds these: every order for a customer of its own, so that
nothing one scenario does can reach another scenario's order or customer.

Sizes (``POOL_ORDERS``): every scenario under ``tests/`` (the shipped suite and the whole blind set,
holdout included) reserved in one run leaves at least half as many again unreserved in every pool
it uses; ``tests/test_scenarios.py`` reserves them all from a freshly seeded store and checks that.
The refund and return pools depend on membership and delivery age, so those orders cycle through
the membership levels and are delivered at ages spread over the level's window, at least
``WINDOW_MARGIN`` from its end (the pools skip orders within two days of it). They are drawn from a
random stream of their own, after everything else, so the rest of the data set does not change.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from store.models import Customer, OrderItem
from store.policies import MembershipLevel, OrderStatus, refund_window_days

if TYPE_CHECKING:
    from store.seed import _Builder

POOL_RANDOM_SEED = 20240613
# pool name (scenarios/pools.py) → orders added for it
POOL_ORDERS: dict[str, int] = {
    "processing": 175,
    "shipped": 6,
    "refundable": 75,
    "refund_above_limit": 6,
    "outside_refund_window": 6,
    "refunded": 12,  # each its own customer: a password reset on one never touches another's account
}
WINDOW_MARGIN = timedelta(days=5)
UNLIMITED_WINDOW = timedelta(days=365)  # gold has no window: its orders are spread over a year
LEVELS = tuple(MembershipLevel)
WINDOWED_LEVELS = tuple(m for m in MembershipLevel if refund_window_days(m) is not None)


def _window(level: MembershipLevel) -> timedelta:
    days = refund_window_days(level)
    return UNLIMITED_WINDOW if days is None else timedelta(days=days)


def _customer(b: _Builder, level: MembershipLevel) -> Customer:
    return b.add_customer(replace(b.random_person(), level=level))


def _items_at_most(b: _Builder, limit: Decimal) -> list[OrderItem]:
    for _ in range(50):
        items = b.random_items()
        if sum(i.unit_price * i.quantity for i in items) <= limit:
            return items
    item = b.random_items()[0]  # a very low limit: one item at half of it
    item.quantity, item.unit_price = 1, max(Decimal("0.01"), (limit / 2).quantize(Decimal("0.01")))
    return [item]


def _items_above(b: _Builder, limit: Decimal) -> list[OrderItem]:
    items = b.random_items()
    while sum(i.unit_price * i.quantity for i in items) <= limit:
        items += b.random_items()
    return items


def _delivered(b: _Builder, level: MembershipLevel, items: list[OrderItem], age: timedelta) -> None:
    ordered, shipped, delivered = b.shipped_dates(age / timedelta(days=1))
    b.make_order(
        _customer(b, level),
        OrderStatus.DELIVERED,
        items,
        ordered_at=ordered,
        shipped_at=shipped,
        delivered_at=delivered,
    )


def _inside_window(b: _Builder, level: MembershipLevel) -> timedelta:
    return timedelta(days=b.rng.uniform(1, (_window(level) - WINDOW_MARGIN) / timedelta(days=1)))


def add_pool_orders(b: _Builder) -> None:
    """Add ``POOL_ORDERS`` to the builder's data set (replaces its random stream by the pools' own)."""
    b.rng = random.Random(POOL_RANDOM_SEED)
    rng, ref = b.rng, b.ref
    for i in range(POOL_ORDERS["processing"]):
        customer = _customer(b, LEVELS[i % len(LEVELS)])
        ordered = ref - timedelta(hours=rng.uniform(1, 48))
        b.make_order(customer, OrderStatus.PROCESSING, b.random_items(), ordered_at=ordered)
    for i in range(POOL_ORDERS["shipped"]):
        customer = _customer(b, LEVELS[i % len(LEVELS)])
        ordered = ref - timedelta(days=rng.uniform(2, 7))
        shipped = ordered + timedelta(hours=rng.uniform(12, 36))
        b.make_order(customer, OrderStatus.SHIPPED, b.random_items(), ordered_at=ordered, shipped_at=shipped)
    for i in range(POOL_ORDERS["refundable"]):
        level = LEVELS[i % len(LEVELS)]
        _delivered(b, level, _items_at_most(b, b.limit), _inside_window(b, level))
    for i in range(POOL_ORDERS["refund_above_limit"]):
        level = LEVELS[i % len(LEVELS)]
        _delivered(b, level, _items_above(b, b.limit), _inside_window(b, level))
    for i in range(POOL_ORDERS["outside_refund_window"]):
        level = WINDOWED_LEVELS[i % len(WINDOWED_LEVELS)]
        late = WINDOW_MARGIN + timedelta(days=rng.uniform(0, 120))
        _delivered(b, level, b.random_items(), _window(level) + late)
    for i in range(POOL_ORDERS["refunded"]):
        b.random_order(_customer(b, LEVELS[i % len(LEVELS)]), OrderStatus.REFUNDED)
