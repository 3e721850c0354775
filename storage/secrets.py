"""The gateway's keys: one master secret, and a separate key derived from it for every purpose.

A key that signs customers' conversation tokens must not also be the key a helpdesk receives to
check webhooks, nor the token Rasa presents to the action server: whoever learns one learns none
of the others. ``derive(master, purpose)`` is HMAC-SHA256(master, "supportbot:" + purpose), so each
purpose gets an independent 256-bit key, stable across restarts as long as the master is.

The master comes from ``SECRET_KEY`` (settings.secret_key); unset, a random one is created once
as ``DATA_DIR/secret.key`` with mode 0600 (readable by the gateway's user only) and reused after.
A key configured explicitly for one purpose (e.g. ``HANDOFF_WEBHOOK_SECRET``) wins over the derived one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["PURPOSES", "derive", "key_for", "load_master", "private_file"]

# Every purpose a key is derived for, so that no two features share one by accident.
PURPOSES = (
    "conversation-tokens",  # customers' read/write access to their own conversation
    "helpdesk-webhook",  # X-Supportbot-Signature on tickets sent to an outside helpdesk
    "action-server",  # X-Action-Token Rasa sends to /actions/webhook
    "rasa-channel",  # bearer token the gateway sends to Rasa's gateway channel
    "rasa-api",  # Rasa's HTTP API token (--auth-token), embedded mode
    "client-address",  # the keyed digest of a turn's client address kept for the per-address ticket cap
)
MASTER_FILE = "secret.key"


def private_file(path: Path, content: bytes) -> None:
    """Write ``content`` to a new file only its owner can read (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    os.replace(tmp, path)


def load_master(configured: str, data_dir: Path) -> bytes:
    """The configured master secret, else the one kept in ``data_dir`` (created on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / MASTER_FILE
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # an older install may have left it readable by others
        return path.read_bytes().strip()
    value = secrets.token_urlsafe(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        return load_master(configured, data_dir)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


def derive(master: bytes, purpose: str) -> bytes:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}; add it to storage.secrets.PURPOSES")
    return hmac.new(master, b"supportbot:" + purpose.encode(), hashlib.sha256).digest()


def key_for(settings: object, purpose: str, explicit: str = "") -> str:
    """A printable key for ``purpose``: ``explicit`` when configured, else derived from the master.

    ``settings`` is the application's Settings (its ``secret_key`` and ``data_dir`` are read).
    """
    if explicit:
        return explicit
    master = load_master(settings.secret_key.get_secret_value(), settings.data_dir)  # type: ignore[attr-defined]
    return derive(master, purpose).hex()
