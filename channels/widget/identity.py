"""Who is on the other end of a widget: an anonymous browser or a signed-in customer of the host site.

Anonymous visitors keep a random token in localStorage. The sender id is derived from it
server-side (``web:`` + SHA-256 of the token), so the token, which is what lets a browser read
the conversation, is never stored or shown to agents, and nobody can pick another visitor's
sender id.

A host site that knows its customer passes ``data-user-id`` and ``data-user-sig`` =
hex HMAC-SHA256(user_id, WIDGET_USER_SECRET). A good signature gives the sender id
``web-user:<id>`` and tells the bot the customer is verified; a missing, malformed or wrong
signature is refused (never silently downgraded to anonymous, which would hide the host's bug).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["IdentityError", "WidgetIdentity", "resolve_identity", "sender_for_token", "sign_user_id"]

# 16 random bytes in base64url are 22 characters; allow longer tokens from other clients.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
# Characters that survive in a sender id (channels/rest.py's pattern) without escaping.
USER_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SIG_RE = re.compile(r"^[0-9a-fA-F]{64}$")
ANONYMOUS_PREFIX = "web:"
USER_PREFIX = "web-user:"


class IdentityError(Exception):
    """The widget's identity cannot be accepted; ``str(err)`` says why, for the host's developer."""


@dataclass(frozen=True)
class WidgetIdentity:
    sender_id: str
    verified_username: str | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """What the gateway vouches for to Rasa (bot/gateway_channel.py sets the verification slots)."""
        return {"verified_username": self.verified_username} if self.verified_username else {}


def sender_for_token(token: str) -> str:
    if not TOKEN_RE.fullmatch(token):
        raise IdentityError("token must be 22-128 characters of [A-Za-z0-9_-] (a random per-browser id)")
    return ANONYMOUS_PREFIX + hashlib.sha256(token.encode()).hexdigest()[:32]


def sign_user_id(user_id: str, secret: str) -> str:
    """hex HMAC-SHA256 of the user id; the host site computes the same with the shared secret."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def resolve_identity(token: str | None, user_id: str | None, user_sig: str | None, secret: str) -> WidgetIdentity:
    """The sender behind a hello frame or a REST fallback call; raises IdentityError to refuse it."""
    if user_id is None and user_sig is None:
        if token is None:
            raise IdentityError("send a per-browser token, or a user_id with its user_sig")
        return WidgetIdentity(sender_for_token(token))
    if not user_id or not user_sig:
        raise IdentityError("user_id and user_sig must be sent together (data-user-id and data-user-sig)")
    if not secret:
        raise IdentityError("signed user ids are not enabled on this gateway (WIDGET_USER_SECRET is not set)")
    if not USER_ID_RE.fullmatch(user_id):
        raise IdentityError("user_id must be 1-64 characters of [A-Za-z0-9_.-]")
    if not SIG_RE.fullmatch(user_sig):
        raise IdentityError("user_sig must be the 64-hex-digit HMAC-SHA256 of user_id")
    if not hmac.compare_digest(sign_user_id(user_id, secret), user_sig.lower()):
        raise IdentityError("user_sig does not match user_id (check the secret shared with the gateway)")
    return WidgetIdentity(USER_PREFIX + user_id, verified_username=user_id)
