"""Live events across gateway replicas (issue 16): two ``RedisEventBus`` instances, two "replicas",
on the real Redis at 127.0.0.1:6379, each test on a channel prefix of its own; the shared per-sender
rate limit and sign-in throttle. Without Redis these tests are skipped (they fail under CI=true).

"Exactly once" is checked without timing: after the events under test a sentinel is published by
the same publisher; since one publisher's events arrive in order, a duplicate would arrive before it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from channels.events import EventBus, Subscription, events_from_settings
from channels.events_redis import RedisEventBus
from channels.ratelimit import SharedSenderLimiter, SlidingWindowLimiter, limits_storage, sender_limiter
from handoff.auth import LoginThrottle
from handoff.events import AGENTS, conversation_topic
from settings import Settings
from tests.redis_fixtures import kill_clients, redis_or_skip, unique_prefix, until

WAIT_S = 10.0  # a generous bound on one receive: a hang fails the test instead of blocking the run


@pytest.fixture
def redis_url() -> str:
    return redis_or_skip()


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[RedisEventBus, RedisEventBus]]:
    prefix = unique_prefix()
    a, b = RedisEventBus(redis_url, prefix), RedisEventBus(redis_url, prefix)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def receive(sub: Subscription) -> dict[str, Any]:
    return await asyncio.wait_for(sub.get(), WAIT_S)


async def test_a_subscriber_on_another_replica_gets_every_event_in_order_once(
        replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    a, b = replicas
    async with b.listen(AGENTS) as sub:
        for i in range(200):
            a.publish(AGENTS, {"type": "ticket.updated", "i": i})
        a.publish(AGENTS, {"type": "sentinel"})
        got = [await receive(sub) for _ in range(201)]
    assert got == [{"type": "ticket.updated", "i": i} for i in range(200)] + [{"type": "sentinel"}]


async def test_events_of_several_topics_keep_their_order_per_topic(replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    a, b = replicas
    topics = [conversation_topic(f"s-{n}") for n in range(3)]
    async with b.listen(topics[0]) as s0, b.listen(topics[1]) as s1, b.listen(topics[2]) as s2:
        for i in range(30):
            a.publish(topics[i % 3], {"i": i})
        for n, sub in enumerate((s0, s1, s2)):
            assert [(await receive(sub))["i"] for _ in range(10)] == list(range(n, 30, 3))
            assert sub.queue.empty()


async def test_the_publishers_own_subscribers_get_it_once_by_the_local_path(
        replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    a, b = replicas
    async with a.listen(AGENTS) as mine, b.listen(AGENTS) as theirs:
        assert a.publish(AGENTS, {"n": 1}) == 1  # delivered here at once, before any round trip
        assert mine.queue.get_nowait() == {"n": 1}
        a.publish(AGENTS, {"n": 2})
        assert [await receive(theirs) for _ in range(2)] == [{"n": 1}, {"n": 2}]
        # a's own copies came back through Redis before b's next event; they must have been dropped
        b.publish(AGENTS, {"n": 3})
        assert await receive(mine) == {"n": 2}
        assert await receive(mine) == {"n": 3}
        assert await receive(theirs) == {"n": 3}
        assert mine.queue.empty() and theirs.queue.empty()


async def test_after_unsubscribing_nothing_more_arrives(replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    a, b = replicas
    topic, other = conversation_topic("leaves"), conversation_topic("stays")
    async with b.listen(topic) as gone:
        a.publish(topic, {"n": 1})
        assert await receive(gone) == {"n": 1}
    async with b.listen(other) as stays:
        a.publish(topic, {"n": 2})
        a.publish(other, {"n": 3})  # after {"n": 2} from the same publisher
        assert await receive(stays) == {"n": 3}
    assert gone.queue.empty()
    assert b.subscribers(topic) == 0
    await until(lambda: a.subscribers(topic) == 0, "b's subscription to end in Redis")


async def test_subscribers_counts_every_replica(replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    a, b = replicas
    topic = conversation_topic("counted")
    assert a.subscribers(topic) == 0
    async with b.listen(topic):
        assert a.subscribers(topic) == 1  # b's socket, elsewhere: handoff's delivery counts it as delivered
        assert b.subscribers(topic) == 1
        async with a.listen(topic), a.listen(topic):
            assert a.subscribers(topic) == 3
            assert b.subscribers(topic) == 2  # b counts a's process once (one connection), and its own


async def test_a_dropped_connection_is_rebuilt_and_later_events_arrive(
        replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    a, b = replicas
    async with b.listen(AGENTS) as sub:
        a.publish(AGENTS, {"n": 1})
        assert await receive(sub) == {"n": 1}
        connects = b.connects
        assert kill_clients(b.client_name) >= 1
        assert kill_clients(a.client_name) >= 1  # the publisher's connections too
        await until(lambda: b.connects > connects, "b's subscriber connection to come back")
        assert await b.ready(AGENTS)
        for n in range(2, 12):
            a.publish(AGENTS, {"n": n})
        assert [(await receive(sub))["n"] for _ in range(10)] == list(range(2, 12))
        a.publish(AGENTS, {"n": "sentinel"})
        assert await receive(sub) == {"n": "sentinel"}


async def test_a_retried_publish_is_not_delivered_twice(replicas: tuple[RedisEventBus, RedisEventBus]) -> None:
    """A PUBLISH that went through but whose reply was lost is sent again: the receiver drops the copy."""
    a, b = replicas
    async with b.listen(AGENTS) as sub:
        a.publish(AGENTS, {"n": 1})
        channel, payload = a._outbox[-1]
        a.publish(AGENTS, {"n": 2})
        assert [await receive(sub) for _ in range(2)] == [{"n": 1}, {"n": 2}]
        await a._client.publish(channel, payload)  # the same envelope once more, as a retry would send it
        a.publish(AGENTS, {"n": 3})
        assert await receive(sub) == {"n": 3}


async def test_two_processes_on_different_prefixes_do_not_hear_each_other(redis_url: str) -> None:
    a, b = RedisEventBus(redis_url, unique_prefix()), RedisEventBus(redis_url, unique_prefix())
    try:
        async with b.listen(AGENTS) as sub, a.listen(AGENTS):
            a.publish(AGENTS, {"n": 1})
            b.publish(AGENTS, {"n": 2})
            assert await receive(sub) == {"n": 2}
            assert a.subscribers(AGENTS) == 1 and sub.queue.empty()
    finally:
        await a.close()
        await b.close()


# --- choice from settings ------------------------------------------------------------------------
def test_settings_choose_the_bus_and_a_bad_url_is_refused_without_echoing_it(tmp_path: Any) -> None:
    local = events_from_settings(Settings(data_dir=tmp_path))
    assert type(local) is EventBus and not local.shared
    shared = events_from_settings(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0"))
    assert isinstance(shared, RedisEventBus) and shared.shared
    assert "127.0.0.1" not in repr(shared)
    with pytest.raises(ValueError, match="REDIS_URL must start with redis://") as err:
        RedisEventBus("http://user:s3cret@example.org:6379")
    assert "s3cret" not in str(err.value)


# --- shared limits -------------------------------------------------------------------------------
def test_the_per_sender_limit_is_shared_by_two_replicas(redis_url: str) -> None:
    one, two = SharedSenderLimiter(3, 60, redis_url), SharedSenderLimiter(3, 60, redis_url)
    sender = f"web:{uuid.uuid4().hex}"
    assert [one.check(sender).allowed, two.check(sender).allowed, one.check(sender).allowed] == [True] * 3
    refused = [two.check(sender), one.check(sender), two.check(sender)]
    assert [d.allowed for d in refused] == [False] * 3
    assert [d.notify for d in refused] == [True, False, False]  # one notice per window, whichever replica
    assert two.check(f"web:{uuid.uuid4().hex}").allowed  # another sender has its own budget


async def test_the_shared_limiter_checks_off_the_event_loop(redis_url: str) -> None:
    one, two = SharedSenderLimiter(1, 60, redis_url), SharedSenderLimiter(1, 60, redis_url)
    sender = f"tg:{uuid.uuid4().hex}"
    assert (await one.acheck(sender)).allowed
    assert not (await two.acheck(sender)).allowed


def test_settings_choose_the_sender_limiter_and_the_limits_storage(tmp_path: Any) -> None:
    alone = Settings(data_dir=tmp_path)
    assert isinstance(sender_limiter(alone), SlidingWindowLimiter) and limits_storage(alone) == "memory://"
    url = "redis://127.0.0.1:6379/0"
    together = Settings(data_dir=tmp_path, redis_url=url)
    assert isinstance(sender_limiter(together), SharedSenderLimiter) and limits_storage(together) == url
    chosen = Settings(data_dir=tmp_path, redis_url=url, rate_limit_storage="redis://127.0.0.1:6379/3")
    assert limits_storage(chosen) == "redis://127.0.0.1:6379/3"  # an explicit RATE_LIMIT_STORAGE wins
    with pytest.raises(ValueError, match="limit >= 1"):
        SharedSenderLimiter(0, 60, url)


def test_failed_sign_ins_count_on_every_replica(redis_url: str, tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, redis_url=redis_url, rate_limit_login_per_account="3/15minutes")
    one, two = LoginThrottle.from_settings(settings), LoginThrottle.from_settings(settings)
    username = f"agent-{uuid.uuid4().hex[:8]}"
    one.failed("10.0.0.1", username)
    two.failed("10.0.0.2", username)
    assert one.retry_after("10.0.0.3", username) == (0, None)
    assert two.failed("10.0.0.4", username) == ["account"]
    wait, scope = one.retry_after("10.0.0.5", username)
    assert wait > 0 and scope == "account"
