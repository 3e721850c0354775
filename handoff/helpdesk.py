"""Copies of tickets for outside helpdesks (webhook, email): queued in ``handoff_outbox`` in one
transaction with the ticket's document, then delivered with retries by ``adapters/outbox.py``."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from sqlalchemy import update
from sqlalchemy.orm import Session

from handoff import context as ctx
from handoff.base import HandoffBase
from handoff.models import OutboxItem, Ticket, TurnMemory
from storage.db import transaction


class Helpdesk(HandoffBase):
    def adapters(self) -> list[str]:
        names = []
        if self.settings.handoff_webhook_url:
            names.append("webhook")
        if self.settings.handoff_smtp_host and self.settings.handoff_email_to:
            names.append("email")
        return names

    def _enqueue_outbox(self, ticket_id: int, event: str) -> dict[str, Any]:
        with transaction(self._sessions) as db:
            summary, queued = self._outbox_rows(db, ticket_id, event)
        if queued and self.outbox_wakeup is not None:
            self.outbox_wakeup()
        return summary

    def _announce_new_ticket(self, conversation_id: int, ticket_id: int) -> dict[str, Any] | None:
        """Once per ticket opened during a turn (whichever replica opened it, whichever stores the turn):
        take it from the conversation's memory and queue its outside copies in one transaction. None when
        it was already announced."""
        with transaction(self._sessions) as db:
            taken = db.execute(update(TurnMemory).where(TurnMemory.conversation_id == conversation_id,
                                                        TurnMemory.new_ticket_id == ticket_id).values(new_ticket_id=None))
            if not taken.rowcount:
                return None
            summary, queued = self._outbox_rows(db, ticket_id, "ticket.created")
        if queued and self.outbox_wakeup is not None:
            self.outbox_wakeup()
        return summary

    def _outbox_rows(self, db: Session, ticket_id: int, event: str) -> tuple[dict[str, Any], bool]:
        """Queue the ticket's document for each adapter; returns the ticket's summary and whether any was queued."""
        now = self.clock()
        ticket = db.get_one(Ticket, ticket_id)
        adapters = self.adapters()
        if adapters:
            document = {"event": event, "ticket": ctx.ticket_document(db, ticket)}
            for name in adapters:
                db.add(OutboxItem(ticket_id=ticket_id, adapter=name, event=event, payload=document,
                                  status="pending", attempts=0, next_attempt_at=now, created_at=now))
        return self._summary(db, ticket), bool(adapters)

    async def _enqueue_async(self, ticket_id: int, event: str) -> None:
        await to_thread.run_sync(self._enqueue_outbox, ticket_id, event)
