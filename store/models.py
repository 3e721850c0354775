"""Tables of the demo store (schema owned by Alembic revisions ``0001_store`` and
``0007_verification_failures``).

Statuses, levels and methods are stored as short strings (the values of the enums in
``store.policies``) rather than database enums, so that adding a value never needs an
``ALTER TYPE`` on PostgreSQL or a table rebuild on SQLite. Money is ``Numeric(10, 2)``.
Timestamps are stored as naive UTC and always read back as timezone-aware UTC (``storage.types.UTCDateTime``),
which behaves the same on SQLite (no time zones) and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from storage.db import Base
from storage.types import UTCDateTime

Money = Numeric(10, 2)


class _OrderPart:
    """The key columns of a row that belongs to one order (an item, a refund, a return): its own
    integer id and the order's id, indexed, with the row deleted along with its order. They come
    first in the table (``sort_order``), as in the migrations."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=-1)

    @declared_attr
    def order_id(cls) -> Mapped[str]:
        """``order_id`` with a foreign key named ``fk_<table>_order_id_orders``."""
        return mapped_column(
            ForeignKey("orders.order_id", name=f"fk_{cls.__tablename__}_order_id_orders", ondelete="CASCADE"),
            index=True,
            sort_order=-1,
        )


class Customer(Base):
    """A store account. ``username``/``email`` are stored lower-case (lookups are case-blind)."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("username", name="uq_customers_username"),
        UniqueConstraint("email", name="uq_customers_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(32))
    membership_level: Mapped[str] = mapped_column(String(16))
    zip_code: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    """An order; ``order_id`` is the 10-digit number customers quote (ABCD style)."""

    __tablename__ = "orders"
    __table_args__ = (CheckConstraint("total >= 0", name="ck_orders_total_nonnegative"),)

    order_id: Mapped[str] = mapped_column(String(10), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", name="fk_orders_customer_id_customers", ondelete="RESTRICT"),
        index=True,
    )
    status: Mapped[str] = mapped_column(String(32))
    ordered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    carrier: Mapped[str | None] = mapped_column(String(16))
    tracking_number: Mapped[str | None] = mapped_column(String(40))
    shipping_address: Mapped[str] = mapped_column(String(200))
    payment_method: Mapped[str] = mapped_column(String(16))
    total: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), default="USD")

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Refund.id"
    )
    return_requests: Mapped[list[ReturnRequest]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="ReturnRequest.id"
    )


class OrderItem(_OrderPart, Base):
    """One line of an order: a product such as 'Calvin Klein jeans' in a size and colour."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_order_items_quantity_positive"),
        CheckConstraint("unit_price >= 0", name="ck_order_items_unit_price_nonnegative"),
    )

    product_name: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(32))
    size: Mapped[str] = mapped_column(String(16))
    colour: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money)

    order: Mapped[Order] = relationship(back_populates="items")


class Refund(_OrderPart, Base):
    """A refund of an order: how much, to which method, why, and where it stands."""

    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="ck_refunds_amount_positive"),)

    amount: Mapped[Decimal] = mapped_column(Money)
    method: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    order: Mapped[Order] = relationship(back_populates="refunds")


class ReturnRequest(_OrderPart, Base):
    """A return: the RMA code printed on the prepaid label identifies the parcel coming back."""

    __tablename__ = "return_requests"
    __table_args__ = (UniqueConstraint("rma_code", name="uq_return_requests_rma_code"),)

    reason: Mapped[str] = mapped_column(String(500))
    rma_code: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    order: Mapped[Order] = relationship(back_populates="return_requests")


class OutboxEmail(Base):
    """An email waiting to be sent (transactional outbox): written in the same transaction as
    the change that causes it, delivered later by a sender that sets ``sent_at``."""

    __tablename__ = "outbox_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class VerificationFailure(Base):
    """A failed identity check (order id + email/username), kept for the lockout window.

    Counted per order id and per sender (the conversation's sender id), so neither a new form nor a
    new conversation gives an attacker new tries (``store.verification``). ``order_id`` is what the
    customer typed (ten digits), not a foreign key: a guess at an order that does not exist counts
    the same, and says nothing about which orders exist.
    """

    __tablename__ = "verification_failures"
    __table_args__ = (
        Index("ix_verification_failures_order_id_created_at", "order_id", "created_at"),
        Index("ix_verification_failures_sender_id_created_at", "sender_id", "created_at"),
        Index("ix_verification_failures_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(10))
    sender_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
