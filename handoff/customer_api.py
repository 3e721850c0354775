"""The customer's read access to their own conversation: ``GET /api/v1/conversations/{sender_id}/messages``
and the live websocket ``/api/v1/conversations/{sender_id}/ws``.

Both take the conversation token issued with the chat's first answer, in the ``X-Conversation-Token``
header (or ``Authorization: Bearer``); the websocket, whose browser API cannot set headers, may
instead send it as its first frame ``{"type": "auth", "token": ...}``. Never in the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect

from api_errors import ERROR_RESPONSES, ApiError
from deps import SenderId, bearer_token, handoff_app
from handoff.api_models import CustomerMessages
from handoff.auth import websocket_sign_in
from handoff.events import conversation_topic
from storage.ids import MAX_ROW_ID, AfterId

customer_router = APIRouter(prefix="/api/v1/conversations", tags=["chat"], responses=ERROR_RESPONSES)


def _customer_token(request: Request | WebSocket) -> str | None:
    """From a header only: a token in the URL would be written to access logs and proxies' logs."""
    return request.headers.get("x-conversation-token") or bearer_token(request)


@customer_router.get("/{sender_id}/messages", response_model=CustomerMessages, response_model_exclude_unset=True)
async def customer_messages(sender_id: SenderId, request: Request, after: AfterId = 0) -> dict[str, Any]:
    """Messages after id ``after`` (agent replies, queue updates, everything), oldest first."""
    h = handoff_app(request)
    token = _customer_token(request)
    if not token:
        raise ApiError(401, "conversation token required (issued with the chat's first answer)")
    if not h.service.tokens.check(sender_id, token):
        raise ApiError(403, "this token is not for this conversation")
    state, messages = await to_thread.run_sync(h.service.customer_messages, sender_id, after)
    return {"sender_id": sender_id, "state": state, "messages": messages}


@customer_router.websocket("/{sender_id}/ws")
async def customer_ws(ws: WebSocket, sender_id: str) -> None:
    """Live messages for one customer: {"type": "message", "message": {...}, "state": ...}; on connect the
    messages after ``?after=`` are sent first as {"type": "backlog", "messages": [...], "state": ...}.
    The token: the X-Conversation-Token header, else a first frame {"type": "auth", "token": ...}."""
    h = handoff_app(ws)

    async def for_this_conversation(token: str) -> bool:
        return bool(h.service.tokens.check(sender_id, token))

    if not await websocket_sign_in(
        ws, _customer_token(ws), for_this_conversation, code=4403, reason="this token is not for this conversation"
    ):
        return
    async with h.service.events.listen(conversation_topic(sender_id)) as sub:
        try:
            after = min(max(int(ws.query_params.get("after") or 0), 0), MAX_ROW_ID)
        except ValueError:
            after = 0
        state, backlog = await to_thread.run_sync(h.service.customer_messages, sender_id, after)
        await ws.send_json({"type": "backlog", "state": state, "messages": backlog})

        async def pump() -> None:
            while True:
                await ws.send_json(await sub.get())

        sender = asyncio.create_task(pump())
        try:
            while True:
                await ws.receive_text()  # the customer writes through their channel; this keeps the socket open
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
