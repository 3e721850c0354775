"""Issue 16: background loops run in one gateway replica at a time (storage/leases.py) and another
replica takes over when the holder stops renewing (it died) or stops cleanly (it releases).

Every test runs on SQLite and on a throw-away PostgreSQL schema (skipped with the reason when
PostgreSQL is not reachable, failed under CI=true: tests/store_fixtures.py). The two "replicas" are
two engines and two holders on one database; on PostgreSQL the lease's clock is the database's.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_engine, make_session_factory, transaction, upgrade
from storage.leases import DbLease, LeaseRow, LocalLease, lease_for, run_leased
from tests.store_fixtures import sqlite_url, temporary_schema


@pytest.fixture(params=["sqlite", "postgresql"], name="url")
def fixture_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        upgrade(url)
        yield url
        return
    with temporary_schema() as url:
        upgrade(url)
        yield url


class Replicas:
    """Engines on one database, one per simulated replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engines: list[Engine] = []

    def sessions(self) -> sessionmaker[Session]:
        engine = make_engine(self.url)
        self.engines.append(engine)
        return make_session_factory(engine)

    def lease(self, holder: str, name: str = "loop", ttl_s: float = 30.0) -> DbLease:
        return DbLease(self.sessions(), name, ttl_s=ttl_s, holder=holder)


@pytest.fixture(name="replicas")
def fixture_replicas(url: str) -> Iterator[Replicas]:
    replicas = Replicas(url)
    yield replicas
    for engine in replicas.engines:
        engine.dispose()


def eventually(condition: Any, what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


async def until(condition: Any, what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def test_one_holder_at_a_time_and_another_takes_over_when_it_stops_renewing(replicas: Replicas) -> None:
    a, b = replicas.lease("a"), replicas.lease("b")
    assert a.try_acquire()
    assert not b.try_acquire()
    assert a.try_acquire()  # renewing
    assert a.holder_now() == "a"
    assert a.try_acquire(ttl_s=0.3)  # its last renewal; then it is gone (no release)
    eventually(b.try_acquire, "b takes the lease after a's expired")
    assert b.holder_now() == "b"
    assert not a.try_acquire()  # a, back, is not the holder any more
    b.release()  # a clean stop: no wait for the TTL
    assert a.holder_now() is None and a.try_acquire()


def test_replicas_racing_for_a_new_lease_get_one_holder(replicas: Replicas) -> None:
    leases = [replicas.lease(f"r{n}", name=f"race-{uuid.uuid4().hex[:8]}") for n in range(6)]
    for lease in leases[1:]:
        lease.name = leases[0].name
    start, won = threading.Barrier(len(leases)), []

    def race(lease: DbLease) -> None:
        start.wait()
        if lease.try_acquire():
            won.append(lease.holder)

    threads = [threading.Thread(target=race, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and leases[0].holder_now() == won[0]


def test_a_lease_name_and_ttl_are_checked(replicas: Replicas) -> None:
    with pytest.raises(ValueError, match="1 to 64 characters"):
        DbLease(replicas.sessions(), "x" * 65)
    with pytest.raises(ValueError, match="ttl must be positive"):
        DbLease(replicas.sessions(), "loop", ttl_s=0)


def test_sqlite_loops_stay_local_and_a_shared_database_gets_leases(url: str, replicas: Replicas) -> None:
    lease = lease_for(replicas.sessions(), "loop")
    assert isinstance(lease, LocalLease if url.startswith("sqlite") else DbLease)


class Loop:
    """A leased loop's body that notes when it runs, and whether two ever ran at once."""

    running = 0
    most = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = 0
        self.stopped = 0

    async def __call__(self) -> None:
        self.started += 1
        Loop.running += 1
        Loop.most = max(Loop.most, Loop.running)
        try:
            await asyncio.Event().wait()  # a loop runs until stopped
        finally:
            Loop.running -= 1
            self.stopped += 1


async def test_a_leased_loop_runs_in_one_replica_and_moves_when_that_one_stops(replicas: Replicas) -> None:
    Loop.running = Loop.most = 0
    body_a, body_b = Loop("a"), Loop("b")
    runner_a = asyncio.create_task(run_leased(replicas.lease("a", ttl_s=0.6), body_a))
    await until(lambda: body_a.started == 1, "a runs its loop")
    runner_b = asyncio.create_task(run_leased(replicas.lease("b", ttl_s=0.6), body_b))
    await asyncio.sleep(0.5)  # b tries several times (every ttl/6) while a renews (every ttl/3)
    assert body_b.started == 0
    runner_a.cancel()  # a's gateway stops: its loop stops and the lease is released
    await asyncio.gather(runner_a, return_exceptions=True)
    assert body_a.stopped == 1
    await until(lambda: body_b.started == 1, "b takes over")
    runner_b.cancel()
    await asyncio.gather(runner_b, return_exceptions=True)
    assert Loop.most == 1


async def test_a_loop_whose_lease_was_taken_stops_and_a_dead_holders_lease_is_taken_over(replicas: Replicas) -> None:
    Loop.running = Loop.most = 0
    dead = replicas.lease("dead", ttl_s=0.5)
    assert dead.try_acquire()  # a replica took the lease, then died: it never renews
    body = Loop("b")
    runner = asyncio.create_task(run_leased(replicas.lease("b", ttl_s=0.6), body))
    try:
        await until(lambda: body.started == 1, "b takes over from the dead holder")
        with transaction(replicas.sessions()) as db:  # someone else has it now (b's clock stood still, say)
            db.execute(update(LeaseRow).where(LeaseRow.name == "loop").values(holder="other"))
        await until(lambda: body.stopped == 1, "b's loop stops at its next renewal")
        assert Loop.running == 0
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_local_lease_runs_the_loop_at_once() -> None:
    ran = []

    async def body() -> None:
        ran.append(1)

    await run_leased(LocalLease("loop"), body)
    assert ran == [1]
