"""The Redis at 127.0.0.1:6379 for the scale-out tests: skipped with the reason when it does not
answer, except under CI=true, where the test fails instead (as PostgreSQL's in store_fixtures.py)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable

import pytest
import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires Redis. {reason}")
        pytest.skip(reason)
    return REDIS_URL


def unique_prefix() -> str:
    """A channel prefix of its own for one test, so concurrent test runs never hear each other."""
    return f"test-{uuid.uuid4().hex[:12]}:events:"


def kill_clients(name: str) -> int:
    """``CLIENT KILL`` every connection named ``name`` (a bus's ``client_name``): a dropped connection."""
    admin = redis.Redis.from_url(REDIS_URL)
    killed = 0
    for client in admin.client_list():
        if client.get("name") == name:
            killed += admin.client_kill_filter(_id=client["id"])
    admin.close()
    return killed


async def until(condition: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    """Wait for ``condition`` (a background reconnect, say); fail naming ``what`` if it never holds."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.02)
