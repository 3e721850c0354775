"""Agent accounts: argon2 password hashes, session tokens and the sign-in throttle; and
``websocket_sign_in``, how the console's and the customer's sockets take their token.

Sign-in throttle: failed sign-ins are counted per client address and per account (moving windows
of the ``limits`` library in ``RATE_LIMIT_STORAGE``; when that is left in memory and ``REDIS_URL``
is set, in that Redis, shared by the gateway replicas), and checked *before* the password is
hashed, so neither guessing one account from many addresses nor rotating usernames from one address
gets more than its budget, and a refused attempt costs no argon2 work. At most
``login_max_concurrent_hashes`` argon2 checks run at once per process (each takes ~64 MiB and a
core of that process's host, so this bound stays per replica); a sign-in that cannot get a slot
within ``HASH_WAIT_S`` is answered 503 with Retry-After.

The cross-site checks of cookie-authenticated requests are ``deps.py``'s (``csrf_refusal``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.websockets import WebSocket

from channels.ratelimit import limits_storage
from deps import first_frame_token
from settings import SecuritySettings

_SECURITY = SecuritySettings()  # the defaults, written once in settings/sections.py (no environment read here)

_hasher = PasswordHasher()
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

MIN_PASSWORD_CHARS = 10
HASH_WAIT_S = 3.0  # a sign-in waits at most this long for a free hashing slot, then 503


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_session_token() -> tuple[str, str]:
    """(token for the client, SHA-256 hex kept in the database)."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LoginBusy(Exception):
    """Every hashing slot stayed busy: answer 503 with Retry-After."""


class LoginThrottle:
    """Failed sign-ins per client address and per account, and a bound on concurrent password checks."""

    def __init__(self, per_ip: str = _SECURITY.rate_limit_login_per_ip, per_account: str = _SECURITY.rate_limit_login_per_account,
                 *, storage: str = _SECURITY.rate_limit_storage, max_concurrent_hashes: int = _SECURITY.login_max_concurrent_hashes,
                 hash_wait_s: float = HASH_WAIT_S) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage))
        self._limits = (("address", parse(per_ip)), ("account", parse(per_account)))
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent_hashes))
        self._max_waiting = 4 * max(1, max_concurrent_hashes)  # beyond this, busy at once: no unbounded queue
        self._waiting = 0
        self._lock = threading.Lock()
        self.hash_wait_s = hash_wait_s

    @classmethod
    def from_settings(cls, settings: Any) -> LoginThrottle:
        return cls(settings.rate_limit_login_per_ip, settings.rate_limit_login_per_account,
                   storage=limits_storage(settings), max_concurrent_hashes=settings.login_max_concurrent_hashes)

    @staticmethod
    def _keys(address: str, username: str) -> dict[str, str]:
        return {"address": address, "account": username.lower()}

    def retry_after(self, address: str, username: str) -> tuple[int, str | None]:
        """(seconds until a sign-in may be tried, "address" or "account" that is locked); (0, None) when free."""
        keys = self._keys(address, username)
        for scope, item in self._limits:
            if not self._limiter.test(item, "login", scope, keys[scope]):
                reset, _ = self._limiter.get_window_stats(item, "login", scope, keys[scope])
                return max(1, math.ceil(reset - time.time())), scope
        return 0, None

    def failed(self, address: str, username: str) -> list[str]:
        """Count a failure; returns the scopes this failure has just locked (for the audit log)."""
        keys = self._keys(address, username)
        locked = []
        for scope, item in self._limits:
            self._limiter.hit(item, "login", scope, keys[scope])
            if self._limiter.get_window_stats(item, "login", scope, keys[scope]).remaining == 0:
                locked.append(scope)
        return locked

    @contextlib.asynccontextmanager
    async def hashing(self) -> AsyncIterator[None]:
        """A slot for one argon2 check; waits briefly (polling, without holding a thread), else LoginBusy."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self._max_waiting:
                    raise LoginBusy
                self._waiting += 1
            try:
                deadline = time.monotonic() + self.hash_wait_s
                while not self._slots.acquire(blocking=False):
                    if time.monotonic() >= deadline:
                        raise LoginBusy
                    await anyio.sleep(0.02)
            finally:
                with self._lock:
                    self._waiting -= 1
        try:
            yield
        finally:
            self._slots.release()


T = TypeVar("T")


async def websocket_sign_in(
    ws: WebSocket, header_token: str | None, check: Callable[[str], Awaitable[T]], *, code: int, reason: str
) -> T | None:
    """Who is on ``ws``: what ``check`` makes of the token in its headers (refused before the socket is
    accepted), or without one, once accepted, of a first frame ``{"type": "auth", "token": ...}``.

    None (``check`` answered nothing, or no token came): the socket is closed with ``code`` and ``reason``.
    """
    if header_token:
        who = await check(header_token)
        if who:
            await ws.accept()
    else:
        await ws.accept()
        token = await first_frame_token(ws)
        who = await check(token) if token else None
    if not who:
        await ws.close(code=code, reason=reason)
        return None
    return who
