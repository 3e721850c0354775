"""Admin agents of the handoff console may use the ops API with their session.

``kb_index.admin_routes.require_admin`` (which every ops route uses) accepts the ADMIN_API_TOKEN
bearer token and asks ``app.state.admin_session_check`` about anything else; this is that check:
an agent session token (bearer or the console's ``agent_session`` cookie) whose agent is an admin.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import Request

COOKIE = "agent_session"  # handoff/api.py's cookie name


async def admin_session_check(request: Request) -> str | None:
    """The admin agent's username, or None (not signed in, not an admin, or no handoff)."""
    handoff = getattr(request.app.state, "handoff", None)
    if handoff is None:
        return None
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.cookies.get(COOKIE)
    if not token:
        return None
    agent = await to_thread.run_sync(handoff.accounts.authenticate, token)
    if agent is None or agent.role != "admin":
        return None
    return f"agent:{agent.username}"
