"""Assignment: who takes a waiting ticket (the least loaded qualified agent online, within the
queue's hours), where a waiting ticket stands in its queue, and how long it may wait.

``assign_waiting`` runs after anything that frees an agent or opens a queue (resolve, hand-back,
transfer, the timeout sweep) when automatic assignment is on; every assignment is the lifecycle's
``ASSIGN`` event.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conversations.models import Conversation
from handoff import hours, lifecycle, routing, texts
from handoff.base import HandoffBase
from handoff.events import AGENTS
from handoff.lifecycle import Column, Event, IllegalTransition, StaleState, TicketStatus
from handoff.models import Agent, HandoffQueue, Ticket
from storage.db import transaction

if TYPE_CHECKING:
    from handoff.service import HandoffService

log = logging.getLogger(__name__)


class Assignment(HandoffBase):
    async def assign_waiting(self) -> int:
        """Give waiting tickets (most urgent, longest waiting first) to free qualified agents."""
        if not self.auto_assign:
            return 0
        assigned = await to_thread.run_sync(self._assign_waiting_db)
        for summary, conv_id, lang, agent_name in assigned:
            self._publish([(AGENTS, {"type": "ticket.assigned", "ticket": summary})])
            await self.deliver(conv_id, [self._handoff_msg(texts.text("assigned", lang, agent=agent_name))],
                               state=Column.HUMAN)
        return len(assigned)

    def _assign_waiting_db(self) -> list[tuple[dict[str, Any], int, str, str]]:
        for _ in range(3):
            try:
                return self._assign_waiting_pass()
            except StaleState:  # an agent claimed (or someone closed) a ticket meanwhile: read again
                continue
        return []

    def _assign_waiting_pass(self) -> list[tuple[dict[str, Any], int, str, str]]:
        now = self.clock()
        out = []
        with transaction(self._sessions) as db:
            waiting = list(db.scalars(select(Ticket).where(Ticket.status == TicketStatus.QUEUED)
                                      .order_by(Ticket.priority, Ticket.queued_at, Ticket.id)))
            for ticket in waiting:
                queue = db.get(HandoffQueue, ticket.queue)
                if queue is not None and not hours.is_open(queue.hours, queue.timezone, now):
                    continue
                try:
                    agent = self._assign_best(db, ticket, now)
                except StaleState:
                    raise
                except IllegalTransition as err:  # its conversation is not waiting: skip it, assign the rest
                    log.error("ticket not assigned", extra={"ticket_id": ticket.id, "error": str(err)})
                    continue
                if agent is not None:
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
        """``ASSIGN``: ``agent`` owns the chat (a claim, the automatic assignment, a transfer)."""
        lifecycle.apply(db, Event.ASSIGN, db.get_one(Conversation, ticket.conversation_id), ticket, now=now)
        ticket.agent_id, ticket.assigned_at = agent.id, now
        ticket.agent_nudged_at = None

    def _loads(self, db: Session, now: datetime) -> list[routing.AgentLoad]:
        chats = dict(db.execute(select(Ticket.agent_id, func.count()).where(Ticket.status == TicketStatus.ASSIGNED)
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

    def _active_chats(self, db: Session, agent_id: int) -> int:
        return db.scalar(select(func.count()).select_from(Ticket).where(Ticket.agent_id == agent_id,
                                                                         Ticket.status == TicketStatus.ASSIGNED)) or 0

    def _position(self, db: Session, ticket: Ticket, now: datetime) -> tuple[int, int, int]:
        """(position in its queue, about how many minutes, agents online for the queue)."""
        ahead = db.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.status == TicketStatus.QUEUED, Ticket.queue == ticket.queue, Ticket.id != ticket.id,
            (Ticket.priority < ticket.priority)
            | ((Ticket.priority == ticket.priority) & ((Ticket.queued_at < ticket.queued_at)
                                                       | ((Ticket.queued_at == ticket.queued_at) & (Ticket.id < ticket.id)))),
        )) or 0
        queue = db.get(HandoffQueue, ticket.queue)
        online = sum(1 for a in self._online_agents(db, now) if ticket.queue in (a.queues or []))
        avg = queue.avg_handle_minutes if queue else self.config.avg_handle_minutes
        position = ahead + 1
        return position, routing.wait_minutes(position, avg, online), online

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


def position_of(service: HandoffService, ticket_id: int) -> int | None:
    """Current queue position of a waiting ticket (None when it is not waiting)."""
    with service.sessions() as db:
        ticket = db.get(Ticket, ticket_id)
        if ticket is None or ticket.status != TicketStatus.QUEUED:
            return None
        return service._position(db, ticket, service.clock())[0]
