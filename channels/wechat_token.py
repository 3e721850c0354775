"""Where the WeChat access token is kept: in this process, or in Redis for every gateway replica.

WeChat issues one access token per appid: fetching a new one (``/cgi-bin/token``) invalidates the
previous one about five minutes later, and the fetches are limited (2,000 a day). Gateway replicas
that each fetched their own would keep invalidating each other's, and each would see 40001 errors
and fetch again. So with ``REDIS_URL`` set the token is kept in Redis, with the expiry WeChat gave
it (less a margin), and fetched by one replica at a time:

1. ``GET`` the token: every replica uses the one there while it lasts.
2. Missing or expired: take a Redis lock (redis-py's ``Lock``: ``SET NX PX`` with a random owner
   token, released only by its owner, expiring by itself if the holder dies), ``GET`` again (the
   replica that held the lock before us has stored a fresh one), and only then fetch from WeChat and
   ``SET`` the token with its expiry.
3. A token WeChat calls invalid or expired is deleted only if it is still the stored one (compare
   and delete in one Lua script), so a replica reporting an old token never removes a newer one.

Without Redis, ``LocalTokenStore`` keeps the token in this process as before. wechatpy's
``RedisStorage`` was considered: it is synchronous (it would block the event loop), has no lock and
no compare-and-delete, so two replicas would still both fetch. When Redis cannot be asked,
``TokenStoreUnavailable`` is raised: the outbox retries later rather than each replica fetching its
own token (which is the fight this module prevents, and spends the daily quota).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import redis.asyncio as aredis
from redis.exceptions import LockError, RedisError

__all__ = ["LocalTokenStore", "RedisTokenStore", "TokenStore", "TokenStoreUnavailable", "token_store_for"]

log = logging.getLogger(__name__)

PREFIX = "supportbot:wechat:"
SCHEMES = ("redis://", "rediss://", "unix://")
# (token, seconds it may be used): one call to WeChat's /cgi-bin/token
Fetch = Callable[[], Awaitable[tuple[str, float]]]
_FORGET_IF_SAME = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class TokenStoreUnavailable(Exception):
    """The shared token could not be read or refreshed (Redis unreachable, or a refresh held too long)."""


class TokenStore(Protocol):
    async def get(self, fetch: Fetch) -> str:
        """The current token, fetched with ``fetch`` when there is none (by one process at a time)."""

    async def invalidate(self, token: str) -> None:
        """WeChat refused ``token``: forget it, unless a newer one has replaced it."""

    async def aclose(self) -> None: ...


class LocalTokenStore:
    """The token in this process (one gateway): one fetch at a time, kept until shortly before it expires."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, fetch: Fetch) -> str:
        async with self._lock:  # one fetch at a time: each fetch invalidates the previous token
            if self._token is None or self.clock() >= self._expires_at:
                token, valid_s = await fetch()
                self._token, self._expires_at = token, self.clock() + valid_s
            return self._token

    async def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def aclose(self) -> None:
        return None


class RedisTokenStore:
    """The token of ``app_id`` in Redis at ``url``, shared by every replica; refreshed under a Redis lock.

    ``refresh_timeout_s`` bounds one fetch from WeChat: the lock expires after it (a replica that died
    holding it blocks the others no longer), and a replica waits at most that long for another's fetch.
    """

    def __init__(
        self, url: str, app_id: str, *, prefix: str = PREFIX, refresh_timeout_s: float = 45.0, timeout_s: float = 2.0
    ) -> None:
        if not url.startswith(SCHEMES):
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            raise ValueError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got the scheme {scheme!r})")
        self.key = f"{prefix}{app_id}:access_token"
        self.lock_name = f"{prefix}{app_id}:refresh"
        self.refresh_timeout_s = refresh_timeout_s
        self._redis = aredis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
        self._forget = self._redis.register_script(_FORGET_IF_SAME)
        self._local = asyncio.Lock()  # this process's callers queue here, not on the Redis lock

    def __repr__(self) -> str:  # never the URL (a password) nor the token
        return f"RedisTokenStore(key={self.key!r})"

    async def get(self, fetch: Fetch) -> str:
        try:
            stored = await self._redis.get(self.key)
            if stored:
                return bytes(stored).decode()
            async with self._local:
                return await self._refresh(fetch)
        except (RedisError, OSError) as err:
            log.warning("WeChat access token store unavailable", extra={"error": f"{type(err).__name__}: {err}"})
            raise TokenStoreUnavailable(
                f"the shared WeChat access token cannot be read (Redis): {type(err).__name__}"
            ) from err

    async def _refresh(self, fetch: Fetch) -> str:
        lock = self._redis.lock(
            self.lock_name, timeout=self.refresh_timeout_s, blocking_timeout=self.refresh_timeout_s, thread_local=False
        )
        if not await lock.acquire():
            raise TokenStoreUnavailable("another replica has been refreshing the WeChat access token for too long")
        try:
            stored = await self._redis.get(self.key)  # the previous holder's fresh token
            if stored:
                return bytes(stored).decode()
            token, valid_s = await fetch()
            if await lock.owned():  # else our lock expired mid-fetch and another replica may have a newer one
                await self._redis.set(self.key, token, px=max(1, int(valid_s * 1000)))
            log.info("WeChat access token fetched for every replica", extra={"valid_s": round(valid_s)})
            return token
        finally:
            with contextlib.suppress(LockError, RedisError, OSError):
                await lock.release()

    async def invalidate(self, token: str) -> None:
        try:
            await self._forget(keys=[self.key], args=[token])
        except (RedisError, OSError) as err:  # it expires by itself; the next send may fail once more
            log.warning("could not forget a refused WeChat access token", extra={"error": type(err).__name__})

    async def aclose(self) -> None:
        await self._redis.aclose()


def token_store_for(redis_url: str, app_id: str, refresh_timeout_s: float = 45.0) -> TokenStore:
    """Shared through Redis when ``REDIS_URL`` is set (several replicas), else in this process."""
    return RedisTokenStore(redis_url, app_id, refresh_timeout_s=refresh_timeout_s) if redis_url else LocalTokenStore()
