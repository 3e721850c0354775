"""Per-sender rate limiting: a sliding window in process memory.

A customer (or a script pretending to be one) who sends more than ``limit`` messages within
``window_s`` seconds gets one polite notice per window and the excess is not passed to the bot, so
one sender cannot starve Rasa for everyone else. Memory is bounded by forgetting senders that
have been quiet for a whole window. The state is per process: a deployment with several gateway
replicas limits per replica (enough against floods, which is the point; not a billing meter).
Channel-agnostic: any channel (widget, REST) can use it with its own sender ids.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Decision", "SlidingWindowLimiter"]


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

    def __len__(self) -> int:
        return len(self._hits)
