"""Copies of tickets for outside helpdesks (webhook, email): queued in ``handoff_outbox`` in one
transaction with the ticket's document, then delivered with retries by ``adapters/outbox.py``."""

from __future__ import annotations

from typing import Any

from anyio import to_thread

from handoff import context as ctx
from handoff.base import HandoffBase
from handoff.models import OutboxItem, Ticket
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

    async def _enqueue_async(self, ticket_id: int, event: str) -> None:
        await to_thread.run_sync(self._enqueue_outbox, ticket_id, event)
