"""Start the whole system for a run without ``--url``: exactly as the test suite's ``live`` fixture
(tests/conftest.py) does: the project's trained model (trained first if missing, cached by hash
outside the checkout), then ``server.py`` in a subprocess with free ports and a fresh temporary
DATA_DIR, so every run starts from a freshly seeded store and leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODEL_CACHE = Path(os.environ.get("SUPPORTBOT_TEST_MODEL_DIR", Path.home() / ".cache" / "supportbot" / "models"))
STARTUP_TIMEOUT_S = 300


class StartError(RuntimeError):
    """The system did not become ready; the message says where its logs are."""


@dataclass(frozen=True)
class LocalSystem:
    url: str
    database_url: str
    data_dir: Path
    admin_password: str  # the handoff administrator's (agent turns sign in with it)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rasa_pids(port: int) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"rasa(_serve)? run .*--port {port}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_ready(url: str, proc: subprocess.Popen[bytes], data_dir: Path, timeout_s: float, path: str = "/readyz") -> None:
    """Until ``url + path`` answers 200; StartError if the gateway exits or the time runs out.
    Shared by the runner, the tests' live systems and the benchmarks that start a gateway."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"the gateway exited with status {proc.returncode}; see {data_dir / 'gateway.log'}")
        try:
            if httpx.get(f"{url}{path}", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise StartError(f"the system was not ready after {timeout_s:.0f} s; see {data_dir}")


@contextmanager
def local_system(keep_data: bool = False, say: Callable[[str], None] = print) -> Iterator[LocalSystem]:
    """Train if needed, start the gateway (+ supervised Rasa), yield it, stop everything."""
    from bot.training import ensure_model

    config = Path(os.environ.get("RASA_CONFIG", ROOT / "config.yml")).resolve()
    say("checking the trained model (training takes a few minutes when the training data changed)…")
    ensure_model(config, MODEL_CACHE)
    data_dir = Path(tempfile.mkdtemp(prefix="scenarios-"))
    port, rasa_port = free_port(), free_port()
    admin_password = secrets.token_urlsafe(18)
    env = dict(os.environ)
    env.update(
        PORT=str(port), RASA_PORT=str(rasa_port), DATA_DIR=str(data_dir), MODEL_DIR=str(MODEL_CACHE),
        RASA_CONFIG=str(config), RASA_TELEMETRY_ENABLED="false", HANDOFF_ADMIN_PASSWORD=admin_password,
        # every scenario customer comes from 127.0.0.1: lift the per-address message and ticket limits
        RATE_LIMIT_PER_IP="100000/minute", TICKETS_PER_ADDRESS_PER_DAY="100000",
    )
    env.pop("RASA_URL", None)
    env.pop("DATABASE_URL", None)
    say(f"starting the system (gateway :{port}, Rasa :{rasa_port}, data {data_dir})…")
    ok = False
    with open(data_dir / "gateway.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=env, stdout=log, stderr=log,
                                start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, proc, data_dir, STARTUP_TIMEOUT_S)
            yield LocalSystem(url, f"sqlite:///{data_dir / 'supportbot.db'}", data_dir, admin_password)
            ok = True
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            for pid in rasa_pids(rasa_port):  # never leave a Rasa behind
                os.kill(pid, signal.SIGKILL)
    if ok and not keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        say(f"logs and database kept in {data_dir}")
