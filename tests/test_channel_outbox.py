"""The outbox and the rate limiter on their own: a real SQLite database migrated by Alembic, the
real Telegram deliverer and the local Bot API server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from channels.models import ChannelOutbox
from channels.outbox import Delivery, Outbox, OutboxWorker
from channels.ratelimit import SlidingWindowLimiter
from channels.telegram import BotApi, TelegramDeliverer
from storage.db import make_engine, make_session_factory, upgrade
from tests.fakes.telegram_api import FakeBotApi


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_allows_the_limit_then_one_notice_per_window() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60, clock=clock)
    decisions = [limiter.check("a") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    assert [d.notify for d in decisions] == [False, False, False, True, False, False]
    assert limiter.check("b").allowed  # per sender
    clock.now += 61  # the window slid past the first three
    assert limiter.check("a").allowed


def test_limiter_forgets_quiet_senders() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 10, clock=clock)
    for n in range(100):
        limiter.check(f"sender-{n}")
    assert len(limiter) == 100
    clock.now += 11
    limiter.check("new")
    assert len(limiter) == 1


def test_limiter_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 60)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)  # every head, including 0005_channels
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def deliveries(chat_id: int, n: int) -> list[Delivery]:
    return [Delivery("sendMessage", {"chat_id": chat_id, "text": f"{chat_id}-{i}"}) for i in range(n)]


def test_enqueue_with_the_same_dedup_prefix_adds_nothing_twice(sessions: sessionmaker[Session]) -> None:
    outbox = Outbox(sessions)
    assert outbox.enqueue_sync("telegram", "telegram:1", deliveries(1, 3), dedup_prefix="in42") == 3
    assert outbox.enqueue_sync("telegram", "telegram:1", deliveries(1, 3), dedup_prefix="in42") == 0
    assert outbox.enqueue_sync("telegram", "telegram:1", deliveries(1, 3)) == 3  # no prefix: always new
    assert outbox.counts() == {"telegram": {"pending": 6}}


def test_backoff_doubles_up_to_the_cap(sessions: sessionmaker[Session]) -> None:
    worker = OutboxWorker(Outbox(sessions), sessions, retry_base_s=1, retry_max_s=300, poll_s=1)
    assert [worker.backoff_s(n) for n in (1, 2, 3, 9, 10, 30)] == [1, 2, 4, 256, 300, 300]


async def test_two_workers_on_one_database_send_each_row_once_in_order(sessions: sessionmaker[Session]) -> None:
    """Two gateway processes sharing the database: the claim lease keeps every row to one sender."""
    api = FakeBotApi().start()
    clients = [BotApi(api.token, api.url), BotApi(api.token, api.url)]
    workers = []
    try:
        outbox = Outbox(sessions)
        for chat in (1, 2, 3):
            outbox.enqueue_sync("telegram", f"telegram:{chat}", deliveries(chat, 15))
        for client in clients:
            worker = OutboxWorker(Outbox(sessions), sessions, retry_base_s=0.1, retry_max_s=0.5, poll_s=0.1)
            worker.register("telegram", TelegramDeliverer(client))
            worker.start()
            workers.append(worker)
        for _ in range(600):
            if outbox.counts()["telegram"].get("sent") == 45:
                break
            await asyncio.sleep(0.05)
        assert outbox.counts() == {"telegram": {"sent": 45}}
        sent = [m["text"] for m in api.sent]
        assert len(sent) == 45 == len(set(sent))
        for chat in (1, 2, 3):
            assert [t for t in sent if t.startswith(f"{chat}-")] == [f"{chat}-{i}" for i in range(15)]
        with sessions() as db:
            assert set(db.scalars(select(ChannelOutbox.attempts))) == {1}
    finally:
        for worker in workers:
            await worker.stop()
        for client in clients:
            await client.close()
        api.stop()
