"""The outbox worker: delivers pending items with retries and exponential backoff.

Items are written in the same database as the ticket, so a delivery survives a receiver that is
down and a gateway restart; an item is marked delivered only after the peer accepted it, and one
that keeps failing is marked ``failed`` after ``max_attempts`` (kept, with its last error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from handoff.adapters.webhook import DeliveryFailed
from handoff.models import OutboxItem
from storage.db import transaction

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 3600.0


class Adapter(Protocol):
    name: str

    async def deliver(self, delivery_id: int, event: str, payload: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class OutboxWorker:
    def __init__(self, sessions: sessionmaker[Session], adapters: dict[str, Adapter], *, max_attempts: int = 10,
                 backoff_s: float = 5.0, poll_s: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self.adapters = adapters
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.clock = clock
        self._wake = asyncio.Event()

    def wakeup(self) -> None:
        """Called (from any thread) when an item is queued, so it goes out without waiting a poll."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._wake.set()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    _loop: asyncio.AbstractEventLoop | None = None

    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                await self.run_once()
            except Exception:  # never let one bad item stop deliveries
                log.exception("outbox pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def run_once(self) -> int:
        """Try every due item once; returns how many were delivered."""
        due = await to_thread.run_sync(self._due)
        delivered = 0
        for item_id, adapter_name, event, payload, attempts in due:
            adapter = self.adapters.get(adapter_name)
            if adapter is None:
                continue
            try:
                await adapter.deliver(item_id, event, payload)
            except DeliveryFailed as err:
                await to_thread.run_sync(self._failed, item_id, attempts + 1, str(err))
                continue
            await to_thread.run_sync(self._delivered, item_id, attempts + 1)
            delivered += 1
        return delivered

    def _due(self) -> list[tuple[int, str, str, dict[str, Any], int]]:
        with self._sessions() as db:
            rows = db.scalars(select(OutboxItem).where(OutboxItem.status == "pending",
                                                       OutboxItem.next_attempt_at <= self.clock())
                              .order_by(OutboxItem.id).limit(50))
            return [(r.id, r.adapter, r.event, r.payload, r.attempts) for r in rows]

    def _delivered(self, item_id: int, attempts: int) -> None:
        with transaction(self._sessions) as db:
            item = db.get_one(OutboxItem, item_id)
            item.status, item.attempts, item.delivered_at, item.last_error = "delivered", attempts, self.clock(), None

    def _failed(self, item_id: int, attempts: int, error: str) -> None:
        with transaction(self._sessions) as db:
            item = db.get_one(OutboxItem, item_id)
            item.attempts, item.last_error = attempts, error[:2000]
            if attempts >= self.max_attempts:
                item.status = "failed"
                log.error("outbox item given up", extra={"item": item_id, "adapter": item.adapter, "error": error})
            else:
                delay = min(self.backoff_s * (2 ** (attempts - 1)), MAX_BACKOFF_S)
                item.next_attempt_at = self.clock() + timedelta(seconds=delay)
                log.warning("outbox delivery failed, will retry",
                            extra={"item": item_id, "adapter": item.adapter, "attempt": attempts, "retry_in_s": delay})

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()
