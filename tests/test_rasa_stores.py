"""Issue 16, several Rasa servers: the tracker store on PostgreSQL (a schema of Rasa's own) and the
lock store on Redis, rendered from the gateway's DATABASE_URL and REDIS_URL (bot/rasa_stores.py), and
read by Rasa 3.6 itself: its SQLTrackerStore saves and reads a tracker there, its RedisLockStore locks
a conversation in Redis. SQLite and no Redis keep bot/endpoints.yml as it is.

PostgreSQL, Redis and the Rasa environment are skipped with the reason when absent, and required
(the test fails) under CI=true.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from bot.rasa_process import RasaSupervisor
from bot.rasa_stores import DEFAULT_ENDPOINTS, RasaStores, lock_store_config, tracker_schema
from tests.conftest import run_in_rasa
from tests.redis_fixtures import redis_or_skip
from tests.store_fixtures import fixture_postgres_schema_url, sqlite_url  # noqa: F401


def supervisor(tmp_path: Path, stores: RasaStores) -> RasaSupervisor:
    return RasaSupervisor(model=tmp_path / "model.tar.gz", port=5005, token="t", action_endpoint="http://a",
                          tracker_db=tmp_path / "rasa_tracker.db", log_file=tmp_path / "rasa.log", stores=stores)


def test_sqlite_and_no_redis_keep_the_default_endpoints(tmp_path: Path) -> None:
    stores = RasaStores(sqlite_url(tmp_path), "")
    assert stores.default and stores.env() == {}
    assert stores.write(tmp_path / "x.yml") == DEFAULT_ENDPOINTS and not (tmp_path / "x.yml").exists()
    assert str(DEFAULT_ENDPOINTS) in supervisor(tmp_path, stores).command()


def test_postgresql_and_redis_render_shared_stores_without_secrets_in_the_file(tmp_path: Path) -> None:
    stores = RasaStores("postgresql+psycopg://bot:pw%40x@db.example:5433/support?sslmode=require"
                        "&options=-csearch_path%3Dtenant1", "rediss://:r%2Fpw@cache.example:6380/2")
    config = stores.endpoints()
    assert config["tracker_store"] == {
        "type": "SQL", "dialect": "postgresql", "url": "db.example", "port": 5433, "db": "support", "username": "bot",
        "password": "${RASA_TRACKER_PASSWORD}", "query": {"sslmode": "require"}}
    assert config["lock_store"] == {"type": "redis", "url": "cache.example", "port": 6380, "db": 2,
                                    "key_prefix": "supportbot", "use_ssl": True, "password": "${RASA_LOCK_STORE_PASSWORD}"}
    assert config["action_endpoint"] == yaml.safe_load(DEFAULT_ENDPOINTS.read_text())["action_endpoint"]
    assert stores.env() == {"POSTGRESQL_SCHEMA": "tenant1_rasa", "RASA_TRACKER_PASSWORD": "pw@x",
                            "RASA_LOCK_STORE_PASSWORD": "r/pw", "SQL_POOL_SIZE": "5", "SQL_MAX_OVERFLOW": "10"}
    rasa = supervisor(tmp_path, stores)
    written = stores.write(rasa.endpoints_file)
    assert written == tmp_path / "rasa-endpoints.yml" and str(written) in rasa.command()
    assert "pw@x" not in written.read_text() and "r/pw" not in written.read_text()
    assert yaml.safe_load(written.read_text()) == config


def test_redis_alone_keeps_the_sqlite_tracker_and_adds_the_lock_store(tmp_path: Path) -> None:
    stores = RasaStores(sqlite_url(tmp_path), "redis://127.0.0.1:6379")
    config = stores.endpoints()
    assert config["tracker_store"] == {"type": "SQL", "dialect": "sqlite", "db": "${RASA_TRACKER_DB}"}
    assert config["lock_store"] == {"type": "redis", "url": "127.0.0.1", "port": 6379, "db": 0, "key_prefix": "supportbot"}
    assert stores.env() == {}


@pytest.mark.parametrize(("url", "error"), [
    ("unix:///tmp/redis.sock", "must start with redis:// or rediss://"),
    ("redis://:6379/0", "names no host"),
    ("redis://127.0.0.1:6379/zero", "database must be a number"),
])
def test_a_redis_url_rasa_cannot_use_is_refused_clearly(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        lock_store_config(url)


def test_the_tracker_schema_follows_the_gateways_schema() -> None:
    assert tracker_schema(make_url("postgresql+psycopg://u@h/db")) == "rasa"
    assert tracker_schema(make_url("postgresql+psycopg://u@h/db?options=-c%20search_path%3Dacme")) == "acme_rasa"
    with pytest.raises(ValueError, match="tracker schema"):
        tracker_schema(make_url("postgresql+psycopg://u@h/db?options=-csearch_path%3D%22a-b%22"))


RASA_READS_IT = """
import asyncio, json, sys
import redis
from rasa.core.lock_store import LockStore
from rasa.core.tracker_store import TrackerStore
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import read_endpoint_config

path, sender, redis_url = sys.argv[1:4]
tracker_store = TrackerStore.create(read_endpoint_config(path, "tracker_store"))
lock_store = LockStore.create(read_endpoint_config(path, "lock_store"))

async def main():
    await tracker_store.save(DialogueStateTracker.from_events(sender, [UserUttered("hello from replica one")]))
    again = await tracker_store.retrieve(sender)
    async with lock_store.lock(sender):
        in_redis = redis.Redis.from_url(redis_url).exists("supportbot:lock:" + sender)
    print(json.dumps({"tracker_store": type(tracker_store).__name__, "lock_store": type(lock_store).__name__,
                      "texts": [e.text for e in again.events if isinstance(e, UserUttered)], "locked_in_redis": in_redis,
                      "left_in_redis": redis.Redis.from_url(redis_url).exists("supportbot:lock:" + sender)}))

asyncio.run(main())
"""


def test_rasa_keeps_its_tracker_in_postgresql_and_its_locks_in_redis(tmp_path: Path, postgres_schema_url: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    redis_url = redis_or_skip()
    stores = RasaStores(postgres_schema_url, redis_url)
    schema = tracker_schema(make_url(postgres_schema_url))
    engine = create_engine(postgres_schema_url)
    try:
        stores.prepare()
        stores.prepare()  # a second gateway starting finds the schema there
        path = stores.write(tmp_path / "rasa-endpoints.yml")
        for name, value in {**stores.env(), "ACTION_ENDPOINT_URL": "http://127.0.0.1:9/unused",
                            "ACTION_SERVER_TOKEN": "unused"}.items():
            monkeypatch.setenv(name, value)
        sender = f"replica-test-{uuid.uuid4().hex[:10]}"
        script = tmp_path / "rasa_reads_it.py"
        script.write_text(RASA_READS_IT)
        done = run_in_rasa([str(script), str(path), sender, redis_url], timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen == {"tracker_store": "SQLTrackerStore", "lock_store": "RedisLockStore",
                        "texts": ["hello from replica one"], "locked_in_redis": 1, "left_in_redis": 0}
        with engine.connect() as conn:  # Rasa's events are in its schema, not beside our tables
            assert conn.execute(text(f'SELECT count(*) FROM "{schema}".events WHERE sender_id = :s'),
                                {"s": sender}).scalar() >= 1
        assert "events" not in inspect(engine).get_table_names()
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
