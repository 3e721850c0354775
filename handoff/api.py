"""HTTP and websocket routes of the handoff: the agent API (used by the console) and the customer's
read access to their own conversation. Routes are thin: validate, call a service, return JSON.

Agent authentication: ``POST /api/v1/agent/login`` returns a session token and sets it as the
``agent_session`` cookie (HttpOnly, SameSite=Strict); every other agent route takes the cookie or
``Authorization: Bearer <token>`` (websocket: the cookie or ``?token=``). 401 without a valid
session, 403 for an agent on an admin route or a ticket outside their queues.
Customer routes take the conversation token issued with the chat's first answer
(``X-Conversation-Token`` header, ``Authorization: Bearer``, or ``?token=`` on the websocket).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from handoff.accounts import Accounts
from handoff.auth import LoginLimiter
from handoff.events import AGENTS, conversation_topic
from handoff.service import AgentIdentity, HandoffError, HandoffService

COOKIE = "agent_session"
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
SenderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]

agent_router = APIRouter(prefix="/api/v1/agent", tags=["agent"])
customer_router = APIRouter(prefix="/api/v1/conversations", tags=["chat"])


@dataclass
class HandoffApp:
    """What the routes need, kept on ``app.state.handoff``."""

    service: HandoffService
    accounts: Accounts
    limiter: LoginLimiter


def _app(request: Request | WebSocket) -> HandoffApp:
    state = getattr(request.app.state, "handoff", None)
    if state is None:
        raise HTTPException(503, "human handoff is not configured")
    return state


def _bearer(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def current_agent(request: Request) -> AgentIdentity:
    h = _app(request)
    token = _bearer(request) or request.cookies.get(COOKIE)
    agent = await to_thread.run_sync(h.accounts.authenticate, token)
    if agent is None:
        raise HTTPException(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})
    return agent


async def current_admin(agent: Annotated[AgentIdentity, Depends(current_agent)]) -> AgentIdentity:
    if agent.role != "admin":
        raise HTTPException(403, "admins only")
    return agent


Agent_ = Annotated[AgentIdentity, Depends(current_agent)]
Admin_ = Annotated[AgentIdentity, Depends(current_admin)]


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service operation, turning HandoffError into its HTTP status."""
    try:
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        return result
    except HandoffError as err:
        raise HTTPException(err.status, str(err)) from err


async def _sync(fn: Any, *args: Any) -> Any:
    try:
        return await to_thread.run_sync(fn, *args)
    except HandoffError as err:
        raise HTTPException(err.status, str(err)) from err


# --- bodies -------------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Strict):
    username: Username
    password: str = Field(min_length=1, max_length=256)


class StatusBody(Strict):
    status: Literal["online", "away", "offline"]


class ReplyBody(Strict):
    text: str | None = Field(default=None, max_length=4000)
    canned_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _one(self) -> ReplyBody:
        if (self.text is None or not self.text.strip()) == (self.canned_id is None):
            raise ValueError("give exactly one of text (non-empty) or canned_id")
        return self


class NoteBody(Strict):
    text: str = Field(min_length=1, max_length=4000)


class TransferBody(Strict):
    queue: str | None = Field(default=None, max_length=64)
    agent: Username | None = None


class NewAgentBody(Strict):
    username: Username
    display_name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=256)
    role: Literal["agent", "admin"] = "agent"
    queues: list[str] = []
    capacity: int = Field(default=3, ge=1, le=50)


class NewQueueBody(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,64}$")]
    topic: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,32}$")]
    language: Literal["en", "zh", "ru"]
    timezone: str = "UTC"
    hours: dict[str, list[str]] = {}
    avg_handle_minutes: int = Field(default=6, ge=1, le=600)


# --- sign-in ------------------------------------------------------------------------------------
@agent_router.post("/login")
async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    h = _app(request)
    key = f"{body.username.lower()}|{request.client.host if request.client else '?'}"
    wait = h.limiter.retry_after(key)
    if wait:
        raise HTTPException(429, f"too many failed sign-ins; try again in {wait} s", headers={"Retry-After": str(wait)})
    result = await to_thread.run_sync(h.accounts.login, body.username, body.password)
    if result is None:
        h.limiter.failed(key)
        raise HTTPException(401, "wrong username or password")
    h.limiter.succeeded(key)
    token, expires, agent = result
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        max_age=int((expires - h.service.clock()).total_seconds()))
    await h.service.assign_waiting()
    return {"token": token, "expires_at": expires.isoformat(), "agent": agent}


@agent_router.post("/logout")
async def logout(agent: Agent_, request: Request, response: Response) -> dict[str, str]:
    h = _app(request)
    token = _bearer(request) or request.cookies.get(COOKIE) or ""
    await to_thread.run_sync(h.accounts.logout, token, agent)
    response.delete_cookie(COOKIE, path="/")
    return {"status": "signed out"}


@agent_router.get("/me")
async def me(agent: Agent_, request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(_app(request).accounts.me, agent)


@agent_router.post("/status")
async def set_status(body: StatusBody, agent: Agent_, request: Request) -> dict[str, Any]:
    h = _app(request)
    view = await _sync(h.accounts.set_status, agent, body.status)
    if body.status == "online":
        await h.service.assign_waiting()
    return view


# --- queues and tickets ---------------------------------------------------------------------------
@agent_router.get("/queues")
async def queues(agent: Agent_, request: Request) -> list[dict[str, Any]]:
    return await to_thread.run_sync(_app(request).service.queues_overview)


@agent_router.get("/tickets")
async def tickets(
    agent: Agent_, request: Request,
    status: Annotated[Literal["open", "mine", "queued", "assigned", "resolved", "handed_back", "abandoned", "closed", "all"],
                      Query()] = "open",
    queue: str | None = None,
) -> list[dict[str, Any]]:
    return await to_thread.run_sync(_app(request).service.list_tickets, agent, status, queue)


@agent_router.get("/tickets/{ticket_id}")
async def ticket(ticket_id: int, agent: Agent_, request: Request) -> dict[str, Any]:
    return await _sync(_app(request).service.ticket_detail, agent, ticket_id)


@agent_router.post("/tickets/{ticket_id}/claim")
async def claim(ticket_id: int, agent: Agent_, request: Request) -> dict[str, Any]:
    return await _call(_app(request).service.claim, agent, ticket_id)


@agent_router.post("/tickets/{ticket_id}/reply")
async def reply(ticket_id: int, body: ReplyBody, agent: Agent_, request: Request) -> dict[str, Any]:
    service = _app(request).service
    text = body.text
    if body.canned_id is not None:
        lang = await _sync(service.ticket_language, agent, ticket_id)
        text = await _call(service.canned_text, body.canned_id, lang)
    return await _call(service.reply, agent, ticket_id, text or "")


@agent_router.post("/tickets/{ticket_id}/notes")
async def note(ticket_id: int, body: NoteBody, agent: Agent_, request: Request) -> dict[str, Any]:
    return await _call(_app(request).service.note, agent, ticket_id, body.text)


@agent_router.post("/tickets/{ticket_id}/transfer")
async def transfer(ticket_id: int, body: TransferBody, agent: Agent_, request: Request) -> dict[str, Any]:
    return await _call(_app(request).service.transfer, agent, ticket_id, body.queue, body.agent)


@agent_router.post("/tickets/{ticket_id}/resolve")
async def resolve(ticket_id: int, agent: Agent_, request: Request) -> dict[str, Any]:
    return await _call(_app(request).service.resolve, agent, ticket_id)


@agent_router.post("/tickets/{ticket_id}/handback")
async def hand_back(ticket_id: int, agent: Agent_, request: Request) -> dict[str, Any]:
    return await _call(_app(request).service.hand_back, agent, ticket_id)


@agent_router.get("/canned")
async def canned(agent: Agent_, request: Request, language: Literal["en", "zh", "ru"] | None = None) -> list[dict[str, str]]:
    return _app(request).service.canned_replies(language)


# --- admin ----------------------------------------------------------------------------------------
@agent_router.get("/admin/agents")
async def list_agents(admin: Admin_, request: Request) -> list[dict[str, Any]]:
    return await to_thread.run_sync(_app(request).accounts.list_agents)


@agent_router.post("/admin/agents", status_code=201)
async def create_agent(body: NewAgentBody, admin: Admin_, request: Request) -> dict[str, Any]:
    return await _sync(_app(request).accounts.create_agent, admin, body.model_dump())


@agent_router.post("/admin/queues", status_code=201)
async def create_queue(body: NewQueueBody, admin: Admin_, request: Request) -> dict[str, Any]:
    return await _sync(_app(request).accounts.create_queue, admin, body.model_dump())


@agent_router.get("/admin/audit")
async def audit(admin: Admin_, request: Request, ticket_id: int | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return await to_thread.run_sync(_app(request).accounts.audit_log, ticket_id, limit)


# --- live events for the console ---------------------------------------------------------------------
def _visible(agent: AgentIdentity, event: dict[str, Any]) -> bool:
    ticket = event.get("ticket") or {}
    return agent.role == "admin" or ticket.get("queue") in agent.queues or ticket.get("agent_id") == agent.id


@agent_router.websocket("/ws")
async def agent_ws(ws: WebSocket) -> None:
    """Server → console: {"type": "hello"|"ticket.created"|"ticket.assigned"|"ticket.updated"|
    "ticket.agent_silent"|"message"|"note", ...}. Console → server: {"type": "ping"} (keeps presence)."""
    h = _app(ws)
    token = ws.query_params.get("token") or ws.cookies.get(COOKIE) or _bearer(ws)
    agent = await to_thread.run_sync(h.accounts.authenticate, token)
    if agent is None:
        await ws.close(code=4401, reason="sign in first")
        return
    await ws.accept()
    async with h.service.events.listen(AGENTS) as sub:
        await to_thread.run_sync(h.accounts.touch, agent.id)
        await ws.send_json({"type": "hello", "agent": {"id": agent.id, "username": agent.username,
                                                       "display_name": agent.display_name, "role": agent.role}})

        async def pump() -> None:
            while True:
                event = await sub.get()
                if _visible(agent, event):
                    await ws.send_json(event)

        sender = asyncio.create_task(pump())
        try:
            while True:
                incoming = await ws.receive_json()
                if isinstance(incoming, dict) and incoming.get("type") == "ping":
                    await to_thread.run_sync(h.accounts.touch, agent.id)
                    await ws.send_json({"type": "pong"})
        except (WebSocketDisconnect, RuntimeError, ValueError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


# --- the customer's own conversation -------------------------------------------------------------------
def _customer_token(request: Request | WebSocket) -> str | None:
    return request.headers.get("x-conversation-token") or _bearer(request) or request.query_params.get("token")


@customer_router.get("/{sender_id}/messages")
async def customer_messages(sender_id: SenderId, request: Request,
                            after: Annotated[int, Query(ge=0)] = 0) -> JSONResponse:
    """Messages after id ``after`` (agent replies, queue updates, everything), oldest first."""
    h = _app(request)
    token = _customer_token(request)
    if not token:
        raise HTTPException(401, "conversation token required (issued with the chat's first answer)")
    if not h.service.tokens.check(sender_id, token):
        raise HTTPException(403, "this token is not for this conversation")
    state, messages = await to_thread.run_sync(h.service.customer_messages, sender_id, after)
    return JSONResponse({"sender_id": sender_id, "state": state, "messages": messages})


@customer_router.websocket("/{sender_id}/ws")
async def customer_ws(ws: WebSocket, sender_id: str) -> None:
    """Live messages for one customer: {"type": "message", "message": {...}, "state": ...}; on connect the
    messages after ``?after=`` are sent first as {"type": "backlog", "messages": [...], "state": ...}."""
    h = _app(ws)
    if not h.service.tokens.check(sender_id, _customer_token(ws)):
        await ws.close(code=4403, reason="this token is not for this conversation")
        return
    await ws.accept()
    async with h.service.events.listen(conversation_topic(sender_id)) as sub:
        try:
            after = int(ws.query_params.get("after") or 0)
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
