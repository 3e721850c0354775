"""Per-conversation turn locks: one turn of a conversation at a time, in one process or across replicas.

``TurnLocks.hold(key)`` is an async context manager; ``turn_locks_for(url)`` picks the implementation
from ``DATABASE_URL``:

- SQLite (the default, one process): ``LocalTurnLocks``, an ``asyncio.Lock`` per key, as before.
- PostgreSQL (several gateway replicas share it): ``PgTurnLocks``, the same local lock first and then
  a PostgreSQL *session* advisory lock, ``pg_advisory_lock(<namespace>, hashtext(key))``, on a
  connection of its own held for the whole turn.

Why a PostgreSQL advisory lock and not a Redis lock with a fencing token:

- Every replica already needs PostgreSQL for the conversation itself, so the lock adds no second
  system whose failure could let two turns of one conversation run at once.
- A session advisory lock belongs to a live server connection: when a replica dies (SIGKILL, OOM,
  a crashed host) its connection closes and PostgreSQL releases the lock at once, with no TTL to
  guess. A Redis lock needs a TTL longer than the slowest turn (Rasa retries included) plus renewal,
  and a holder paused past its TTL keeps writing unless every write checks a fencing token; our
  writes are already idempotent per message id (exactly-once turn storage), but the ordering would
  not be. For a host that vanishes without closing its sockets, the lock connections ask the server
  for TCP keepalives (``SERVER_KEEPALIVE``), so PostgreSQL notices in well under a minute.
- Waiters queue inside PostgreSQL in arrival order; nothing polls.

The in-process ``asyncio.Lock`` in front means that one replica opens at most one lock connection per
conversation, however many of its messages arrive at once. Lock connections come from a pool of their
own (``pool_size``), separate from the pool that runs the turn's queries, so turns holding locks can
never starve the queries they are waiting for. A collision of two keys' hashes only makes two
conversations wait for each other now and then; it never lets one run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = [
    "FIRST_MESSAGE_LOCKS", "LocalTurnLocks", "MIGRATIONS_LOCK", "PgTurnLocks", "RELAY_LOCKS", "TURN_LOCKS", "TurnLocks", "is_postgres", "pg_session_lock",
    "turn_locks_for",
]

log = logging.getLogger(__name__)

# The first key of two-key advisory locks: keeps our locks apart from anyone else's in the database.
TURN_LOCKS = 0x5B0701  # per conversation (its sender id)
MIGRATIONS_LOCK = 0x5B0702  # storage.db.upgrade, per schema
RELAY_LOCKS = 0x5B0703  # per push-channel customer (channels/relay.py: catch-up, turn and its delivery)
# A REST conversation's first message (channels/rest.py), held around its turn's own lock: a pool of its
# own, or 20 new conversations at once held every connection of the turn locks' pool waiting for a second.
FIRST_MESSAGE_LOCKS = 0x5B0704
# Server-side keepalives for lock connections: a replica whose host disappears without closing its
# sockets loses its locks after about 10 + 3 * 5 s instead of the kernel's default two hours.
SERVER_KEEPALIVE = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


class TurnLocks(Protocol):
    def hold(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Wait until no other turn holds ``key`` (in this process or, for shared locks, any replica)."""

    async def aclose(self) -> None:
        """Release resources (connections); no turn may be holding a lock."""


class LocalTurnLocks:
    """One ``asyncio.Lock`` per key in this process; a key's lock is dropped once nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:  # ``lock`` is referenced until released: waiters share it
            yield

    async def aclose(self) -> None:
        return None


class PgTurnLocks(LocalTurnLocks):
    """The local lock, then a PostgreSQL session advisory lock held on a dedicated connection.

    ``pool_size`` bounds the lock connections of this replica (conversations in a turn at the same
    moment); a turn beyond it waits for a free one (at most ``pool_timeout_s``, then the turn fails
    with the pool's error and the message stays pending, to be retried by the customer).
    """

    def __init__(self, url: str, *, pool_size: int = 20, pool_timeout_s: float = 60.0,
                 namespace: int = TURN_LOCKS) -> None:
        super().__init__()
        self.namespace = namespace  # the advisory locks' first key: a family of locks of its own
        if not is_postgres(url):
            raise ValueError(f"PostgreSQL advisory locks need a postgresql URL, not {make_url(url).drivername}")
        async_url = make_url(url).set(drivername="postgresql+psycopg")
        self._engine: AsyncEngine = create_async_engine(
            async_url, pool_size=pool_size, max_overflow=0, pool_timeout=pool_timeout_s, pool_pre_ping=True,
            isolation_level="AUTOCOMMIT",  # no transaction stays open for the turn: only the lock does
        )
        event.listen(self._engine.sync_engine, "connect", _keepalive)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with super().hold(key):
            conn = await self._engine.connect()
            try:
                await conn.execute(text("SELECT pg_advisory_lock(CAST(:ns AS integer), hashtext(:key))"),
                                   {"ns": self.namespace, "key": key})
            except BaseException:  # cancelled or failed while waiting: closing the connection frees any lock
                await _discard(conn)
                raise
            try:
                yield
            finally:
                await _unlock(conn, self.namespace, key)

    async def aclose(self) -> None:
        await self._engine.dispose()


async def _unlock(conn: AsyncConnection, namespace: int, key: str) -> None:
    """Release ``key`` and give the connection back; if that fails (or is cancelled), close the
    connection instead: PostgreSQL then releases the lock with the session."""
    try:
        await conn.execute(text("SELECT pg_advisory_unlock(CAST(:ns AS integer), hashtext(:key))"),
                           {"ns": namespace, "key": key})
        await conn.close()
    except BaseException:
        await _discard(conn)
        raise


async def _discard(conn: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(conn.invalidate())
    with contextlib.suppress(Exception):
        await asyncio.shield(conn.close())


def _keepalive(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        for name, value in SERVER_KEEPALIVE.items():
            cur.execute(f"SET {name} = {int(value)}")
    finally:
        cur.close()
    # SET opened a transaction on a non-autocommit connection; the pool's reset would roll it back anyway.
    with contextlib.suppress(Exception):
        dbapi_conn.commit()


def turn_locks_for(url: str, *, pool_size: int = 20, namespace: int = TURN_LOCKS) -> TurnLocks:
    """Per-conversation locks for this database: shared across replicas on PostgreSQL, local otherwise.
    ``namespace`` keeps another family of per-key locks (``RELAY_LOCKS``) apart from the turn locks."""
    return PgTurnLocks(url, pool_size=pool_size, namespace=namespace) if is_postgres(url) else LocalTurnLocks()


@contextlib.contextmanager
def pg_session_lock(conn: Connection, namespace: int, key: str) -> Iterator[None]:
    """Hold a session advisory lock on ``conn`` (blocking) for the block; released on exit, or by
    PostgreSQL if this process dies meanwhile."""
    conn.execute(text("SELECT pg_advisory_lock(CAST(:ns AS integer), hashtext(:key))"), {"ns": namespace, "key": key})
    conn.commit()
    try:
        yield
    finally:
        conn.execute(text("SELECT pg_advisory_unlock(CAST(:ns AS integer), hashtext(:key))"), {"ns": namespace, "key": key})
        conn.commit()


def sync_lock_engine(url: str) -> Any:
    """A one-connection engine for a blocking advisory lock (migrations, CLI steps)."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    event.listen(engine, "connect", _keepalive)
    return engine
