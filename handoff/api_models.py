"""The bodies the agent API and the customer's conversation API answer with (``/docs`` shows them).

Fields are in the order the services build them (``handoff/context.py``, ``handoff/accounts.py``,
``handoff/views.py``), so the JSON is what it was before the models existed. A key present only
sometimes (a message's ``agent``) is left out when unset: its route uses ``response_model_exclude_unset``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class AgentView(Out):
    id: int
    username: str
    display_name: str
    role: Literal["agent", "admin"]
    queues: list[str]
    capacity: int
    status: str
    active: bool
    last_seen_at: str | None


class LoginOut(Out):
    token: str
    expires_at: str
    agent: AgentView


class StatusOut(Out):
    status: str


class RevokedOut(Out):
    status: str
    sessions: int


class AgentSessionsOut(Out):
    agent: str
    sessions: int


class QueueOut(Out):
    name: str
    topic: str
    language: str
    timezone: str
    hours: dict[str, Any]
    avg_handle_minutes: int


class QueueView(Out):
    name: str
    topic: str
    language: str
    timezone: str
    hours: dict[str, Any]
    open_now: bool
    waiting: int
    agents_online: int
    avg_handle_minutes: int


class TicketSummary(Out):
    """A ticket as queue lists and live events show it."""

    id: int
    sender_id: str
    status: str
    reason: str
    rule: str | None
    priority: int
    priority_label: str
    topic: str
    queue: str
    language: str
    channel: str
    agent_id: int | None
    agent: str | None
    summary: str
    position: int | None
    created_at: str
    queued_at: str
    assigned_at: str | None
    last_customer_at: str | None
    closed_at: str | None
    contact_email: str | None
    csat_score: int | None


class TicketRow(TicketSummary):
    waiting_s: int | None  # seconds in the queue (queued tickets only)


class MessageView(Out):
    """One message of a conversation; ``agent`` (the agent's display name) only on an agent's message."""

    id: int
    from_: Literal["customer", "bot", "agent"] = Field(alias="from")
    type: str
    text: str | None
    payload: str | None
    buttons: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    language: str | None
    channel: str | None
    created_at: str
    agent: str | None = None


class NoteView(Out):
    id: int
    agent: str | None
    agent_id: int | None
    text: str
    created_at: str


class Csat(Out):
    score: int | None
    comment: str | None
    at: str | None


class TicketDocument(TicketSummary):
    """Everything about a ticket: its summary, transcript, what the bot understood, customer, notes, CSAT."""

    transcript: list[dict[str, Any]]
    context: dict[str, Any]
    customer: dict[str, Any]
    notes: list[NoteView]
    close_reason: str | None
    csat: Csat


class CannedReply(Out):
    id: str
    language: str
    title: str
    text: str


class AuditEntryView(Out):
    id: int
    actor: str
    action: str
    ticket_id: int | None
    detail: dict[str, Any]
    at: str


class CustomerMessages(Out):
    sender_id: str
    state: str
    messages: list[MessageView]
