"""The count of a conversation's undelivered messages goes down as they are delivered, never below 0,
on SQLite and on PostgreSQL (a two-argument ``max`` ran on SQLite only: 500s on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update

from conversations.models import Conversation, undelivered_less
from storage.db import make_engine, make_session_factory, transaction, upgrade
from tests.store_fixtures import fixture_postgres_schema_url  # noqa: F401


def _counts(url: str) -> list[int]:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    seen = []
    try:
        with transaction(sessions) as db:
            conv = Conversation(sender_id="s-undelivered", channel="rest", language="en", state="bot",
                                undelivered=3, created_at=now, updated_at=now)
            db.add(conv)
            db.flush()
            conv_id = conv.id
        for delivered in (2, 5, 1):
            with transaction(sessions) as db:
                db.execute(update(Conversation).where(Conversation.id == conv_id)
                           .values(undelivered=undelivered_less(delivered)))
                seen.append(db.scalar(select(Conversation.undelivered).where(Conversation.id == conv_id)))
    finally:
        engine.dispose()
    return seen


def test_on_sqlite(tmp_path: Path) -> None:
    assert _counts(f"sqlite:///{tmp_path / 'db.sqlite'}") == [1, 0, 0]


def test_on_postgresql(postgres_schema_url: str) -> None:
    assert _counts(postgres_schema_url) == [1, 0, 0]
