"""Files on disk that several processes write (the gateway, a CLI): an exclusive lock around a change.

``file_lock(path)`` holds an ``flock`` on ``path`` (created, with its folder, if missing) for the
``with`` block: a second writer, in this process or another, waits until the first is done.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
