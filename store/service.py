"""What the bot may ask of the store: ``OrdersService``, and its SQL implementation.

The bot depends only on the ``OrdersService`` protocol and the frozen views below, never on ORM
objects, so it can be tested with a fake and cannot lazily hit the database from a view.
Every rule is decided by ``store.policies``; this module only loads, checks, writes. Each write
runs in one ``storage.db.transaction``: when a rule refuses, ``PolicyViolation`` is raised inside
it and the transaction rolls back, so nothing half-written remains.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from storage.db import transaction
from store import policies
from store.models import Customer, Order, OutboxEmail, Refund, ReturnRequest
from store.policies import (
    DecisionCode,
    MembershipLevel,
    OrderStatus,
    PolicyViolation,
    RefundMethod,
    RefundStatus,
    ReturnStatus,
)

REASON_MAX_CHARS = 500
DEFAULT_RESET_URL = "https://shop.example.com/reset-password"
# At most one password-reset email per account in this interval: anyone may ask for a reset link
# for any address (that is the point of it), so repeating the request must not flood the mailbox.
RESET_EMAIL_INTERVAL = timedelta(minutes=15)


# --- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerView:
    username: str
    full_name: str
    email: str
    membership_level: MembershipLevel


@dataclass(frozen=True)
class ItemView:
    product_name: str
    category: str
    size: str
    colour: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class RefundView:
    id: int
    order_id: str
    amount: Decimal
    currency: str
    method: RefundMethod
    reason: str
    status: RefundStatus
    created_at: datetime


@dataclass(frozen=True)
class ReturnView:
    id: int
    order_id: str
    rma_code: str
    reason: str
    status: ReturnStatus
    created_at: datetime


@dataclass(frozen=True)
class OrderView:
    order_id: str
    status: OrderStatus
    ordered_at: datetime
    shipped_at: datetime | None
    delivered_at: datetime | None
    carrier: str | None
    tracking_number: str | None
    shipping_address: str
    payment_method: str
    total: Decimal
    currency: str
    items: tuple[ItemView, ...]
    customer: CustomerView
    refund: RefundView | None  # the latest refund, if any
    return_request: ReturnView | None  # the latest return, if any


# --- the interface the bot depends on -----------------------------------------------------------


@runtime_checkable
class OrdersService(Protocol):
    """The store operations the support bot may perform.

    Mutations raise ``PolicyViolation(code, detail)`` when a rule refuses (codes listed in
    ``store.policies``); an unknown order id raises it with code ``order_not_found``.
    """

    def get_order(self, order_id: str) -> OrderView | None: ...

    def verify_identity(self, order_id: str, identifier: str) -> CustomerView | None: ...

    def orders_of(self, username: str) -> list[OrderView]: ...

    def cancel_order(self, order_id: str, now: datetime | None = None) -> OrderView: ...

    def change_address(self, order_id: str, new_address: str) -> OrderView: ...

    def request_refund(
        self, order_id: str, method: RefundMethod | str, reason: str, now: datetime | None = None
    ) -> RefundView: ...

    def refund_status(self, order_id: str) -> RefundView | None: ...

    def start_return(self, order_id: str, reason: str, now: datetime | None = None) -> ReturnView: ...

    def request_password_reset(self, identifier: str, now: datetime | None = None) -> bool: ...


# --- conversions ------------------------------------------------------------------------------


def _customer_view(c: Customer) -> CustomerView:
    return CustomerView(c.username, c.full_name, c.email, MembershipLevel(c.membership_level))


def _refund_view(r: Refund, currency: str) -> RefundView:
    return RefundView(
        id=r.id,
        order_id=r.order_id,
        amount=r.amount,
        currency=currency,
        method=RefundMethod(r.method),
        reason=r.reason,
        status=RefundStatus(r.status),
        created_at=r.created_at,
    )


def _return_view(r: ReturnRequest) -> ReturnView:
    return ReturnView(r.id, r.order_id, r.rma_code, r.reason, ReturnStatus(r.status), r.created_at)


def _order_view(o: Order) -> OrderView:
    refund = o.refunds[-1] if o.refunds else None
    ret = o.return_requests[-1] if o.return_requests else None
    return OrderView(
        order_id=o.order_id,
        status=OrderStatus(o.status),
        ordered_at=o.ordered_at,
        shipped_at=o.shipped_at,
        delivered_at=o.delivered_at,
        carrier=o.carrier,
        tracking_number=o.tracking_number,
        shipping_address=o.shipping_address,
        payment_method=o.payment_method,
        total=o.total,
        currency=o.currency,
        items=tuple(ItemView(i.product_name, i.category, i.size, i.colour, i.quantity, i.unit_price) for i in o.items),
        customer=_customer_view(o.customer),
        refund=_refund_view(refund, o.currency) if refund else None,
        return_request=_return_view(ret) if ret else None,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _clean_reason(reason: str | None) -> str:
    """Free text for people: whitespace collapsed, cut at the column size, never empty."""
    text = " ".join((reason or "").split()) or "not given"
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"


_RMA_ALPHABET = string.ascii_uppercase + string.digits


def new_rma_code() -> str:
    """'RMA-' and 8 random characters: unguessable, short enough to read out on the phone."""
    return "RMA-" + "".join(secrets.choice(_RMA_ALPHABET) for _ in range(8))


_LOADS = (
    selectinload(Order.items),
    selectinload(Order.customer),
    selectinload(Order.refunds),
    selectinload(Order.return_requests),
)


# --- the implementation -----------------------------------------------------------------------


class SqlOrdersService:
    """``OrdersService`` over any SQLAlchemy database (SQLite or PostgreSQL).

    ``auto_refund_limit`` defaults to ``settings.auto_refund_limit``; ``reset_url`` is the page
    the password-reset link points to.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        auto_refund_limit: Decimal | None = None,
        reset_url: str = DEFAULT_RESET_URL,
        reset_interval: timedelta = RESET_EMAIL_INTERVAL,
    ) -> None:
        if auto_refund_limit is None:
            from settings import get_settings

            auto_refund_limit = get_settings().auto_refund_limit
        self._factory = session_factory
        self.auto_refund_limit = Decimal(auto_refund_limit)
        self.reset_url = reset_url
        self.reset_interval = reset_interval

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _load(session: Session, order_id: str, *, lock: bool = False) -> Order | None:
        """The order with its relations; ``lock`` takes a row lock (PostgreSQL) for updates.

        Relations are loaded with separate SELECTs (``selectinload``), never outer joins, because
        PostgreSQL refuses ``FOR UPDATE`` on the nullable side of an outer join.
        """
        oid = policies.normalise_order_id(order_id)
        if oid is None:
            return None
        stmt = select(Order).where(Order.order_id == oid).options(*_LOADS)
        if lock:
            stmt = stmt.with_for_update(of=Order)
        return session.scalars(stmt).one_or_none()

    def _load_for_update(self, session: Session, order_id: str) -> Order:
        order = self._load(session, order_id, lock=True)
        if order is None:
            raise PolicyViolation(DecisionCode.ORDER_NOT_FOUND, {"order_id": str(order_id)})
        return order

    # --- reads ----------------------------------------------------------------------------------

    def get_order(self, order_id: str) -> OrderView | None:
        """The order as a view, or ``None`` for an unknown or malformed id."""
        with self._factory() as session:
            order = self._load(session, order_id)
            return _order_view(order) if order else None

    def verify_identity(self, order_id: str, identifier: str) -> CustomerView | None:
        """The order's customer when ``identifier`` is their email or username, else ``None``.

        One answer for "no such order" and "wrong person" so the bot cannot leak which it was.
        """
        with self._factory() as session:
            order = self._load(session, order_id)
            if order is None or not policies.identity_matches(order.customer, identifier):
                return None
            return _customer_view(order.customer)

    def orders_of(self, username: str) -> list[OrderView]:
        """All orders of a customer, newest first (empty for an unknown username)."""
        name = policies.normalise_identifier(username)
        with self._factory() as session:
            stmt = (
                select(Order)
                .join(Order.customer)
                .where(func.lower(Customer.username) == name)
                .options(*_LOADS)
                .order_by(Order.ordered_at.desc(), Order.order_id)
            )
            return [_order_view(o) for o in session.scalars(stmt)]

    def refund_status(self, order_id: str) -> RefundView | None:
        """The latest refund of the order, or ``None`` (no refund, or unknown order)."""
        view = self.get_order(order_id)
        return view.refund if view else None

    # --- writes ---------------------------------------------------------------------------------

    def cancel_order(self, order_id: str, now: datetime | None = None) -> OrderView:
        """Cancel an order that has not shipped (``policies.can_cancel``)."""
        with transaction(self._factory) as session:
            order = self._load_for_update(session, order_id)
            decision = policies.can_cancel(order.status)
            if not decision.allowed:
                raise PolicyViolation.from_decision(decision)
            order.status = OrderStatus.CANCELLED.value
            session.flush()
            return _order_view(order)

    def change_address(self, order_id: str, new_address: str) -> OrderView:
        """Change the shipping address of an order that has not shipped (``can_change_address``)."""
        with transaction(self._factory) as session:
            order = self._load_for_update(session, order_id)
            decision = policies.can_change_address(order.status)
            if not decision.allowed:
                raise PolicyViolation.from_decision(decision)
            checked = policies.check_address(new_address)
            if not checked.allowed:
                raise PolicyViolation.from_decision(checked)
            order.shipping_address = checked.detail["address"]
            session.flush()
            return _order_view(order)

    def request_refund(
        self, order_id: str, method: RefundMethod | str, reason: str, now: datetime | None = None
    ) -> RefundView:
        """Record a refund of the order total (``policies.check_refund``).

        Status ``requested`` up to the auto limit, ``pending_approval`` above it; the order moves
        to ``refund_requested``.
        """
        now = now or _utcnow()
        refund_method = policies.parse_refund_method(method)
        if refund_method is None:
            raise PolicyViolation(
                DecisionCode.INVALID_REFUND_METHOD,
                {"method": str(method), "valid": [m.value for m in RefundMethod]},
            )
        with transaction(self._factory) as session:
            order = self._load_for_update(session, order_id)
            decision = policies.check_refund(
                order.status,
                order.customer.membership_level,
                order.delivered_at or order.ordered_at,
                order.total,
                now,
                self.auto_refund_limit,
            )
            if not decision.allowed:
                raise PolicyViolation.from_decision(decision)
            refund = Refund(
                amount=order.total,
                method=refund_method.value,
                reason=_clean_reason(reason),
                status=(RefundStatus.PENDING_APPROVAL if decision.needs_approval else RefundStatus.REQUESTED).value,
                created_at=now,
            )
            order.refunds.append(refund)
            order.status = OrderStatus.REFUND_REQUESTED.value
            session.flush()
            return _refund_view(refund, order.currency)

    def start_return(self, order_id: str, reason: str, now: datetime | None = None) -> ReturnView:
        """Issue a return label (RMA code) for a delivered order inside its window."""
        now = now or _utcnow()
        with transaction(self._factory) as session:
            order = self._load_for_update(session, order_id)
            open_return = any(r.status == ReturnStatus.LABEL_ISSUED for r in order.return_requests)
            decision = policies.check_return(
                order.status,
                order.customer.membership_level,
                order.delivered_at or order.ordered_at,
                now,
                has_open_return=open_return,
            )
            if not decision.allowed:
                raise PolicyViolation.from_decision(decision)
            ret = ReturnRequest(
                reason=_clean_reason(reason),
                rma_code=new_rma_code(),
                status=ReturnStatus.LABEL_ISSUED.value,
                created_at=now,
            )
            order.return_requests.append(ret)
            session.flush()
            return _return_view(ret)

    def request_password_reset(self, identifier: str, now: datetime | None = None) -> bool:
        """Queue a reset link for the account with this email or username.

        Returns whether an account matched; the caller must answer the customer the same way in
        both cases so that the bot cannot be used to probe which accounts exist. The link carries
        a random ``secrets`` token and goes only to the address on file; a second request within
        ``reset_interval`` of the last email to that account writes nothing (the first link works).
        """
        wanted = policies.normalise_identifier(identifier)
        if not wanted:
            return False
        now = now or _utcnow()
        with transaction(self._factory) as session:
            customer = session.scalars(
                select(Customer).where(
                    or_(func.lower(Customer.email) == wanted, func.lower(Customer.username) == wanted)
                )
            ).first()
            if customer is None:
                return False
            recent = session.scalars(
                select(OutboxEmail.id).where(
                    OutboxEmail.to_address == customer.email,
                    OutboxEmail.kind == "password_reset",
                    OutboxEmail.created_at > now - self.reset_interval,
                )
            ).first()
            if recent is not None:
                return True
            token = secrets.token_urlsafe(32)
            link = f"{self.reset_url}?token={token}"
            session.add(
                OutboxEmail(
                    to_address=customer.email,
                    subject="Reset your password",
                    body=(
                        f"Hello {customer.full_name},\n\n"
                        f"We received a request to reset the password of the account {customer.username}.\n"
                        f"Choose a new password here: {link}\n\n"
                        "If you did not ask for this, ignore this email; your password stays the same.\n"
                    ),
                    kind="password_reset",
                    created_at=now,
                    sent_at=None,
                )
            )
            return True
