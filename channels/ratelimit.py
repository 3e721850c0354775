"""Rate limits: per sender (a sliding window in process memory, or in Redis for every gateway replica
when ``REDIS_URL`` is set: ``sender_limiter``), and per client address and for everyone together
(``RequestLimits``, the ``limits`` library, shared through Redis when configured).

A customer (or a script pretending to be one) who sends more than ``limit`` messages within
``window_s`` seconds gets one polite notice per window and the excess is not passed to the bot, so
one sender cannot starve Rasa for everyone else. Memory is bounded by forgetting senders that
have been quiet for a whole window. In memory the state is per process; with ``REDIS_URL`` set,
``SharedSenderLimiter`` counts in Redis, so a sender's messages spread by a round-robin balancer over
several replicas are counted together (and the notice is sent once per window, not once per replica).
Channel-agnostic: any channel (widget, REST) can use it with its own sender ids.

A per-sender limit alone is no defence against a script that invents a new sender id per message,
so customer messages (REST, widget) are also counted per client address (``RATE_LIMIT_PER_IP``) and
all together (``RATE_LIMIT_GLOBAL``), and webhook calls per address (``RATE_LIMIT_WEBHOOK``). Those
use a moving window in ``RATE_LIMIT_STORAGE`` ("memory://" per process; "redis://…" shared by
several gateways; left at "memory://" with ``REDIS_URL`` set, ``REDIS_URL`` is used: ``limits_storage``). The client address is the connection's peer, or the ``X-Forwarded-For`` address
uvicorn accepts from the proxies in ``FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anyio import to_thread
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from settings import SecuritySettings

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["Decision", "Quota", "Refusal", "RequestLimits", "SenderLimiter", "SharedSenderLimiter",
           "SlidingWindowLimiter", "limits_storage", "sender_limiter"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Only the first refusal in a window asks for a notice, so a flood gets one answer, not a flood.
    notify: bool = False


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("rate limit needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._notified_at: dict[str, float] = {}
        self._last_sweep = clock()

    def check(self, key: str) -> Decision:
        """Count one message from ``key`` and say whether it may go on to the bot."""
        now = self._clock()
        self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) < self.limit:
            hits.append(now)
            return Decision(allowed=True)
        notified = self._notified_at.get(key)
        if notified is not None and notified > now - self.window_s:
            return Decision(allowed=False, notify=False)
        self._notified_at[key] = now
        return Decision(allowed=False, notify=True)

    def _sweep(self, now: float) -> None:
        """Forget senders silent for a whole window (at most once per window, so it stays cheap)."""
        if now - self._last_sweep < self.window_s:
            return
        self._last_sweep = now
        horizon = now - self.window_s
        for key in [k for k, hits in self._hits.items() if not hits or hits[-1] <= horizon]:
            del self._hits[key]
        for key in [k for k, at in self._notified_at.items() if at <= horizon]:
            del self._notified_at[key]

    async def acheck(self, key: str) -> Decision:
        return self.check(key)

    def __len__(self) -> int:
        return len(self._hits)


class SharedSenderLimiter:
    """``SlidingWindowLimiter``'s rule counted in ``limits`` storage (Redis) for every replica: at most
    ``limit`` messages per sender in a moving window of ``window_s`` (whole seconds, rounded up), and
    one notice per window. ``acheck`` keeps the round trip off the event loop."""

    def __init__(self, limit: int, window_s: float, storage_uri: str) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("rate limit needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = max(1, math.ceil(window_s))
        self._messages = RateLimitItemPerSecond(limit, self.window_s)
        self._notices = RateLimitItemPerSecond(1, self.window_s)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def check(self, key: str) -> Decision:
        """Count one message from ``key`` and say whether it may go on to the bot."""
        if self._limiter.hit(self._messages, "sender", key):
            return Decision(allowed=True)
        return Decision(allowed=False, notify=self._limiter.hit(self._notices, "sender-notice", key))

    async def acheck(self, key: str) -> Decision:
        return await to_thread.run_sync(self.check, key)


SenderLimiter = SlidingWindowLimiter | SharedSenderLimiter


def sender_limiter(settings: Settings) -> SenderLimiter:
    """Per sender (``CHANNEL_RATE_LIMIT_*``): in this process, or in Redis when ``REDIS_URL`` is set."""
    count, window_s = settings.channel_rate_limit_count, settings.channel_rate_limit_window_s
    if settings.redis_url:
        return SharedSenderLimiter(count, window_s, settings.redis_url)
    return SlidingWindowLimiter(count, window_s)


def limits_storage(settings: Settings) -> str:
    """``RATE_LIMIT_STORAGE``; left at "memory://" while ``REDIS_URL`` is set, Redis (shared by replicas)."""
    storage: str = settings.rate_limit_storage
    if storage.startswith("memory://") and settings.redis_url:
        return settings.redis_url
    return storage


# --- per address and global (the `limits` library) ------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A request over a limit: which one, and in how many seconds the window lets one through again."""

    scope: str  # "address" | "global" | "webhook" | a Quota's name
    limit: str  # as configured, e.g. "120/minute"
    retry_after_s: int

    @property
    def detail(self) -> str:
        who = "from your address" if self.scope in ("address", "webhook") else "to this service"
        return (f"Too many requests {who} (limit {self.limit}). "
                f"Please wait {self.retry_after_s} s before sending again.")


class Quota:
    """Named moving-window limits over one storage. ``hit`` counts a request unless it is over a limit.

    Synchronous (the in-memory storage takes microseconds and works from worker threads too);
    ``ahit`` runs a networked storage (Redis) in a worker thread so the event loop never waits on it.
    """

    def __init__(self, storage_uri: str = SecuritySettings().rate_limit_storage) -> None:
        self.storage_uri = storage_uri
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._in_memory = storage_uri.startswith("memory://")
        self._items: dict[str, RateLimitItem] = {}

    def _item(self, limit: str) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = parse(limit)  # ValueError on a malformed setting, at first use
        return item

    def hit(self, scope: str, limit: str, *key: str) -> Refusal | None:
        item = self._item(limit)
        if self._limiter.hit(item, scope, *key):
            return None
        reset = self._limiter.get_window_stats(item, scope, *key).reset_time
        return Refusal(scope, limit, max(1, math.ceil(reset - time.time())))

    async def ahit(self, scope: str, limit: str, *key: str) -> Refusal | None:
        if self._in_memory:
            return self.hit(scope, limit, *key)
        return await to_thread.run_sync(self.hit, scope, limit, *key)


class RequestLimits:
    """Customer messages per client address and all together; webhook calls per address."""

    def __init__(self, quota: Quota, per_address: str, global_: str, webhook: str) -> None:
        for limit in (per_address, global_, webhook):
            quota._item(limit)  # a malformed setting fails at start-up, not on the first customer
        self.quota = quota
        self.per_address, self.global_, self.webhook = per_address, global_, webhook

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(Quota(limits_storage(settings)), settings.rate_limit_per_ip, settings.rate_limit_global,
                   settings.rate_limit_webhook)

    async def customer_message(self, address: str | None) -> Refusal | None:
        """One customer message from ``address`` (REST chat, a widget message): None if it may go on."""
        refused = await self.quota.ahit("address", self.per_address, address or "unknown")
        return refused or await self.quota.ahit("global", self.global_)

    async def webhook_call(self, address: str | None) -> Refusal | None:
        return await self.quota.ahit("webhook", self.webhook, address or "unknown")
