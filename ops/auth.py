"""Admin agents of the handoff console may use the ops API with their session.

``kb_index.admin_routes.require_admin`` (which every ops route uses) accepts the ADMIN_API_TOKEN
bearer token and asks ``app.state.admin_session_check`` about anything else; this is that check:
an agent session token (bearer or the console's ``agent_session`` cookie) whose agent is an admin.
A write made with the cookie must also pass the cross-site check of ``handoff.auth.csrf_refusal``
(the ops page sends ``X-Requested-With: supportbot-console``): SameSite alone is not relied on.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import HTTPException, Request

from handoff.auth import csrf_refusal

COOKIE = "agent_session"  # handoff/api.py's cookie name


async def admin_session_check(request: Request) -> str | None:
    """The admin agent's username, or None (not signed in, not an admin, or no handoff).

    Raises 403 for a cookie-authenticated write that may come from another site.
    """
    handoff = getattr(request.app.state, "handoff", None)
    if handoff is None:
        return None
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    if not token:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        allowed = getattr(request.app.state.settings, "console_allowed_origins", [])
        refusal = csrf_refusal(request.method, request.headers, allowed)
        if refusal:
            raise HTTPException(403, refusal)
    agent = await to_thread.run_sync(handoff.accounts.authenticate, token)
    if agent is None or agent.role != "admin":
        return None
    return f"agent:{agent.username}"
