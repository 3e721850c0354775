"""What every part of the handoff service shares: its error, the agent's identity (``deps.AgentIdentity``,
who signed in), the escalation's outcome, and ``HandoffBase`` (the service's state: sessions,
settings, policy, event bus; a conversation's memory between turns, kept in the database) with the
lookups the parts use (the open ticket, a ticket an agent may see, a ticket's summary).

The parts (``escalation``, ``turns``, ``assignment``, ``agent_actions``, ``delivery``, ``views``,
``audit``, ``helpdesk``) are mixins of ``HandoffService`` (``handoff/service.py``) over this base;
they call each other through ``self`` (e.g. an agent action ends with ``self.deliver`` and
``self.assign_waiting``), as the one service object they make up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from sqlalchemy import ScalarSelect, select, update
from sqlalchemy.orm import Session, sessionmaker

from channels.ratelimit import Quota, limits_storage
from conversations.models import Conversation, Message
from conversations.service import OutboundMessage
from deps import AgentIdentity
from handoff import context as ctx
from handoff import lifecycle, routing
from handoff.config import HandoffConfig
from handoff.errors import HandoffError
from handoff.events import EventBus
from handoff.models import OPEN_STATUSES, Agent, HandoffQueue, Ticket, TurnMemory
from handoff.policy import HandoffPolicy, PolicyConfig, Signals
from handoff.tokens import ConversationTokens
from storage.db import transaction
from storage.secrets import key_for
from store.service import OrdersService

if TYPE_CHECKING:
    from channels.push import ChannelPushers
    from settings import Settings


Events = list[tuple[str, dict[str, Any]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Memory:
    """A conversation's ``TurnMemory`` as one turn reads it."""

    signals: Signals | None  # None: nothing remembered (the policy's defaults)
    new_ticket: int | None  # a ticket opened during the turn in progress, to announce once it is stored
    client_key: str | None = None  # the keyed digest of the client address of the latest turn that had one


def _signals_of(row: TurnMemory) -> Signals:
    return Signals(failure_streak=row.failure_streak, last_frustration=row.last_frustration,
                   offer_pending=row.offer_pending, cooldown=row.cooldown)


def _set_signals(row: TurnMemory, sig: Signals, now: datetime) -> None:
    row.failure_streak, row.last_frustration, row.offer_pending = sig.failure_streak, sig.last_frustration, sig.offer_pending
    row.cooldown, row.updated_at = sig.cooldown, now


def _conversation_of(sender_id: str) -> ScalarSelect[int]:
    return select(Conversation.id).where(Conversation.sender_id == sender_id).scalar_subquery()


@dataclass(frozen=True)
class EscalationOutcome:
    ticket_id: int | None  # None: no ticket (the daily cap was reached; ``messages`` say so)
    created: bool
    state: str  # queued | human (bot when capped)
    queue: str
    position: int | None
    minutes: int | None
    agent: str | None
    open_now: bool
    messages: list[str] = field(default_factory=list)


class HandoffBase:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        config: HandoffConfig,
        tokens: ConversationTokens,
        *,
        pushers: ChannelPushers | None = None,
        events: EventBus | None = None,
        orders: OrdersService | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        self.config = config
        self.tokens = tokens
        self.pushers = pushers
        self.events = events or EventBus()
        self.orders = orders
        self.clock = clock
        self.policy = HandoffPolicy(PolicyConfig(
            failure_turns=settings.handoff_failure_turns,
            frustration_threshold=settings.handoff_frustration_threshold,
            offer_cooldown_turns=settings.handoff_offer_cooldown_turns,
            max_verification_attempts=settings.max_verification_attempts,
        ))
        self.auto_assign = settings.handoff_auto_assign
        # Daily ticket caps (escalate): per sender from the tickets table, per client address here
        # (RATE_LIMIT_STORAGE, else REDIS_URL); the address of the turn in progress, as its channel vouched for it,
        # is kept as a keyed digest in the conversation's memory (the escalation may run on another replica).
        self.ticket_quota = Quota(limits_storage(settings))
        self._address_key = key_for(settings, "client-address").encode()  # the same on every replica (SECRET_KEY)
        self.outbox_wakeup: Callable[[], None] | None = None  # set by the outbox worker

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The database sessions (for the timeout sweep and read-only helpers)."""
        return self._sessions

    # ---------------------------------------------------------------- memory between turns (the OFFERED state)
    # In the database (``handoff_turn_memory``), not in this process: with several gateway replicas and no
    # sticky sessions, a conversation's next turn, or the Rasa action of this one, may run on another
    # replica. Turns of a conversation are serialised by its turn lock (storage/coordination.py), so a
    # turn reads the memory when it starts and after Rasa, and writes it back, without lost updates.
    async def turn_memory(self, conversation_id: int) -> Memory:
        """The conversation's signals (None: nothing remembered) and a ticket its turn opened, if any."""
        return await to_thread.run_sync(self._read_memory, conversation_id)

    def _read_memory(self, conversation_id: int) -> Memory:
        with self._sessions() as db:
            row = db.get(TurnMemory, conversation_id)
            return Memory(None, None) if row is None else Memory(_signals_of(row), row.new_ticket_id, row.client_key)

    async def keep_signals(self, conversation_id: int, sig: Signals) -> None:
        """Store the policy's signals as this turn left them (nothing is written when unchanged)."""
        await to_thread.run_sync(self._write_signals, conversation_id, sig)

    def _write_signals(self, conversation_id: int, sig: Signals) -> None:
        with transaction(self._sessions) as db:
            row = db.get(TurnMemory, conversation_id)
            if (row is None and sig == Signals()) or (row is not None and _signals_of(row) == sig):
                return
            _set_signals(row or self._row(db, conversation_id), sig, self.clock())

    def take_offer(self, sender_id: str) -> str | None:
        """The reason of a pending offer the customer just accepted (None if there was none). Called
        by the bot's handoff action, in the turn (on whichever replica Rasa's action call reached)."""
        with transaction(self._sessions) as db:
            row = db.scalar(select(TurnMemory).where(TurnMemory.conversation_id == _conversation_of(sender_id)))
            if row is None or not row.offer_pending:
                return None
            lifecycle.next_state(lifecycle.State.OFFERED, lifecycle.Event.ACCEPT)
            sig = _signals_of(row)
            reason = self.policy.accepted(sig)
            _set_signals(row, sig, self.clock())
            return reason

    def pending_offer(self, sender_id: str) -> str | None:
        """The reason of the offer of a person waiting for the customer's yes or no, if any."""
        with self._sessions() as db:
            return db.scalar(select(TurnMemory.offer_pending).where(TurnMemory.conversation_id == _conversation_of(sender_id)))

    def _offer_ends(self, db: Session, conversation_id: int) -> None:
        """A ticket was opened: an offer still pending is answered (``OFFERED --escalate--> QUEUED``)."""
        db.execute(update(TurnMemory).where(TurnMemory.conversation_id == conversation_id,
                                            TurnMemory.offer_pending.is_not(None)).values(offer_pending=None))

    def _ticket_opened(self, db: Session, conversation_id: int, ticket_id: int) -> None:
        """A ticket opened during the turn in progress: announced when the turn is stored (``after_turn``)."""
        row = self._row(db, conversation_id)
        row.new_ticket_id, row.updated_at = ticket_id, self.clock()

    def _row(self, db: Session, conversation_id: int) -> TurnMemory:
        """The conversation's memory row, created at the defaults when there is none yet."""
        row = db.get(TurnMemory, conversation_id)
        if row is None:
            row = TurnMemory(conversation_id=conversation_id, new_ticket_id=None, client_key=None)
            _set_signals(row, Signals(), self.clock())
            db.add(row)
        return row

    def _forget_signals(self, db: Session, conversation_id: int) -> None:
        """The bot takes over again (hand-back): the policy starts afresh."""
        db.execute(update(TurnMemory).where(TurnMemory.conversation_id == conversation_id).values(
            failure_streak=0, last_frustration=0.0, offer_pending=None, cooldown=0, updated_at=self.clock()))

    # ---------------------------------------------------------------- lookups
    def _open_ticket(self, db: Session, conversation_id: int) -> Ticket | None:
        return db.scalar(select(Ticket).where(Ticket.conversation_id == conversation_id,
                                              Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id.desc()).limit(1))

    def _ticket_for(self, db: Session, agent: AgentIdentity, ticket_id: int) -> Ticket:
        ticket = db.get(Ticket, ticket_id)
        if ticket is None:
            raise HandoffError(404, f"no ticket {ticket_id}")
        if agent.role != "admin" and ticket.queue not in agent.queues and ticket.agent_id != agent.id:
            raise HandoffError(403, "this ticket is in a queue you don't serve")
        return ticket

    def _open_ticket_in_hand(self, db: Session, agent: AgentIdentity, ticket_id: int, closed: str, not_yours: str) -> Ticket:
        """``_ticket_for``, still open (409 ``closed``, its ``{}`` the status), and if assigned, to this agent or
        an admin (403 ``not_yours``)."""
        ticket = self._ticket_for(db, agent, ticket_id)
        if ticket.status not in OPEN_STATUSES:
            raise HandoffError(409, closed.format(ticket.status))
        if ticket.status == lifecycle.TicketStatus.ASSIGNED and ticket.agent_id != agent.id and agent.role != "admin":
            raise HandoffError(403, not_yours)
        return ticket

    def _summary(self, db: Session, ticket: Ticket) -> dict[str, Any]:
        name = db.get_one(Agent, ticket.agent_id).display_name if ticket.agent_id else None
        return ctx.ticket_summary(ticket, name)

    def _queue_refs(self, db: Session) -> list[routing.QueueRef]:
        return [routing.QueueRef(q.name, q.topic, q.language) for q in db.scalars(select(HandoffQueue).order_by(HandoffQueue.name))]

    # ---------------------------------------------------------------- messages and events
    def _out_row(self, conversation_id: int, out: OutboundMessage, language: str, channel: str, *,
                 reply_to: int | None = None, status: str | None = None) -> Message:
        return Message(conversation_id=conversation_id, direction="out", reply_to_id=reply_to, type=out.type,
                       text=out.text, data={"buttons": out.buttons, "sources": out.sources}, language=language,
                       channel=channel, status=status, created_at=self.clock())

    @staticmethod
    def _handoff_msg(text: str) -> OutboundMessage:
        return OutboundMessage(type="handoff", text=text)

    def _publish(self, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for topic, event in events:
            self.events.publish(topic, event)

    def conversation_token(self, sender_id: str) -> str:
        return self.tokens.issue(sender_id)
