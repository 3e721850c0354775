"""The outbox: every message to a Telegram or WeChat customer is a row first, an API call second.

Why: a channel's API can be down, rate-limit us or time out, and the customer's answer (or an
agent's reply) must still arrive, once and in order. So replies are written to ``channel_outbox``
and a worker delivers them:

- one worker task per channel, so a channel whose API is down (or pausing us with 429
  ``retry_after``) never delays another channel;
- per customer, strictly in order: a message that failed blocks that customer's later messages
  until it is delivered, other customers go on;
- each pass reads only rows that are due (each customer's oldest pending row whose retry time has
  come, most overdue first) and the loop then sleeps until the next one is due (at most
  ``outbox_poll_s``): a backlog in backoff neither hides a due row nor keeps the loop spinning;
- failures back off exponentially (``outbox_retry_base_s`` … ``outbox_retry_max_s``) and are retried
  forever; only an answer that says the message can never be delivered (a Telegram user who blocked
  the bot, an invalid WeChat openid) marks the row ``rejected``, with the reason kept;
- before each attempt the row is claimed with a lease (a conditional UPDATE), so two gateway
  processes never send the same row twice, and a crash mid-send is retried after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from anyio import to_thread
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from channels.models import ChannelOutbox
from storage.db import transaction

__all__ = ["Deliverer", "Delivery", "Outbox", "OutboxWorker", "Rejected", "RetryLater"]

log = logging.getLogger(__name__)

CLAIM_LEASE_S = 120.0  # longer than any API timeout: a claimed row is retried only if we died mid-send
BATCH = 100


class RetryLater(Exception):  # noqa: N818 - reads as an instruction to the worker
    """Not delivered now. ``after_s`` None → exponential backoff; ``channel_wide`` pauses the channel."""

    def __init__(self, reason: str, after_s: float | None = None, channel_wide: bool = False) -> None:
        super().__init__(reason)
        self.after_s = after_s
        self.channel_wide = channel_wide


class Rejected(Exception):  # noqa: N818 - the channel's verdict, not our failure
    """The channel says this message can never be delivered (kept as ``rejected``, not retried)."""


@dataclass(frozen=True)
class Delivery:
    """One API call that carries a message: ``method`` and its JSON body in the channel's format."""

    method: str
    body: dict[str, Any]


class Deliverer(Protocol):
    async def deliver(self, delivery: Delivery) -> None:
        """Make the call; raise RetryLater or Rejected when it did not go through."""


def _now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    """Writes rows and wakes the worker of their channel."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._wakers: dict[str, asyncio.Event] = {}

    def waker(self, channel: str) -> asyncio.Event:
        return self._wakers.setdefault(channel, asyncio.Event())

    def enqueue_sync(
        self, channel: str, sender_id: str, deliveries: Iterable[Delivery], dedup_prefix: str | None = None,
    ) -> int:
        """Store the deliveries (in order); with ``dedup_prefix`` a second call with it adds nothing.

        Returns how many rows were added.
        """
        items = list(deliveries)
        if not items:
            return 0
        keys = [f"{dedup_prefix}:{n}" if dedup_prefix else None for n in range(len(items))]
        now = _now()
        try:
            with transaction(self._sessions) as db:
                existing: set[str] = set()
                if dedup_prefix:
                    existing = set(db.scalars(select(ChannelOutbox.dedup_key).where(
                        ChannelOutbox.dedup_key.in_([k for k in keys if k]))))
                added = 0
                for item, key in zip(items, keys, strict=True):
                    if key is not None and key in existing:
                        continue
                    db.add(ChannelOutbox(
                        channel=channel, sender_id=sender_id, method=item.method, body=item.body, dedup_key=key,
                        status="pending", attempts=0, next_attempt_at=now, created_at=now,
                    ))
                    added += 1
        except IntegrityError:
            return 0  # the same reply was enqueued concurrently by a redelivery: it is there once
        return added

    async def enqueue(
        self, channel: str, sender_id: str, deliveries: Iterable[Delivery], dedup_prefix: str | None = None,
    ) -> int:
        items = list(deliveries)
        added = await to_thread.run_sync(lambda: self.enqueue_sync(channel, sender_id, items, dedup_prefix))
        self.waker(channel).set()
        return added

    def counts(self) -> dict[str, dict[str, int]]:
        """{channel: {status: rows}}, for the CLI and tests."""
        with self._sessions() as db:
            rows = db.execute(
                select(ChannelOutbox.channel, ChannelOutbox.status, func.count()).group_by(
                    ChannelOutbox.channel, ChannelOutbox.status)
            )
            result: dict[str, dict[str, int]] = {}
            for channel, status, count in rows:
                result.setdefault(channel, {})[status] = int(count)
            return result


@dataclass(frozen=True)
class _Row:
    id: int
    sender_id: str
    method: str
    body: dict[str, Any]
    attempts: int
    next_attempt_at: datetime


class OutboxWorker:
    """One delivery loop per registered channel."""

    def __init__(
        self, outbox: Outbox, sessions: sessionmaker[Session], *, retry_base_s: float, retry_max_s: float,
        poll_s: float,
    ) -> None:
        self.outbox = outbox
        self._sessions = sessions
        self._deliverers: dict[str, Deliverer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._paused_until: dict[str, datetime] = {}
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.poll_s = poll_s

    def register(self, channel: str, deliverer: Deliverer) -> None:
        self._deliverers[channel] = deliverer

    def start(self) -> None:
        for channel in self._deliverers:
            self._tasks.append(asyncio.create_task(self._run(channel), name=f"outbox-{channel}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def backoff_s(self, attempts: int) -> float:
        return float(min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1)))

    async def _run(self, channel: str) -> None:
        waker = self.outbox.waker(channel)
        while True:
            waker.clear()
            try:
                wait_s = await self.drain(channel)
            except Exception:  # a bug or a database hiccup must not kill delivery for good
                log.exception("outbox worker error", extra={"channel": channel})
                wait_s = self.poll_s
            if wait_s <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), timeout=min(wait_s, self.poll_s))

    async def drain(self, channel: str) -> float:
        """Deliver the due rows of ``channel``; return seconds until something may be due (0: go on now).

        Only each customer's oldest pending row can be due (their order is kept), and only rows
        whose time has come are read, most overdue first: however many rows wait in backoff, a
        due row is found in the first pass, and a pass with nothing due sleeps until the next one.
        """
        deliverer = self._deliverers[channel]
        now = _now()
        paused = self._paused_until.get(channel)
        if paused and paused > now:
            return (paused - now).total_seconds()
        rows = await to_thread.run_sync(self._load, channel, now)
        progressed = False
        for row in rows:
            if not await to_thread.run_sync(self._claim, row):
                continue  # another process took it
            try:
                await deliverer.deliver(Delivery(row.method, row.body))
            except RetryLater as err:
                delay = err.after_s if err.after_s is not None else self.backoff_s(row.attempts + 1)
                await to_thread.run_sync(self._retry, row.id, delay, str(err))
                log.warning("outbox delivery deferred", extra={
                    "channel": channel, "row": row.id, "retry_in_s": delay, "reason": str(err)})
                if err.channel_wide:
                    self._paused_until[channel] = _now() + timedelta(seconds=delay)
                    return delay
            except Rejected as err:
                await to_thread.run_sync(self._finish, row.id, "rejected", str(err))
                log.warning("outbox delivery rejected", extra={"channel": channel, "row": row.id, "reason": str(err)})
                progressed = True
            except Exception as err:  # unexpected: retry like a transient failure, never drop
                log.exception("outbox delivery failed", extra={"channel": channel, "row": row.id})
                await to_thread.run_sync(self._retry, row.id, self.backoff_s(row.attempts + 1), repr(err))
            else:
                await to_thread.run_sync(self._finish, row.id, "sent", None)
                progressed = True
        if progressed or len(rows) == BATCH:
            return 0.0  # these customers' next rows (or more due rows) may be due now
        next_due = await to_thread.run_sync(self._next_due, channel)
        if next_due is None:
            return self.poll_s
        return max(0.05, (next_due - _now()).total_seconds())

    # --- storage steps (worker threads) --------------------------------------------------------
    def _heads(self, channel: str) -> Any:
        """Each customer's oldest pending row id: the only row of theirs that may be sent next."""
        return (select(func.min(ChannelOutbox.id))
                .where(ChannelOutbox.channel == channel, ChannelOutbox.status == "pending")
                .group_by(ChannelOutbox.sender_id))

    def _load(self, channel: str, now: datetime) -> list[_Row]:
        with self._sessions() as db:
            rows = db.scalars(
                select(ChannelOutbox)
                .where(ChannelOutbox.id.in_(self._heads(channel)), ChannelOutbox.next_attempt_at <= now)
                .order_by(ChannelOutbox.next_attempt_at, ChannelOutbox.id).limit(BATCH)
            )
            return [_Row(r.id, r.sender_id, r.method, r.body, r.attempts, r.next_attempt_at) for r in rows]

    def _next_due(self, channel: str) -> datetime | None:
        """When the soonest customer's oldest pending row becomes due (None: nothing pending)."""
        with self._sessions() as db:
            return db.scalar(select(func.min(ChannelOutbox.next_attempt_at))
                             .where(ChannelOutbox.id.in_(self._heads(channel))))

    def _claim(self, row: _Row) -> bool:
        """Take the row for one attempt; False if another process took it first."""
        lease = _now() + timedelta(seconds=CLAIM_LEASE_S)
        with transaction(self._sessions) as db:
            result = db.execute(
                update(ChannelOutbox)
                .where(ChannelOutbox.id == row.id, ChannelOutbox.status == "pending",
                       ChannelOutbox.attempts == row.attempts)
                .values(next_attempt_at=lease, attempts=row.attempts + 1)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _retry(self, row_id: int, delay_s: float, error: str) -> None:
        with transaction(self._sessions) as db:
            db.execute(update(ChannelOutbox).where(ChannelOutbox.id == row_id).values(
                next_attempt_at=_now() + timedelta(seconds=delay_s), last_error=error[:2000]))

    def _finish(self, row_id: int, status: str, error: str | None) -> None:
        with transaction(self._sessions) as db:
            values: dict[str, Any] = {"status": status}
            if status == "sent":
                values["sent_at"] = _now()  # last_error stays: it tells what the delivery went through
            else:
                values["last_error"] = (error or "")[:2000]
            db.execute(update(ChannelOutbox).where(ChannelOutbox.id == row_id).values(**values))
