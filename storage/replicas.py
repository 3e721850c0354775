"""What several gateway replicas must share before one of them may start: the master secret.

Every key of the gateway is derived from ``SECRET_KEY`` (storage/secrets.py): customers' conversation
tokens, the action server's and Rasa channel's tokens, the helpdesk webhook's signature, the keyed
digest of client addresses. Without it, each gateway creates its own ``DATA_DIR/secret.key``: right
for one gateway, wrong for several behind a balancer without sticky sessions, where a conversation
token issued by one replica would be refused by the next (HTTP 401 on the customer's second
message), and every replica would count ticket caps under a different address digest.

A PostgreSQL ``DATABASE_URL`` or a ``REDIS_URL`` is how a deployment says "several replicas" (SQLite
and in-memory state serve one process only), so with either set a gateway without ``SECRET_KEY``
refuses to start, naming the setting, unless ``SINGLE_REPLICA=true`` says it runs alone. An older
install's ``DATA_DIR/handoff.secret`` (handoff/tokens.py: the conversation-token key while no
``HANDOFF_SECRET`` is set) is one replica's only, so it is refused the same way. No secret's value
is ever part of a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.coordination import is_postgres

if TYPE_CHECKING:
    from settings import Settings

__all__ = ["SharedSecretMissing", "check_shared_secrets", "several_replicas"]

LEGACY_TOKEN_FILE = "handoff.secret"  # handoff/tokens.py LEGACY_FILE


class SharedSecretMissing(RuntimeError):
    """The gateway is configured for several replicas but has no key they would all share."""


def several_replicas(settings: Settings) -> list[str]:
    """The settings that configure several replicas (empty: one gateway)."""
    why = []
    if is_postgres(settings.sqlalchemy_url):
        why.append("DATABASE_URL is PostgreSQL")
    if settings.redis_url:
        why.append("REDIS_URL is set")
    return why


def check_shared_secrets(settings: Settings) -> None:
    """Raise ``SharedSecretMissing`` (the message says what to set) when replicas would not share keys."""
    why = several_replicas(settings)
    if not why or settings.storage.single_replica:
        return
    reason = " and ".join(why)
    if not settings.secret_key.get_secret_value():
        own = settings.data_dir / "secret.key"
        keep = (
            (
                f" This gateway already has {own}: set SECRET_KEY to its content on every replica to keep the "
                "tokens it issued valid."
            )
            if own.is_file()
            else ""
        )
        raise SharedSecretMissing(
            f"SECRET_KEY is not set, but {reason}, which configures several gateway replicas: each would "
            "generate its own key, and conversation tokens, the action server's and Rasa channel's tokens issued by "
            "one replica would be refused by the others. Set SECRET_KEY (the same value on every replica, e.g. "
            "`openssl rand -hex 32`), or SINGLE_REPLICA=true if this gateway runs alone." + keep
        )
    legacy = settings.data_dir / LEGACY_TOKEN_FILE
    if not settings.handoff_secret.get_secret_value() and legacy.is_file():
        raise SharedSecretMissing(
            f"{legacy} (an older install's conversation-token key) is this replica's only, but {reason}, which "
            "configures several gateway replicas. Set HANDOFF_SECRET to its content on every replica (tokens "
            "already issued stay valid), or SINGLE_REPLICA=true if this gateway runs alone."
        )
