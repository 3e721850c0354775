"""A person on the other side: scenario turns ``agent: claim | reply | resolve | hand_back`` act
through the handoff's agent API (``/api/v1/agent``), as a human agent in the console would.

The runner signs in as the administrator once per run, creates its own agent account for the run
(role admin so it may take any ticket, serving no queue so that automatic assignment never hands
it somebody else's chat, capacity 50), sets the administrator offline again and works as that
agent. Scenarios with agent turns run after all the others, one at a time: signing in makes an
agent available, and the scenarios that expect a conversation to wait in a queue must not meet
one.

What the customer sees after an agent action is read from the customer's own endpoint
(``GET /api/v1/conversations/{sender}/messages`` with the conversation token of their first
answer): that is the observation the turn's checks look at.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from scenarios.observed import Observation

AGENT_ACTIONS = ("claim", "reply", "resolve", "hand_back")
PATHS = {"claim": "claim", "reply": "reply", "resolve": "resolve", "hand_back": "handback"}


class AgentUnavailable(Exception):
    """The run cannot act as an agent (no admin password, sign-in refused, API missing)."""


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str


class AgentConsole:
    def __init__(self, base_url: str, client: httpx.AsyncClient, admin: AdminCredentials | None, run_id: str) -> None:
        self.base = base_url.rstrip("/") + "/api/v1"
        self.client = client
        self.admin = admin
        self.run_id = run_id
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def _call(self, method: str, path: str, token: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.request(method, f"{self.base}{path}", headers=headers, **kw)

    async def _login(self, username: str, password: str) -> str:
        resp = await self._call("POST", "/agent/login", None, json={"username": username, "password": password})
        if resp.status_code != 200:
            raise AgentUnavailable(f"agent sign-in as {username!r} refused: HTTP {resp.status_code} {resp.text[:200]}")
        return str(resp.json()["token"])

    async def token(self) -> str:
        """The run's own agent, created on first use."""
        async with self._lock:
            if self._token is not None:
                return self._token
            if self.admin is None:
                raise AgentUnavailable("agent turns need the handoff administrator's password "
                                       "(--admin-password or HANDOFF_ADMIN_PASSWORD)")
            admin = await self._login(self.admin.username, self.admin.password)
            username, password = f"scenario-runner-{self.run_id}", secrets.token_urlsafe(18)
            created = await self._call("POST", "/agent/admin/agents", admin, json={
                "username": username, "display_name": "Sam", "password": password, "role": "admin",
                "queues": [], "capacity": 50})
            await self._call("POST", "/agent/status", admin, json={"status": "offline"})
            await self._call("POST", "/agent/logout", admin)
            if created.status_code != 201:
                raise AgentUnavailable(f"cannot create the runner's agent: HTTP {created.status_code} {created.text[:200]}")
            self._token = await self._login(username, password)
            return self._token

    async def act(self, action: str, ticket_id: int, ticket_status: str, text: str | None) -> str | None:
        """Do ``action`` on the ticket (claiming it first for a reply); None, or what went wrong."""
        token = await self.token()
        if action == "reply" and ticket_status == "queued":
            failed = await self._ok(await self._call("POST", f"/agent/tickets/{ticket_id}/claim", token))
            if failed:
                return failed
        body = {"text": text} if action == "reply" else None
        return await self._ok(await self._call("POST", f"/agent/tickets/{ticket_id}/{PATHS[action]}", token, json=body))

    @staticmethod
    async def _ok(resp: httpx.Response) -> str | None:
        return None if resp.status_code == 200 else f"HTTP {resp.status_code}: {resp.text[:300]}"

    async def customer_view(self, sender_id: str, token: str | None, after: int) -> Observation:
        """What the customer can read now: messages after id ``after`` (not their own) and the state."""
        if not token:
            return Observation(status=0, error="no conversation token: the first answer carried none")
        resp = await self.client.get(f"{self.base}/conversations/{sender_id}/messages", params={"after": after},
                                     headers={"X-Conversation-Token": token})
        if resp.status_code != 200:
            return Observation(status=resp.status_code, error=f"HTTP {resp.status_code}: {resp.text[:300]}")
        data = resp.json()
        messages = [m for m in data.get("messages") or [] if m.get("from") != "customer"]
        # the language the customer is answered in: that of the newest message they were sent
        language = next((m.get("language") for m in reversed(messages) if m.get("language")), None)
        return Observation(status=200, state=data.get("state"), language=language, messages=messages)
