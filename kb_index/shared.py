"""One knowledge-base directory shared by several processes (gateway replicas, the CLI, ops).

Several gateway replicas behind a balancer must answer from the same index, so they open the same
directory (``KB_INDEX_DIR``: a folder of the local cluster's run, a shared volume in Compose or
Kubernetes). Two things make that safe, on top of the on-disk format (``kb_index/storage.py``:
a version directory is complete, fsynced and never modified before ``CURRENT`` names it, and
``CURRENT`` is replaced atomically):

- **Writers, one at a time across processes** (``WritersLock``): an ``flock`` on ``<dir>/.lock``
  (``storage.files.file_lock``, as ops/kb_versions.py takes it) and, when the gateways share a
  PostgreSQL database, a session advisory lock as well. The advisory lock does not depend on the
  shared file system implementing ``flock`` across hosts (NFS mounted with ``nolock``, some CSI
  drivers make it local to each host, and then two replicas would both write version N+1 and one
  upload would be lost); PostgreSQL releases it when the holder's connection closes, so a killed
  writer blocks nobody. A writer, once it holds the lock, first loads the version another process
  may have made live (``KnowledgeBase._writing``) and writes the next one on top of it.
- **Readers that follow** (``CurrentWatch`` + ``refresh_quietly``): every read of a
  ``KnowledgeBase`` re-reads ``CURRENT`` (one small file: ~13 µs locally) at most every
  ``auto_refresh_s`` (``KB_REFRESH_S``, 1 s) and, when another process made another version live
  (a write or a rollback), loads that version and swaps it in as its own writes do. A reader never
  sees a half-written version: ``CURRENT`` only ever names complete ones. A version that cannot be
  loaded (removed by another process's clean-up while loading, another embedder's) is reported
  once and the reader keeps serving the version it has; it tries again at the next check.

Reading ``CURRENT``'s content rather than its ``stat`` keeps this right on NFS, where ``open``
revalidates with the server (close-to-open consistency) but attributes may be cached for a minute.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from storage.files import file_lock

__all__ = ["KB_WRITERS_LOCK", "CurrentWatch", "WritersLock", "refresh_quietly"]

log = logging.getLogger(__name__)

# The advisory locks' first key for the knowledge base's writers (storage/coordination.py numbers the others).
KB_WRITERS_LOCK = 0x5B0710


class WritersLock:
    """The cross-process writers' lock of one KB directory; re-entrant in the thread that holds it.

    ``database_url``: a PostgreSQL URL shared by every process writing this directory (the gateways'
    ``DATABASE_URL``), or empty for the ``flock`` alone (one host, e.g. SQLite deployments and tests).
    """

    def __init__(self, data_dir: Path, database_url: str = "") -> None:
        self.path = Path(data_dir) / ".lock"
        self.database_url = database_url
        self._engine: Any = None
        self._owner: int | None = None
        self._depth = 0

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"WritersLock({str(self.path)!r}, postgres={bool(self.database_url)})"

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:  # nested (a writer converting an old index): already held
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self._advisory(), file_lock(self.path):
            self._owner, self._depth = me, 1
            try:
                yield
            finally:
                self._owner, self._depth = None, 0

    @contextlib.contextmanager
    def _advisory(self) -> Iterator[None]:
        if not self.database_url:
            yield
            return
        from sqlalchemy import text

        if self._engine is None:  # a connection per write, none kept idle: writes are rare
            from sqlalchemy import create_engine, event
            from sqlalchemy.pool import NullPool

            from storage.coordination import _keepalive  # a vanished host's lock is freed in ~25 s

            self._engine = create_engine(self.database_url, poolclass=NullPool)
            event.listen(self._engine, "connect", _keepalive)
        # One key for the database: the replicas may mount the shared directory at different paths.
        args = {"ns": KB_WRITERS_LOCK, "key": "knowledge-base"}
        conn = self._engine.connect()
        try:
            conn.execute(text("SELECT pg_advisory_lock(CAST(:ns AS integer), hashtext(:key))"), args)
            conn.commit()
        except BaseException:
            conn.invalidate()  # closing the session frees a lock granted meanwhile
            conn.close()
            raise
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(CAST(:ns AS integer), hashtext(:key))"), args)
                conn.commit()
            except Exception:  # the write is done; closing the session releases the lock instead
                log.warning("knowledge-base writers' lock: unlock failed; its connection is closed instead")
                conn.invalidate()
            conn.close()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class CurrentWatch:
    """When a reader should look at ``CURRENT`` again: at most every ``every_s`` (0: never)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last = clock()
        self.failed: str | None = None  # the live version that could not be loaded (reported once)

    def due(self) -> bool:
        if self.every_s <= 0:
            return False
        now = self.clock()
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True


def refresh_quietly(lock: threading.RLock, refresh: Callable[[], bool], watch: CurrentWatch, where: Path) -> None:
    """Load the version another process made live, if any, without ever failing a read.

    Skipped when a writer of this process holds ``lock`` (it catches up itself before writing);
    a failure is logged once per version and the current snapshot is kept."""
    if not lock.acquire(blocking=False):
        return
    try:
        if refresh():
            watch.failed = None
            log.info("knowledge base: switched to the version another process made live", extra={"kb_dir": str(where)})
    except Exception as err:  # noqa: BLE001 - whatever it is, customers keep the version we have
        from kb_index.storage import current_version

        with contextlib.suppress(OSError):
            live = current_version(where)
            if live != watch.failed:
                watch.failed = live
                log.warning(
                    "knowledge base: the live version could not be loaded; still serving the previous one",
                    extra={"kb_dir": str(where), "version": live, "error": f"{type(err).__name__}: {err}"},
                )
    finally:
        lock.release()
