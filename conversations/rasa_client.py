"""HTTP client for the Rasa server: one keep-alive connection pool, clear errors when Rasa is
down, so the conversation service can answer 503 instead of losing the message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


class RasaUnavailable(Exception):
    """Rasa is down, restarting, or has no model loaded: the same message will work later."""


class RasaFailed(RasaUnavailable):
    """Rasa answered this message with an error (HTTP 4xx/500) or did not answer in time.

    Counted per message: a message that keeps failing ("poison") is given up after
    settings.rasa_max_attempts tries instead of being retried forever ahead of later messages.
    """


@dataclass(frozen=True)
class RasaReply:
    messages: list[dict[str, Any]]
    turn: dict[str, Any] = field(default_factory=dict)


class RasaClient:
    def __init__(self, base_url: str, token: str = "", timeout_s: float = 30.0, channel_token: str = "") -> None:
        """``token``: Rasa's HTTP API token (/status, models); ``channel_token``: the gateway channel's."""
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._channel_headers = {"Authorization": f"Bearer {channel_token}"} if channel_token else {}
        self._timeout_s = timeout_s
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, limits=limits)

    def for_url(self, base_url: str) -> RasaClient:
        """A client like this one (tokens, timeout) for another Rasa server (a model swap)."""
        client = RasaClient(base_url, self._token, self._timeout_s)
        client._channel_headers = dict(self._channel_headers)
        return client

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, sender: str, text: str, metadata: dict[str, Any], message_id: str | None = None) -> RasaReply:
        """One customer turn through our gateway channel (bot/gateway_channel.py).

        ``message_id`` makes a retry safe: Rasa returns the stored answer of a message it has
        already handled instead of running its actions again.
        """
        body: dict[str, Any] = {"sender": sender, "message": text, "metadata": metadata}
        if message_id:
            body["message_id"] = message_id
        try:
            resp = await self._http.post("/webhooks/gateway/webhook", json=body, headers=self._channel_headers)
        except httpx.TimeoutException as err:
            raise RasaFailed(f"Rasa at {self.base_url} did not answer in time") from err
        except httpx.HTTPError as err:
            raise RasaUnavailable(f"Rasa at {self.base_url} is unreachable: {err.__class__.__name__}") from err
        if resp.status_code in (401, 403):
            # Not the message's fault: the gateway and Rasa disagree on the channel token.
            raise RasaUnavailable(f"Rasa refused the gateway's channel token (HTTP {resp.status_code}); check RASA_CHANNEL_TOKEN")
        if resp.status_code in (502, 503, 504):
            raise RasaUnavailable(f"Rasa answered HTTP {resp.status_code} (restarting or overloaded)")
        if resp.status_code != 200:
            raise RasaFailed(f"Rasa answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = resp.json()
        except ValueError as err:
            raise RasaFailed("Rasa answered with a body that is not JSON") from err
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

    async def parse(self, text: str) -> tuple[str | None, float, list[dict[str, Any]]]:
        """Rasa's NLU alone on ``text`` (/model/parse): intent, confidence and ranking. Nothing is
        stored in any tracker. (None, 0.0, []) when Rasa cannot answer: the caller then treats the
        text as one."""
        params = {"token": self._token} if self._token else None
        try:
            resp = await self._http.post("/model/parse", json={"text": text}, params=params)
            data = resp.json() if resp.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None, 0.0, []
        intent = data.get("intent") or {}
        return intent.get("name"), float(intent.get("confidence") or 0.0), list(data.get("intent_ranking") or [])
