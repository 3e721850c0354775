"""Tables of the conversation store (schema: the Alembic baseline ``0001_schema``).

The gateway, not Rasa, owns the transcript: every inbound and outbound message is written here
with its channel and language, and every turn records what the bot understood, so the record is
complete even when Rasa restarts or its tracker is lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.db import Base
from storage.types import UTCDateTime


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(String(128), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    script: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default="bot")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Messages (an agent's reply, a queue update) not yet delivered to a customer whose channel cannot
    # push (plain REST): returned with their next answer. Read with the row the turn loads anyway.
    undelivered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The other requests of a message that asked for several things, handled once the first is done
    # (conversations/requests.py).
    pending_requests: Mapped[list[Any] | None] = mapped_column(JSON)  # requests.Request.stored() (older rows: texts)

    messages: Mapped[list[Message]] = relationship(back_populates="conversation", order_by="Message.id")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "client_message_id", name="uq_messages_client_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", name="fk_messages_conversation"))
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    # Inbound only: pending (stored, not yet answered) → answered.
    status: Mapped[str | None] = mapped_column(String(16))
    client_message_id: Mapped[str | None] = mapped_column(String(128))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", name="fk_messages_reply_to"))
    type: Mapped[str] = mapped_column(String(16), default="text")
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)  # the button payload a customer clicked
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # buttons, sources, custom
    language: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Inbound only: how often Rasa failed on it; see settings.rasa_max_attempts.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Turn(Base):
    """What the bot understood and did for one inbound message."""

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_conversation", "conversation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", name="fk_turns_conversation"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", name="fk_turns_message"), unique=True)
    language: Mapped[str] = mapped_column(String(8))
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    intent_ranking: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    entities: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    slots: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active_loop: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbAnswer(Base):
    """One knowledge-base reply (answer, clarification or decline) and the customer's verdict on it.

    Keyed by sender id rather than conversation id because the Rasa action that writes it knows only
    the tracker's sender; ops reports join on it. ``helpful`` stays NULL until a feedback button.
    """

    __tablename__ = "kb_answers"
    __table_args__ = (
        Index("ix_kb_answers_sender", "sender_id", "id"),
        Index("ix_kb_answers_article", "article_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(String(128))
    query: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))  # answered | clarified | declined
    article_id: Mapped[str | None] = mapped_column(String(128))
    article_language: Mapped[str | None] = mapped_column(String(8))
    score: Mapped[float | None] = mapped_column(Float)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    helpful: Mapped[bool | None] = mapped_column(Boolean)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def undelivered_less(delivered: int) -> ColumnElement[int]:
    """``undelivered`` less the messages just delivered, never below 0, in SQL that every database runs
    (SQLite's two-argument ``max`` does not exist on PostgreSQL: the update failed there with a 500)."""
    return case((Conversation.undelivered > delivered, Conversation.undelivered - delivered), else_=0)
