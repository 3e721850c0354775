"""Escalation: open a ticket (or count a repeated request on the open one), with what the bot
understood, routed to a queue, and tell the customer where they stand (queue position, the
team's hours, the agent who took it, or a request for their email address).

Rasa actions call ``escalate_blocking`` (synchronous action code on the event loop), the turn
hooks ``escalate``; both go through ``lifecycle`` (``ESCALATE``, then ``ASSIGN`` or ``ASK_EMAIL``).
A daily cap per sender and per client address stops a script opening tickets in bulk.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conversations.models import Conversation
from handoff import context as ctx
from handoff import hours, lifecycle, routing, texts
from handoff.base import EscalationOutcome, Events, HandoffBase, Memory
from handoff.errors import HandoffError
from handoff.events import AGENTS
from handoff.lifecycle import Event, TicketStatus
from handoff.models import Agent, HandoffQueue, Ticket, TurnMemory
from handoff.policy import Escalate
from storage.db import transaction

log = logging.getLogger(__name__)


class Escalation(HandoffBase):
    async def escalate(self, sender_id: str, decision: Escalate, facts: dict[str, Any] | None = None) -> EscalationOutcome:
        outcome, events = await to_thread.run_sync(self._escalate_db, sender_id, decision, facts or {})
        self._publish(events)
        return outcome

    def escalate_blocking(self, sender_id: str, decision: Escalate, facts: dict[str, Any] | None = None) -> EscalationOutcome:
        """For synchronous action code running on the event loop (as the store calls there are)."""
        outcome, events = self._escalate_db(sender_id, decision, facts or {})
        self._publish(events)
        return outcome

    async def remember_address(self, stored: Any, address: str | None, memory: Memory) -> None:
        """The client address of the turn in progress, for the per-address ticket cap wherever the
        escalation runs (the bot's action may run on another replica): kept in the conversation's memory
        as a keyed digest, written only when it differs from the one ``memory`` holds."""
        key = hmac.new(self._address_key, address.encode(), hashlib.sha256).hexdigest()[:32] if address else None
        if key != memory.client_key:
            await to_thread.run_sync(self._keep_client_key, stored.conversation_id, key)

    def _keep_client_key(self, conversation_id: int, key: str | None) -> None:
        with transaction(self._sessions) as db:
            row = self._row(db, conversation_id)
            row.client_key, row.updated_at = key, self.clock()

    def _ticket_capped(self, db: Session, conv: Conversation, now: datetime) -> str | None:
        """Why no new ticket may be opened for ``conv``'s sender today ("sender" / "address"), or None.

        Keyword rules open urgent tickets before the bot is asked and a request for a person always
        works, so without a cap a script could open one ticket per invented sender id. Only a ticket
        actually opened is counted against the address.
        """
        per_sender = self.settings.tickets_per_sender_per_day
        if per_sender > 0:
            today = db.scalar(select(func.count()).select_from(Ticket).where(
                Ticket.sender_id == conv.sender_id, Ticket.created_at >= now - timedelta(days=1))) or 0
            if today >= per_sender:
                return "sender"
        per_address = self.settings.tickets_per_address_per_day
        address = db.scalar(select(TurnMemory.client_key).where(TurnMemory.conversation_id == conv.id))  # its digest
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
            if created and (capped := self._ticket_capped(db, conv, now)) is not None:
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
                    status=TicketStatus.QUEUED, reason=decision.reason, rule=decision.rule, priority=decision.priority,
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
            lifecycle.apply(db, Event.ESCALATE, conv, ticket, now=now)
            if created:
                self._audit(db, "system", "escalate", ticket.id, {"reason": decision.reason, "rule": decision.rule,
                                                                    "queue": ticket.queue, "priority": ticket.priority})
                self._ticket_opened(db, conv.id, ticket.id)
            agent_name = None
            if ticket.status == TicketStatus.QUEUED and self.auto_assign:
                agent = self._assign_best(db, ticket, now)
                if agent is not None:
                    agent_name = agent.display_name
                    events.append((AGENTS, {"type": "ticket.assigned", "ticket": self._summary(db, ticket)}))
            elif ticket.agent_id:
                agent_name = db.get_one(Agent, ticket.agent_id).display_name
            if not created:
                events.append((AGENTS, {"type": "ticket.updated", "ticket": self._summary(db, ticket)}))
            outcome = self._outcome(db, conv, ticket, created, agent_name, now)
            self._offer_ends(db, conv.id)
        return outcome, events

    def _outcome(self, db: Session, conv: Conversation, ticket: Ticket, created: bool, agent_name: str | None,
                 now: datetime) -> EscalationOutcome:
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
                lifecycle.apply(db, Event.ASK_EMAIL, conv, ticket, now=now)
                messages.append(texts.text("ask_email", lang))
        state = "human" if agent_name and ticket.status == TicketStatus.ASSIGNED else "queued"
        return EscalationOutcome(ticket.id, created, state, ticket.queue, position, minutes, agent_name, open_now,
                                 messages)
