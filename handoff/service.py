"""The handoff service: tickets, queues, live relay between customer and agent, CSAT.

The conversation service calls two hooks on every turn (``before_rasa`` and ``after_turn``); Rasa
actions call ``escalate`` / ``escalate_blocking``; the agent API calls the agent operations.
Conversation states: ``bot`` → ``queued`` (ticket waiting; the bot still answers) → ``human``
(an agent owns it; the bot is silent) → ``bot`` (handed back, or resolved and rated) / ``closed``
(resolved, waiting for the customer's rating).

Database work runs in worker threads; live events are published from the event loop afterwards
(``EventBus`` is not thread-safe), so every DB step returns the events it wants sent.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from channels.notices import in_script
from channels.ratelimit import Quota
from conversations.models import Conversation, Message, Turn
from conversations.service import OutboundMessage, TurnResult
from handoff import context as ctx
from handoff import hours, routing, texts
from handoff.config import HandoffConfig
from handoff.events import AGENTS, EventBus, conversation_topic
from handoff.models import OPEN_STATUSES, Agent, AuditEntry, HandoffQueue, OutboxItem, Ticket, TicketNote
from handoff.policy import PRIORITY_NORMAL, Escalate, HandoffPolicy, Offer, PolicyConfig, Signals
from handoff.tokens import ConversationTokens
from storage.db import transaction
from store.service import OrdersService

if TYPE_CHECKING:
    from channels.push import ChannelPushers
    from settings import Settings

log = logging.getLogger(__name__)

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
YES = re.compile(r"^\s*(?:yes|yeah|yep|sure|ok(?:ay)?|please|y|是|是的|好|好的|可以|要|需要|да|давайте|хорошо|конечно|ага)\s*[.!。！]*\s*$",
                 re.IGNORECASE)
NO = re.compile(r"^\s*(?:no|nope|no thanks|not now|n|不|不用|不用了|不要|算了|нет|не надо|не нужно|нет, спасибо)\s*[.!。！]*\s*$",
                re.IGNORECASE)
CSAT_PAYLOAD = re.compile(r"^/csat_([1-5])$")
CSAT_SKIP = "/csat_skip"
HANDOFF_PAYLOAD = "/human_handoff"
DENY_PAYLOAD = "/deny"
QUEUE_NOTICE = "gateway_queue_notice"  # the turn's action when the queue, not the bot, answered a waiting customer
SIGNALS_KEPT = 10_000  # conversations whose policy memory is kept in process (LRU)

Events = list[tuple[str, dict[str, Any]]]


def utcnow() -> datetime:
    return datetime.now(UTC)


class HandoffError(Exception):
    """An agent operation that cannot be done; ``status`` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


@dataclass(frozen=True)
class AgentIdentity:
    id: int
    username: str
    display_name: str
    role: str
    queues: tuple[str, ...]


class HandoffService:
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
        # (RATE_LIMIT_STORAGE); the address of the turn in progress, as its channel vouched for it.
        self.ticket_quota = Quota(settings.rate_limit_storage)
        self._turn_address: OrderedDict[str, str] = OrderedDict()
        self.outbox_wakeup: Callable[[], None] | None = None  # set by the outbox worker

    # ================================================================ policy memory
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
        return self.policy.accepted(sig) if sig and sig.offer_pending else None

    # ================================================================ escalation
    async def escalate(self, sender_id: str, decision: Escalate, facts: dict[str, Any] | None = None) -> EscalationOutcome:
        outcome, events = await to_thread.run_sync(self._escalate_db, sender_id, decision, facts or {})
        self._publish(events)
        return outcome

    def escalate_blocking(self, sender_id: str, decision: Escalate, facts: dict[str, Any] | None = None) -> EscalationOutcome:
        """For synchronous action code running on the event loop (as the store calls there are)."""
        outcome, events = self._escalate_db(sender_id, decision, facts or {})
        self._publish(events)
        return outcome

    def remember_address(self, sender_id: str, address: str | None) -> None:
        """The client address of ``sender_id``'s turn in progress (for the per-address ticket cap)."""
        self._turn_address.pop(sender_id, None)
        if address:
            self._turn_address[sender_id] = address
            if len(self._turn_address) > SIGNALS_KEPT:
                self._turn_address.popitem(last=False)

    def _ticket_capped(self, db: Session, sender_id: str, now: datetime) -> str | None:
        """Why no new ticket may be opened for ``sender_id`` today ("sender" / "address"), or None.

        Keyword rules open urgent tickets before the bot is asked and a request for a person always
        works, so without a cap a script could open one ticket per invented sender id. Only a ticket
        actually opened is counted against the address.
        """
        per_sender = self.settings.tickets_per_sender_per_day
        if per_sender > 0:
            today = db.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.sender_id == sender_id, Ticket.created_at >= now - timedelta(days=1))) or 0
            if today >= per_sender:
                return "sender"
        per_address = self.settings.tickets_per_address_per_day
        address = self._turn_address.get(sender_id)
        if per_address > 0 and address and self.ticket_quota.hit("tickets", f"{per_address}/day", address):
            return "address"
        return None

    def _escalate_db(self, sender_id: str, decision: Escalate, facts: dict[str, Any]) -> tuple[EscalationOutcome, Events]:
        now = self.clock()
        events: Events = []
        with transaction(self._sessions) as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
            if conv is None:
                raise HandoffError(404, f"no conversation for sender {sender_id!r}")
            ticket = self._open_ticket(db, conv.id)
            created = ticket is None
            if created and (capped := self._ticket_capped(db, sender_id, now)) is not None:
                log.warning("ticket not opened: daily cap reached", extra={
                    "sender_id": sender_id, "cap": capped, "reason": decision.reason, "rule": decision.rule})
                return EscalationOutcome(None, False, conv.state, "", None, None, None, True,
                                         [texts.text("ticket_cap", conv.language)]), events
            understood = ctx.understood(db, conv)
            slots = {**understood["slots"], **{k: v for k, v in (facts.get("slots") or {}).items()
                                               if k in ctx.FACT_SLOTS and v not in (None, "")}}
            understood["slots"] = slots
            order_id = (decision.detail or {}).get("order_id") or slots.get("order_id")
            understood["order"] = ctx.order_facts(self.orders, order_id if slots.get("verified") or decision.rule else None)
            understood["trigger"] = {"reason": decision.reason, "rule": decision.rule, **decision.detail}
            intents = [facts.get("intent"), *(t["intent"] for t in reversed(understood["turns"]))]
            if ticket is None:
                topic = routing.topic_for(self.config, decision.rule, intents)
                queues = self._queue_refs(db)
                ticket = Ticket(
                    conversation_id=conv.id, sender_id=sender_id, channel=conv.channel, language=conv.language,
                    status="queued", reason=decision.reason, rule=decision.rule, priority=decision.priority,
                    topic=topic, queue=routing.choose_queue(queues, topic, conv.language), context=understood,
                    customer={}, awaiting_email=False, request_count=1, created_at=now, queued_at=now,
                    last_customer_at=now,
                )
                db.add(ticket)
            else:
                ticket.request_count += 1
                ticket.priority = min(ticket.priority, decision.priority)
                if decision.rule and ticket.rule != decision.rule:
                    ticket.reason, ticket.rule = decision.reason, decision.rule
                ticket.context = understood
            ticket.customer = ctx.customer_identity(self.orders, slots, ticket.contact_email)
            ticket.summary = ctx.summarise(ticket, understood, ticket.customer, ctx.last_request(db, conv.id))
            db.flush()
            if created:
                conv.state = "queued"
                self._audit(db, "system", "escalate", ticket.id, {"reason": decision.reason, "rule": decision.rule,
                                                                    "queue": ticket.queue, "priority": ticket.priority})
                self._new_tickets[sender_id] = ticket.id
            agent_name = None
            if ticket.status == "queued" and self.auto_assign:
                agent = self._assign_best(db, ticket, now)
                if agent is not None:
                    agent_name = agent.display_name
                    conv.state = "human"
                    events.append((AGENTS, {"type": "ticket.assigned", "ticket": self._summary(db, ticket)}))
            elif ticket.agent_id:
                agent_name = db.get_one(Agent, ticket.agent_id).display_name
            if not created:
                events.append((AGENTS, {"type": "ticket.updated", "ticket": self._summary(db, ticket)}))
            outcome = self._outcome(db, ticket, created, agent_name, now)
        return outcome, events

    def _outcome(self, db: Session, ticket: Ticket, created: bool, agent_name: str | None, now: datetime) -> EscalationOutcome:
        lang = ticket.language
        queue = db.get(HandoffQueue, ticket.queue)
        open_now = queue is None or hours.is_open(queue.hours, queue.timezone, now)
        messages: list[str] = []
        position = minutes = None
        if ticket.rule and created:
            detail = ticket.context.get("trigger", {})
            if ticket.rule == "refund_above_limit":
                messages.append(texts.text("refund_escalated", lang, amount=detail.get("amount", ""),
                                           order_id=detail.get("order_id", "")))
            else:
                messages.append(texts.text("rule_escalated", lang))
        if agent_name:
            messages.append(texts.text("assigned", lang, agent=agent_name))
        else:
            position, minutes, online = self._position(db, ticket, now)
            messages.append(self._wait_text(db, ticket, now, lang, "queued" if created else "queued_again"))
            reachable = self.pushers is not None and self.pushers.can_reach(ticket.channel)
            if (not open_now or online == 0) and not reachable and not ticket.contact_email:
                ticket.awaiting_email = True
                messages.append(texts.text("ask_email", lang))
        return EscalationOutcome(ticket.id, created, "human" if agent_name and ticket.status == "assigned" else "queued",
                                 ticket.queue, position, minutes, agent_name, open_now, messages)

    # ================================================================ conversation hooks
    async def before_rasa(self, stored: Any, inbound: Any) -> TurnResult | str | None:
        """Answer without Rasa (a person owns the chat, a rating, an email, a yes/no to an offer, a
        business rule in the words), give Rasa other text ("yes" → ``/human_handoff``), or None."""
        sender = stored.sender_id
        self.remember_address(sender, (inbound.metadata or {}).get("client_address"))
        sig = self._signals.get(sender)
        payload, raw = inbound.payload, inbound.text or ""
        state = stored.state
        if state == "human":
            return await self._relay_to_agent(stored)
        if state == "closed":
            answered = await self._csat_step(stored, payload, raw)
            if answered is not None:
                return answered
        if state == "queued" and not payload:
            answered = await self._maybe_email(stored, raw)
            if answered is not None:
                return answered
        if sig is not None and sig.offer_pending:
            if payload == DENY_PAYLOAD or (not payload and NO.match(raw)):
                self.policy.declined(sig)
                return await self._answer_locally(stored, [self._handoff_msg(texts.text("offer_declined", stored.language))])
            if not payload and YES.match(raw):
                return HANDOFF_PAYLOAD
        if not payload and state in ("bot", "queued", "closed"):
            rule = self.policy.rule_in_text(raw)
            if rule is not None:
                outcome = await self.escalate(sender, rule, {})
                return await self._answer_locally(stored, [self._handoff_msg(t) for t in outcome.messages],
                                                  after_escalation=True)
            if self.policy.angry_person_request(raw):  # granted like the button, whatever else it mentions
                return HANDOFF_PAYLOAD
        if state == "queued" and not payload:
            return await self._queued_notice(stored, raw)
        return None

    async def after_turn(self, stored: Any, inbound: Any, turn: dict[str, Any], result: TurnResult) -> TurnResult:
        """Policy after a bot turn (offer a person), queue position while queued, new-ticket events."""
        sender = stored.sender_id
        extra: list[OutboundMessage] = []
        if sender in self._new_tickets:
            await self._ticket_turn_done(sender)
        elif result.state == "bot":
            sig = self.signals(sender)
            offered_by_bot = any(b.get("payload") == HANDOFF_PAYLOAD for m in result.messages for b in m.buttons)
            offer = self.policy.after_turn(sig, turn, inbound.text if not inbound.payload else None)
            if offered_by_bot:  # the bot already asked (e.g. the KB's "talk to a person?" buttons)
                self.policy.offered(sig, Offer("repeated_failure"))
            elif offer is not None:
                self.policy.offered(sig, offer)
                key = "offer_frustration" if offer.reason == "frustration" else "offer_failure"
                lang = result.language
                extra.append(OutboundMessage(type="handoff", text=texts.text(key, lang), buttons=[
                    {"title": texts.text("yes", lang), "payload": HANDOFF_PAYLOAD},
                    {"title": texts.text("no", lang), "payload": DENY_PAYLOAD},
                ]))
        elif result.state == "queued":
            position = await to_thread.run_sync(self._queue_note, stored)
            if position is not None and not any(m.type == "handoff" for m in result.messages):
                extra.append(position)
        extra = in_script(extra, stored.language, stored.detected.script)  # zh-Hant customers read Traditional
        if extra:
            await to_thread.run_sync(self._store_extra, stored, inbound.channel, extra)
        backlog = await self._backlog(stored)
        if not extra and not backlog:
            return result
        return replace(result, messages=[*backlog, *result.messages, *extra])

    async def _ticket_turn_done(self, sender: str) -> None:
        """The turn that created a ticket is stored: tell the consoles and queue the outside copies."""
        ticket_id = self._new_tickets.pop(sender)
        summary = await to_thread.run_sync(self._enqueue_outbox, ticket_id, "ticket.created")
        self._publish([(AGENTS, {"type": "ticket.created", "ticket": summary})])

    def _queue_note(self, stored: Any) -> OutboundMessage | None:
        """The customer's standing in the queue, after a bot turn while they wait for a person."""
        now = self.clock()
        with transaction(self._sessions) as db:
            ticket = self._open_ticket(db, stored.conversation_id)
            if ticket is None or ticket.status != "queued":
                return None
            ticket.last_customer_at = now  # they are still here (handoff_queued_abandon_min)
            return self._handoff_msg(self._wait_text(db, ticket, now, stored.language, "position"))

    async def _queued_notice(self, stored: Any, raw: str) -> TurnResult | None:
        """While queued: "hello? anyone there?" gets where they stand in the queue (not the bot's
        welcome), and "ok" / "thanks" to a reply that held only handoff notices gets a short
        acknowledgement (not the question of the form the request for a person interrupted). Other
        text goes to the bot, which keeps helping while they wait."""
        ping = self.policy.queue_ping(raw)
        if not ping and not self.policy.acknowledgement(raw):
            return None

        def db_step() -> str | None:
            now = self.clock()
            with transaction(self._sessions) as db:
                ticket = self._open_ticket(db, stored.conversation_id)
                if ticket is None or ticket.status != "queued":
                    return None
                if ping:
                    said = self._wait_text(db, ticket, now, stored.language, "queued_again")
                else:
                    previous = db.scalar(select(func.max(Message.id)).where(
                        Message.conversation_id == stored.conversation_id, Message.direction == "in",
                        Message.id < stored.message_id))
                    answer = set(db.scalars(select(Message.type).where(Message.reply_to_id == previous))) if previous else set()
                    if answer != {"handoff"}:
                        return None  # "ok" to something the bot said (it keeps helping while they wait)
                    said = texts.text("queued_ack", stored.language)
                ticket.last_customer_at = now
                # The turn as the gateway handled it: the bot never saw this message, so its state is
                # the previous turn's, and a check of what ran can tell that nothing did.
                last = db.scalar(select(Turn).where(Turn.conversation_id == stored.conversation_id)
                                 .order_by(Turn.id.desc()).limit(1))
                db.add(Turn(conversation_id=stored.conversation_id, message_id=stored.message_id,
                            language=stored.language, intent=None, confidence=None, intent_ranking=[], entities=[],
                            actions=[QUEUE_NOTICE], slots=dict(last.slots or {}) if last else {},
                            active_loop=last.active_loop if last else None, latency_ms=0.0, created_at=now))
                return said
        said = await to_thread.run_sync(db_step)
        return None if said is None else await self._answer_locally(stored, [self._handoff_msg(said)])

    def _wait_text(self, db: Session, ticket: Ticket, now: datetime, lang: str, key: str) -> str:
        """Where a waiting ticket stands, in ``key``'s words (queued, queued_again, position): when
        the team is back if its queue is closed, "everyone is busy" if nobody serving it is online, else
        the position and about how many minutes. No minutes estimate when nobody can answer yet."""
        queue = db.get(HandoffQueue, ticket.queue)
        position, minutes, online = self._position(db, ticket, now)
        if queue is not None and not hours.is_open(queue.hours, queue.timezone, now):
            opens = hours.next_opening(queue.hours, queue.timezone, now)
            return texts.standing(key, lang, position=position, when=texts.when(opens, lang) if opens else "?",
                                  tz=queue.timezone)
        if online == 0:
            return texts.standing(key, lang, position=position)
        return texts.text(key, lang, position=position, minutes=minutes)

    def _store_extra(self, stored: Any, channel: str, extra: list[OutboundMessage]) -> None:
        with transaction(self._sessions) as db:
            for out in extra:
                db.add(self._out_row(stored.conversation_id, out, stored.language, channel, reply_to=stored.message_id))

    async def _relay_to_agent(self, stored: Any) -> TurnResult:
        """A person owns the chat: store, forward to the agent, say nothing as the bot."""
        def db_step() -> tuple[dict[str, Any], dict[str, Any] | None]:
            now = self.clock()
            with transaction(self._sessions) as db:
                msg = db.get_one(Message, stored.message_id)
                msg.status = "answered"
                ticket = self._open_ticket(db, stored.conversation_id)
                summary = None
                if ticket is not None:
                    ticket.last_customer_at = now
                    summary = self._summary(db, ticket)
                return ctx.message_view(msg), summary
        view, summary = await to_thread.run_sync(db_step)
        if summary is not None:
            self._publish([(AGENTS, {"type": "message", "ticket_id": summary["id"], "ticket": summary, "message": view})])
        backlog = await self._backlog(stored)
        return TurnResult(sender_id=stored.sender_id, language=stored.language, state="human", messages=backlog)

    async def _maybe_email(self, stored: Any, raw: str) -> TurnResult | None:
        match = EMAIL.search(raw)
        if match is None:
            return None

        def db_step() -> bool:
            with transaction(self._sessions) as db:
                ticket = self._open_ticket(db, stored.conversation_id)
                if ticket is None or not ticket.awaiting_email:
                    return False
                ticket.contact_email, ticket.awaiting_email = match.group(0), False
                ticket.customer = {**ticket.customer, "contact_email": ticket.contact_email}
                self._audit(db, "system", "contact_email", ticket.id, {"email": ticket.contact_email})
                return True
        if not await to_thread.run_sync(db_step):
            return None
        return await self._answer_locally(stored, [self._handoff_msg(texts.text("email_saved", stored.language,
                                                                                  email=match.group(0)))])

    async def _csat_step(self, stored: Any, payload: str | None, raw: str) -> TurnResult | None:
        """After resolution: a rating 1–5 (button or digit), then an optional comment."""
        def db_step() -> tuple[str | None, str]:
            now = self.clock()
            with transaction(self._sessions) as db:
                conv = db.get_one(Conversation, stored.conversation_id)
                ticket = db.scalar(select(Ticket).where(Ticket.conversation_id == conv.id,
                                                        Ticket.csat_stage.in_(("asked", "comment")))
                                   .order_by(Ticket.id.desc()).limit(1))
                if ticket is None:
                    conv.state = "bot"
                    return None, "bot"
                score_match = CSAT_PAYLOAD.match(payload or "") or re.fullmatch(r"\s*([1-5])\s*[.!。]?\s*", raw or "")
                if ticket.csat_stage == "asked" and score_match:
                    ticket.csat_score, ticket.csat_at, ticket.csat_stage = int(score_match.group(1)), now, "comment"
                    self._audit(db, "customer", "csat", ticket.id, {"score": ticket.csat_score})
                    return "csat_comment", "closed"
                if ticket.csat_stage == "comment" and (payload == CSAT_SKIP or (not payload and raw.strip())):
                    if payload != CSAT_SKIP:
                        ticket.csat_comment = raw.strip()[:2000]
                    ticket.csat_stage = "done"
                    conv.state = "bot"
                    return "csat_thanks", "bot"
                ticket.csat_stage = "done" if ticket.csat_stage == "comment" else "skipped"
                conv.state = "bot"  # they moved on: the bot answers
                return None, "bot"
        key, state = await to_thread.run_sync(db_step)
        if key is None:
            return None
        lang = stored.language
        buttons = [{"title": texts.text("csat_skip", lang), "payload": CSAT_SKIP}] if key == "csat_comment" else []
        return await self._answer_locally(stored, [OutboundMessage("handoff", texts.text(key, lang), buttons)],
                                          state=state)

    async def _answer_locally(self, stored: Any, messages: list[OutboundMessage], state: str | None = None,
                              after_escalation: bool = False) -> TurnResult:
        messages = in_script(messages, stored.language, stored.detected.script)  # zh-Hant customers read Traditional

        def db_step() -> str:
            with transaction(self._sessions) as db:
                conv = db.get_one(Conversation, stored.conversation_id)
                msg = db.get_one(Message, stored.message_id)
                msg.status = "answered"
                for out in messages:
                    db.add(self._out_row(conv.id, out, stored.language, msg.channel, reply_to=msg.id))
                conv.updated_at = self.clock()
                return conv.state
        current = await to_thread.run_sync(db_step)
        if after_escalation and stored.sender_id in self._new_tickets:
            await self._ticket_turn_done(stored.sender_id)
        backlog = await self._backlog(stored)
        return TurnResult(sender_id=stored.sender_id, language=stored.language, state=state or current,
                          messages=[*backlog, *messages])

    async def _backlog(self, stored: Any) -> list[OutboundMessage]:
        """Messages sent while the customer's channel could not be reached, oldest first (then delivered)."""
        if not stored.undelivered:
            return []

        def db_step() -> list[OutboundMessage]:
            with transaction(self._sessions) as db:
                rows = list(db.scalars(select(Message).where(
                    Message.conversation_id == stored.conversation_id, Message.status == "undelivered")
                    .order_by(Message.id)))
                for m in rows:
                    m.status = "delivered"
                db.execute(update(Conversation).where(Conversation.id == stored.conversation_id)
                           .values(undelivered=func.max(Conversation.undelivered - len(rows), 0)))
                return [OutboundMessage(m.type, m.text, (m.data or {}).get("buttons", []), (m.data or {}).get("sources", []),
                                        (m.data or {}).get("agent")) for m in rows]
        return await to_thread.run_sync(db_step)

    # ================================================================ delivery to the customer
    async def deliver(self, conversation_id: int, messages: list[OutboundMessage], *, agent: AgentIdentity | None = None,
                      state: str | None = None) -> list[dict[str, Any]]:
        """Store messages for the customer and get them there: their websocket, their channel's push,
        or (plain REST) with their next answer / ``GET .../messages``."""
        def store() -> tuple[str, str, list[int], list[dict[str, Any]], list[OutboundMessage]]:
            with transaction(self._sessions) as db:
                conv = db.get_one(Conversation, conversation_id)
                localised = in_script(messages, conv.language, conv.script)  # zh-Hant customers read Traditional
                rows = []
                for out in localised:
                    row = self._out_row(conv.id, out, conv.language, conv.channel, status="undelivered")
                    if agent is not None:
                        row.data = {**(row.data or {}), "agent": out.agent or agent.display_name, "agent_id": agent.id}
                    db.add(row)
                    rows.append(row)
                conv.undelivered += len(rows)
                db.flush()
                return conv.sender_id, conv.channel, [r.id for r in rows], [ctx.message_view(r) for r in rows], localised
        sender, channel, ids, views, localised = await to_thread.run_sync(store)
        delivered = False
        topic = conversation_topic(sender)
        if self.events.subscribers(topic):
            for view in views:
                self.events.publish(topic, {"type": "message", "message": view, "state": state})
            delivered = True
        if self.pushers is not None and self.pushers.can_reach(channel):
            try:
                delivered = await self.pushers.push(channel, sender, localised) or delivered
            except Exception as err:  # PushFailed or a channel bug: the message stays undelivered
                log.warning("push failed; kept for the customer's next request",
                            extra={"channel": channel, "sender_id": sender, "error": str(err)})
        if delivered:
            await to_thread.run_sync(self._mark_delivered, conversation_id, ids)
        return views

    def _mark_delivered(self, conversation_id: int, ids: list[int]) -> None:
        with transaction(self._sessions) as db:
            changed = db.execute(update(Message).where(Message.id.in_(ids), Message.status == "undelivered")
                                 .values(status="delivered")).rowcount
            if changed:
                db.execute(update(Conversation).where(Conversation.id == conversation_id)
                           .values(undelivered=func.max(Conversation.undelivered - changed, 0)))

    def customer_messages(self, sender_id: str, after: int = 0, limit: int = 200) -> tuple[str, list[dict[str, Any]]]:
        """The customer's own conversation after message ``after`` (their read marks delivery)."""
        with transaction(self._sessions) as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender_id))
            if conv is None:
                return "bot", []
            rows = list(db.scalars(select(Message).where(Message.conversation_id == conv.id, Message.id > after)
                                   .order_by(Message.id).limit(limit)))
            newly = [m for m in rows if m.status == "undelivered"]
            for m in newly:
                m.status = "delivered"
            if newly:
                conv.undelivered = max(conv.undelivered - len(newly), 0)
            return conv.state, [ctx.message_view(m) for m in rows]

    # ================================================================ agent operations
    async def claim(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        def db_step() -> tuple[dict[str, Any], int, str]:
            now = self.clock()
            with transaction(self._sessions) as db:
                ticket = self._ticket_for(db, agent, ticket_id)
                if ticket.status != "queued":
                    raise HandoffError(409, f"ticket {ticket_id} is {ticket.status}, not waiting in a queue")
                me = db.get_one(Agent, agent.id)
                if self._active_chats(db, agent.id) >= me.capacity:
                    raise HandoffError(409, f"you already have {me.capacity} chats (your capacity)")
                self._assign(db, ticket, me, now)
                self._audit(db, agent.username, "claim", ticket.id, {})
                return self._summary(db, ticket), ticket.conversation_id, ticket.language
        summary, conv_id, lang = await to_thread.run_sync(db_step)
        self._publish([(AGENTS, {"type": "ticket.assigned", "ticket": summary})])
        await self.deliver(conv_id, [self._handoff_msg(texts.text("assigned", lang, agent=agent.display_name))],
                           state="human")
        return summary

    async def reply(self, agent: AgentIdentity, ticket_id: int, text: str) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise HandoffError(422, "text must not be empty")

        def db_step() -> tuple[dict[str, Any], int]:
            with transaction(self._sessions) as db:
                ticket = self._ticket_for(db, agent, ticket_id)
                if ticket.status != "assigned" or (ticket.agent_id != agent.id and agent.role != "admin"):
                    raise HandoffError(409, "claim the ticket before replying")
                ticket.last_agent_at = self.clock()
                self._audit(db, agent.username, "reply", ticket.id, {"chars": len(text)})
                return self._summary(db, ticket), ticket.conversation_id
        summary, conv_id = await to_thread.run_sync(db_step)
        views = await self.deliver(conv_id, [OutboundMessage("agent", text, agent=agent.display_name)], agent=agent, state="human")
        self._publish([(AGENTS, {"type": "message", "ticket_id": ticket_id, "ticket": summary, "message": views[0]})])
        return views[0]

    async def note(self, agent: AgentIdentity, ticket_id: int, text: str) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise HandoffError(422, "text must not be empty")

        def db_step() -> tuple[dict[str, Any], dict[str, Any]]:
            with transaction(self._sessions) as db:
                ticket = self._ticket_for(db, agent, ticket_id)
                note = TicketNote(ticket_id=ticket.id, agent_id=agent.id, text=text[:4000], created_at=self.clock())
                db.add(note)
                db.flush()
                self._audit(db, agent.username, "note", ticket.id, {"note_id": note.id})
                return ({"id": note.id, "agent": agent.display_name, "agent_id": agent.id, "text": note.text,
                         "created_at": note.created_at.isoformat()}, self._summary(db, ticket))
        view, summary = await to_thread.run_sync(db_step)
        self._publish([(AGENTS, {"type": "note", "ticket_id": ticket_id, "ticket": summary, "note": view})])
        return view

    async def transfer(self, agent: AgentIdentity, ticket_id: int, queue: str | None = None,
                       to_agent: str | None = None) -> dict[str, Any]:
        if bool(queue) == bool(to_agent):
            raise HandoffError(422, "give exactly one of queue or agent")

        def db_step() -> tuple[dict[str, Any], int, str, str | None]:
            now = self.clock()
            with transaction(self._sessions) as db:
                ticket = self._ticket_for(db, agent, ticket_id)
                if ticket.status not in OPEN_STATUSES:
                    raise HandoffError(409, f"ticket {ticket_id} is {ticket.status}")
                # A chat someone is handling is theirs: only they (or an admin) may pass it on.
                if ticket.status == "assigned" and ticket.agent_id != agent.id and agent.role != "admin":
                    raise HandoffError(403, "only the agent handling this chat, or an admin, may transfer it")
                conv = db.get_one(Conversation, ticket.conversation_id)
                if queue:
                    if db.get(HandoffQueue, queue) is None:
                        raise HandoffError(422, f"unknown queue {queue!r}")
                    ticket.queue, ticket.status, ticket.agent_id, ticket.assigned_at = queue, "queued", None, None
                    ticket.queued_at = now
                    conv.state = "queued"
                    self._audit(db, agent.username, "transfer", ticket.id, {"queue": queue})
                    new_agent = None
                else:
                    target = db.scalar(select(Agent).where(Agent.username == to_agent, Agent.active.is_(True)))
                    if target is None:
                        raise HandoffError(422, f"unknown agent {to_agent!r}")
                    if ticket.queue not in (target.queues or []):
                        raise HandoffError(409, f"{target.username} does not serve the queue {ticket.queue}; "
                                                "transfer to one of their queues first")
                    if ticket.agent_id != target.id and self._active_chats(db, target.id) >= target.capacity:
                        raise HandoffError(409, f"{target.username} is at capacity")
                    self._assign(db, ticket, target, now)
                    self._audit(db, agent.username, "transfer", ticket.id, {"agent": target.username})
                    new_agent = target.display_name
                return self._summary(db, ticket), ticket.conversation_id, ticket.language, new_agent
        summary, conv_id, lang, new_agent = await to_thread.run_sync(db_step)
        self._publish([(AGENTS, {"type": "ticket.updated", "ticket": summary})])
        note = texts.text("transferred", lang)
        if new_agent:
            await self.deliver(conv_id, [self._handoff_msg(note), self._handoff_msg(texts.text("assigned", lang, agent=new_agent))],
                               state="human")
        else:
            await self.deliver(conv_id, [self._handoff_msg(note)], state="queued")
            await self.assign_waiting()
        return summary

    async def resolve(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        """Close the ticket and ask the customer for a rating (conversation state ``closed`` until then)."""
        summary, conv_id, lang = await to_thread.run_sync(self._close, agent, ticket_id, "resolved", "closed")
        self._publish([(AGENTS, {"type": "ticket.updated", "ticket": summary})])
        buttons = [{"title": str(n), "payload": f"/csat_{n}"} for n in range(1, 6)]
        await self.deliver(conv_id, [OutboundMessage("handoff", texts.text("resolved", lang, agent=agent.display_name),
                                                     buttons)], state="closed")
        await self._enqueue_async(ticket_id, "ticket.resolved")
        await self.assign_waiting()
        return summary

    async def hand_back(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        """The bot takes over again; Rasa's tracker still holds the slots (identity, order, language)."""
        summary, conv_id, lang = await to_thread.run_sync(self._close, agent, ticket_id, "handed_back", "bot")
        sig = self._signals.get(summary["sender_id"])
        if sig is not None:
            self._signals[summary["sender_id"]] = Signals()
        self._publish([(AGENTS, {"type": "ticket.updated", "ticket": summary})])
        await self.deliver(conv_id, [self._handoff_msg(texts.text("handed_back", lang))], state="bot")
        await self.assign_waiting()
        return summary

    def _close(self, agent: AgentIdentity, ticket_id: int, status: str, conv_state: str) -> tuple[dict[str, Any], int, str]:
        now = self.clock()
        with transaction(self._sessions) as db:
            ticket = self._ticket_for(db, agent, ticket_id)
            if ticket.status not in OPEN_STATUSES:
                raise HandoffError(409, f"ticket {ticket_id} is already {ticket.status}")
            if ticket.status == "assigned" and ticket.agent_id != agent.id and agent.role != "admin":
                raise HandoffError(403, "this ticket belongs to another agent")
            ticket.status, ticket.closed_at, ticket.close_reason = status, now, status
            if status == "resolved":
                ticket.csat_stage = "asked"
            db.get_one(Conversation, ticket.conversation_id).state = conv_state
            self._audit(db, agent.username, status.replace("handed_back", "hand_back").replace("resolved", "resolve"),
                        ticket.id, {})
            return self._summary(db, ticket), ticket.conversation_id, ticket.language

    def list_tickets(self, agent: AgentIdentity, status: str = "open", queue: str | None = None) -> list[dict[str, Any]]:
        """Queue list: open tickets by default, most urgent and longest waiting first."""
        with self._sessions() as db:
            q = select(Ticket)
            if status == "open":
                q = q.where(Ticket.status.in_(OPEN_STATUSES))
            elif status == "mine":
                q = q.where(Ticket.agent_id == agent.id, Ticket.status == "assigned")
            elif status != "all":
                q = q.where(Ticket.status == status)
            if queue:
                q = q.where(Ticket.queue == queue)
            if agent.role != "admin":
                q = q.where((Ticket.queue.in_(agent.queues)) | (Ticket.agent_id == agent.id))
            rows = db.scalars(q.order_by(Ticket.priority, Ticket.queued_at, Ticket.id).limit(500))
            now = self.clock()
            out = []
            for t in rows:
                summary = self._summary(db, t)
                summary["waiting_s"] = int((now - t.queued_at).total_seconds()) if t.status == "queued" else None
                out.append(summary)
            return out

    def ticket_detail(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        with self._sessions() as db:
            ticket = self._ticket_for(db, agent, ticket_id)
            return ctx.ticket_document(db, ticket)

    def canned_replies(self, language: str | None = None) -> list[dict[str, str]]:
        return [{"id": c.id, "language": c.language, "title": c.title, "text": c.text}
                for c in self.config.canned_replies if language in (None, c.language)]

    def canned_text(self, canned_id: str, language: str) -> str:
        for c in self.config.canned_replies:
            if c.id == canned_id and c.language == language:
                return c.text
        for c in self.config.canned_replies:
            if c.id == canned_id:
                return c.text
        raise HandoffError(422, f"unknown canned reply {canned_id!r}")

    def ticket_language(self, agent: AgentIdentity, ticket_id: int) -> str:
        with self._sessions() as db:
            return self._ticket_for(db, agent, ticket_id).language

    def queues_overview(self) -> list[dict[str, Any]]:
        now = self.clock()
        with self._sessions() as db:
            online = self._online_agents(db, now)
            waiting = dict(db.execute(select(Ticket.queue, func.count()).where(Ticket.status == "queued")
                                      .group_by(Ticket.queue)).all())
            return [
                {"name": q.name, "topic": q.topic, "language": q.language, "timezone": q.timezone, "hours": q.hours,
                 "open_now": hours.is_open(q.hours, q.timezone, now), "waiting": waiting.get(q.name, 0),
                 "agents_online": sum(1 for a in online if q.name in (a.queues or [])),
                 "avg_handle_minutes": q.avg_handle_minutes}
                for q in db.scalars(select(HandoffQueue).order_by(HandoffQueue.name))
            ]

    # ================================================================ automatic assignment
    async def assign_waiting(self) -> int:
        """Give waiting tickets (most urgent, longest waiting first) to free qualified agents."""
        if not self.auto_assign:
            return 0
        assigned = await to_thread.run_sync(self._assign_waiting_db)
        for summary, conv_id, lang, agent_name in assigned:
            self._publish([(AGENTS, {"type": "ticket.assigned", "ticket": summary})])
            await self.deliver(conv_id, [self._handoff_msg(texts.text("assigned", lang, agent=agent_name))], state="human")
        return len(assigned)

    def _assign_waiting_db(self) -> list[tuple[dict[str, Any], int, str, str]]:
        now = self.clock()
        out = []
        with transaction(self._sessions) as db:
            waiting = list(db.scalars(select(Ticket).where(Ticket.status == "queued")
                                      .order_by(Ticket.priority, Ticket.queued_at, Ticket.id)))
            for ticket in waiting:
                queue = db.get(HandoffQueue, ticket.queue)
                if queue is not None and not hours.is_open(queue.hours, queue.timezone, now):
                    continue
                agent = self._assign_best(db, ticket, now)
                if agent is not None:
                    db.get_one(Conversation, ticket.conversation_id).state = "human"
                    out.append((self._summary(db, ticket), ticket.conversation_id, ticket.language, agent.display_name))
        return out

    def _assign_best(self, db: Session, ticket: Ticket, now: datetime) -> Agent | None:
        queue = db.get(HandoffQueue, ticket.queue)
        if queue is not None and not hours.is_open(queue.hours, queue.timezone, now):
            return None
        loads = self._loads(db, now)
        agent_id = routing.pick_agent(loads, ticket.queue)
        if agent_id is None:
            return None
        agent = db.get_one(Agent, agent_id)
        self._assign(db, ticket, agent, now)
        self._audit(db, "system", "assign", ticket.id, {"agent": agent.username})
        return agent

    def _assign(self, db: Session, ticket: Ticket, agent: Agent, now: datetime) -> None:
        ticket.status, ticket.agent_id, ticket.assigned_at = "assigned", agent.id, now
        ticket.agent_nudged_at = None
        db.get_one(Conversation, ticket.conversation_id).state = "human"

    # ================================================================ helpers
    def _loads(self, db: Session, now: datetime) -> list[routing.AgentLoad]:
        chats = dict(db.execute(select(Ticket.agent_id, func.count()).where(Ticket.status == "assigned")
                                .group_by(Ticket.agent_id)).all())
        cutoff = now - timedelta(seconds=self.settings.handoff_presence_timeout_s)
        return [
            routing.AgentLoad(a.id, tuple(a.queues or []), a.capacity, chats.get(a.id, 0),
                              a.status == "online" and a.last_seen_at is not None and a.last_seen_at >= cutoff)
            for a in db.scalars(select(Agent).where(Agent.active.is_(True)))
        ]

    def _online_agents(self, db: Session, now: datetime) -> list[Agent]:
        cutoff = now - timedelta(seconds=self.settings.handoff_presence_timeout_s)
        return list(db.scalars(select(Agent).where(Agent.active.is_(True), Agent.status == "online",
                                                   Agent.last_seen_at >= cutoff)))

    def _position(self, db: Session, ticket: Ticket, now: datetime) -> tuple[int, int, int]:
        """(position in its queue, about how many minutes, agents online for the queue)."""
        ahead = db.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.status == "queued", Ticket.queue == ticket.queue, Ticket.id != ticket.id,
            (Ticket.priority < ticket.priority)
            | ((Ticket.priority == ticket.priority) & ((Ticket.queued_at < ticket.queued_at)
                                                       | ((Ticket.queued_at == ticket.queued_at) & (Ticket.id < ticket.id)))),
        )) or 0
        queue = db.get(HandoffQueue, ticket.queue)
        online = sum(1 for a in self._online_agents(db, now) if ticket.queue in (a.queues or []))
        avg = queue.avg_handle_minutes if queue else self.config.avg_handle_minutes
        position = ahead + 1
        return position, routing.wait_minutes(position, avg, online), online

    def _active_chats(self, db: Session, agent_id: int) -> int:
        return db.scalar(select(func.count()).select_from(Ticket).where(Ticket.agent_id == agent_id,
                                                                         Ticket.status == "assigned")) or 0

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

    def _summary(self, db: Session, ticket: Ticket) -> dict[str, Any]:
        name = db.get_one(Agent, ticket.agent_id).display_name if ticket.agent_id else None
        return ctx.ticket_summary(ticket, name)

    def _queue_refs(self, db: Session) -> list[routing.QueueRef]:
        return [routing.QueueRef(q.name, q.topic, q.language) for q in db.scalars(select(HandoffQueue).order_by(HandoffQueue.name))]

    def _audit(self, db: Session, actor: str, action: str, ticket_id: int | None, detail: dict[str, Any]) -> None:
        db.add(AuditEntry(actor=actor, action=action, ticket_id=ticket_id, detail=detail, created_at=self.clock()))

    def audit(self, actor: str, action: str, ticket_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        with transaction(self._sessions) as db:
            self._audit(db, actor, action, ticket_id, detail or {})

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

    # ================================================================ outbox (outside helpdesks)
    def adapters(self) -> list[str]:
        names = []
        if self.settings.handoff_webhook_url:
            names.append("webhook")
        if self.settings.handoff_smtp_host and self.settings.handoff_email_to:
            names.append("email")
        return names

    def _enqueue_outbox(self, ticket_id: int, event: str) -> dict[str, Any]:
        now = self.clock()
        with transaction(self._sessions) as db:
            ticket = db.get_one(Ticket, ticket_id)
            adapters = self.adapters()
            if adapters:
                document = {"event": event, "ticket": ctx.ticket_document(db, ticket)}
                for name in adapters:
                    db.add(OutboxItem(ticket_id=ticket_id, adapter=name, event=event, payload=document,
                                      status="pending", attempts=0, next_attempt_at=now, created_at=now))
            summary = self._summary(db, ticket)
        if adapters and self.outbox_wakeup is not None:
            self.outbox_wakeup()
        return summary

    def conversation_token(self, sender_id: str) -> str:
        return self.tokens.issue(sender_id)

    async def _enqueue_async(self, ticket_id: int, event: str) -> None:
        await to_thread.run_sync(self._enqueue_outbox, ticket_id, event)


def position_of(service: HandoffService, ticket_id: int) -> int | None:
    """Current queue position of a waiting ticket (None when it is not waiting)."""
    with service._sessions() as db:
        ticket = db.get(Ticket, ticket_id)
        if ticket is None or ticket.status != "queued":
            return None
        return service._position(db, ticket, service.clock())[0]


__all__ = ["AgentIdentity", "EscalationOutcome", "HandoffError", "HandoffService", "position_of", "PRIORITY_NORMAL"]
