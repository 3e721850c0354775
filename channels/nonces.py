"""Remembered nonces: a signed request is accepted once, not again within its validity window.

A signature over (timestamp, nonce) proves who sent a request, not that it is the first time it
arrives: anyone who captured it can send it again until the timestamp is too old. So each
verified request's pair is kept for as long as a replay could still pass the clock-skew check,
and a second arrival is told apart: the same content again is a retry (the sender did not get our
answer), other content under a used pair is a replay. Bounded: at most ``max_entries`` pairs, the
oldest forgotten first (with a warning), and only requests that passed the signature get in.
Per process (like the rate limiter); durable de-duplication is the channel's message id in the
database.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

__all__ = ["MAX_NONCES", "NonceCache"]

log = logging.getLogger(__name__)

MAX_NONCES = 100_000  # 5 minutes of 330 requests a second


class NonceCache:
    """The (timestamp, nonce) of every verified request, kept while a replay of it could still pass
    the clock-skew check (``ttl_s``), at most ``max_entries`` (the oldest go first)."""

    def __init__(self, ttl_s: float, max_entries: int = MAX_NONCES, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._seen: collections.OrderedDict[tuple[str, str], tuple[float, bytes]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, timestamp: str, nonce: str, content: bytes) -> str:
        """``new`` (now remembered), ``retry`` (same pair, same content) or ``replay`` (same pair, other content)."""
        now = self.clock()
        while self._seen and next(iter(self._seen.values()))[0] <= now:
            self._seen.popitem(last=False)
        digest = hashlib.sha256(content).digest()
        known = self._seen.get((timestamp, nonce))
        if known is not None:
            return "retry" if hmac.compare_digest(known[1], digest) else "replay"
        if len(self._seen) >= self.max_entries:
            self._seen.popitem(last=False)
            log.warning("nonce cache full: forgetting the oldest nonce early", extra={"size": self.max_entries})
        # A replay passes the skew check until timestamp + ttl, and timestamp <= now + ttl.
        self._seen[(timestamp, nonce)] = (now + 2 * self.ttl_s, digest)
        return "new"
