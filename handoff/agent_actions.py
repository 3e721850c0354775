"""What an agent does with a ticket: claim, reply, note, transfer, resolve, hand back.

Each is one transaction that checks the agent may do it (their queues, their chat, their
capacity), takes the lifecycle's event (``ASSIGN``, ``REQUEUE``, ``RESOLVE``, ``HAND_BACK``), and
audits it; then the consoles get the event and the customer the notice. Of two agents claiming the
same ticket, the second gets a 409 (the lifecycle's compare-and-set), never a shared chat.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from sqlalchemy import select

from conversations.models import Conversation
from conversations.service import OutboundMessage
from handoff import lifecycle, texts
from handoff.base import AgentIdentity, HandoffBase
from handoff.errors import HandoffError
from handoff.events import AGENTS
from handoff.lifecycle import Column, Event, TicketStatus
from handoff.models import Agent, HandoffQueue, TicketNote
from storage.db import transaction


class AgentActions(HandoffBase):
    async def claim(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        def db_step() -> tuple[dict[str, Any], int, str]:
            now = self.clock()
            with transaction(self._sessions) as db:
                ticket = self._ticket_for(db, agent, ticket_id)
                if ticket.status != TicketStatus.QUEUED:
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
                           state=Column.HUMAN)
        return summary

    async def reply(self, agent: AgentIdentity, ticket_id: int, text: str) -> dict[str, Any]:
        text = text.strip()
        if not text:
            raise HandoffError(422, "text must not be empty")

        def db_step() -> tuple[dict[str, Any], int]:
            with transaction(self._sessions) as db:
                ticket = self._ticket_for(db, agent, ticket_id)
                if ticket.status != TicketStatus.ASSIGNED or (ticket.agent_id != agent.id and agent.role != "admin"):
                    raise HandoffError(409, "claim the ticket before replying")
                ticket.last_agent_at = self.clock()
                self._audit(db, agent.username, "reply", ticket.id, {"chars": len(text)})
                return self._summary(db, ticket), ticket.conversation_id
        summary, conv_id = await to_thread.run_sync(db_step)
        views = await self.deliver(conv_id, [OutboundMessage("agent", text, agent=agent.display_name)], agent=agent,
                                   state=Column.HUMAN)
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
                # A chat someone is handling is theirs: only they (or an admin) may pass it on.
                ticket = self._open_ticket_in_hand(
                    db, agent, ticket_id, f"ticket {ticket_id} is {{}}", "only the agent handling this chat, or an admin, may transfer it")
                conv = db.get_one(Conversation, ticket.conversation_id)
                if queue:
                    if db.get(HandoffQueue, queue) is None:
                        raise HandoffError(422, f"unknown queue {queue!r}")
                    lifecycle.apply(db, Event.REQUEUE, conv, ticket, now=now)
                    ticket.queue, ticket.agent_id, ticket.assigned_at = queue, None, None
                    ticket.queued_at = now
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
                               state=Column.HUMAN)
        else:
            await self.deliver(conv_id, [self._handoff_msg(note)], state=Column.QUEUED)
            await self.assign_waiting()
        return summary

    async def resolve(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        """Close the ticket and ask the customer for a rating (conversation state ``closed`` until then)."""
        summary, conv_id, lang = await to_thread.run_sync(self._close, agent, ticket_id, Event.RESOLVE)
        self._publish([(AGENTS, {"type": "ticket.updated", "ticket": summary})])
        buttons = [{"title": str(n), "payload": f"/csat_{n}"} for n in range(1, 6)]
        await self.deliver(conv_id, [OutboundMessage("handoff", texts.text("resolved", lang, agent=agent.display_name),
                                                     buttons)], state=Column.CLOSED)
        await self._enqueue_async(ticket_id, "ticket.resolved")
        await self.assign_waiting()
        return summary

    async def hand_back(self, agent: AgentIdentity, ticket_id: int) -> dict[str, Any]:
        """The bot takes over again; Rasa's tracker still holds the slots (identity, order, language)."""
        summary, conv_id, lang = await to_thread.run_sync(self._close, agent, ticket_id, Event.HAND_BACK)
        self._publish([(AGENTS, {"type": "ticket.updated", "ticket": summary})])
        await self.deliver(conv_id, [self._handoff_msg(texts.text("handed_back", lang))], state=Column.BOT)
        await self.assign_waiting()
        return summary

    def _close(self, agent: AgentIdentity, ticket_id: int, event: Event) -> tuple[dict[str, Any], int, str]:
        now = self.clock()
        with transaction(self._sessions) as db:
            ticket = self._open_ticket_in_hand(
                db, agent, ticket_id, f"ticket {ticket_id} is already {{}}", "this ticket belongs to another agent")
            lifecycle.apply(db, event, db.get_one(Conversation, ticket.conversation_id), ticket, now=now)
            self._audit(db, agent.username, event.value, ticket.id, {})  # "resolve" | "hand_back"
            if event == Event.HAND_BACK:
                self._forget_signals(db, ticket.conversation_id)  # the bot's policy starts afresh
            return self._summary(db, ticket), ticket.conversation_id, ticket.language
