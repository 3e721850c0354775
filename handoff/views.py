"""Read views for the agents' console: the queue list, one ticket's document, the queues' standing,
canned replies. Nothing here writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from handoff import context as ctx
from handoff import hours
from handoff.base import AgentIdentity, HandoffBase
from handoff.errors import HandoffError
from handoff.lifecycle import TicketStatus
from handoff.models import OPEN_STATUSES, HandoffQueue, Ticket


class Views(HandoffBase):
    def list_tickets(self, agent: AgentIdentity, status: str = "open", queue: str | None = None) -> list[dict[str, Any]]:
        """Queue list: open tickets by default, most urgent and longest waiting first."""
        with self._sessions() as db:
            q = select(Ticket)
            if status == "open":
                q = q.where(Ticket.status.in_(OPEN_STATUSES))
            elif status == "mine":
                q = q.where(Ticket.agent_id == agent.id, Ticket.status == TicketStatus.ASSIGNED)
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
                summary["waiting_s"] = int((now - t.queued_at).total_seconds()) if t.status == TicketStatus.QUEUED else None
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
            waiting = dict(db.execute(select(Ticket.queue, func.count()).where(Ticket.status == TicketStatus.QUEUED)
                                      .group_by(Ticket.queue)).all())
            return [
                {"name": q.name, "topic": q.topic, "language": q.language, "timezone": q.timezone, "hours": q.hours,
                 "open_now": hours.is_open(q.hours, q.timezone, now), "waiting": waiting.get(q.name, 0),
                 "agents_online": sum(1 for a in online if q.name in (a.queues or [])),
                 "avg_handle_minutes": q.avg_handle_minutes}
                for q in db.scalars(select(HandoffQueue).order_by(HandoffQueue.name))
            ]
