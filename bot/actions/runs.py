"""Exactly-once actions: each action of a customer's message runs once, however often Rasa asks.

Rasa calls the action server for every action it predicts. When Rasa crashes or times out after
an action ran but before it saved the tracker, the gateway retries the message and Rasa predicts
the same actions again; without this, "cancel my order" or "refund" would run twice. A call is
keyed by (sender, the customer's message id, action name, how many times that action already ran
for that message) and its result is stored on the first run; a repeated key gets the stored
result without running anything. The message id is the gateway's (bot/gateway_channel.py passes
it to Rasa), so it is stable across retries.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from storage.db import Base, transaction
from storage.types import UTCDateTime

__all__ = ["ActionRun", "ActionRuns", "run_key"]

KEEP_DAYS = 7  # a retry comes within minutes; older rows are pruned
PRUNE_EVERY = 1000  # writes between two prunes (a DELETE on every action call would cost each turn)


class ActionRun(Base):
    __tablename__ = "action_runs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(128))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def run_key(action_call: dict[str, Any]) -> str | None:
    """The call's idempotency key; None when the call names no customer message (nothing to key on)."""
    tracker = action_call.get("tracker")
    action = action_call.get("next_action")
    if not isinstance(tracker, dict) or not isinstance(action, str):
        return None
    latest = tracker.get("latest_message") or {}
    message_id = latest.get("message_id") if isinstance(latest, dict) else None
    sender = tracker.get("sender_id")
    if not isinstance(message_id, str) or not message_id or not isinstance(sender, str):
        return None
    events = tracker.get("events") or []
    ran_before = 0
    for event in reversed(events if isinstance(events, list) else []):
        if not isinstance(event, dict):
            continue
        if event.get("event") == "user":
            break
        if event.get("event") == "action" and event.get("name") == action:
            ran_before += 1
    raw = "\0".join((sender, message_id, action, str(ran_before)))
    return hashlib.sha256(raw.encode()).hexdigest()


class ActionRuns:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._writes = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self.sessions() as db:
            row = db.get(ActionRun, key)
            return None if row is None else (row.result or {})

    def put(self, key: str, sender_id: str, action: str, result: dict[str, Any] | None) -> None:
        now = datetime.now(UTC)
        try:
            with transaction(self.sessions) as db:
                db.add(ActionRun(key=key, sender_id=sender_id[:128], action=action[:128], result=result, created_at=now))
        except IntegrityError:
            return  # the same call ran twice at once; the first result stands
        self._writes += 1
        if self._writes % PRUNE_EVERY == 1:  # the first write after a start, then every PRUNE_EVERY
            with transaction(self.sessions) as db:
                db.execute(delete(ActionRun).where(ActionRun.created_at < now - timedelta(days=KEEP_DAYS)))
