"""Routes of the website widget: the script, the demo page, the websocket and its REST fallback.

GET  /widget.js                 the embeddable script (gzip when the browser accepts it)
GET  /demo[?user=ID][&lang=L]   a sample store page with the widget (ID: a demo customer, signed here)
WS   /api/v1/ws                 the chat socket (protocol.py describes the frames)
POST /api/v1/widget/chat        REST fallback for one message: ChatFrame + identity → reply frame
POST /api/v1/widget/history     REST fallback for the ready frame: identity → state + history

No token or identity ever travels in a URL (URLs land in access logs and browser history): the
socket gets it in the hello frame, the REST fallback in the body.

Customer messages are counted per sender (``CHANNEL_RATE_LIMIT_*``), per client address and for
everyone together (``RATE_LIMIT_PER_IP``, ``RATE_LIMIT_GLOBAL``): over any of them the widget gets a
polite notice in its language (socket ``error`` frame, REST 429 with ``Retry-After``).

The REST fallback takes the same identity fields as the hello frame rather than a ``sender_id``
(as ``POST /api/v1/chat`` does), because the widget's sender id is derived here from the browser
token or the signed user id: a browser must not be able to name someone else's conversation.
Bodies are read as JSON whatever their content type, so the widget can post ``text/plain`` and
skip the CORS preflight.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import html
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.websockets import WebSocket

from api_errors import ApiError, ErrorBody
from channels.events import events_from_settings
from channels.http_guards import limits_for
from channels.notices import notice, pick_language
from channels.push import ChannelPushers
from channels.ratelimit import sender_limiter
from conversations.service import ConversationService, InboundMessage, MessagePending, TurnResult
from settings import Settings
from store.seed import DEMO

from .hub import Connection, WidgetHub
from .identity import IdentityError, WidgetIdentity, resolve_identity, sign_user_id
from .protocol import (
    HISTORY_LIMIT,
    MAX_FRAME_BYTES,
    ChatFrame,
    Hello,
    RestChat,
    RestIdentity,
    error_detail,
    history_item,
)
from .responses import ErrorFrame, PendingFrame, ReadyFrame, ReplyFrame

__all__ = ["install", "router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["widget"])

STATIC_DIR = Path(__file__).resolve().parent / "static"
HELLO_TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 8  # unanswered messages one socket may have; more is a misbehaving client
DEMO_LANGS = ("en", "zh-Hans", "zh-Hant", "ru")
DEMO_USERS = frozenset(order.username for order in DEMO.values())

R = TypeVar("R", RestChat, RestIdentity)  # the REST fallback's frames


def install(app: FastAPI) -> WidgetHub:
    """Create the hub and register it as the "widget" pusher (call in the lifespan, after conversations)."""
    settings: Settings = app.state.settings
    events = getattr(app.state, "events", None)  # the process's one live-event bus (handoff uses it too)
    if events is None:
        events = app.state.events = events_from_settings(settings)
    hub = WidgetHub(app.state.conversations, sender_limiter(settings), events)
    pushers = getattr(app.state, "pushers", None)
    if pushers is None:
        pushers = app.state.pushers = ChannelPushers()
    pushers.register("widget", hub)
    app.state.widget_hub = hub
    return hub


# --- static assets ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str


@lru_cache(maxsize=8)
def _load_asset(name: str, mtime_ns: int) -> Asset:
    body = (STATIC_DIR / name).read_bytes()
    return Asset(body, gzip.compress(body, 9, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:16] + '"')


def asset(name: str) -> Asset:
    """The file's bytes and gzip, re-read only when it changes (so editing widget.js needs no restart)."""
    return _load_asset(name, (STATIC_DIR / name).stat().st_mtime_ns)


@router.get("/widget.js", include_in_schema=False, response_class=Response)
async def widget_js(request: Request) -> Response:
    js = asset("widget.js")
    headers = {"ETag": js.etag, "Cache-Control": "public, max-age=300", "Vary": "Accept-Encoding",
               "Access-Control-Allow-Origin": "*"}
    if request.headers.get("if-none-match") == js.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(js.gzipped, media_type="text/javascript; charset=utf-8", headers=headers)
    return Response(js.body, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get("/demo", response_class=HTMLResponse, include_in_schema=False)
async def demo_page(
    request: Request,
    user: str | None = Query(default=None, description="a demo store customer's username, signed here"),
    lang: str = Query(default="en", description="the page's <html lang>: en, zh-Hans, zh-Hant or ru"),
) -> HTMLResponse:
    """The sample store page. Signing happens only for the demo store's own customers (store.seed.DEMO)."""
    settings: Settings = request.app.state.settings
    if not (settings.widget_demo and settings.demo):  # it signs demo customers' ids: never in production
        raise ApiError(404, "the demo page exists only in demo mode (SUPPORTBOT_DEMO=true, WIDGET_DEMO=true)")
    if lang not in DEMO_LANGS:
        raise ApiError(422, f"lang must be one of {', '.join(DEMO_LANGS)}")
    attrs: dict[str, str] = {"src": "/widget.js", "data-title": "Demo Store", "data-color": "#0f766e"}
    secret = settings.widget_user_secret.get_secret_value()
    if user is not None:
        if user not in DEMO_USERS:
            raise ApiError(422, f"user must be one of the demo store's customers: {', '.join(sorted(DEMO_USERS))}")
        if secret:
            attrs.update({"data-user-id": user, "data-user-sig": sign_user_id(user, secret)})
            who = f"Signed in as <b>{html.escape(user)}</b> (user id signed by the gateway with WIDGET_USER_SECRET)."
        else:
            who = ("WIDGET_USER_SECRET is not set, so the gateway cannot sign a user id: "
                   "the widget below is anonymous.")
    else:
        who = "Anonymous visitor (a random token kept in this browser's localStorage)."
    tag = "<script " + " ".join(f'{k}="{html.escape(v)}"' for k, v in attrs.items()) + " defer></script>"
    page = asset("demo.html").body.decode()
    page = page.replace("{{lang}}", lang).replace("{{identity}}", who).replace("{{widget}}", tag)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


# --- identity and origin -----------------------------------------------------------------------
def origin_allowed(origin: str | None, settings: Settings) -> bool:
    """Any origin when none are configured; otherwise exact match (a request without Origin is not a page)."""
    allowed = settings.widget_allowed_origins
    return not allowed or (origin is not None and origin.rstrip("/") in {o.rstrip("/") for o in allowed})


def identify(fields: Hello | RestIdentity | RestChat, settings: Settings) -> WidgetIdentity:
    return resolve_identity(fields.token, fields.user_id, fields.user_sig, settings.widget_user_secret.get_secret_value())


# --- frames shared by the socket and the REST fallback -------------------------------------------
async def ready_frame(service: ConversationService, identity: WidgetIdentity) -> dict[str, Any]:
    transcript = await to_thread.run_sync(service.transcript, identity.sender_id)
    found = await to_thread.run_sync(service.conversation_state, identity.sender_id)
    state, language = found or ("bot", None)
    return {
        "type": "ready", "state": state, "language": language, "user": identity.verified_username,
        "history": [history_item(e) for e in transcript[-HISTORY_LIMIT:]],
    }


def reply_frame(client_id: str, result: TurnResult) -> dict[str, Any]:
    return {
        "type": "reply", "id": client_id, "state": result.state, "language": result.language,
        "duplicate": result.duplicate, "messages": [m.as_dict() for m in result.messages],
    }


def pending_frame(client_id: str, retry_after_s: int) -> dict[str, Any]:
    return {
        "type": "pending", "id": client_id, "retry_after": retry_after_s,
        "detail": "The assistant is restarting; your message is saved and will be answered once when resent.",
    }


def rate_notice(locale: str | None) -> str:
    """The channels' shared polite notice (channels/notices.py), in the widget's interface language."""
    return notice("rate_limited", *pick_language(locale))


def inbound(frame: ChatFrame, identity: WidgetIdentity, address: str | None = None) -> InboundMessage:
    """``address``: the browser's address, for the handoff's tickets-per-address cap (never sent to Rasa)."""
    metadata = {**identity.metadata, "client_address": address} if address else identity.metadata
    return InboundMessage(
        sender_id=identity.sender_id, channel="widget", text=frame.text, payload=frame.payload,
        language=frame.language, message_id=frame.id, metadata=metadata,
    )


# --- websocket ------------------------------------------------------------------------------
async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.close(code=code, reason=reason.encode()[:123].decode(errors="ignore"))


async def _read_hello(websocket: WebSocket) -> Hello | str:
    """The hello frame, or the reason it is unusable."""
    try:
        event = await asyncio.wait_for(websocket.receive(), HELLO_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    if event["type"] == "websocket.disconnect":
        return "disconnected"
    raw = event.get("text")
    if raw is None or len(raw) > MAX_FRAME_BYTES:
        return "the first frame must be a JSON text hello frame"
    try:
        return Hello.model_validate_json(raw)
    except ValidationError as err:
        return f"bad hello frame: {error_detail(err)}"


@router.websocket("/api/v1/ws")
async def widget_socket(websocket: WebSocket) -> None:
    app = websocket.app
    settings: Settings = app.state.settings
    await websocket.accept()
    if not origin_allowed(websocket.headers.get("origin"), settings):
        await _close(websocket, 4403, "this page's origin may not use the chat (WIDGET_ALLOWED_ORIGINS)")
        return
    hello = await _read_hello(websocket)
    if hello == "disconnected":
        return
    if hello == "timeout":
        await _close(websocket, 4408, f"no hello frame within {HELLO_TIMEOUT_S:.0f} s")
        return
    if isinstance(hello, str):
        await _close(websocket, 4400, hello)
        return
    try:
        identity = identify(hello, settings)
    except IdentityError as err:
        await _close(websocket, 4401, str(err))
        return
    hub: WidgetHub = app.state.widget_hub
    service: ConversationService = app.state.conversations
    conn = Connection(websocket, identity, hello.locale)
    conn.address = websocket.client.host if websocket.client else None
    hub.add(conn)
    try:
        await hub.ready(conn.sender_id)  # pushes from other replicas reach this socket from here on
        await conn.send(await ready_frame(service, identity))
        await _serve(conn, hub, service, settings)
    finally:
        hub.remove(conn)


async def _serve(conn: Connection, hub: WidgetHub, service: ConversationService, settings: Settings) -> None:
    """Read frames until the browser goes; each message is answered in its own task (pings stay prompt)."""
    while True:
        event = await conn.websocket.receive()
        if event["type"] == "websocket.disconnect":
            return
        raw = event.get("text")
        if raw is None:
            await conn.send({"type": "error", "detail": "send JSON text frames"})
            continue
        if len(raw) > MAX_FRAME_BYTES:
            await conn.send({"type": "error", "detail": f"frame over {MAX_FRAME_BYTES} bytes"})
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            await conn.send({"type": "error", "detail": "frames must be JSON"})
            continue
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "ping":
            await conn.send({"type": "pong"})
        elif kind == "history":
            await conn.send(await ready_frame(service, conn.identity))
        elif kind == "message":
            await _accept_message(conn, data, hub, service, settings)
        else:
            await conn.send({"type": "error", "detail": "type must be message, ping or history"})


async def _accept_message(
    conn: Connection, data: dict[str, Any], hub: WidgetHub, service: ConversationService, settings: Settings
) -> None:
    client_id = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        frame = ChatFrame.model_validate(data)
    except ValidationError as err:
        await conn.send({"type": "error", "id": client_id, "detail": error_detail(err)})
        return
    refused = await limits_for(conn.websocket.app).customer_message(conn.address)
    if refused is not None or not (await hub.limiter.acheck(conn.sender_id)).allowed:
        error = {"type": "error", "id": frame.id, "rate_limited": True, "detail": rate_notice(conn.locale)}
        if refused is not None:
            error["retry_after"] = refused.retry_after_s
        await conn.send(error)
        return
    if len(conn.in_flight) >= MAX_IN_FLIGHT:
        await conn.send({"type": "error", "id": frame.id, "retry": True,
                         "detail": f"more than {MAX_IN_FLIGHT} messages waiting for an answer; resend later"})
        return
    await conn.send({"type": "ack", "id": frame.id})
    task = asyncio.create_task(_answer(conn, frame, service, settings))
    conn.in_flight.add(task)
    hub.tasks.add(task)  # a strong reference: the task outlives the socket if the browser leaves
    task.add_done_callback(conn.in_flight.discard)
    task.add_done_callback(hub.tasks.discard)


async def _answer(conn: Connection, frame: ChatFrame, service: ConversationService, settings: Settings) -> None:
    try:
        result = await service.handle(inbound(frame, conn.identity, conn.address))
    except MessagePending:
        await conn.send(pending_frame(frame.id, settings.retry_after_s))
    except Exception:
        log.exception("widget message failed", extra={"sender_id": conn.sender_id, "message_id": frame.id})
        await conn.send({"type": "error", "id": frame.id, "retry": True,
                         "detail": "the message could not be answered; it will be resent"})
    else:
        await conn.send(reply_frame(frame.id, result))


# --- REST fallback ----------------------------------------------------------------------------
def _cors_headers(request: Request) -> dict[str, str] | None:
    """CORS headers for the page's origin; None when that origin is not allowed."""
    origin = request.headers.get("origin")
    if not origin_allowed(origin, request.app.state.settings):
        return None
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}


_REST_REFUSALS: dict[int | str, dict[str, Any]] = {  # what ``_read`` refuses, in both routes' docs
    401: {"model": ErrorBody, "description": "no valid identity (token, or signed user id)"},
    403: {"model": ErrorBody, "description": "this page's origin may not use the chat"},
}


async def _read(request: Request, model: type[R]) -> tuple[dict[str, str], R, WidgetIdentity]:
    """A REST call's CORS headers, frame and customer; refused (``ApiError``, with the CORS headers once the
    origin is allowed): origin 403, body over ``MAX_FRAME_BYTES`` 413, not the frame 422, no identity 401."""
    headers = _cors_headers(request)
    if headers is None:
        raise ApiError(403, "this page's origin may not use the chat")
    raw = await request.body()
    if len(raw) > MAX_FRAME_BYTES:
        raise ApiError(413, f"body over {MAX_FRAME_BYTES} bytes", headers=headers)
    try:
        body = model.model_validate_json(raw)
        return headers, body, identify(body, request.app.state.settings)
    except ValidationError as err:
        raise ApiError(422, error_detail(err), headers=headers) from None
    except IdentityError as err:
        raise ApiError(401, str(err), headers=headers) from None


@router.options("/api/v1/widget/{route}", include_in_schema=False, response_class=Response)
async def widget_preflight(route: str, request: Request) -> Response:
    headers = _cors_headers(request)
    if headers is None or route not in ("chat", "history"):
        return Response(status_code=403)
    headers.update({"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "content-type",
                    "Access-Control-Max-Age": "600"})
    return Response(status_code=204, headers=headers)


@router.post("/api/v1/widget/chat", response_model=ReplyFrame, responses={
    **_REST_REFUSALS,
    413: {"model": ErrorBody, "description": "body too large"},
    422: {"model": ErrorBody, "description": "not a chat frame"},
    429: {"model": ErrorFrame, "description": "too many messages (Retry-After)"},
    503: {"model": PendingFrame, "description": "the assistant is restarting; resend the same id (Retry-After)"},
})
async def widget_chat(request: Request) -> Response:
    """REST fallback for one message (when websockets are blocked): the same reply frame, or 503 pending."""
    headers, body, identity = await _read(request, RestChat)
    settings: Settings = request.app.state.settings
    hub: WidgetHub = request.app.state.widget_hub
    address = request.client.host if request.client else None
    refused = await limits_for(request.app).customer_message(address)
    if refused is not None or not (await hub.limiter.acheck(identity.sender_id)).allowed:
        window = str(refused.retry_after_s) if refused is not None else f"{settings.channel_rate_limit_window_s:.0f}"
        return JSONResponse({"type": "error", "id": body.id, "rate_limited": True, "detail": rate_notice(body.locale)},
                            status_code=429, headers={**headers, "Retry-After": window})
    service: ConversationService = request.app.state.conversations
    try:
        result = await service.handle(inbound(body, identity, address))
    except MessagePending:
        return JSONResponse(pending_frame(body.id, settings.retry_after_s), status_code=503,
                            headers={**headers, "Retry-After": str(settings.retry_after_s)})
    return JSONResponse(reply_frame(body.id, result), headers=headers)


@router.post("/api/v1/widget/history", response_model=ReadyFrame, responses={
    **_REST_REFUSALS,
    422: {"model": ErrorBody, "description": "not an identity frame"},
})
async def widget_history(request: Request) -> Response:
    """REST fallback for the ready frame: the conversation's state and history (polled while on REST)."""
    headers, _, identity = await _read(request, RestIdentity)
    return JSONResponse(await ready_frame(request.app.state.conversations, identity), headers=headers)
