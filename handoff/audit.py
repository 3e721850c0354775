"""The audit trail: who did what, when — every agent and admin action, the customer's rating, and
the automatic rules' actions (``handoff_audit``). Written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from handoff.base import HandoffBase
from handoff.models import AuditEntry
from storage.db import transaction


class Audit(HandoffBase):
    def _audit(self, db: Session, actor: str, action: str, ticket_id: int | None, detail: dict[str, Any]) -> None:
        db.add(AuditEntry(actor=actor, action=action, ticket_id=ticket_id, detail=detail, created_at=self.clock()))

    def audit(self, actor: str, action: str, ticket_id: int | None = None, detail: dict[str, Any] | None = None) -> None:
        with transaction(self._sessions) as db:
            self._audit(db, actor, action, ticket_id, detail or {})
