"""Issue 16: gateway replicas share one master secret (storage/replicas.py).

With a PostgreSQL DATABASE_URL or a REDIS_URL (several replicas) a gateway without SECRET_KEY would
derive its keys from a DATA_DIR/secret.key of its own, and conversation tokens issued by one
replica would be refused by the next: it refuses to start instead, naming the setting, unless
SINGLE_REPLICA=true. One gateway on SQLite without Redis starts as before. No secret's value is
ever in the message. Nothing here connects to PostgreSQL or Redis: the check runs before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handoff.tokens import ConversationTokens
from server import create_app
from settings import Settings
from storage.replicas import SharedSecretMissing, check_shared_secrets

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql+psycopg://bot:db-password-1@db.example:5432/supportbot"
REDIS = "redis://:redis-password-1@redis.example:6379/0"


@pytest.mark.parametrize(
    ("where", "named"),
    [
        ({"database_url": PG}, "DATABASE_URL is PostgreSQL"),
        ({"redis_url": REDIS}, "REDIS_URL is set"),
        ({"database_url": PG, "redis_url": REDIS}, "DATABASE_URL is PostgreSQL and REDIS_URL is set"),
    ],
)
def test_several_replicas_without_secret_key_refuse_to_start(tmp_path: Path, where: dict[str, str], named: str) -> None:
    settings = Settings(data_dir=tmp_path, **where)
    with pytest.raises(SharedSecretMissing) as refused:
        create_app(settings)
    message = str(refused.value)
    assert message.startswith("SECRET_KEY is not set") and named in message and "SINGLE_REPLICA=true" in message
    assert "db-password-1" not in message and "redis-password-1" not in message
    assert not (tmp_path / "secret.key").exists()  # refused before any key of its own was made


def test_an_existing_own_key_is_named_but_never_shown(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("the-old-single-gateway-key")
    with pytest.raises(SharedSecretMissing) as refused:
        check_shared_secrets(Settings(data_dir=tmp_path, database_url=PG))
    assert str(tmp_path / "secret.key") in str(refused.value) and "the-old-single-gateway-key" not in str(refused.value)


def test_an_older_installs_conversation_token_key_must_be_shared_too(tmp_path: Path) -> None:
    (tmp_path / "handoff.secret").write_text("legacy-token-key-1")
    settings = Settings(data_dir=tmp_path, redis_url=REDIS, secret_key="shared-master-1")
    with pytest.raises(SharedSecretMissing) as refused:
        check_shared_secrets(settings)
    assert "HANDOFF_SECRET" in str(refused.value) and "legacy-token-key-1" not in str(refused.value)
    check_shared_secrets(
        Settings(data_dir=tmp_path, redis_url=REDIS, secret_key="shared-master-1", handoff_secret="legacy-token-key-1")
    )  # set on every replica: fine


@pytest.mark.parametrize(
    "settings",
    [
        {"database_url": PG, "secret_key": "shared-master-1"},
        {"redis_url": REDIS, "single_replica": True},  # said to run alone: its own key, as one gateway
        {},  # SQLite, no Redis: one gateway, as before
    ],
)
def test_a_shared_key_a_single_replica_or_one_gateway_start(tmp_path: Path, settings: dict[str, object]) -> None:
    create_app(Settings(data_dir=tmp_path, **settings))


def test_replicas_with_the_shared_key_accept_each_others_tokens(tmp_path: Path) -> None:
    one = Settings(data_dir=tmp_path / "replica-1", database_url=PG, secret_key="shared-master-1")
    two = Settings(data_dir=tmp_path / "replica-2", database_url=PG, secret_key="shared-master-1")
    token = ConversationTokens.from_settings(one).issue("rest:customer-1")
    assert ConversationTokens.from_settings(two).check("rest:customer-1", token)
    # What the refusal prevents: each replica with a key of its own.
    own = [Settings(data_dir=tmp_path / f"own-{n}", single_replica=True, database_url=PG) for n in (1, 2)]
    assert not ConversationTokens.from_settings(own[1]).check(
        "rest:customer-1", ConversationTokens.from_settings(own[0]).issue("rest:customer-1")
    )


def test_the_gateway_process_exits_with_the_reason(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {"SECRET_KEY", "SECURITY__SECRET_KEY", "SINGLE_REPLICA", "STORAGE__SINGLE_REPLICA"}
    }
    env.update(DATA_DIR=str(tmp_path), DATABASE_URL=PG, REDIS_URL="", PORT="1")
    done = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{") and "not started" in x]
    assert line["level"] == "CRITICAL" and "SECRET_KEY is not set" in line["message"]
    assert "db-password-1" not in done.stderr + done.stdout
