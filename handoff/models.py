"""Tables of the human handoff (schema: the Alembic baseline ``0001_schema``).

A ticket is the handoff record; its transcript is *not* copied here but read from the
conversation store (``messages``), which the gateway writes for every customer, bot and agent
message, so the agent always sees the whole conversation, including what was said after the
escalation. What the bot understood at escalation time is kept in ``context`` so it survives a
Rasa restart or a lost tracker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import conversations.models  # noqa: F401  (tickets reference conversations.id)
from storage.db import Base
from storage.types import UTCDateTime

# Ticket statuses: open ones first.
OPEN_STATUSES = ("queued", "assigned")
CLOSED_STATUSES = ("resolved", "handed_back", "abandoned", "closed")


class HandoffQueue(Base):
    """A queue serves one topic in one language, with its own business hours."""

    __tablename__ = "handoff_queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    # {"mon": ["09:00", "18:00"], ...}; a missing day is closed; {} means always open.
    hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    avg_handle_minutes: Mapped[int] = mapped_column(Integer, default=5)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Agent(Base):
    __tablename__ = "handoff_agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # agent | admin
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)  # queue names this agent serves
    capacity: Mapped[int] = mapped_column(Integer, default=3)  # concurrent chats
    status: Mapped[str] = mapped_column(String(16), default="offline")  # online | away | offline
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentSession(Base):
    """A signed-in agent's session; only the SHA-256 of the token is stored."""

    __tablename__ = "handoff_agent_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("handoff_agents.id", name="fk_sessions_agent"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Ticket(Base):
    __tablename__ = "handoff_tickets"
    __table_args__ = (
        Index("ix_handoff_tickets_status", "status", "queue", "priority", "queued_at"),
        Index("ix_handoff_tickets_conversation", "conversation_id", "status"),
        Index("ix_handoff_tickets_agent", "agent_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", name="fk_tickets_conversation"))
    sender_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))  # queued | assigned | resolved | handed_back | abandoned | closed
    reason: Mapped[str] = mapped_column(String(32))  # explicit_request | repeated_failure | frustration | business_rule
    rule: Mapped[str | None] = mapped_column(String(64))  # refund_above_limit, legal_threat, ...
    priority: Mapped[int] = mapped_column(Integer, default=2)  # 0 urgent, 1 high, 2 normal, 3 low
    topic: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("handoff_agents.id", name="fk_tickets_agent"))
    summary: Mapped[str] = mapped_column(Text, default="")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what the bot understood
    customer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # identity as known
    contact_email: Mapped[str | None] = mapped_column(String(254))
    awaiting_email: Mapped[bool] = mapped_column(Boolean, default=False)
    request_count: Mapped[int] = mapped_column(Integer, default=1)  # times the customer asked for a person
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())  # waiting time counts from here (re-queue resets)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_customer_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_agent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    agent_nudged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    close_reason: Mapped[str | None] = mapped_column(String(64))
    csat_stage: Mapped[str | None] = mapped_column(String(16))  # asked | comment | done
    csat_score: Mapped[int | None] = mapped_column(Integer)
    csat_comment: Mapped[str | None] = mapped_column(Text)
    csat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TicketNote(Base):
    """An agent's internal note: never shown to the customer."""

    __tablename__ = "handoff_notes"
    __table_args__ = (Index("ix_handoff_notes_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("handoff_tickets.id", name="fk_notes_ticket"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("handoff_agents.id", name="fk_notes_agent"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """Who did what, when: every agent and admin action, and the automatic rules' actions."""

    __tablename__ = "handoff_audit"
    __table_args__ = (Index("ix_handoff_audit_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(64))  # agent username, or "system"
    action: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxItem(Base):
    """A ticket to deliver to an outside helpdesk (webhook, email); kept until delivered."""

    __tablename__ = "handoff_outbox"
    __table_args__ = (Index("ix_handoff_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(Integer)
    adapter: Mapped[str] = mapped_column(String(16))  # webhook | email
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TurnMemory(Base):
    """What the handoff remembers of a conversation between its turns, shared by every gateway replica
    (issue 16; revision ``0003_turn_memory``): the policy's ``Signals`` (failure streak, last frustration
    score, a pending "talk to a person?" offer, the cooldown after a "no"), the digest of the turn's client
    address (for the per-address ticket cap) and a ticket opened during the turn in progress that is still to be announced when the turn is stored (by a Rasa action that may run
    on another replica). Read and written by the turn hooks under the conversation's turn lock; no row:
    all at their defaults."""

    __tablename__ = "handoff_turn_memory"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", name="fk_turn_memory_conversation"), primary_key=True, autoincrement=False)
    failure_streak: Mapped[int] = mapped_column(Integer, default=0)
    last_frustration: Mapped[float] = mapped_column(Float, default=0.0)
    offer_pending: Mapped[str | None] = mapped_column(String(32))  # the offer's reason, waiting for yes/no
    cooldown: Mapped[int] = mapped_column(Integer, default=0)
    new_ticket_id: Mapped[int | None] = mapped_column(Integer)
    # The turn's client address as a keyed digest (HMAC, never the address): the per-address ticket cap
    # applies wherever the escalation runs.
    client_key: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
