"""Live events for agents' consoles and customers' websockets (in-process publish/subscribe).

One gateway process holds every websocket, so an in-memory bus is enough; a deployment with
several gateway replicas would put a broker (e.g. Redis pub/sub) behind the same two methods.
A slow subscriber never blocks a publisher: its queue is bounded and the oldest event is dropped
(the console re-reads the ticket list on reconnect, customers re-read with ``?after=``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 256


@dataclass(eq=False)
class Subscription:
    topic: str
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


class EventBus:
    """Topics: ``agents`` (every console) and ``conversation:<sender_id>`` (one customer)."""

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

    def publish(self, topic: str, event: dict[str, Any]) -> int:
        """Deliver to every subscriber of ``topic`` now; returns how many got it."""
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
            yield sub
        finally:
            self.unsubscribe(sub)


def conversation_topic(sender_id: str) -> str:
    return f"conversation:{sender_id}"


AGENTS = "agents"
