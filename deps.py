"""What the routes depend on, in one place: who is calling (authentication) and the services they call.

Credentials (README "Security"):

- admins (``/api/v1/admin/*``, ``/api/v1/ops/*``, ``/metrics``): ``require_admin``, the
  ``ADMIN_API_TOKEN`` bearer token (constant-time) or an admin agent's console session;
- agents (``/api/v1/agent/*``): ``current_agent`` / ``current_admin`` (an ``AgentIdentity``), a
  session token as ``Authorization: Bearer`` or the ``agent_session`` cookie. A state-changing request
  made with the cookie must also pass the cross-site check (``csrf_refusal``, below);
- our Rasa (the action server): ``require_action_token``, ``X-Action-Token`` (constant-time);
- websockets without a token in their headers: a first frame ``{"type": "auth", "token": ...}``
  (``first_frame_token``). Tokens are never taken from a query string (access logs keep URLs).

Cross-site checks: the session cookie is SameSite=Strict, but that is not relied on alone. A
state-changing request authenticated by the cookie must carry ``X-Requested-With: supportbot-console``
(a custom header, which a browser sends cross-origin only after a CORS preflight that this gateway
never grants) or an ``Origin``/``Referer`` of the gateway itself or of ``console_allowed_origins``.
Bearer-token requests are exempt (a browser never adds that header by itself).

Services live on ``app.state`` (``server.create_app`` sets them in its lifespan); a getter answers
503 until its service is there. Every refusal is an ``api_errors.ApiError``.

Layering: this module sits below the packages whose routes import it (``handoff``, ``kb_index``,
``ops``, ``bot.actions``), so it names none of their classes, not even for type checking
(``tests/test_import_graph.py``): a getter's docstring says what it returns, and what it needs of
a service (an ``authenticate(token)``) is called by name.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import anyio
from anyio import to_thread
from fastapi import Depends, Request, WebSocket, WebSocketDisconnect
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import StringConstraints

from api_errors import ApiError

if TYPE_CHECKING:
    from conversations.service import ConversationService
    from settings import Settings

__all__ = [
    "COOKIE", "Admin", "AdminAgent", "Agent", "AgentIdentity", "SenderId", "Username", "admin_session_check",
    "bearer_token", "client_address", "conversations", "csrf_refusal", "current_admin", "current_agent",
    "first_frame_token", "handoff_app", "knowledge", "ops_app", "origin_allowed", "require_action_token",
    "require_admin", "session_token", "settings_of",
]  # fmt: skip

COOKIE = "agent_session"
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
SenderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
AUTH_FRAME_TIMEOUT_S = 10.0  # a socket without a token in its headers must send {"type": "auth"} within this
ACTION_TOKEN_HEADER = "x-action-token"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "supportbot-console"  # what the console and ops pages send
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AgentIdentity:
    """A signed-in agent, as the routes and the handoff service see them."""

    id: int
    username: str
    display_name: str
    role: str
    queues: tuple[str, ...]


# --- services ----------------------------------------------------------------------------------------
def _service(request: Request | WebSocket, name: str, unavailable: str) -> Any:
    service = getattr(request.app.state, name, None)
    if service is None:
        raise ApiError(503, unavailable)
    return service


def settings_of(request: Request | WebSocket) -> Settings:
    return request.app.state.settings


def conversations(request: Request | WebSocket) -> ConversationService:
    return request.app.state.conversations


def handoff_app(request: Request | WebSocket) -> Any:
    """The handoff's ``handoff.api.HandoffApp`` (service, accounts, sign-in throttle)."""
    return _service(request, "handoff", "human handoff is not configured")


def ops_app(request: Request) -> Any:
    """Support ops' ``ops.service.OpsApp``."""
    return _service(request, "ops", "Support ops is still starting; retry shortly.")


def knowledge(request: Request) -> Any:
    """The ``kb_index.KnowledgeBase`` customers' questions are answered from."""
    return _service(request, "knowledge", "The knowledge base is still loading; retry shortly.")


# --- credentials -------------------------------------------------------------------------------------
def bearer_token(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def session_token(request: Request) -> str | None:
    return bearer_token(request) or request.cookies.get(COOKIE)


def client_address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "unknown"


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


# --- cross-site checks (cookie-authenticated writes) ---------------------------------------------------
def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        return None
    secure = parts.scheme in ("https", "wss")
    return ("https" if secure else "http"), parts.hostname.lower(), port or (443 if secure else 80)


def origin_allowed(origin: str, host: str | None, allowed: Iterable[str] = ()) -> bool:
    """Whether ``origin`` (an Origin header, or a Referer) is this gateway (its Host) or one of ``allowed``."""
    mine = _origin_parts(origin)
    if mine is None:  # "null", garbage: never trusted
        return False
    if any(_origin_parts(a) == mine for a in allowed):
        return True
    if not host:
        return False
    seen = _origin_parts(f"{mine[0]}://{host}")
    # Same host and port; the scheme is not compared because a TLS proxy in front makes ours "http".
    return seen is not None and seen[1:] == mine[1:]


def csrf_refusal(method: str, headers: Mapping[str, str], allowed: Iterable[str] = ()) -> str | None:
    """Why a cookie-authenticated request must be refused as possibly cross-site, or None when it may pass."""
    if method.upper() in SAFE_METHODS:
        return None
    if headers.get(CSRF_HEADER, "").strip().lower() == CSRF_VALUE:
        return None
    origin = headers.get("origin") or headers.get("referer")
    if origin and origin_allowed(origin, headers.get("host"), allowed):
        return None
    return (
        f"cross-site request refused: requests signed in with the session cookie must come from the console "
        f"(X-Requested-With: {CSRF_VALUE}) or use Authorization: Bearer"
    )


# --- agents ------------------------------------------------------------------------------------------
async def current_agent(request: Request) -> AgentIdentity:
    h = handoff_app(request)
    token = bearer_token(request)
    if token is None:
        token = request.cookies.get(COOKIE)
        refusal = token and csrf_refusal(request.method, request.headers, h.service.settings.console_allowed_origins)
        if refusal:
            raise ApiError(403, refusal)
    agent = await to_thread.run_sync(h.accounts.authenticate, token)
    if agent is None:
        raise ApiError(401, "sign in first", headers={"WWW-Authenticate": "Bearer"})
    return agent


async def current_admin(agent: Annotated[AgentIdentity, Depends(current_agent)]) -> AgentIdentity:
    if agent.role != "admin":
        raise ApiError(403, "admins only")
    return agent


Agent = Annotated[AgentIdentity, Depends(current_agent)]
AdminAgent = Annotated[AgentIdentity, Depends(current_admin)]


# --- admins (the admin API, support ops) ---------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False)


async def admin_session_check(request: Request) -> str | None:
    """An admin agent's console session: ``agent:<username>``, or None (not signed in, not an admin, no handoff).

    The session token comes as a bearer token or the console's cookie; a write made with the cookie
    must pass the cross-site check (the ops page sends ``X-Requested-With: supportbot-console``),
    else 403: SameSite alone is not relied on.
    """
    handoff = getattr(request.app.state, "handoff", None)
    if handoff is None:
        return None
    token = bearer_token(request)
    if not token:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        allowed = getattr(request.app.state.settings, "console_allowed_origins", [])
        refusal = csrf_refusal(request.method, request.headers, allowed)
        if refusal:
            raise ApiError(403, refusal)
    agent = await to_thread.run_sync(handoff.accounts.authenticate, token)
    if agent is None or agent.role != "admin":
        return None
    return f"agent:{agent.username}"


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """Admin access: the configured ADMIN_API_TOKEN as a bearer token, or an admin agent session.

    Returns who it is (``admin-token`` or ``agent:<username>``), the actor of the audit log."""
    configured = request.app.state.settings.admin_api_token.get_secret_value()
    if credentials and configured and secrets.compare_digest(credentials.credentials, configured):
        return "admin-token"
    who = await admin_session_check(request)
    if who:
        return who
    if credentials is None:
        raise ApiError(401, "Admin authentication required: send 'Authorization: Bearer <ADMIN_API_TOKEN>'.")
    raise ApiError(403, "This token does not grant admin access.")


Admin = Annotated[str, Depends(require_admin)]


# --- our Rasa (the action server) ---------------------------------------------------------------------
def require_action_token(request: Request) -> None:
    """The action server answers only our Rasa: ``X-Action-Token`` (checked before the body is read)."""
    expected = getattr(request.app.state, "action_server_token", "") or ""
    given = request.headers.get(ACTION_TOKEN_HEADER, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "the action server answers only the bot's Rasa server (X-Action-Token)")
