"""POST the ticket as JSON, signed with a timestamp (as Stripe and Slack do):

    X-Supportbot-Timestamp: <unix seconds when this attempt was sent>
    X-Supportbot-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>

The receiver recomputes the HMAC over the timestamp header, a dot and the raw body with the shared
secret, compares in constant time, and refuses a timestamp more than a few minutes from its clock
(``verify``): so a captured request cannot be replayed later, and its timestamp cannot be moved
without breaking the signature. ``X-Supportbot-Delivery`` is the outbox id: the same delivery
retried carries the same id (and a fresh timestamp), so a receiver can drop duplicates.

The secret is ``HANDOFF_WEBHOOK_SECRET`` (give the same value to the helpdesk); it is never the key
of anything else (storage/secrets.py, purpose ``helpdesk-webhook``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

__all__ = [
    "DELIVERY_HEADER", "EVENT_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "DeliveryFailed", "WebhookAdapter",
    "body_bytes", "sign", "verify",
]

SIGNATURE_HEADER = "X-Supportbot-Signature"
TIMESTAMP_HEADER = "X-Supportbot-Timestamp"
DELIVERY_HEADER = "X-Supportbot-Delivery"
EVENT_HEADER = "X-Supportbot-Event"
DEFAULT_MAX_SKEW_S = 300.0


class DeliveryFailed(Exception):
    """The peer did not take the delivery; the outbox retries later."""


def body_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: bytes | str, timestamp: str | int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + body)."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def verify(secret: bytes | str, timestamp: str | None, body: bytes, signature: str | None,
           max_skew_s: float = DEFAULT_MAX_SKEW_S, *, now: float | None = None) -> bool:
    """True only for a signature of exactly this timestamp and body, sent within ``max_skew_s``.

    For receivers (and our tests): pass the raw ``X-Supportbot-Timestamp`` and
    ``X-Supportbot-Signature`` headers and the raw body bytes, before parsing the JSON.
    """
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > max_skew_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode("utf-8", "replace"))


class WebhookAdapter:
    name = "webhook"

    def __init__(self, url: str, secret: bytes | str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.secret = _key(secret)
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver(self, delivery_id: int, event: str, payload: dict[str, Any]) -> None:
        body = body_bytes(payload)
        timestamp = str(int(time.time()))  # each attempt is signed when it is sent
        headers = {"content-type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self.secret, timestamp, body),
                   DELIVERY_HEADER: str(delivery_id), EVENT_HEADER: event}
        try:
            resp = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise DeliveryFailed(f"{err.__class__.__name__}: {err}") from err
        if resp.status_code >= 300:
            raise DeliveryFailed(f"HTTP {resp.status_code}: {resp.text[:200]}")
