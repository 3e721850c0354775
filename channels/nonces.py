"""Remembered nonces: a signed request is accepted once, not again within its validity window.

A signature over (timestamp, nonce) proves who sent a request, not that it is the first time it
arrives: anyone who captured it can send it again until the timestamp is too old. So each
verified request's pair is kept for as long as a replay could still pass the clock-skew check,
and a second arrival is told apart: the same content again is a retry (the sender did not get our
answer), other content under a used pair is a replay. Bounded: at most ``max_entries`` pairs, the
oldest forgotten first (with a warning), and only requests that passed the signature get in.

``NonceCache`` keeps them in this process (one gateway). With several gateway replicas behind a
round-robin balancer a replay sent to another replica would find nothing there, so with ``REDIS_URL``
set ``RedisNonceCache`` keeps them in Redis for every replica: ``SET key digest NX PX ttl`` (the first
arrival anywhere wins, Redis forgets the pair when a replay could no longer pass the skew check).
When Redis cannot be asked the request is refused for now (``NonceStoreUnavailable``: the webhook
answers 503 and WeChat retries) rather than let a possible replay through. Durable de-duplication of
messages is the channel's message id in the database.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as aredis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["MAX_NONCES", "NonceCache", "NonceStoreUnavailable", "RedisNonceCache", "nonce_cache"]

log = logging.getLogger(__name__)

MAX_NONCES = 100_000  # 5 minutes of 330 requests a second
PREFIX = "supportbot:nonces:"
SCHEMES = ("redis://", "rediss://", "unix://")


class NonceStoreUnavailable(Exception):
    """The shared store of nonces could not be asked: the request cannot be told apart from a replay now."""


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

    async def acheck(self, timestamp: str, nonce: str, content: bytes) -> str:
        return self.check(timestamp, nonce, content)

    async def aclose(self) -> None:
        return None


class RedisNonceCache:
    """``NonceCache``'s verdicts for every gateway replica, kept in Redis at ``url`` under ``prefix``."""

    def __init__(self, url: str, ttl_s: float, prefix: str = PREFIX, *, timeout_s: float = 2.0) -> None:
        if not url.startswith(SCHEMES):
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got the scheme {scheme!r})")
        if ttl_s <= 0:
            raise ValueError("nonces must be remembered for a positive time")
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._ttl_ms = math.ceil(2 * ttl_s * 1000)  # as NonceCache: timestamp + skew, arriving up to skew early
        self._redis = aredis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)

    def __repr__(self) -> str:  # never the URL: it may hold a password
        return f"RedisNonceCache(prefix={self.prefix!r}, ttl_s={self.ttl_s})"

    async def acheck(self, timestamp: str, nonce: str, content: bytes) -> str:
        """``new`` (now remembered by every replica), ``retry`` or ``replay``; ``NonceStoreUnavailable``
        when Redis cannot be asked."""
        key = f"{self.prefix}{timestamp}:{nonce}"
        digest = hashlib.sha256(content).digest()
        try:
            for _ in range(2):  # the pair may expire between SET and GET: then it is new again
                if await self._redis.set(key, digest, nx=True, px=self._ttl_ms):
                    return "new"
                known = await self._redis.get(key)
                if known is not None:
                    return "retry" if hmac.compare_digest(bytes(known), digest) else "replay"
        except (RedisError, OSError) as err:
            log.warning("nonce store unavailable: request refused for now", extra={"error": str(err)})
            raise NonceStoreUnavailable(str(err)) from err
        raise NonceStoreUnavailable("the nonce kept expiring between SET and GET")

    async def aclose(self) -> None:
        await self._redis.aclose()


def nonce_cache(settings: Settings, ttl_s: float) -> NonceCache | RedisNonceCache:
    """In this process, or in Redis (shared by the replicas) when ``REDIS_URL`` is set."""
    if settings.redis_url:
        return RedisNonceCache(settings.redis_url, ttl_s)
    return NonceCache(ttl_s)
