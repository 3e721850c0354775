"""Issue 16: every gateway replica runs the outbox workers, and still no item is sent twice and none is
lost: each attempt first claims its row with a conditional UPDATE (channels/outbox.py for Telegram and
WeChat, handoff/adapters/outbox.py for the helpdesk webhook and email).

Replicas are workers on engines of their own over one database (SQLite and a throw-away PostgreSQL
schema; PostgreSQL is skipped with the reason when unreachable, failed under CI=true). Only the
channel's and helpdesk's APIs are stand-ins that record what reached them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from channels.models import ChannelOutbox
from channels.outbox import Delivery, Outbox, _Row
from channels.outbox import OutboxWorker as ChannelWorker
from handoff.adapters.outbox import OutboxWorker as HelpdeskWorker
from handoff.models import OutboxItem
from storage.db import make_engine, make_session_factory, transaction, upgrade
from tests.store_fixtures import sqlite_url, temporary_schema

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"], name="replica_sessions")
def fixture_replica_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[sessionmaker[Session]]]:
    """Four session factories, each on its own engine, over one migrated database."""
    with temporary_schema() if request.param == "postgresql" else _nothing(sqlite_url(tmp_path)) as url:
        upgrade(url)
        engines: list[Engine] = [make_engine(url) for _ in range(4)]
        yield [make_session_factory(e) for e in engines]
        for engine in engines:
            engine.dispose()


class _nothing:  # noqa: N801 - a context manager that only hands back its URL
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *_: Any) -> None:
        return None


def race(workers: int, claim: Any, rows: list[Any]) -> list[list[Any]]:
    """Every worker claims every row (as read before anyone claimed), all starting together."""
    start, taken = threading.Barrier(workers), [[] for _ in range(workers)]

    def run(n: int) -> None:
        start.wait()
        for row in rows:
            if claim(n, row):
                taken[n].append(row)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return taken


# --- the channel outbox (Telegram, WeChat) ---------------------------------------------------------------
class RecordingChannel:
    def __init__(self, got: list[tuple[str, int]]) -> None:
        self.got = got

    async def deliver(self, delivery: Delivery) -> None:
        await asyncio.sleep(0.001)
        self.got.append((delivery.body["sender"], delivery.body["n"]))


def enqueue(sessions: sessionmaker[Session], senders: int, each: int) -> None:
    outbox = Outbox(sessions)
    for n in range(each):
        for s in range(senders):
            outbox.enqueue_sync("telegram", f"c{s}", [Delivery("sendMessage", {"sender": f"c{s}", "n": n})])


def test_a_channel_row_is_claimed_by_one_worker(replica_sessions: list[sessionmaker[Session]]) -> None:
    enqueue(replica_sessions[0], senders=50, each=2)
    workers = [ChannelWorker(Outbox(s), s, retry_base_s=1, retry_max_s=60, poll_s=1) for s in replica_sessions]
    with replica_sessions[0]() as db:
        rows = [_Row(r.id, r.sender_id, r.method, r.body, r.attempts, r.next_attempt_at)
                for r in db.scalars(select(ChannelOutbox))]
    taken = race(len(workers), lambda n, row: workers[n]._claim(row), rows)
    assert sorted(r.id for got in taken for r in got) == sorted(r.id for r in rows)  # each once, none lost


async def test_channel_workers_of_two_replicas_send_each_row_once_in_order(
        replica_sessions: list[sessionmaker[Session]]) -> None:
    enqueue(replica_sessions[0], senders=8, each=6)
    got: list[tuple[str, int]] = []
    workers = []
    for sessions in replica_sessions[:2]:
        worker = ChannelWorker(Outbox(sessions), sessions, retry_base_s=1, retry_max_s=60, poll_s=1)
        worker.register("telegram", RecordingChannel(got))
        workers.append(worker)

    async def drain(worker: ChannelWorker) -> None:
        while _pending(replica_sessions[0]):
            if await worker.drain("telegram") > 0:
                await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(*(drain(w) for w in workers)), 120)
    assert sorted(got) == sorted((f"c{s}", n) for s in range(8) for n in range(6))  # once each
    for s in range(8):
        assert [n for sender, n in got if sender == f"c{s}"] == list(range(6))  # each customer's order kept


def _pending(sessions: sessionmaker[Session]) -> int:
    with sessions() as db:
        return int(db.scalar(select(func.count()).select_from(ChannelOutbox).where(ChannelOutbox.status == "pending")))


# --- the helpdesk outbox (webhook, email) ----------------------------------------------------------------
class RecordingHelpdesk:
    name = "webhook"

    def __init__(self, got: list[int]) -> None:
        self.got = got

    async def deliver(self, delivery_id: int, event: str, payload: dict[str, Any]) -> None:
        await asyncio.sleep(0.001)
        self.got.append(delivery_id)

    async def close(self) -> None:
        return None


def add_items(sessions: sessionmaker[Session], count: int) -> list[int]:
    with transaction(sessions) as db:
        items = [OutboxItem(ticket_id=n, adapter="webhook", event="ticket.created", payload={"ticket": {"id": n}},
                            status="pending", attempts=0, next_attempt_at=T0, created_at=T0) for n in range(count)]
        db.add_all(items)
        db.flush()
        return [i.id for i in items]


def test_a_helpdesk_item_is_claimed_by_one_worker(replica_sessions: list[sessionmaker[Session]]) -> None:
    ids = add_items(replica_sessions[0], 100)
    workers = [HelpdeskWorker(s, {}, clock=lambda: T0) for s in replica_sessions]
    taken = race(len(workers), lambda n, item_id: workers[n]._claim(item_id, 0), ids)
    assert sorted(i for got in taken for i in got) == ids


async def test_helpdesk_workers_of_two_replicas_deliver_each_item_once(
        replica_sessions: list[sessionmaker[Session]]) -> None:
    ids = add_items(replica_sessions[0], 60)
    got: list[int] = []
    workers = [HelpdeskWorker(s, {"webhook": RecordingHelpdesk(got)}, clock=lambda: T0)
               for s in replica_sessions[:2]]
    delivered = 0
    while passes := sum(await asyncio.gather(*(w.run_once() for w in workers))):  # a pass takes up to 50 each
        delivered += passes
    assert sorted(got) == ids and delivered == len(ids)  # all of them, none twice
    with replica_sessions[0]() as db:
        assert set(db.scalars(select(OutboxItem.status))) == {"delivered"}
        assert set(db.scalars(select(OutboxItem.attempts))) == {1}
