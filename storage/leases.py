"""Leases: a background loop that must run in one process at a time (handoff timeouts, the review
inbox's collection, training jobs) runs where it holds its lease; another replica takes over when
the holder stops renewing it (it died, hung, or lost the database).

A lease is a row of ``leases(name, holder, expires_at)``. Taking and renewing it is one conditional
UPDATE, ``… SET holder = me, expires_at = now + ttl WHERE name = ? AND (holder = me OR expires_at < now)``
(or the INSERT of a missing row, which a unique key lets only one replica win), so two replicas can
never both hold it. On PostgreSQL "now" is the database's clock, so replicas' clocks need not agree.
The holder renews every ``ttl/3``; a holder that cannot renew for ``ttl`` (the database is away)
stops its loop before anyone else may take over. On a clean stop the lease is released, so another
replica takes over at once instead of after the TTL.

What a lease cannot do is fence a holder frozen past its TTL (a stopped VM): when it wakes it runs
until its next renewal fails. The leased loops tolerate that: handoff timeouts change tickets with
optimistic checks (``StaleState``), the inbox collection advances cursors in its own transactions,
and the outboxes claim each item with a conditional UPDATE anyway.

On SQLite (one process, the default) ``lease_for`` returns ``LocalLease``: always held, nothing
written, the loop starts at once as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from anyio import to_thread
from sqlalchemy import String, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from storage.db import Base, transaction
from storage.types import UTCDateTime

__all__ = ["DbLease", "Lease", "LeaseRow", "LocalLease", "holder_id", "lease_for", "run_leased"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30.0
FAR_PAST = datetime(2000, 1, 1, tzinfo=UTC)


class LeaseRow(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


def holder_id() -> str:
    """This process, recognisably in the table: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Lease(Protocol):
    name: str
    ttl_s: float

    def try_acquire(self) -> bool:
        """Take or renew the lease; False when another holder has it (blocking: run in a thread)."""

    def release(self) -> None:
        """Give the lease up if we hold it, so another replica can take it now."""


class LocalLease:
    """One process: the lease is always ours."""

    def __init__(self, name: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.name, self.ttl_s = name, ttl_s

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class DbLease:
    """A row of ``leases``, taken and renewed with a conditional UPDATE (see the module's doc)."""

    def __init__(self, sessions: sessionmaker[Session], name: str, *, ttl_s: float = DEFAULT_TTL_S,
                 holder: str | None = None) -> None:
        if not 0 < len(name) <= 64:
            raise ValueError(f"a lease name has 1 to 64 characters, not {len(name)}")
        if ttl_s <= 0:
            raise ValueError(f"a lease's ttl must be positive, not {ttl_s}")
        self.sessions, self.name, self.ttl_s = sessions, name, ttl_s
        self.holder = holder or holder_id()

    def _now_and_expiry(self, db: Session, ttl_s: float) -> tuple[Any, Any]:
        if db.get_bind().dialect.name == "postgresql":  # the database's clock, naive UTC like UTCDateTime
            now = func.timezone("UTC", func.now())
            return now, now + func.make_interval(0, 0, 0, 0, 0, 0, literal(ttl_s))
        now_py = datetime.now(UTC)
        return now_py, now_py + timedelta(seconds=ttl_s)

    def try_acquire(self, ttl_s: float | None = None) -> bool:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        with transaction(self.sessions) as db:
            now, expiry = self._now_and_expiry(db, ttl)
            taken = db.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, (LeaseRow.holder == self.holder) | (LeaseRow.expires_at < now))
                .values(holder=self.holder, expires_at=expiry)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken:
                return True
        try:  # no row yet: the first INSERT wins, a concurrent one fails on the primary key
            with transaction(self.sessions) as db:
                now, expiry = self._now_and_expiry(db, ttl)
                db.execute(LeaseRow.__table__.insert().values(name=self.name, holder=self.holder, expires_at=expiry))
            return True
        except IntegrityError:
            return False

    def release(self) -> None:
        with transaction(self.sessions) as db:
            db.execute(update(LeaseRow).where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                       .values(expires_at=FAR_PAST).execution_options(synchronize_session=False))

    def holder_now(self) -> str | None:
        """Who holds the lease now (None: nobody), for status pages and tests."""
        with self.sessions() as db:
            now, _ = self._now_and_expiry(db, 0)
            return db.scalar(select(LeaseRow.holder).where(LeaseRow.name == self.name, LeaseRow.expires_at >= now))


def lease_for(sessions: sessionmaker[Session], name: str, *, ttl_s: float = DEFAULT_TTL_S) -> Lease:
    """A database lease on a shared database (PostgreSQL); on SQLite, one process: always held."""
    bind = sessions.kw.get("bind")
    if bind is not None and bind.dialect.name == "sqlite":
        return LocalLease(name, ttl_s)
    return DbLease(sessions, name, ttl_s=ttl_s)


async def run_leased(lease: Lease, body: Callable[[], Awaitable[None]], *, retry_s: float | None = None) -> None:
    """Run ``body`` (a loop) while holding ``lease``; forever, until cancelled.

    Not holding it: try again every ``retry_s`` (default ttl/6). Holding it: start ``body`` and renew
    every ttl/3; when the lease is lost (another holder has it) or cannot be renewed within ttl, stop
    ``body`` and go back to waiting. If ``body`` returns or fails it is started again after ``retry_s``.
    Cancelled (gateway shutdown): stop ``body`` and release the lease.
    """
    if isinstance(lease, LocalLease):
        await body()
        return
    retry = retry_s if retry_s is not None else max(0.05, lease.ttl_s / 6)
    renew_every = lease.ttl_s / 3
    try:
        while True:
            if not await _attempt(lease.try_acquire, lease.name):
                await asyncio.sleep(retry)
                continue
            log.info("lease taken; running", extra={"lease": lease.name})
            await _hold(lease, body, renew_every)
            await asyncio.sleep(retry)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(to_thread.run_sync(lease.release))


async def _attempt(fn: Callable[[], bool], name: str) -> bool:
    try:
        return await to_thread.run_sync(fn)
    except Exception as err:  # the database is away: not ours for now
        log.warning("lease request failed", extra={"lease": name, "error": str(err)[:300]})
        return False


async def _hold(lease: Lease, body: Callable[[], Awaitable[None]], renew_every: float) -> None:
    task = asyncio.ensure_future(body())
    renewed = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=renew_every)
            if done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("leased loop failed; restarting", extra={"lease": lease.name},
                              exc_info=task.exception())
                return
            try:
                held = await to_thread.run_sync(lease.try_acquire)
            except Exception as err:
                log.warning("lease renewal failed", extra={"lease": lease.name, "error": str(err)[:300]})
                # Stop before the row can expire: nobody else may take over while we still run.
                if time.monotonic() - renewed < lease.ttl_s - renew_every:
                    continue
                held = False
            if not held:
                log.warning("lease lost; loop stopped", extra={"lease": lease.name})
                return
            renewed = time.monotonic()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
