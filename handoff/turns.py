"""The two hooks the conversation service calls on every customer turn (``before_rasa`` and
``after_turn``), and what they answer without the bot.

Before Rasa, by the conversation's state: ``human`` → relay to the agent, the bot says nothing
(routed by the state read when relaying, so a hand-back or resolve just before goes to the bot or
the rating step instead); ``closed`` → the rating and comment (``RATE``, ``COMMENT``, ``MOVE_ON``);
``queued`` → an email address we asked for (``EMAIL_GIVEN``), a queue ping, a short acknowledgement;
``offered`` → yes/no to the offer (``DECLINE``; yes becomes ``/human_handoff`` for the bot's
handoff action); a business rule in the words escalates at once. After a bot turn: the policy may
offer a person (``OFFER``), a waiting customer gets their standing in the queue, and a ticket opened
during the turn is announced to the consoles and copied to the helpdesks.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from anyio import to_thread
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from channels.notices import in_script
from conversations.models import Conversation, Message, Turn, undelivered_less
from conversations.service import OutboundMessage, TurnResult
from handoff import context as ctx
from handoff import lifecycle, texts
from handoff.base import HandoffBase
from handoff.events import AGENTS
from handoff.lifecycle import Column, Event, State, TicketStatus
from handoff.models import Ticket
from handoff.policy import Offer, Signals
from storage.db import transaction

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
YES = re.compile(r"^\s*(?:yes|yeah|yep|sure|ok(?:ay)?|please|y|是|是的|好|好的|可以|要|需要|да|давайте|хорошо|конечно|ага)\s*[.!。！]*\s*$",
                 re.IGNORECASE)
NO = re.compile(r"^\s*(?:no|nope|no thanks|not now|n|不|不用|不用了|不要|算了|нет|не надо|не нужно|нет, спасибо)\s*[.!。！]*\s*$",
                re.IGNORECASE)
# "no thanks, track 3348917502 for me": the offer declined, and a request that follows it
NO_THEN = re.compile(r"^\s*(?:no|nope|nah|no thanks|no thank you|not now|不用了?|不要|不需要|算了|нет|не надо|не нужно)"
                     r"(?:\s*,?\s*(?:thanks|thank you|спасибо|谢谢|謝謝))?\s*[,.!;:，。！、]+\s*(?=\S)", re.IGNORECASE)
MIN_REQUEST_AFTER_NO = 8  # characters (Han: 3) of what follows the "no" for it to be a request of its own
CSAT_PAYLOAD = re.compile(r"^/csat_([1-5])$")
CSAT_SKIP = "/csat_skip"
HANDOFF_PAYLOAD = "/human_handoff"
DENY_PAYLOAD = "/deny"
QUEUE_NOTICE = "gateway_queue_notice"  # the turn's action when the queue, not the bot, answered a waiting customer
RULE_HANDOFF = "gateway_handoff_rule"  # the turn's action when a business rule in the words handed the chat over


class TurnHooks(HandoffBase):
    async def before_rasa(self, stored: Any, inbound: Any) -> TurnResult | str | None:
        """Answer without Rasa (a person owns the chat, a rating, an email, a yes/no to an offer, a
        business rule in the words), give Rasa other text ("yes" → ``/human_handoff``), or None."""
        sender = stored.sender_id
        memory = await self.turn_memory(stored.conversation_id)  # shared by the replicas (handoff_turn_memory)
        await self.remember_address(stored, (inbound.metadata or {}).get("client_address"), memory)
        sig = memory.signals
        payload, raw = inbound.payload, inbound.text or ""
        state = stored.state
        if state == Column.HUMAN:
            relayed, state = await self._relay_to_agent(stored)
            if relayed is not None:
                return relayed
            # The agent let go between storing this message and now: route it by the state it is in.
        if state == Column.CLOSED:
            answered = await self._csat_step(stored, payload, raw)
            if answered is not None:
                return answered
            state = Column.BOT  # they moved on: the bot answers
        if state == Column.QUEUED and not payload:
            answered = await self._maybe_email(stored, raw)
            if answered is not None:
                return answered
        if sig is not None and sig.offer_pending and state == Column.BOT:  # OFFERED
            if payload == DENY_PAYLOAD or (not payload and NO.match(raw)):
                lifecycle.next_state(State.OFFERED, Event.DECLINE)
                self.policy.declined(sig)
                await self.keep_signals(stored.conversation_id, sig)
                return await self._answer_locally(stored, [self._handoff_msg(texts.text("offer_declined", stored.language))])
            if not payload and YES.match(raw):
                return HANDOFF_PAYLOAD
            rest = request_after_no(raw) if not payload else None
            if rest is not None:  # declined, and the bot reads the request that follows
                lifecycle.next_state(State.OFFERED, Event.DECLINE)
                self.policy.declined(sig)
                await self.keep_signals(stored.conversation_id, sig)
                return rest
        if not payload and state in (Column.BOT, Column.QUEUED):
            rule = self.policy.rule_in_text(raw)
            if rule is not None:
                outcome = await self.escalate(sender, rule, {})
                return await self._answer_locally(stored, [self._handoff_msg(t) for t in outcome.messages],
                                                  after_escalation=True, action=RULE_HANDOFF)
            # A person asked for in the words ("да, давайте уже живого", "转人工", "I'd like to talk to someone
            # about …") is granted like the button, whatever the NLU makes of the rest of the message.
            if self.policy.requests_person(raw):
                return HANDOFF_PAYLOAD
        if state == Column.QUEUED and not payload:
            return await self._queued_notice(stored, raw)
        return None

    async def after_turn(self, stored: Any, inbound: Any, turn: dict[str, Any], result: TurnResult) -> TurnResult:
        """Policy after a bot turn (offer a person), queue position while queued, new-ticket events."""
        extra: list[OutboundMessage] = []
        memory = await self.turn_memory(stored.conversation_id)  # read after Rasa: its actions may have changed it
        if memory.new_ticket is not None:
            await self._ticket_turn_done(stored, memory.new_ticket)
        elif result.state == Column.BOT:
            sig = memory.signals or Signals()
            current = State.OFFERED if sig.offer_pending else State.BOT
            offered_by_bot = any(b.get("payload") == HANDOFF_PAYLOAD for m in result.messages for b in m.buttons)
            offer = self.policy.after_turn(sig, turn, inbound.text if not inbound.payload else None)
            if offered_by_bot:  # the bot already asked (e.g. the KB's "talk to a person?" buttons)
                lifecycle.next_state(current, Event.OFFER)
                self.policy.offered(sig, Offer("repeated_failure"))
            elif offer is not None:
                lifecycle.next_state(current, Event.OFFER)
                self.policy.offered(sig, offer)
                key = "offer_frustration" if offer.reason == "frustration" else "offer_failure"
                lang = result.language
                extra.append(OutboundMessage(type="handoff", text=texts.text(key, lang), buttons=[
                    {"title": texts.text("yes", lang), "payload": HANDOFF_PAYLOAD},
                    {"title": texts.text("no", lang), "payload": DENY_PAYLOAD},
                ]))
            await self.keep_signals(stored.conversation_id, sig)
        elif result.state == Column.QUEUED:
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

    async def _ticket_turn_done(self, stored: Any, ticket_id: int) -> None:
        """The turn that created a ticket is stored: tell the consoles and queue the outside copies."""
        summary = await to_thread.run_sync(self._announce_new_ticket, stored.conversation_id, ticket_id)
        if summary is not None:
            self._publish([(AGENTS, {"type": "ticket.created", "ticket": summary})])

    def _queue_note(self, stored: Any) -> OutboundMessage | None:
        """The customer's standing in the queue, after a bot turn while they wait for a person."""
        now = self.clock()
        with transaction(self._sessions) as db:
            ticket = self._open_ticket(db, stored.conversation_id)
            if ticket is None or ticket.status != TicketStatus.QUEUED:
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
                if ticket is None or ticket.status != TicketStatus.QUEUED:
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
                self._gateway_turn(db, stored, QUEUE_NOTICE, now)
                return said
        said = await to_thread.run_sync(db_step)
        return None if said is None else await self._answer_locally(stored, [self._handoff_msg(said)])

    @staticmethod
    def _gateway_turn(db: Session, stored: Any, action: str, now: datetime) -> None:
        """The turn as the gateway handled it (``action``): the bot never saw this message, so its state
        is the previous turn's, and a check of what ran can tell that nothing else did."""
        last = db.scalar(select(Turn).where(Turn.conversation_id == stored.conversation_id)
                         .order_by(Turn.id.desc()).limit(1))
        db.add(Turn(conversation_id=stored.conversation_id, message_id=stored.message_id,
                    language=stored.language, intent=None, confidence=None, intent_ranking=[], entities=[],
                    actions=[action], slots=dict(last.slots or {}) if last else {},
                    active_loop=last.active_loop if last else None, latency_ms=0.0, created_at=now))

    def _store_extra(self, stored: Any, channel: str, extra: list[OutboundMessage]) -> None:
        with transaction(self._sessions) as db:
            for out in extra:
                db.add(self._out_row(stored.conversation_id, out, stored.language, channel, reply_to=stored.message_id))

    async def _relay_to_agent(self, stored: Any) -> tuple[TurnResult | None, str]:
        """A person owns the chat: store, forward to the agent, say nothing as the bot. Returns
        (None, the state now) when the agent handed back, resolved or re-queued since the message came."""
        def db_step() -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
            now = self.clock()
            with transaction(self._sessions) as db:
                conv = db.get_one(Conversation, stored.conversation_id)
                if conv.state != Column.HUMAN:
                    return conv.state, None, None
                msg = db.get_one(Message, stored.message_id)
                msg.status = "answered"
                ticket = self._open_ticket(db, stored.conversation_id)
                summary = None
                if ticket is not None:
                    ticket.last_customer_at = now
                    summary = self._summary(db, ticket)
                return conv.state, ctx.message_view(msg), summary
        state, view, summary = await to_thread.run_sync(db_step)
        if view is None:
            return None, state
        if summary is not None:
            self._publish([(AGENTS, {"type": "message", "ticket_id": summary["id"], "ticket": summary, "message": view})])
        backlog = await self._backlog(stored)
        return TurnResult(sender_id=stored.sender_id, language=stored.language, state=Column.HUMAN, messages=backlog), state

    async def _maybe_email(self, stored: Any, raw: str) -> TurnResult | None:
        match = EMAIL.search(raw)
        if match is None:
            return None

        def db_step() -> bool:
            with transaction(self._sessions) as db:
                ticket = self._open_ticket(db, stored.conversation_id)
                if ticket is None or not ticket.awaiting_email:
                    return False
                conv = db.get_one(Conversation, stored.conversation_id)
                if conv.state != Column.QUEUED:
                    return False  # an agent took the chat meanwhile
                lifecycle.apply(db, Event.EMAIL_GIVEN, conv, ticket, now=self.clock())
                ticket.contact_email = match.group(0)
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
                    lifecycle.apply(db, Event.MOVE_ON, conv, None, now=now)
                    return None, Column.BOT
                score_match = CSAT_PAYLOAD.match(payload or "") or re.fullmatch(r"\s*([1-5])\s*[.!。]?\s*", raw or "")
                if ticket.csat_stage == "asked" and score_match:
                    lifecycle.apply(db, Event.RATE, conv, ticket, now=now)
                    ticket.csat_score, ticket.csat_at = int(score_match.group(1)), now
                    self._audit(db, "customer", "csat", ticket.id, {"score": ticket.csat_score})
                    return "csat_comment", Column.CLOSED
                if ticket.csat_stage == "comment" and (payload == CSAT_SKIP or (not payload and raw.strip())):
                    lifecycle.apply(db, Event.COMMENT, conv, ticket, now=now)
                    if payload != CSAT_SKIP:
                        ticket.csat_comment = raw.strip()[:2000]
                    return "csat_thanks", Column.BOT
                lifecycle.apply(db, Event.MOVE_ON, conv, ticket, now=now)  # they moved on: the bot answers
                return None, Column.BOT
        key, state = await to_thread.run_sync(db_step)
        if key is None:
            return None
        lang = stored.language
        buttons = [{"title": texts.text("csat_skip", lang), "payload": CSAT_SKIP}] if key == "csat_comment" else []
        return await self._answer_locally(stored, [OutboundMessage("handoff", texts.text(key, lang), buttons)],
                                          state=state)

    async def _answer_locally(self, stored: Any, messages: list[OutboundMessage], state: str | None = None,
                              after_escalation: bool = False, action: str | None = None) -> TurnResult:
        messages = in_script(messages, stored.language, stored.detected.script)  # zh-Hant customers read Traditional

        def db_step() -> str:
            with transaction(self._sessions) as db:
                conv = db.get_one(Conversation, stored.conversation_id)
                msg = db.get_one(Message, stored.message_id)
                msg.status = "answered"
                for out in messages:
                    db.add(self._out_row(conv.id, out, stored.language, msg.channel, reply_to=msg.id))
                if action is not None:
                    self._gateway_turn(db, stored, action, self.clock())
                conv.updated_at = self.clock()
                return conv.state
        current = await to_thread.run_sync(db_step)
        if after_escalation and (opened := (await self.turn_memory(stored.conversation_id)).new_ticket) is not None:
            await self._ticket_turn_done(stored, opened)
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
                           .values(undelivered=undelivered_less(len(rows))))
                return [OutboundMessage(m.type, m.text, (m.data or {}).get("buttons", []), (m.data or {}).get("sources", []),
                                        (m.data or {}).get("agent")) for m in rows]
        return await to_thread.run_sync(db_step)


def request_after_no(text: str) -> str | None:
    """What follows a "no" to the offer when it is a request of its own ("no thanks, track 3348917502
    for me" → "track 3348917502 for me"), else None."""
    match = NO_THEN.match(text or "")
    if match is None:
        return None
    rest = text[match.end():].strip()
    han = len(re.findall(r"[\u3400-\u9fff]", rest))
    return rest if len(rest) >= MIN_REQUEST_AFTER_NO or han >= 3 else None
