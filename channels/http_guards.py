"""Guards in front of every HTTP route: body size caps, per-address rate limits, and 422s that
never echo what was sent.

* **Body size.** Every request body is capped at ``MAX_BODY_BYTES`` (64 KB: chat, widget, webhooks,
  agent and ops JSON), the upload routes and the action server (``UPLOAD_ROUTES``) at ``MAX_UPLOAD_BYTES``. A declared
  ``Content-Length`` over the cap is refused with 413 before anything is read; a body without one
  (chunked) is counted while it streams and refused with 413 as soon as it passes the cap, so no
  route ever buffers more than its cap.
* **Rate limits** (channels/ratelimit.py ``RequestLimits``): ``POST /api/v1/chat`` per client
  address and globally, the Telegram and WeChat webhooks per address. Over a limit: 429 with
  ``Retry-After`` and a message saying which limit, before the body is read. (The widget counts
  its socket messages and REST fallback in channels/widget/routes.py, with notices in the
  customer's language.)
* **Validation errors** (422) list each error's ``loc``, ``msg`` and ``type`` only: FastAPI's default
  also returns the submitted ``input``, which turned a 2 MB body into a 2 MB answer. Client-chosen
  names in ``loc`` (an unknown field) and messages are shortened.

``install(app)`` wires all three (server.py's create_app).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channels.ratelimit import Refusal, RequestLimits
from settings import Settings

__all__ = ["BodyTooLarge", "RequestGuard", "UPLOAD_ROUTES", "install", "limits_for", "validation_error"]

# (method, path pattern) of the routes that take large bodies: they get MAX_UPLOAD_BYTES instead of
# MAX_BODY_BYTES. File uploads (support ops has no upload route today; add it here when it gets one),
# and the action server, which Rasa calls with the whole domain and the conversation's tracker
# (hundreds of KB; only Rasa may call it, with the action server's token).
UPLOAD_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("POST", re.compile(r"^/api/v1/admin/kb/articles/?$")),
    ("PUT", re.compile(r"^/api/v1/admin/kb/articles/[^/]+/?$")),
    ("POST", re.compile(r"^/actions/webhook/?$")),
)
# Routes counted per client address before they run: "customer" = customer messages (per address
# and global), "webhook" = channel webhook calls (per address: Telegram's and WeChat's servers, and
# every other push channel's under /webhooks/<name>).
RATE_LIMITED: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/api/v1/chat/?$"), "customer"),
    ("*", re.compile(r"^/webhooks/[^/]+/?$"), "webhook"),
)
MAX_LOC_CHARS = 40  # a client-chosen field name in a 422's loc is cut to this
MAX_MSG_CHARS = 200
MAX_ERRORS = 20


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its cap (routes re-raise HTTPExceptions)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes; nothing was stored")


def limits_for(app: Any) -> RequestLimits:
    """The app's per-address limits (created from its settings on first use)."""
    limits = getattr(app.state, "request_limits", None)
    if limits is None:
        limits = app.state.request_limits = RequestLimits.from_settings(app.state.settings)
    return limits


def body_limit(method: str, path: str, settings: Settings) -> int:
    if any(method == m and p.match(path) for m, p in UPLOAD_ROUTES):
        return settings.max_upload_bytes
    return settings.max_body_bytes


def rate_kind(method: str, path: str) -> str | None:
    return next((kind for m, p, kind in RATE_LIMITED if m in ("*", method) and p.match(path)), None)


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def too_many(refusal: Refusal) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"detail": refusal.detail, "rate_limited": True, "retry_after": refusal.retry_after_s},
            {"Retry-After": str(refusal.retry_after_s)})


class RequestGuard:
    """Pure ASGI middleware (no body buffering of its own): rate limits, then the body cap."""

    def __init__(self, app: ASGIApp, settings: Settings, limits: Callable[[], RequestLimits]) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        kind = rate_kind(method, path)
        if kind is not None:
            limits = self.limits()
            address = client_address(scope)
            refused = await (limits.customer_message(address) if kind == "customer" else limits.webhook_call(address))
            if refused is not None:
                body, headers = too_many(refused)
                await _send_json(send, 429, body, headers)
                return
        limit = body_limit(method, path, self.settings)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, {"detail": "Content-Length must be a number of bytes"})
                return
            if int(declared) > limit:
                await _send_json(send, 413, {"detail": BodyTooLarge(limit).detail})
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as err:  # not turned into a response on the way out (e.g. raised in a dependency)
            if started:
                raise
            await _send_json(send, 413, {"detail": err.detail})


def _short(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with where and why, never the submitted input (FastAPI's default echoes it back)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": [_short(part, MAX_LOC_CHARS) for part in e.get("loc", ())], "msg": _short(str(e.get("msg", "")),
         MAX_MSG_CHARS), "type": e.get("type")}
        for e in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": [], "msg": f"… and {len(errors) - MAX_ERRORS} more errors", "type": "too_many_errors"})
    return JSONResponse({"detail": detail}, status_code=422)


def install(app: FastAPI) -> None:
    """Body caps, per-address limits and input-free 422s for every route of ``app``."""
    settings: Settings = app.state.settings
    limits_for(app)  # now: a malformed RATE_LIMIT_* setting stops the start, not the first customer
    app.add_middleware(RequestGuard, settings=settings, limits=lambda: limits_for(app))
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]] = validation_error
    app.add_exception_handler(RequestValidationError, handler)
