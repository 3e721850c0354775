"""Per-conversation tokens: what lets a customer (and only them) read their own conversation.

A token is HMAC-SHA256(secret, sender_id): nothing to store, checked in constant time, and valid
across restarts as long as the secret is (``settings.handoff_secret``, else a random secret kept
in ``data_dir/handoff.secret``). The REST channel hands it out with the first answer of a
conversation; other channels (widget) may issue it when they authenticate their customer.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def load_secret(configured: str, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "handoff.secret"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


class ConversationTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, sender_id: str) -> str:
        return hmac.new(self._secret, b"conversation:" + sender_id.encode(), hashlib.sha256).hexdigest()

    def check(self, sender_id: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.issue(sender_id), str(token))
