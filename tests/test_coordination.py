"""Issue 16, several gateway replicas on one PostgreSQL: per-conversation turn locks
(storage/coordination.py) and migrations run once (storage.db.upgrade, ``python -m storage migrate``).

Each replica is its own ConversationService with its own engine and lock pool on one throw-away
PostgreSQL schema; a dead replica is a real process killed with SIGKILL. Only Rasa is a stand-in
(it records which turns overlapped). PostgreSQL tests are skipped with the reason when it is not
reachable, and fail under CI=true (tests/store_fixtures.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from conversations.models import Conversation, Message
from conversations.rasa_client import RasaReply
from conversations.service import ConversationService, InboundMessage
from storage.coordination import FIRST_MESSAGE_LOCKS, TURN_LOCKS, LocalTurnLocks, PgTurnLocks, turn_locks_for
from storage.db import heads, make_engine, make_session_factory, upgrade
from tests.store_fixtures import fixture_postgres_schema_url, sqlite_url  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


class OverlapRasa:
    """Stands in for Rasa behind both replicas: answers each text, and counts turns in progress."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.in_flight: Counter[str] = Counter()
        self.most_per_sender = 0
        self.most_overall = 0

    async def send(self, sender: str, text: str, metadata: dict[str, Any], message_id: str | None = None) -> RasaReply:
        self.calls.append((sender, text))
        self.in_flight[sender] += 1
        self.most_per_sender = max(self.most_per_sender, self.in_flight[sender])
        self.most_overall = max(self.most_overall, sum(self.in_flight.values()))
        await asyncio.sleep(0.03)  # a turn takes a while: long enough for another replica to try
        self.in_flight[sender] -= 1
        return RasaReply(messages=[{"text": f"re: {text}"}], turn={"intent": {"name": "greet", "confidence": 0.9}})

    async def close(self) -> None:
        return None


async def wait_for(condition: Callable[[], Any], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def waiting_for(engine: Engine, key: str) -> int:
    """How many sessions wait for the turn lock of ``key`` (PostgreSQL's own lock table)."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = :ns "
            "AND objid::bigint = (hashtext(:key)::bigint & 4294967295) AND objsubid = 2"), {"ns": TURN_LOCKS, "key": key}).scalar())


@pytest.fixture(name="pg")
def fixture_pg(postgres_schema_url: str) -> Any:
    upgrade(postgres_schema_url)
    engine = make_engine(postgres_schema_url)
    yield postgres_schema_url, engine
    engine.dispose()


@pytest.fixture(name="replicas")
async def fixture_replicas(pg: tuple[str, Engine]) -> AsyncIterator[tuple[list[ConversationService], OverlapRasa]]:
    url, _ = pg
    rasa = OverlapRasa()
    engines = [make_engine(url) for _ in range(2)]
    services = [ConversationService(make_session_factory(e), rasa, turn_locks=PgTurnLocks(url))  # type: ignore[arg-type]
                for e in engines]
    yield services, rasa
    for service, engine in zip(services, engines, strict=True):
        await service.turn_locks.aclose()
        engine.dispose()


def test_the_database_url_chooses_the_locks(tmp_path: Path) -> None:
    assert isinstance(turn_locks_for(sqlite_url(tmp_path)), LocalTurnLocks)
    locks = turn_locks_for("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert isinstance(locks, PgTurnLocks)  # nothing connects until a turn needs it
    with pytest.raises(ValueError, match="postgresql URL"):
        PgTurnLocks(sqlite_url(tmp_path))


async def test_local_locks_serialise_a_key_and_forget_it_afterwards() -> None:
    locks, order = LocalTurnLocks(), []

    async def turn(name: str) -> None:
        async with locks.hold("s1"):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(turn("a"), turn("b"), turn("c"))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]
    assert "s1" not in locks._locks  # no table of every sender ever seen


async def test_two_replicas_answer_one_conversation_one_turn_at_a_time_in_order(
        replicas: tuple[list[ConversationService], OverlapRasa], pg: tuple[str, Engine]) -> None:
    (a, b), rasa = replicas
    senders = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    turns = [(a if n % 2 == 0 else b).handle(InboundMessage(sender_id=s, channel="rest", text=f"m{n}", language="en",
                                                            message_id=f"{s}-{n}"))
             for n in range(6) for s in senders]
    results = await asyncio.gather(*turns)
    assert rasa.most_per_sender == 1  # never two turns of one conversation at once, across replicas
    assert rasa.most_overall > 1  # while different conversations went on in parallel
    assert all(not r.duplicate for r in results) and len(rasa.calls) == 18  # each message answered once
    with make_session_factory(pg[1])() as db:
        for sender in senders:
            conv_id = db.scalar(select(Conversation.id).where(Conversation.sender_id == sender))
            stored = list(db.scalars(select(Message.text).where(Message.conversation_id == conv_id,
                                                                Message.direction == "in").order_by(Message.id)))
            # The order messages were stored in is the order the bot read them, and each answer follows its message.
            assert stored == [t for s, t in rasa.calls if s == sender]
            rows = db.execute(select(Message.direction, Message.text).where(Message.conversation_id == conv_id)
                              .order_by(Message.id)).all()
            assert [t for _, t in rows] == [x for t in stored for x in (t, f"re: {t}")]


async def test_a_replica_waiting_for_a_conversation_goes_before_a_later_turn(pg: tuple[str, Engine]) -> None:
    url, engine = pg
    key = f"s-{uuid.uuid4().hex}"
    a, b, c = PgTurnLocks(url), PgTurnLocks(url), PgTurnLocks(url)
    order: list[str] = []

    async def turn(locks: PgTurnLocks, name: str) -> None:
        async with locks.hold(key):
            order.append(name)

    try:
        async with a.hold(key):
            tb = asyncio.create_task(turn(b, "b"))
            await wait_for(lambda: waiting_for(engine, key) == 1, "replica b waits in PostgreSQL")
            tc = asyncio.create_task(turn(c, "c"))
            await wait_for(lambda: waiting_for(engine, key) == 2, "replica c waits behind b")
            ta = asyncio.create_task(turn(a, "a again"))  # waits for replica a's own turn first
            await asyncio.sleep(0.05)
            assert order == []
        await asyncio.gather(tb, tc, ta)
        assert order == ["b", "c", "a again"]
    finally:
        for locks in (a, b, c):
            await locks.aclose()


HOLDER = """
import asyncio, sys
from storage.coordination import PgTurnLocks

async def main() -> None:
    async with PgTurnLocks(sys.argv[1]).hold(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_replica_releases_the_conversation_at_once(pg: tuple[str, Engine]) -> None:
    url, engine = pg
    key = f"s-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, key], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    locks = PgTurnLocks(url)
    try:
        assert proc.stdout is not None and await asyncio.to_thread(proc.stdout.readline) == "held\n"
        entered = asyncio.Event()

        async def turn() -> None:
            async with locks.hold(key):
                entered.set()

        task = asyncio.create_task(turn())
        await wait_for(lambda: waiting_for(engine, key) == 1, "this replica waits for the other one")
        assert not entered.is_set()
        proc.kill()  # SIGKILL: no unlock, no goodbye; PostgreSQL ends its session
        await asyncio.wait_for(task, 60)
        assert entered.is_set()
    finally:
        proc.kill()
        proc.wait()
        await locks.aclose()


async def test_a_cancelled_wait_leaves_no_lock_behind(pg: tuple[str, Engine]) -> None:
    url, engine = pg
    key = f"s-{uuid.uuid4().hex}"
    a, b = PgTurnLocks(url), PgTurnLocks(url)
    try:
        async with a.hold(key):
            waiter = asyncio.create_task(b.hold(key).__aenter__())
            await wait_for(lambda: waiting_for(engine, key) == 1, "b waits")
            waiter.cancel()  # e.g. the request was abandoned
            with pytest.raises(asyncio.CancelledError):
                await waiter
        await wait_for(lambda: waiting_for(engine, key) == 0, "b's wait is gone")
        async with b.hold(key):  # and nobody holds it: b (a fresh connection) gets it
            pass
    finally:
        await a.aclose()
        await b.aclose()


async def test_new_conversations_beyond_the_pool_size_all_get_their_turn(pg: tuple[str, Engine]) -> None:
    """A REST conversation's first message holds its first-message lock around its turn's lock: from one
    pool, as many new conversations at once as the pool has connections held them all and waited for a
    second (the scale-out benchmark's 20 conversations: 500s after the pool's timeout). Two pools: all go."""
    url, _ = pg
    first = turn_locks_for(url, pool_size=2, namespace=FIRST_MESSAGE_LOCKS)
    turns = turn_locks_for(url, pool_size=2)
    done: list[int] = []

    async def new_conversation(i: int) -> None:
        async with first.hold(f"first:s-{i}"), turns.hold(f"s-{i}"):
            await asyncio.sleep(0.05)
            done.append(i)
    try:
        await asyncio.wait_for(asyncio.gather(*(new_conversation(i) for i in range(6))), timeout=30)
    finally:
        await first.aclose()
        await turns.aclose()
    assert sorted(done) == list(range(6))


# --- migrations run once ------------------------------------------------------------------------------
MIGRATOR = """
import sys
from decimal import Decimal
from storage.db import make_engine, make_session_factory, upgrade
from store.seed import seed
sessions = make_session_factory(make_engine(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
upgrade(sys.argv[1], lambda: seed(sessions, auto_refund_limit=Decimal("200")))  # as server.py starts
print("done", flush=True)
"""


def test_replicas_starting_together_migrate_and_seed_a_new_schema_once(postgres_schema_url: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATOR, postgres_schema_url], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(3)]
    try:
        for p in procs:  # all imported and waiting: then all start at the same moment
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outcomes = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outcomes]
    engine = make_engine(postgres_schema_url)
    with engine.connect() as conn:
        assert {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))} == heads()
        assert conn.execute(text("SELECT count(*) FROM leases")).scalar() == 0
        # the demo store seeded once (two replicas seeding at once failed on a duplicate customer)
        customers = conn.execute(text("SELECT count(*), count(DISTINCT username) FROM customers")).one()
        assert customers[0] > 0 and customers[0] == customers[1]
    engine.dispose()


def test_the_migrate_command_brings_a_database_up_and_says_so(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "storage", "migrate", "--url", url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{url} is at {', '.join(sorted(heads()))}"
    bad = subprocess.run([sys.executable, "-m", "storage", "migrate", "--url",
                          "postgresql+psycopg://someone:s3cret@127.0.0.1:1/nowhere"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and "migration of postgresql+psycopg://someone:***@127.0.0.1:1/nowhere failed" in bad.stderr
    assert "s3cret" not in bad.stderr + bad.stdout and "Traceback" not in bad.stderr
