"""What every part of the handoff service shares: its error, the agent's identity (``deps.AgentIdentity``,
who signed in), the escalation's outcome, and ``HandoffBase`` (the service's state: sessions,
settings, policy memory, event bus) with the lookups the parts use (the open ticket, a ticket an
agent may see, a ticket's summary).

The parts (``escalation``, ``turns``, ``assignment``, ``agent_actions``, ``delivery``, ``views``,
``audit``, ``helpdesk``) are mixins of ``HandoffService`` (``handoff/service.py``) over this base;
they call each other through ``self`` (e.g. an agent action ends with ``self.deliver`` and
``self.assign_waiting``), as the one service object they make up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from channels.ratelimit import Quota, limits_storage
from conversations.models import Message
from conversations.service import OutboundMessage
from deps import AgentIdentity
from handoff import context as ctx
from handoff import lifecycle, routing
from handoff.config import HandoffConfig
from handoff.errors import HandoffError
from handoff.events import EventBus
from handoff.models import OPEN_STATUSES, Agent, HandoffQueue, Ticket
from handoff.policy import HandoffPolicy, PolicyConfig, Signals
from handoff.tokens import ConversationTokens
from store.service import OrdersService

if TYPE_CHECKING:
    from channels.push import ChannelPushers
    from settings import Settings

SIGNALS_KEPT = 10_000  # conversations whose policy memory is kept in process (LRU)

Events = list[tuple[str, dict[str, Any]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        self._signals: OrderedDict[str, Signals] = OrderedDict()
        self._new_tickets: dict[str, int] = {}  # sender → ticket created during the turn in progress
        # Daily ticket caps (escalate): per sender from the tickets table, per client address here
        # (RATE_LIMIT_STORAGE, else REDIS_URL); the address of the turn in progress, as its channel vouched for it.
        self.ticket_quota = Quota(limits_storage(settings))
        self._turn_address: OrderedDict[str, str] = OrderedDict()
        self.outbox_wakeup: Callable[[], None] | None = None  # set by the outbox worker

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The database sessions (for the timeout sweep and read-only helpers)."""
        return self._sessions

    # ---------------------------------------------------------------- policy memory (the OFFERED state)
    def signals(self, sender_id: str) -> Signals:
        sig = self._signals.get(sender_id)
        if sig is None:
            sig = self._signals[sender_id] = Signals()
            if len(self._signals) > SIGNALS_KEPT:
                self._signals.popitem(last=False)
        else:
            self._signals.move_to_end(sender_id)
        return sig

    def take_offer(self, sender_id: str) -> str | None:
        """The reason of a pending offer the customer just accepted (None if there was none)."""
        sig = self._signals.get(sender_id)
        if not (sig and sig.offer_pending):
            return None
        lifecycle.next_state(lifecycle.State.OFFERED, lifecycle.Event.ACCEPT)
        return self.policy.accepted(sig)

    def _offer_ends(self, sender_id: str) -> None:
        """A ticket was opened: an offer still pending is answered (``OFFERED --escalate--> QUEUED``)."""
        sig = self._signals.get(sender_id)
        if sig is not None and sig.offer_pending:
            sig.offer_pending = None

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
