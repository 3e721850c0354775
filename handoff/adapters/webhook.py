"""POST the ticket as JSON, signed: ``X-Supportbot-Signature: sha256=<hex HMAC-SHA256 of the body>``.

The receiver recomputes the HMAC over the raw body with the shared secret and compares in constant
time (``verify``). ``X-Supportbot-Delivery`` is the outbox id: the same delivery retried carries the
same id, so a receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

SIGNATURE_HEADER = "X-Supportbot-Signature"
DELIVERY_HEADER = "X-Supportbot-Delivery"
EVENT_HEADER = "X-Supportbot-Event"


class DeliveryFailed(Exception):
    """The peer did not take the delivery; the outbox retries later."""


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(secret, body), str(signature))


class WebhookAdapter:
    name = "webhook"

    def __init__(self, url: str, secret: bytes, timeout_s: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver(self, delivery_id: int, event: str, payload: dict[str, Any]) -> None:
        body = body_bytes(payload)
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(self.secret, body),
                   DELIVERY_HEADER: str(delivery_id), EVENT_HEADER: event}
        try:
            resp = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise DeliveryFailed(f"{err.__class__.__name__}: {err}") from err
        if resp.status_code >= 300:
            raise DeliveryFailed(f"HTTP {resp.status_code}: {resp.text[:200]}")
