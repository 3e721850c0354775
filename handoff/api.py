"""HTTP and websocket routes of the handoff: the agent API (used by the console); the customer's read
access to their own conversation is in handoff/customer_api.py. Routes are thin: validate, call a
service, return JSON.

Agent authentication: ``POST /api/v1/agent/login`` returns a session token and sets it as the
``agent_session`` cookie (HttpOnly, SameSite=Strict, Secure unless ``agent_cookie_secure`` is off);
every other agent route takes the cookie or ``Authorization: Bearer <token>``. A write made with the
cookie must also pass the cross-site check (deps.py: the console's ``X-Requested-With``
header or a same-origin ``Origin``). The websocket takes the cookie (its ``Origin`` must be ours or
allowed), the bearer header, or a first frame ``{"type": "auth", "token": ...}``; never a query
string, which would land in access logs. Failed sign-ins are throttled per address and per account
before any hashing, and audited. 401 without a valid session, 403 for an agent on an admin route or
a ticket outside their queues. Who is calling and the services are ``deps.py``'s; the bodies answered
are ``handoff/api_models.py``; a refusal is an ``ApiError`` (a service's ``HandoffError`` included).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api_errors import ERROR_RESPONSES, ApiError
from deps import (
    COOKIE,
    AgentIdentity,
    Username,
    bearer_token,
    client_address,
    csrf_refusal,
    handoff_app,
    origin_allowed,
    session_token,
)
from deps import AdminAgent as Admin_
from deps import Agent as Agent_
from handoff import api_models as out
from handoff.auth import LoginBusy, websocket_sign_in
from handoff.customer_api import customer_router
from handoff.events import AGENTS
from storage.ids import OptionalRowId, RowId

if TYPE_CHECKING:
    from handoff.accounts import Accounts
    from handoff.auth import LoginThrottle
    from handoff.service import HandoffService

__all__ = ["HandoffApp", "agent_router", "customer_router"]  # customer routes live in handoff/customer_api.py

agent_router = APIRouter(prefix="/api/v1/agent", tags=["agent"], responses=ERROR_RESPONSES)


@dataclass
class HandoffApp:
    """What the handoff's routes need, kept on ``app.state.handoff`` (``deps.handoff_app`` returns it)."""

    service: HandoffService
    accounts: Accounts
    limiter: LoginThrottle


# --- bodies -------------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(Strict):
    username: Username
    password: str = Field(min_length=1, max_length=256)


class PasswordBody(Strict):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


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
def _throttled(h: HandoffApp, address: str, username: str) -> None:
    wait, scope = h.limiter.retry_after(address, username)
    if wait:
        what = "from this address" if scope == "address" else "for this account"
        raise ApiError(429, f"too many failed sign-ins {what}; try again in {wait} s",
                       headers={"Retry-After": str(wait)})


def _busy() -> ApiError:
    return ApiError(503, "too many sign-ins at once; try again shortly", headers={"Retry-After": "2"})


@agent_router.post("/login", response_model=out.LoginOut)
async def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    h = handoff_app(request)
    settings = h.service.settings
    # Login CSRF (signing a victim into an attacker's account): a browser page elsewhere is refused.
    if request.headers.get("origin") or request.headers.get("referer"):
        refusal = csrf_refusal(request.method, request.headers, settings.console_allowed_origins)
        if refusal:
            raise ApiError(403, refusal)
    address = client_address(request)
    _throttled(h, address, body.username)  # before any hashing: a refused try costs no argon2 work
    try:
        async with h.limiter.hashing():
            result = await to_thread.run_sync(h.accounts.login, body.username, body.password)
    except LoginBusy:
        raise _busy() from None
    if result is None:
        locked = h.limiter.failed(address, body.username)
        await to_thread.run_sync(h.accounts.login_failed, body.username, address, locked)
        raise ApiError(401, "wrong username or password")
    token, expires, agent = result
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/", secure=settings.agent_cookie_secure,
                        max_age=int((expires - h.service.clock()).total_seconds()))
    await h.service.assign_waiting()
    return {"token": token, "expires_at": expires.isoformat(), "agent": agent}


def _forget_cookie(h: HandoffApp, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=h.service.settings.agent_cookie_secure, httponly=True,
                           samesite="strict")


@agent_router.post("/logout", response_model=out.StatusOut)
async def logout(agent: Agent_, request: Request, response: Response) -> dict[str, str]:
    h = handoff_app(request)
    await to_thread.run_sync(h.accounts.logout, session_token(request) or "", agent)
    _forget_cookie(h, response)
    return {"status": "signed out"}


@agent_router.post("/password", response_model=out.StatusOut)
async def change_password(body: PasswordBody, agent: Agent_, request: Request) -> dict[str, str]:
    """Change one's own password (the current one is required); every other session is signed out."""
    h = handoff_app(request)
    address = client_address(request)
    _throttled(h, address, agent.username)  # a stolen session must not become a password-guessing oracle
    try:
        async with h.limiter.hashing():
            ok = await to_thread.run_sync(h.accounts.change_password, agent, session_token(request) or "",
                                          body.current_password, body.new_password)
    except LoginBusy:
        raise _busy() from None
    if not ok:
        h.limiter.failed(address, agent.username)
        raise ApiError(403, "the current password is wrong")
    return {"status": "password changed; other sessions were signed out"}


@agent_router.post("/sessions/revoke", response_model=out.RevokedOut)
async def sign_out_everywhere(agent: Agent_, request: Request, response: Response) -> dict[str, Any]:
    """Sign out on every device, this one included."""
    h = handoff_app(request)
    revoked = await to_thread.run_sync(h.accounts.revoke_sessions, agent, None)
    _forget_cookie(h, response)
    return {"status": "signed out everywhere", "sessions": revoked}


@agent_router.get("/me", response_model=out.AgentView)
async def me(agent: Agent_, request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(handoff_app(request).accounts.me, agent)


@agent_router.post("/status", response_model=out.AgentView)
async def set_status(body: StatusBody, agent: Agent_, request: Request) -> dict[str, Any]:
    h = handoff_app(request)
    view = await to_thread.run_sync(h.accounts.set_status, agent, body.status)
    if body.status == "online":
        await h.service.assign_waiting()
    return view


# --- queues and tickets ---------------------------------------------------------------------------
@agent_router.get("/queues", response_model=list[out.QueueView])
async def queues(agent: Agent_, request: Request) -> list[dict[str, Any]]:
    return await to_thread.run_sync(handoff_app(request).service.queues_overview)


@agent_router.get("/tickets", response_model=list[out.TicketRow])
async def tickets(
    agent: Agent_, request: Request,
    status: Annotated[Literal["open", "mine", "queued", "assigned", "resolved", "handed_back", "abandoned", "closed", "all"],
                      Query()] = "open",
    queue: str | None = None,
) -> list[dict[str, Any]]:
    return await to_thread.run_sync(handoff_app(request).service.list_tickets, agent, status, queue)


@agent_router.get("/tickets/{ticket_id}", response_model=out.TicketDocument)
async def ticket(ticket_id: RowId, agent: Agent_, request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(handoff_app(request).service.ticket_detail, agent, ticket_id)


@agent_router.post("/tickets/{ticket_id}/claim", response_model=out.TicketSummary)
async def claim(ticket_id: RowId, agent: Agent_, request: Request) -> dict[str, Any]:
    return await handoff_app(request).service.claim(agent, ticket_id)


@agent_router.post("/tickets/{ticket_id}/reply", response_model=out.MessageView,
                   response_model_exclude_unset=True)
async def reply(ticket_id: RowId, body: ReplyBody, agent: Agent_, request: Request) -> dict[str, Any]:
    service = handoff_app(request).service
    text = body.text
    if body.canned_id is not None:
        lang = await to_thread.run_sync(service.ticket_language, agent, ticket_id)
        text = service.canned_text(body.canned_id, lang)
    return await service.reply(agent, ticket_id, text or "")


@agent_router.post("/tickets/{ticket_id}/notes", response_model=out.NoteView)
async def note(ticket_id: RowId, body: NoteBody, agent: Agent_, request: Request) -> dict[str, Any]:
    return await handoff_app(request).service.note(agent, ticket_id, body.text)


@agent_router.post("/tickets/{ticket_id}/transfer", response_model=out.TicketSummary)
async def transfer(ticket_id: RowId, body: TransferBody, agent: Agent_, request: Request) -> dict[str, Any]:
    return await handoff_app(request).service.transfer(agent, ticket_id, body.queue, body.agent)


@agent_router.post("/tickets/{ticket_id}/resolve", response_model=out.TicketSummary)
async def resolve(ticket_id: RowId, agent: Agent_, request: Request) -> dict[str, Any]:
    return await handoff_app(request).service.resolve(agent, ticket_id)


@agent_router.post("/tickets/{ticket_id}/handback", response_model=out.TicketSummary)
async def hand_back(ticket_id: RowId, agent: Agent_, request: Request) -> dict[str, Any]:
    return await handoff_app(request).service.hand_back(agent, ticket_id)


@agent_router.get("/canned", response_model=list[out.CannedReply])
async def canned(agent: Agent_, request: Request, language: Literal["en", "zh", "ru"] | None = None) -> list[dict[str, str]]:
    return handoff_app(request).service.canned_replies(language)


# --- admin ----------------------------------------------------------------------------------------
@agent_router.get("/admin/agents", response_model=list[out.AgentView])
async def list_agents(admin: Admin_, request: Request) -> list[dict[str, Any]]:
    return await to_thread.run_sync(handoff_app(request).accounts.list_agents)


@agent_router.post("/admin/agents", status_code=201, response_model=out.AgentView)
async def create_agent(body: NewAgentBody, admin: Admin_, request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(handoff_app(request).accounts.create_agent, admin, body.model_dump())


@agent_router.post("/admin/agents/{username}/disable", response_model=out.AgentView)
async def disable_agent(username: Username, admin: Admin_, request: Request) -> dict[str, Any]:
    """The agent can no longer sign in and is signed out everywhere at once."""
    return await to_thread.run_sync(handoff_app(request).accounts.set_active, admin, username, False)


@agent_router.post("/admin/agents/{username}/enable", response_model=out.AgentView)
async def enable_agent(username: Username, admin: Admin_, request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(handoff_app(request).accounts.set_active, admin, username, True)


@agent_router.post("/admin/agents/{username}/sessions/revoke", response_model=out.AgentSessionsOut)
async def revoke_agent_sessions(username: Username, admin: Admin_, request: Request) -> dict[str, Any]:
    """Sign an agent out on every device (e.g. a lost laptop); they may sign in again."""
    return {"agent": username, "sessions": await to_thread.run_sync(handoff_app(request).accounts.revoke_sessions, admin, username)}


@agent_router.post("/admin/queues", status_code=201, response_model=out.QueueOut)
async def create_queue(body: NewQueueBody, admin: Admin_, request: Request) -> dict[str, Any]:
    return await to_thread.run_sync(handoff_app(request).accounts.create_queue, admin, body.model_dump())


@agent_router.get("/admin/audit", response_model=list[out.AuditEntryView])
async def audit(admin: Admin_, request: Request, ticket_id: OptionalRowId = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return await to_thread.run_sync(handoff_app(request).accounts.audit_log, ticket_id, limit)


# --- live events for the console ---------------------------------------------------------------------
def _visible(agent: AgentIdentity, event: dict[str, Any]) -> bool:
    ticket = event.get("ticket") or {}
    return agent.role == "admin" or ticket.get("queue") in agent.queues or ticket.get("agent_id") == agent.id


@agent_router.websocket("/ws")
async def agent_ws(ws: WebSocket) -> None:
    """Server → console: {"type": "hello"|"ticket.created"|"ticket.assigned"|"ticket.updated"|
    "ticket.agent_silent"|"message"|"note", ...}. Console → server: {"type": "ping"} (keeps presence).
    Authentication: the session cookie or a bearer header, else a first frame {"type": "auth", "token": ...}."""
    h = handoff_app(ws)
    origin = ws.headers.get("origin")  # browsers always send it; other clients may not
    if origin is not None and not origin_allowed(origin, ws.headers.get("host"), h.service.settings.console_allowed_origins):
        await ws.close(code=4403, reason="this origin may not open the console's socket")
        return
    agent: AgentIdentity | None = await websocket_sign_in(
        ws,
        ws.cookies.get(COOKIE) or bearer_token(ws),
        lambda token: to_thread.run_sync(h.accounts.authenticate, token),
        code=4401,
        reason="sign in first",
    )
    if agent is None:
        return
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
