"""The local cluster under test: ``python -m cluster run`` in a subprocess (exactly as ``make run-cluster``
starts it) on a throw-away PostgreSQL schema and this machine's Redis, and a helpdesk that counts the
webhook deliveries it receives. Missing PostgreSQL, Redis, HAProxy or Rasa's environment: skipped
with the reason, except under CI=true, where the test fails instead."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from scenarios.system import LOCAL_CUSTOMERS, MODEL_CACHE, ROOT, tail
from tests.conftest import required
from tests.redis_fixtures import redis_or_skip
from tests.store_fixtures import temporary_schema

STARTUP_TIMEOUT_S = 900  # two Rasa servers load the model on two cores
ADMIN_PASSWORD = "cluster-admin-password-1"
AGENT_PASSWORD = "cluster-agent-password-1"
WEBHOOK_SECRET = "cluster-webhook-secret-1"
ADMIN_TOKEN = "cluster-admin-api-token-1"  # the ops API (promotions)
RASA_TOKEN = "cluster-rasa-api-token-1"  # each Rasa server's /status, read by the tests




class Helpdesk:
    """An outside helpdesk's webhook endpoint: counts each ``X-Supportbot-Delivery`` it accepts."""

    def __init__(self) -> None:
        self.deliveries: Counter[str] = Counter()
        lock = threading.Lock()
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with lock:
                    deliveries[self.headers.get("X-Supportbot-Delivery", "?")] += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tickets"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class RunningCluster:
    status: dict[str, Any]
    proc: subprocess.Popen[bytes]
    run_dir: Path
    database_url: str
    db: Engine
    helpdesk: Helpdesk

    @property
    def url(self) -> str:
        return str(self.status["url"])

    def pid(self, name: str) -> int | None:
        """The current pid of child ``name`` (gateway-1, rasa-2, haproxy), None while it is down."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.run_dir / f"{name}.pid").read_text())
        return None

    def sigkill(self, name: str) -> int:
        """SIGKILL child ``name`` (its whole process group); the launcher restarts it. Returns the pid killed."""
        pid = self.pid(name)
        assert pid is not None, f"{name} is not running"
        os.killpg(pid, signal.SIGKILL)
        return pid

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(text(sql), params))

    def log(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"


def _preconditions() -> None:
    if not Path("/usr/sbin/haproxy").exists():
        required("HAProxy is not installed at /usr/sbin/haproxy (`make test-cluster` installs it: apt-get install haproxy)")
    if not (ROOT / ".venv-rasa" / "bin" / "rasa").exists():
        required("the Rasa environment (.venv-rasa) is not installed: run `make setup`")


def _wait_status(proc: subprocess.Popen[bytes], run_dir: Path, out: Path) -> dict[str, Any]:
    status_file = run_dir / "cluster.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not status_file.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the launcher exited with status {proc.returncode}:\n{tail(out, 60)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster was not ready after {STARTUP_TIMEOUT_S} s:\n{tail(out, 60)}")
        time.sleep(1)
    return json.loads(status_file.read_text())


@contextlib.contextmanager
def running_cluster(run_dir: Path, kb_index: Path, gateways: int = 2, rasa: int = 2) -> Iterator[RunningCluster]:
    _preconditions()
    redis_url = redis_or_skip()
    helpdesk = Helpdesk()
    with temporary_schema() as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "MODEL_DIR": str(MODEL_CACHE),
               "HANDOFF_ADMIN_PASSWORD": ADMIN_PASSWORD, "SUPPORTBOT_DEMO_AGENT_PASSWORD": AGENT_PASSWORD,
               "SUPPORTBOT_DEMO": "true", "HANDOFF_AUTO_ASSIGN": "false", "HANDOFF_WEBHOOK_URL": helpdesk.url,
               "HANDOFF_WEBHOOK_SECRET": WEBHOOK_SECRET, "RETRY_AFTER_S": "1", "AGENT_COOKIE_SECURE": "false",
               "ADMIN_API_TOKEN": ADMIN_TOKEN, "RASA_TOKEN": RASA_TOKEN,
               **LOCAL_CUSTOMERS}
        out = run_dir / "launcher.out"
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(out, "wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cluster", "run", "--gateways", str(gateways), "--rasa", str(rasa),
                 "--port", "0", "--rasa-port", "0", "--run-dir", str(run_dir), "--kb-index", str(kb_index)],
                cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        db = create_engine(database_url)
        try:
            status = _wait_status(proc, run_dir, out)
            yield RunningCluster(status, proc, run_dir, database_url, db, helpdesk)
        finally:
            db.dispose()
            _stop(proc, out)
            helpdesk.close()
            with create_engine(database_url).begin() as conn:  # Rasa's tracker schema beside ours
                schema = conn.execute(text("select current_schema()")).scalar()
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_rasa" CASCADE'))


def _stop(proc: subprocess.Popen[bytes], out: Path) -> None:
    """SIGTERM, as Ctrl-C would; the launcher stops every child. SIGKILL to its group only if it hangs."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"the launcher did not stop within 120 s of SIGTERM:\n{tail(out, 30)}") from None
