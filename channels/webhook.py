"""What every channel webhook route does before its channel reads the request.

``channel_on`` finds the route's channel (404 when the settings leave it off, 503 with the reason
when it is configured but refused), ``same`` compares a secret or signature in constant time, and
``read_limited`` reads the body while refusing (413) anything over the route's cap. The global
body cap and the per-address webhook limits are ``channels/http_guards.py``'s, before any of this.
"""

from __future__ import annotations

import hmac
from typing import TypeVar

from fastapi import Request

from api_errors import ApiError
from channels.channel import PushChannel

__all__ = ["channel_on", "read_limited", "same"]

C = TypeVar("C", bound=PushChannel)


def channel_on(request: Request, kind: type[C]) -> C:
    """The running ``kind`` channel (``app.state.<name>``, set by ``start_channels``)."""
    channel: C | None = getattr(request.app.state, kind.name, None)
    if channel is None:
        raise ApiError(404, kind.not_configured)
    if channel.refused:
        raise ApiError(503, channel.refused)
    return channel


def same(given: str | None, expected: str) -> bool:
    """Constant-time equality of a secret or signature the caller sent with ours."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything longer than ``limit`` before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(413, f"body larger than {limit} bytes")
    return bytes(body)
