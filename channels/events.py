"""Live events for websockets: agents' consoles, customers' sockets, widget pushes (publish/subscribe).

One gateway process holds every websocket, so an in-memory bus is enough; with several gateway
replicas (``REDIS_URL`` set) ``channels/events_redis.py`` puts Redis pub/sub behind the same methods
(``events_from_settings`` picks one). Handoff's topics are named in ``handoff/events.py``.
A slow subscriber never blocks a publisher: its queue is bounded and the oldest event is dropped
(the console re-reads the ticket list on reconnect, customers re-read with ``?after=``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from settings import Settings

QUEUE_SIZE = 256


@dataclass(eq=False)
class Subscription:
    topic: str
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class EventBus:
    """Topics: ``agents`` (every console) and ``conversation:<sender_id>`` (one customer)."""

    shared = False  # True: events also reach other processes (channels/events_redis.py)

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    def subscribe(self, topic: str) -> Subscription:
        sub = Subscription(topic)
        self._subs.setdefault(topic, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.topic]

    def subscribers(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    async def asubscribers(self, topic: str) -> int:
        """``subscribers`` for async code: a shared bus asks Redis without blocking the event loop."""
        return self.subscribers(topic)

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Deliver to every subscriber of ``topic`` now; returns how many got it."""
        return self._deliver(topic, event)

    def _deliver(self, topic: str, event: dict[str, Any]) -> int:
        """To this process's subscribers of ``topic``."""
        subs = self._subs.get(topic, ())
        for sub in list(subs):
            if sub.queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()
            sub.queue.put_nowait(event)
        return len(subs)

    @contextlib.asynccontextmanager
    async def listen(self, topic: str) -> AsyncIterator[Subscription]:
        sub = self.subscribe(topic)
        try:
            await self.ready(topic)
            yield sub
        finally:
            self.unsubscribe(sub)

    async def ready(self, topic: str) -> bool:
        """Wait until events of ``topic`` published anywhere reach this process (at once in memory)."""
        return True

    async def close(self) -> None:
        """Release connections (nothing to release in memory)."""


def events_from_settings(settings: Settings) -> EventBus:
    """In memory (one process) unless ``REDIS_URL`` is set: then Redis pub/sub across replicas."""
    if not settings.redis_url:
        return EventBus()
    from channels.events_redis import RedisEventBus

    return RedisEventBus(settings.redis_url)


def widget_topic(sender_id: str) -> str:
    """Pushes to one widget customer's sockets, wherever they are open (channels/widget/hub.py)."""
    return f"widget:{sender_id}"
