"""What the handoff's routes share: the state on ``app.state.handoff`` and who is calling.

Agents: ``current_agent`` takes ``Authorization: Bearer <session token>`` or the ``agent_session``
cookie; a state-changing request made with the cookie must also pass the cross-site check
(``handoff.auth.csrf_refusal``). Websockets without a token in their headers authenticate with a
first frame ``{"type": "auth", "token": ...}``; tokens are never taken from a query string, which
would land in access logs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from anyio import to_thread
from fastapi import Depends, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import StringConstraints

from handoff.accounts import Accounts
from handoff.auth import LoginThrottle, csrf_refusal
from handoff.service import AgentIdentity, HandoffError, HandoffService

COOKIE = "agent_session"
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
SenderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


@dataclass
class HandoffApp:
    """What the routes need, kept on ``app.state.handoff``."""

    service: HandoffService
    accounts: Accounts
    limiter: LoginThrottle


def handoff_app(request: Request | WebSocket) -> HandoffApp:
    state = getattr(request.app.state, "handoff", None)
    if state is None:
        raise HTTPException(503, "human handoff is not configured")
    return state


def bearer_token(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def session_token(request: Request) -> str | None:
    return bearer_token(request) or request.cookies.get(COOKIE)


def client_address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "unknown"


async def current_agent(request: Request) -> AgentIdentity:
    h = handoff_app(request)
    token = bearer_token(request)
    if token is None:
        token = request.cookies.get(COOKIE)
        refusal = token and csrf_refusal(request.method, request.headers, h.service.settings.console_allowed_origins)
        if refusal:
            raise HTTPException(403, refusal)
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


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service operation, turning HandoffError into its HTTP status."""
    try:
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            result = await result
        return result
    except HandoffError as err:
        raise HTTPException(err.status, str(err)) from err


async def run_blocking(fn: Any, *args: Any) -> Any:
    try:
        return await to_thread.run_sync(fn, *args)
    except HandoffError as err:
        raise HTTPException(err.status, str(err)) from err


AUTH_FRAME_TIMEOUT_S = 10.0  # a socket without a token in its headers must send {"type": "auth"} within this


async def first_frame_token(ws: WebSocket) -> str | None:
    """(After accept) the token of a first frame ``{"type": "auth", "token": "..."}``; None for anything else."""
    try:
        with anyio.fail_after(AUTH_FRAME_TIMEOUT_S):
            frame = await ws.receive_json()
    except (TimeoutError, WebSocketDisconnect, RuntimeError, ValueError, KeyError):
        return None
    if isinstance(frame, dict) and frame.get("type") == "auth" and isinstance(frame.get("token"), str):
        return frame["token"][:512]
    return None
