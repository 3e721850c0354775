"""Channel drivers: how the runner talks to the system as a customer would.

A driver sends one customer action (text or a button payload) and returns the reply as an
``Observation``. Only the REST channel (``POST /api/v1/chat``) has a driver today; a widget,
Telegram or WeChat driver is one more class here and one entry in ``DRIVERS``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx

from scenarios.observed import Observation

# Rasa restarting: the gateway answers 503 with Retry-After; a client retries with the same
# message_id and is answered once. We do the same, a few times, never waiting more than this.
MAX_RETRIES = 4
MAX_RETRY_WAIT_S = 15.0


class Driver(Protocol):
    async def send(
        self, sender_id: str, *, text: str | None, payload: str | None, language: str | None, message_id: str
    ) -> Observation: ...


class RestDriver:
    """A REST customer: the first answer (or 503) of a conversation carries its ``conversation_token``,
    which every later turn sends as ``X-Conversation-Token`` (README, "The REST contract")."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.url = base_url.rstrip("/") + "/api/v1/chat"
        self.client = client
        self.tokens: dict[str, str] = {}  # sender id → its conversation's token

    async def send(
        self, sender_id: str, *, text: str | None, payload: str | None, language: str | None, message_id: str
    ) -> Observation:
        body: dict[str, Any] = {"sender_id": sender_id, "message_id": message_id}
        if text is not None:
            body["text"] = text
        if payload is not None:
            body["payload"] = payload
        if language is not None:
            body["language"] = language
        for attempt in range(MAX_RETRIES + 1):
            token = self.tokens.get(sender_id)
            try:
                resp = await self.client.post(self.url, json=body, headers={"X-Conversation-Token": token} if token else None)
            except httpx.HTTPError as err:
                return Observation(status=0, error=f"{type(err).__name__}: {err}")
            self._remember_token(sender_id, resp)
            if resp.status_code == 503 and attempt < MAX_RETRIES:
                wait = min(float(resp.headers.get("Retry-After") or 5), MAX_RETRY_WAIT_S)
                await asyncio.sleep(wait)
                continue
            break
        if resp.status_code != 200:
            return Observation(status=resp.status_code, error=f"HTTP {resp.status_code}: {resp.text[:500]}")
        data = resp.json()
        return Observation(
            status=200, state=data.get("state"), language=data.get("language"), messages=list(data.get("messages") or []),
            conversation_token=data.get("conversation_token"),
        )

    def _remember_token(self, sender_id: str, resp: httpx.Response) -> None:
        if resp.status_code not in (200, 503):
            return
        try:
            data = resp.json()
        except ValueError:
            return
        token = data.get("conversation_token") if isinstance(data, dict) else None
        if isinstance(token, str) and token:
            self.tokens[sender_id] = token


DRIVERS = {"rest": RestDriver}
CHANNELS = tuple(DRIVERS)
