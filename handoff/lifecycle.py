"""The conversation's handoff lifecycle as one explicit state machine.

A conversation is answered by the bot, waits for a person, talks to a person, or rates the person
who helped; every change is an ``Event`` looked up in ``TRANSITIONS`` ((state, event) → new state)
and written by ``apply``, the only code that writes ``conversations.state`` and
``handoff_tickets.status`` (a new conversation starts as ``bot`` and a new ticket as ``queued``).
A pair missing from the table raises ``IllegalTransition`` (HTTP 409 for the agent API).

Two columns hold the state: ``conversations.state`` (``Column``: bot | queued | human | closed)
and, for the finer states, the open ticket's ``awaiting_email`` and ``csat_stage``; ``OFFERED`` is
the policy's memory of an offer waiting for yes/no (``Signals.offer_pending``, kept in process: a
restart forgets the offer, not the conversation). ``state_of`` reads the state back from them.

Races: ``apply`` writes both columns with a compare-and-set (``UPDATE ... WHERE state = <read>``),
so of two writers that read the same state only the first wins; the second gets ``StaleState``
(a 409: "two agents claim the same ticket"; the timeout sweep skips that ticket for this pass).
A customer's message is routed by the state read when it is relayed, not when it was stored
(a hand-back or resolve in between sends it to the bot or the rating step, never to nobody).
The section "Handoff lifecycle" of docs/architecture.md draws this table; a test compares them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from conversations.models import Conversation
from handoff.errors import HandoffError
from handoff.models import Ticket


class Column(StrEnum):
    """What ``conversations.state`` holds (and what ``TurnResult.state`` and the customer API report)."""

    BOT = "bot"
    QUEUED = "queued"
    HUMAN = "human"
    CLOSED = "closed"  # resolved: waiting for the customer's rating


class TicketStatus(StrEnum):
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    HANDED_BACK = "handed_back"
    ABANDONED = "abandoned"
    CLOSED = "closed"


class State(StrEnum):
    BOT = "bot"  # the bot answers
    OFFERED = "offered"  # the bot answers; a person was offered, the yes/no is awaited (in process)
    QUEUED = "queued"  # a ticket waits for an agent; the bot still answers
    AWAITING_EMAIL = "awaiting_email"  # queued, nobody can answer soon: asked for an email address
    HUMAN = "human"  # an agent owns the chat; the bot is silent
    RATING = "rating"  # resolved: asked for a rating 1-5
    COMMENTING = "commenting"  # rated: asked for an optional comment

    @property
    def column(self) -> Column:
        return _COLUMN[self]


_COLUMN = {
    State.BOT: Column.BOT, State.OFFERED: Column.BOT, State.QUEUED: Column.QUEUED,
    State.AWAITING_EMAIL: Column.QUEUED, State.HUMAN: Column.HUMAN, State.RATING: Column.CLOSED,
    State.COMMENTING: Column.CLOSED,
}


class Event(StrEnum):
    OFFER = "offer"  # the policy (or the bot's own buttons) offers a person
    DECLINE = "decline"  # the customer says no to the offer
    ACCEPT = "accept"  # the customer says yes: their request goes to the bot's handoff action (→ escalate)
    ESCALATE = "escalate"  # a ticket is opened, or asked for again
    ASK_EMAIL = "ask_email"  # nobody can answer soon and we cannot reach the customer later
    EMAIL_GIVEN = "email_given"
    ASSIGN = "assign"  # a claim, the automatic assignment, a transfer to an agent
    REQUEUE = "requeue"  # a transfer to a queue, or a silent agent (timeout)
    HAND_BACK = "hand_back"  # the agent gives the chat back to the bot
    RESOLVE = "resolve"  # the agent closes the ticket; the customer is asked for a rating
    ABANDON = "abandon"  # a queued customer left (timeout)
    IDLE_CLOSE = "idle_close"  # nobody wrote in an assigned chat (timeout)
    RATE = "rate"  # a rating 1-5
    COMMENT = "comment"  # a comment after the rating, or "skip"
    MOVE_ON = "move_on"  # something else instead of a rating or comment: the bot answers it


S, E = State, Event
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.BOT, E.OFFER): S.OFFERED,
    (S.BOT, E.ESCALATE): S.QUEUED,
    (S.OFFERED, E.OFFER): S.OFFERED,
    (S.OFFERED, E.DECLINE): S.BOT,
    (S.OFFERED, E.ACCEPT): S.BOT,
    (S.OFFERED, E.ESCALATE): S.QUEUED,
    (S.QUEUED, E.ESCALATE): S.QUEUED,
    (S.QUEUED, E.ASK_EMAIL): S.AWAITING_EMAIL,
    (S.QUEUED, E.ASSIGN): S.HUMAN,
    (S.QUEUED, E.REQUEUE): S.QUEUED,
    (S.QUEUED, E.HAND_BACK): S.BOT,
    (S.QUEUED, E.RESOLVE): S.RATING,
    (S.QUEUED, E.ABANDON): S.BOT,
    (S.AWAITING_EMAIL, E.ESCALATE): S.AWAITING_EMAIL,
    (S.AWAITING_EMAIL, E.ASK_EMAIL): S.AWAITING_EMAIL,
    (S.AWAITING_EMAIL, E.EMAIL_GIVEN): S.QUEUED,
    (S.AWAITING_EMAIL, E.ASSIGN): S.HUMAN,
    (S.AWAITING_EMAIL, E.REQUEUE): S.AWAITING_EMAIL,
    (S.AWAITING_EMAIL, E.HAND_BACK): S.BOT,
    (S.AWAITING_EMAIL, E.RESOLVE): S.RATING,
    (S.AWAITING_EMAIL, E.ABANDON): S.BOT,
    (S.HUMAN, E.ESCALATE): S.HUMAN,  # asked again (the bot's turn was in flight when the agent claimed)
    (S.HUMAN, E.ASSIGN): S.HUMAN,
    (S.HUMAN, E.REQUEUE): S.QUEUED,
    (S.HUMAN, E.HAND_BACK): S.BOT,
    (S.HUMAN, E.RESOLVE): S.RATING,
    (S.HUMAN, E.IDLE_CLOSE): S.BOT,
    (S.RATING, E.RATE): S.COMMENTING,
    (S.RATING, E.MOVE_ON): S.BOT,
    (S.COMMENTING, E.COMMENT): S.BOT,
    (S.COMMENTING, E.MOVE_ON): S.BOT,
}
del S, E

IN_PROCESS = frozenset({Event.OFFER, Event.DECLINE, Event.ACCEPT})  # the policy's memory, no row changes

# What an event does to the ticket it concerns: its new status, and why it was closed.
TICKET_STATUS = {
    Event.ASSIGN: TicketStatus.ASSIGNED, Event.REQUEUE: TicketStatus.QUEUED,
    Event.HAND_BACK: TicketStatus.HANDED_BACK, Event.RESOLVE: TicketStatus.RESOLVED,
    Event.ABANDON: TicketStatus.ABANDONED, Event.IDLE_CLOSE: TicketStatus.CLOSED,
}
CLOSE_REASON = {
    Event.HAND_BACK: "handed_back", Event.RESOLVE: "resolved", Event.ABANDON: "customer_left",
    Event.IDLE_CLOSE: "idle",
}


class IllegalTransition(HandoffError):
    """``event`` cannot happen in ``state`` (a bug, or a request that came too late): HTTP 409."""

    def __init__(self, state: State, event: Event, detail: str = "") -> None:
        self.state, self.event = state, event
        super().__init__(409, detail or f"a conversation in state {state.value!r} cannot take event {event.value!r}")


class StaleState(IllegalTransition):
    """Someone else changed the conversation or ticket between our read and our write."""


def next_state(state: State, event: Event) -> State:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None


def state_of(column: str, ticket: Ticket | None = None, offer_pending: bool = False) -> State:
    """The lifecycle state from ``conversations.state`` and the ticket it concerns (the open ticket;
    when ``closed``, the ticket being rated) and whether an offer is pending."""
    col = Column(column)
    if col is Column.BOT:
        return State.OFFERED if offer_pending else State.BOT
    if col is Column.QUEUED:
        return State.AWAITING_EMAIL if ticket is not None and ticket.awaiting_email else State.QUEUED
    if col is Column.HUMAN:
        return State.HUMAN
    return State.COMMENTING if ticket is not None and ticket.csat_stage == "comment" else State.RATING


def apply(db: Session, event: Event, conv: Conversation, ticket: Ticket | None = None, *,
          now: datetime | None = None, offer_pending: bool = False) -> State:
    """Take ``event`` for ``conv`` (and its ``ticket``): check the table, then write the new state.

    Writes ``conversations.state`` and ``handoff_tickets.status`` with a compare-and-set against
    the values read (``StaleState`` if someone changed them meanwhile), and the fields that belong
    to the state: ``closed_at``/``close_reason``, ``csat_stage``, ``awaiting_email``. Call it before
    writing anything else for the event, so a refused transition leaves nothing half-done.
    """
    if event in IN_PROCESS:
        raise ValueError(f"{event.value!r} changes no row: use next_state")
    before = state_of(conv.state, ticket, offer_pending)
    after = next_state(before, event)
    if ticket is not None and event in TICKET_STATUS:
        _swap(db, ticket, "status", ticket.status, TICKET_STATUS[event], before, event)
    _swap(db, conv, "state", conv.state, after.column, before, event)
    if ticket is not None:
        if event in CLOSE_REASON:
            ticket.closed_at, ticket.close_reason = now, CLOSE_REASON[event]
        if event is Event.RESOLVE:
            ticket.csat_stage = "asked"
        elif event is Event.RATE:
            ticket.csat_stage = "comment"
        elif event is Event.COMMENT:
            ticket.csat_stage = "done"
        elif event is Event.MOVE_ON:
            ticket.csat_stage = "done" if ticket.csat_stage == "comment" else "skipped"
        elif event is Event.ASK_EMAIL:
            ticket.awaiting_email = True
        elif event in (Event.EMAIL_GIVEN, Event.ASSIGN):  # an agent took the chat: no longer waiting for one
            ticket.awaiting_email = False
    return after


def _swap(db: Session, row: Conversation | Ticket, column: str, expected: str, new: str, state: State,
          event: Event) -> None:
    """``UPDATE <row> SET column = new WHERE id = row.id AND column = expected``, or ``StaleState``."""
    model = type(row)
    changed = db.execute(
        update(model).where(model.id == row.id, getattr(model, column) == expected).values({column: new})
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        what = f"ticket {row.id}" if isinstance(row, Ticket) else f"conversation {row.id}"
        raise StaleState(state, event, f"{what} changed meanwhile (it is no longer {expected!r}); "
                                       f"{event.value!r} was not applied")
    set_committed_value(row, column, new)
