"""Per-conversation tokens: what lets a customer (and only them) read their own conversation.

A token is HMAC-SHA256(key, "conversation:" + sender_id): nothing to store, checked in constant
time, and valid across restarts as long as the key is. The key is used for nothing else
(storage/secrets.py, purpose ``conversation-tokens``): ``HANDOFF_SECRET`` when configured, else
derived from the master secret. The REST channel hands a token out with the first answer of a
conversation; other channels (widget) may issue it when they authenticate their customer.

Upgrades: an install older than the derived keys kept a random key in ``DATA_DIR/handoff.secret``
(and, without ``HANDOFF_WEBHOOK_SECRET``, also signed helpdesk webhooks with it). While no
``HANDOFF_SECRET`` is configured that file stays the conversation-token key, so the tokens
customers already hold keep working; webhooks now always get their own key.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from storage.secrets import key_for

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["LEGACY_FILE", "PURPOSE", "ConversationTokens", "conversation_key"]

PURPOSE = "conversation-tokens"
LEGACY_FILE = "handoff.secret"


def conversation_key(settings: Settings) -> bytes:
    """``HANDOFF_SECRET``, else an older install's ``handoff.secret``, else the derived key."""
    explicit = settings.handoff_secret.get_secret_value()
    legacy = settings.data_dir / LEGACY_FILE
    if not explicit and legacy.is_file():
        if legacy.stat().st_mode & 0o077:
            legacy.chmod(0o600)  # readable by the gateway's user only
        explicit = legacy.read_text(encoding="utf-8").strip()
    return key_for(settings, PURPOSE, explicit).encode()


class ConversationTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationTokens:
        return cls(conversation_key(settings))

    def issue(self, sender_id: str) -> str:
        return hmac.new(self._secret, b"conversation:" + sender_id.encode(), hashlib.sha256).hexdigest()

    def check(self, sender_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.issue(sender_id).encode(), str(token).encode())
