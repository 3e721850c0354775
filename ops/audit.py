"""The ops audit log (table ``ops_audit``): who changed or exported what through the admin API.

One helper for every writer: ops services add a row inside their own transaction (``add``); routes
that change something outside a database transaction (KB uploads, exports) call ``record``.
The actor is what ``require_admin`` returned: ``admin-token`` or ``agent:<username>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ops.models import AuditEntry
from storage.db import transaction


def add(db: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Add an audit row to an open session (it commits with the change it records)."""
    db.add(AuditEntry(actor=actor[:64], action=action[:32], target=target[:128], detail=detail or {},
                      created_at=datetime.now(UTC)))


def record(sessions: sessionmaker[Session], actor: str, action: str, target: str,
           detail: dict[str, Any] | None = None) -> None:
    """Write one audit row in its own transaction."""
    with transaction(sessions) as db:
        add(db, actor, action, target, detail)
