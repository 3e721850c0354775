"""Live events across gateway replicas: ``channels/events.py``'s EventBus over Redis pub/sub.

Each replica holds its own websockets (no sticky sessions). ``publish`` on a replica delivers to
that replica's own subscribers at once, in process, exactly as the in-memory bus does, and queues
the event for Redis (``PUBLISH <prefix><topic>``) for the other replicas. Each process keeps one
subscriber connection, ``SUBSCRIBE``d to the topics it has local subscribers for, and drops what
comes back from itself: every subscriber gets each event by exactly one path.

Envelope: ``{"o": origin, "n": seq, "e": event}``; ``origin`` is random per process, ``seq`` counts
its publications. A receiver drops a ``seq`` it has already passed for that origin, so a PUBLISH
retried after a broken connection (sent, but its reply lost) is not delivered twice.

Ordering. Events from one publisher (one process) reach every subscriber in the order they were
published: one task sends them one by one, Redis relays each channel in the order it runs the
PUBLISHes, and the receiver never goes back on a ``seq``. Across publishers there is no order by
publication time: remote subscribers see events in the order Redis ran the PUBLISHes (the same
order on every replica), but a publisher's own subscribers get its events at once, possibly before
an earlier event from another replica that was still on its way. Per-conversation order across
replicas comes from the conversation lock; events carry message/ticket ids for the client to order by.

Loss. Pub/sub keeps nothing: a replica whose subscriber connection is down (Redis restarting, a
killed connection) misses what is published meanwhile, and so do its sockets, as in memory when a
queue overflows. It reconnects with capped exponential backoff and subscribes again; the consoles
re-read the ticket list and the customers' sockets their messages (``?after=``) when they reconnect.
Events published while Redis is unreachable wait in a bounded queue (oldest dropped) and go when it is back.

``subscribers(topic)`` counts this process's subscribers plus the other replicas subscribed to the
topic (``PUBSUB NUMSUB``, one short synchronous round trip, or ``asubscribers`` on the async client for
code on the event loop; only the local count while the
subscriber connection is known to be down), so handoff delivery marks a message delivered only when some socket,
somewhere, takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import uuid
from collections import OrderedDict, deque
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from channels.events import EventBus, Subscription

__all__ = ["RedisEventBus"]

log = logging.getLogger(__name__)

PREFIX = "supportbot:events:"
PING = "!"  # always subscribed, so the connection is open (and known to work) before any topic
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
OUTBOX_SIZE = 10_000  # events waiting for Redis; beyond this the oldest is dropped
READY_WAIT_S = 2.0  # listen() waits at most this long for Redis to confirm a subscription
CLOSE_WAIT_S = 5.0
COUNT_WAIT_S = 0.5  # a subscriber count from Redis (as the synchronous client's socket timeout)
ORIGINS_KEPT = 1024  # publishers whose last seq is remembered (a process restart is a new origin)
SCHEMES = ("redis://", "rediss://", "unix://")


class RedisEventBus(EventBus):
    """The bus of one gateway process, shared with the other replicas through Redis at ``url``."""

    shared = True

    def __init__(self, url: str, prefix: str = PREFIX, *, origin: str | None = None) -> None:
        if not url.startswith(SCHEMES):
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got the scheme {scheme!r})")
        super().__init__()
        self.prefix = prefix
        self.origin = origin or uuid.uuid4().hex
        self.connected = False  # the subscriber connection is up and subscribed
        self.connects = 0  # how many times it has been (re)established
        self._seq = itertools.count(1)
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._outbox: deque[tuple[str, bytes]] = deque(maxlen=OUTBOX_SIZE)
        self._outbox_ready = asyncio.Event()
        self._changed: set[str] = set()  # topics whose Redis subscription may need changing
        self._sync_ready = asyncio.Event()
        self._requested: set[str] = set()  # SUBSCRIBE sent on the current connection
        self._confirmed: set[str] = set()  # ... and confirmed by Redis
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        # No retries inside redis-py: a broken connection surfaces here, where it is rebuilt.
        # Connections are named after the process (CLIENT LIST shows whose they are).
        self.client_name = f"supportbot-events-{self.origin[:12]}"
        self._client = aredis.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), socket_connect_timeout=2.0,
                                             socket_keepalive=True, client_name=self.client_name)
        self._counter = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=0.5,
                                             socket_timeout=0.5, client_name=self.client_name)

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"RedisEventBus(prefix={self.prefix!r}, origin={self.origin!r}, connected={self.connected})"

    # ---------------------------------------------------------------- the EventBus interface
    def subscribe(self, topic: str) -> Subscription:
        first = not self._subs.get(topic)
        sub = super().subscribe(topic)
        if first:
            self._changed.add(topic)
            self._sync_ready.set()
            self._start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        super().unsubscribe(sub)
        if sub.topic not in self._subs:
            self._changed.add(sub.topic)
            self._sync_ready.set()

    def subscribers(self, topic: str) -> int:
        local = super().subscribers(topic)
        if self.connects and not self.connected:
            return local  # Redis is known to be away: no round trip that would only time out
        try:
            ((_, on_redis),) = self._counter.pubsub_numsub(self._channel(topic))
        except (RedisError, OSError) as err:
            log.warning("live events: subscriber count failed; counting this replica only", extra={"error": str(err)})
            return local
        return local + max(int(on_redis) - (topic in self._confirmed), 0)

    async def asubscribers(self, topic: str) -> int:
        """``subscribers`` with the round trip on the async client (the event loop is not blocked)."""
        local = EventBus.subscribers(self, topic)
        if self.connects and not self.connected:
            return local
        try:
            ((_, on_redis),) = await asyncio.wait_for(self._client.pubsub_numsub(self._channel(topic)), COUNT_WAIT_S)
        except (RedisError, OSError, TimeoutError) as err:
            log.warning("live events: subscriber count failed; counting this replica only", extra={"error": str(err)})
            return local
        return local + max(int(on_redis) - (topic in self._confirmed), 0)

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Deliver to this process's subscribers now, and queue for the other replicas."""
        delivered = self._deliver(topic, event)
        envelope = {"o": self.origin, "n": next(self._seq), "e": event}
        if len(self._outbox) == self._outbox.maxlen:
            log.warning("live events: Redis unreachable and %d events waiting; the oldest is dropped", OUTBOX_SIZE)
        self._outbox.append((self._channel(topic), json.dumps(envelope, separators=(",", ":"), default=str).encode()))
        self._outbox_ready.set()
        self._start()
        return delivered

    async def ready(self, topic: str, timeout: float = READY_WAIT_S) -> bool:
        """Wait until Redis has confirmed this process's subscription to ``topic`` (so any event
        published anywhere after this returns reaches it); False after ``timeout`` (Redis down)."""
        if topic in self._confirmed:
            return True
        self._start()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(topic, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            log.warning("live events: Redis has not confirmed a subscription", extra={"topic": topic})
            return False
        finally:
            waiters = self._waiters.get(topic, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(topic, None)

    async def close(self) -> None:
        self._closed = True
        self._sync_ready.set()  # the loops also end on their own (redis-py may swallow a cancellation)
        self._outbox_ready.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CLOSE_WAIT_S)
        self._tasks.clear()
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()
        self._counter.close()

    # ---------------------------------------------------------------- background tasks
    def _channel(self, topic: str) -> str:
        return self.prefix + topic

    def _start(self) -> None:
        """Start the reader and the two writers on first use (needs the running event loop)."""
        if self._tasks or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the loop: started by the next call that is
        self._tasks = [loop.create_task(self._read_forever(), name="events-redis-read"),
                       loop.create_task(self._sync_forever(), name="events-redis-subscriptions"),
                       loop.create_task(self._publish_forever(), name="events-redis-publish")]

    async def _read_forever(self) -> None:
        """The one subscriber connection: (re)connect with backoff, subscribe, dispatch messages."""
        backoff = BACKOFF_MIN_S
        while not self._closed:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel(PING))
                self._pubsub, self._requested = pubsub, set()
                self._changed.update(self._subs)  # every topic with local subscribers, again
                self._sync_ready.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._on_message(message)
                        backoff = BACKOFF_MIN_S
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as err:
                log.warning("live events: Redis subscriber connection lost; reconnecting",
                            extra={"error": str(err), "retry_in_s": round(backoff, 2)})
            finally:
                self.connected = False
                self._pubsub = None
                self._confirmed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        topic = (channel.decode() if isinstance(channel, bytes) else str(channel))[len(self.prefix):]
        kind = message["type"]
        if kind == "subscribe":
            if topic == PING:
                self.connected = True
                self.connects += 1
                return
            self._confirmed.add(topic)
            for waiter in self._waiters.get(topic, []):
                if not waiter.done():
                    waiter.set_result(None)
        elif kind == "unsubscribe":
            self._confirmed.discard(topic)
        elif kind == "message":
            self._receive(topic, message["data"])

    def _receive(self, topic: str, data: bytes) -> None:
        try:
            envelope = json.loads(data)
            origin, seq, event = envelope["o"], int(envelope["n"]), envelope["e"]
        except (ValueError, KeyError, TypeError) as err:
            log.warning("live events: unreadable message dropped", extra={"topic": topic, "error": str(err)})
            return
        if origin == self.origin:
            return  # ours: delivered locally when published
        if seq <= self._seen.get(origin, 0):
            return  # a retried PUBLISH that had gone through
        self._seen[origin] = seq
        self._seen.move_to_end(origin)
        if len(self._seen) > ORIGINS_KEPT:
            self._seen.popitem(last=False)
        self._deliver(topic, event)

    async def _sync_forever(self) -> None:
        """Bring the connection's subscriptions in line with the topics that have local subscribers."""
        while not self._closed:
            await self._sync_ready.wait()
            self._sync_ready.clear()
            pubsub = self._pubsub
            while pubsub is not None and self._changed and pubsub is self._pubsub:
                topic = self._changed.pop()
                wanted = topic in self._subs
                try:
                    if wanted and topic not in self._requested:
                        await pubsub.subscribe(self._channel(topic))
                        if pubsub is self._pubsub:
                            self._requested.add(topic)
                    elif not wanted and topic in self._requested:
                        self._requested.discard(topic)
                        await pubsub.unsubscribe(self._channel(topic))
                except (RedisError, OSError) as err:  # the reader sees it too, reconnects and resubscribes all
                    log.warning("live events: subscription change failed", extra={"topic": topic, "error": str(err)})
                    break

    async def _publish_forever(self) -> None:
        """Send queued events one by one, in order; retry the head with backoff while Redis is away."""
        backoff = BACKOFF_MIN_S
        while not self._closed:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            head = self._outbox[0]
            try:
                await self._client.publish(*head)
            except (RedisError, OSError) as err:
                log.warning("live events: publish failed; retrying", extra={"error": str(err), "retry_in_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            if self._outbox and self._outbox[0] is head:  # not already pushed out by a full queue
                self._outbox.popleft()
