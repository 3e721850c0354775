"""The outbox worker: delivers pending items with retries and capped exponential backoff.

Items are written in the same database as the ticket, so a delivery survives a receiver that is
down and a gateway restart; an item is marked delivered only after the peer accepted it. Nothing
is ever given up: a failing item is retried after ``backoff_s`` doubled per attempt, capped at one
hour, for as long as it takes. An item still failing a day after it was queued is reported with a
warning in the log once a day (``outbox item undelivered for over a day``, with its last error),
so that a receiver that is gone for good (wrong URL, revoked secret) is noticed and fixed.

Items marked ``failed`` by older versions (which gave up after 10 attempts) are retried too.

Every gateway replica runs this worker. Before each attempt the item is claimed with a conditional
UPDATE (its attempt count as it was read, a lease of ``CLAIM_LEASE_S`` as its next attempt time), so an
item is handed to one worker only; a worker that dies mid-delivery leaves the item to be retried when
the lease runs out (the helpdesk may then see the delivery id twice, never a different one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from anyio import to_thread
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from handoff.adapters.webhook import DeliveryFailed
from handoff.models import OutboxItem
from storage.db import transaction

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 3600.0
STUCK_AFTER = timedelta(days=1)  # undelivered this long after it was queued: warn (once a day per item)
RETRYABLE = ("pending", "failed")  # "failed": given up by a version that had a last attempt
BATCH = 50
CLAIM_LEASE_S = 120.0  # longer than any adapter's timeout: a claimed item is retried only if we died mid-send


class Adapter(Protocol):
    name: str

    async def deliver(self, delivery_id: int, event: str, payload: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


class OutboxWorker:
    def __init__(self, sessions: sessionmaker[Session], adapters: dict[str, Adapter], *, backoff_s: float = 5.0,
                 poll_s: float = 5.0, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self.adapters = adapters
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.clock = clock
        self._wake = asyncio.Event()
        self._warned: dict[int, datetime] = {}  # item id → when its "over a day" warning was last logged

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
            adapter = self.adapters[adapter_name]
            if not await to_thread.run_sync(self._claim, item_id, attempts):
                continue  # another replica took it
            try:
                await adapter.deliver(item_id, event, payload)
            except DeliveryFailed as err:
                await to_thread.run_sync(self._failed, item_id, attempts + 1, str(err))
                continue
            await to_thread.run_sync(self._delivered, item_id, attempts + 1)
            delivered += 1
        return delivered

    def delay_s(self, attempts: int) -> float:
        """Wait after the ``attempts``-th failure: backoff_s, doubled per attempt, at most an hour."""
        return min(self.backoff_s * 2.0 ** min(max(attempts - 1, 0), 32), MAX_BACKOFF_S)

    def undelivered_for_over_a_day(self) -> int:
        """How many items have waited longer than a day (for status pages and tests)."""
        with self._sessions() as db:
            return int(db.scalar(select(func.count()).select_from(OutboxItem).where(
                OutboxItem.status.in_(RETRYABLE), OutboxItem.created_at <= self.clock() - STUCK_AFTER)) or 0)

    def _due(self) -> list[tuple[int, str, str, dict[str, Any], int]]:
        if not self.adapters:
            return []
        with self._sessions() as db:
            # Only adapters configured now: items of one removed since must not fill every batch.
            rows = db.scalars(select(OutboxItem).where(OutboxItem.status.in_(RETRYABLE),
                                                       OutboxItem.adapter.in_(sorted(self.adapters)),
                                                       OutboxItem.next_attempt_at <= self.clock())
                              .order_by(OutboxItem.next_attempt_at, OutboxItem.id).limit(BATCH))
            return [(r.id, r.adapter, r.event, r.payload, r.attempts) for r in rows]

    def _claim(self, item_id: int, attempts: int) -> bool:
        """Take the item for one attempt; False if another worker took it (or finished it) since it was read."""
        with transaction(self._sessions) as db:
            claimed = db.execute(
                update(OutboxItem)
                .where(OutboxItem.id == item_id, OutboxItem.status.in_(RETRYABLE), OutboxItem.attempts == attempts)
                .values(attempts=attempts + 1, next_attempt_at=self.clock() + timedelta(seconds=CLAIM_LEASE_S))
                .execution_options(synchronize_session=False)
            ).rowcount
            return bool(claimed)

    def _delivered(self, item_id: int, attempts: int) -> None:
        with transaction(self._sessions) as db:
            item = db.get_one(OutboxItem, item_id)
            item.status, item.attempts, item.delivered_at, item.last_error = "delivered", attempts, self.clock(), None
        self._warned.pop(item_id, None)

    def _failed(self, item_id: int, attempts: int, error: str) -> None:
        now = self.clock()
        delay = self.delay_s(attempts)
        with transaction(self._sessions) as db:
            item = db.get_one(OutboxItem, item_id)
            item.status, item.attempts, item.last_error = "pending", attempts, error[:2000]
            item.next_attempt_at = now + timedelta(seconds=delay)
            adapter, created = item.adapter, item.created_at
        extra = {"item": item_id, "adapter": adapter, "attempt": attempts, "retry_in_s": delay, "error": error[:500]}
        last_warned = self._warned.get(item_id)
        if created <= now - STUCK_AFTER and (last_warned is None or last_warned <= now - STUCK_AFTER):
            self._warned[item_id] = now
            log.warning("outbox item undelivered for over a day; still retrying",
                        extra={**extra, "queued_at": created.isoformat()})
        else:
            log.warning("outbox delivery failed, will retry", extra=extra)

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()
