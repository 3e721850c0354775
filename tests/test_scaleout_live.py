"""Issue 16, the whole wiring: a real gateway (server.py) with its embedded Rasa, configured only by
DATABASE_URL (a throw-away PostgreSQL schema) and REDIS_URL. It migrates under the advisory lock,
answers a customer, keeps Rasa's tracker in Rasa's own schema (``<schema>_rasa``) with Redis as Rasa's
lock store, and runs its background loops under leases (rows held by this gateway).

Skipped with the reason without PostgreSQL, Redis or Rasa's environment; under CI=true they are required.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.rasa_stores import tracker_schema
from scenarios.system import LOCAL_CUSTOMERS, MODEL_CACHE, running_gateway
from storage.db import heads
from tests.conftest import RASA_CONFIG
from tests.redis_fixtures import redis_or_skip
from tests.store_fixtures import fixture_postgres_schema_url  # noqa: F401

pytestmark = pytest.mark.rasa


def test_a_gateway_on_postgresql_and_redis(trained_model: Path, help_centre_index: Path, tmp_path: Path,
                                          postgres_schema_url: str) -> None:
    redis_url = redis_or_skip()
    env = {"DATABASE_URL": postgres_schema_url, "REDIS_URL": redis_url, "MODEL_DIR": str(MODEL_CACHE),
           "RASA_CONFIG": str(RASA_CONFIG), "RASA_TOKEN": "test-token", "HANDOFF_ADMIN_PASSWORD": "scaleout-admin-1",
           "SECRET_KEY": "scaleout-shared-key-1",  # PostgreSQL + Redis: replicas must share it
           "HANDOFF_AUTO_ASSIGN": "false", **LOCAL_CUSTOMERS}
    engine = create_engine(postgres_schema_url)
    rasa_schema = tracker_schema(make_url(postgres_schema_url))
    sender = f"scale-{uuid.uuid4().hex[:8]}"
    try:
        with running_gateway(tmp_path / "gw", env, kb_index=help_centre_index) as gateway:
            url = f"http://127.0.0.1:{gateway.port}"
            first = httpx.post(f"{url}/api/v1/chat", json={"sender_id": sender, "text": "hi", "message_id": "m1"},
                               timeout=60)
            assert first.status_code == 200 and first.json()["messages"], first.text
            token = first.json()["conversation_token"]
            again = httpx.post(f"{url}/api/v1/chat", json={"sender_id": sender, "text": "hi again", "message_id": "m2"},
                               timeout=60)
            assert again.status_code == 401  # the second "first" message needs the token, as before
            second = httpx.post(f"{url}/api/v1/chat", json={"sender_id": sender, "text": "where is my order?",
                                                           "message_id": "m2"},
                                headers={"X-Conversation-Token": token}, timeout=60)
            assert second.status_code == 200, second.text
            deadline = time.monotonic() + 60
            with engine.connect() as conn:
                while (held := dict(conn.execute(text("SELECT name, holder FROM leases")).all())).keys() != {
                        "handoff-timeouts", "ops-collect", "ops-jobs"} and time.monotonic() < deadline:
                    time.sleep(0.2)
                    conn.rollback()
            assert held.keys() == {"handoff-timeouts", "ops-collect", "ops-jobs"}
            assert len({h.rsplit(":", 1)[0] for h in held.values()}) == 1  # host:pid: this gateway holds all three
        with engine.connect() as conn:
            assert {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))} == heads()
            assert conn.execute(text("SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
                                     "WHERE c.sender_id = :s AND m.direction = 'in'"), {"s": sender}).scalar() == 2
            texts = list(conn.execute(text(f'SELECT data FROM "{rasa_schema}".events WHERE sender_id = :s '
                                           "AND type_name = 'user' ORDER BY id"), {"s": sender}).scalars())
            assert any("where is my order" in t for t in texts)  # Rasa's tracker, in PostgreSQL
            # released on the clean stop: another replica may take over at once
            assert conn.execute(text("SELECT count(*) FROM leases WHERE expires_at > now() AT TIME ZONE 'UTC'")
                                ).scalar() == 0
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{rasa_schema}" CASCADE'))
        engine.dispose()
