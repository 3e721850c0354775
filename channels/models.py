"""Tables of the push channels (Telegram, WeChat): schema in the Alembic baseline ``0001_schema``.

- ``channel_inbound``: every update/message a channel delivered, unique by the channel's own id
  (Telegram ``update_id``, WeChat ``MsgId``), so a redelivery is processed once, and so that a
  message stored while Rasa was down is retried by the gateway until the customer has an answer.
- ``channel_outbox``: every API call that carries a message to a customer. Rows stay until the
  channel accepted them (``sent``) or refused them for good (``rejected``, reason kept); nothing is
  deleted, so an outage never loses a message.
- ``channel_buttons``: button payloads a channel cannot carry itself (WeChat's numbered options,
  Telegram payloads longer than its 64-byte ``callback_data``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base
from storage.types import UTCDateTime


class _Retried:
    """The columns of a row the gateway retries until it goes through (an inbound message Rasa could not
    answer yet, an API call a channel did not take yet): the tries so far, when the next one is due, the
    last error, and when the row was made. They come after the table's own columns and before its
    time of completion (``sort_order=1``), as in the migration."""

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChannelInbound(_Retried, Base):
    __tablename__ = "channel_inbound"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_channel_inbound_external"),
        Index("ix_channel_inbound_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(160))
    sender_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))  # explicit choice, passed to the service
    language_hint: Mapped[str | None] = mapped_column(String(16))  # for notices only (e.g. Telegram's UI language)
    # received → answered | pending (Rasa down, retried) → answered; or declined (reason says why)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), sort_order=1)


class ChannelOutbox(_Retried, Base):
    __tablename__ = "channel_outbox"
    __table_args__ = (
        UniqueConstraint("dedup_key", name="uq_channel_outbox_dedup_key"),
        Index("ix_channel_outbox_queue", "channel", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    sender_id: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(64))  # the API call, e.g. sendMessage, message/custom/send
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Replies to one inbound message get "<inbound id>:<n>", so reprocessing never enqueues twice.
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | rejected
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), sort_order=1)


class ChannelButton(Base):
    __tablename__ = "channel_buttons"
    __table_args__ = (Index("ix_channel_buttons_sender", "sender_id", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(String(128))
    slot: Mapped[int | None] = mapped_column(Integer)  # WeChat: the number shown; NULL for by-id references
    title: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
