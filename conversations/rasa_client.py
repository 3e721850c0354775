"""HTTP client for the Rasa server: one keep-alive connection pool, clear errors when Rasa is
down, so the conversation service can answer 503 instead of losing the message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


class RasaUnavailable(Exception):
    """Rasa is down, restarting, or has no model loaded."""


@dataclass(frozen=True)
class RasaReply:
    messages: list[dict[str, Any]]
    turn: dict[str, Any] = field(default_factory=dict)


class RasaClient:
    def __init__(self, base_url: str, token: str = "", timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, limits=limits)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, sender: str, text: str, metadata: dict[str, Any]) -> RasaReply:
        """One customer turn through our gateway channel (bot/gateway_channel.py)."""
        body = {"sender": sender, "message": text, "metadata": metadata}
        try:
            resp = await self._http.post("/webhooks/gateway/webhook", json=body)
        except httpx.HTTPError as err:
            raise RasaUnavailable(f"Rasa at {self.base_url} is unreachable: {err.__class__.__name__}") from err
        if resp.status_code != 200:
            raise RasaUnavailable(f"Rasa answered HTTP {resp.status_code}: {resp.text[:200]}")
        data = resp.json()
        return RasaReply(messages=list(data.get("messages") or []), turn=dict(data.get("turn") or {}))

    async def status(self) -> dict[str, Any]:
        """Rasa's /status: which model is loaded. Raises RasaUnavailable when there is none."""
        params = {"token": self._token} if self._token else None
        try:
            resp = await self._http.get("/status", params=params, timeout=5.0)
        except httpx.HTTPError as err:
            raise RasaUnavailable(f"Rasa at {self.base_url} is unreachable: {err.__class__.__name__}") from err
        if resp.status_code != 200:
            raise RasaUnavailable(f"Rasa /status answered HTTP {resp.status_code}")
        data = resp.json()
        if not data.get("model_id"):
            raise RasaUnavailable("Rasa is running but has no model loaded")
        return data
