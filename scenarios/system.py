"""The one launcher of the whole system, shared by the scenario runner (a run without ``--url``),
the test suite's live systems (tests/conftest.py) and the benchmarks (bench/): ``server.py`` (the
gateway, which serves the action server at /actions/webhook and starts and supervises Rasa) in a
subprocess of its own session, with free ports and the DATA_DIR it is given; ``wait_ready`` until
``/readyz`` answers 200; ``stop`` ends the gateway's process group and then, by pid, anything it
started that outlived it (never by name).

``local_system`` is the scenario runner's whole run: the project's trained model (trained first if
missing, cached by hash outside the checkout), a fresh temporary DATA_DIR, so every run starts from
a freshly seeded store and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
# Trained models and help-centre indexes are cached outside the checkout, so fresh clones reuse them.
MODEL_CACHE = Path(os.environ.get("SUPPORTBOT_TEST_MODEL_DIR", Path.home() / ".cache" / "supportbot" / "models"))
KB_CACHE = Path(os.environ.get("SUPPORTBOT_TEST_KB_DIR", Path.home() / ".cache" / "supportbot" / "kb"))
STARTUP_TIMEOUT_S = 300
# Every simulated customer of a test, scenario or benchmark comes from 127.0.0.1: lift the
# per-address and global message limits and the ticket caps (they are tested on gateways of their own).
LOCAL_CUSTOMERS = {
    "RATE_LIMIT_PER_IP": "1000000/minute", "RATE_LIMIT_GLOBAL": "1000000/minute",
    "TICKETS_PER_ADDRESS_PER_DAY": "1000000", "RATE_LIMIT_LOGIN_PER_IP": "100000/minute",
}  # fmt: skip


class StartError(RuntimeError):
    """The system did not become ready; the message says where its logs are."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that nothing listens on now (all held at once while they are chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def free_port() -> int:
    return free_ports(1)[0]


def rasa_pids(port: int) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"rasa(_serve)? run .*--port {port}"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def tail(path: Path | None, n: int = 40) -> str:
    """The last ``n`` lines of a log ('' when there is none)."""
    with contextlib.suppress(OSError, TypeError):
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])  # type: ignore[arg-type]
    return ""


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, data_dir: Path | None, timeout_s: float,
               path: str = "/readyz", interval: float = 0.5) -> None:
    """Until ``url + path`` answers 200; StartError if the gateway ``proc`` exits or the time runs out
    (``proc`` and ``data_dir`` None: a gateway started elsewhere)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = data_dir / "gateway.log" if data_dir else "its log"
            raise StartError(f"the gateway exited with status {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}{path}", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise StartError(f"the system was not ready after {timeout_s:.0f} s" + (f"; see {data_dir}" if data_dir else ""))


def cached_kb_index() -> Path | None:
    """The newest complete help-centre index the test suite cached (``<hash>/kb/CURRENT``), or None."""
    if not KB_CACHE.is_dir():
        return None
    done = [d for d in KB_CACHE.iterdir() if d.is_dir() and (d / "kb" / "CURRENT").exists() and "." not in d.name]
    return max(done, key=lambda d: d.stat().st_mtime) if done else None


@dataclass
class Gateway:
    """A started ``server.py``; ``rasa_port`` is the embedded Rasa's (None with an external RASA_URL)."""

    proc: subprocess.Popen[bytes]
    port: int
    rasa_port: int | None
    data_dir: Path
    spawned_at: float  # time.monotonic() just before the process was started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "gateway.log"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'supportbot.db'}"

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S, path: str = "/readyz", interval: float = 0.5) -> float:
        """Seconds from the process start to the first 200 of ``path`` (StartError if it never comes)."""
        wait_ready(self.url, self.proc, self.data_dir, timeout_s, path, interval)
        return time.monotonic() - self.spawned_at

    def stop(self, grace_s: float = 30.0) -> list[str]:
        """SIGTERM the gateway's process group (the gateway stops its Rasa), SIGKILL it after ``grace_s``;
        then kill, by pid, whatever it started that is still alive. Returns what needed force."""
        notes: list[str] = []
        try:
            ours = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            ours = []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                notes.append(f"the gateway did not exit within {grace_s:.0f} s of SIGTERM; killed its process group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in rasa_pids(self.rasa_port) if self.rasa_port else []:  # never leave a Rasa behind
            with contextlib.suppress(psutil.NoSuchProcess):
                ours.append(psutil.Process(pid))
        _, alive = psutil.wait_procs(list({p.pid: p for p in ours}.values()), timeout=5)
        if alive:
            names = ", ".join(f"{p.pid} ({' '.join(_cmdline(p))[:60]})" for p in alive)
            notes.append(f"{len(alive)} process(es) outlived the gateway; sent SIGKILL: {names}")
            for p in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            _, still = psutil.wait_procs(alive, timeout=10)
            if still:
                notes.append(f"STILL RUNNING after stop: {sorted(p.pid for p in still)}")
        return notes


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def start_gateway(data_dir: Path, env: Mapping[str, str] | None = None, *, embedded_rasa: bool = True,
                  kb_index: Path | None = None) -> Gateway:
    """Start ``server.py`` on a free port with DATA_DIR ``data_dir`` (its SQLite database and
    gateway.log there) and ``env`` over this process's environment. ``embedded_rasa``: the gateway
    starts Rasa on a free port (any RASA_URL is dropped); else ``env`` names RASA_URL. ``kb_index``:
    a built knowledge-base index copied into DATA_DIR first, so start-up does not embed the help centre."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if kb_index is not None:
        shutil.copytree(kb_index, data_dir, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)
    port, rasa_port = free_ports(2)
    full = {**os.environ, "PORT": str(port), "DATA_DIR": str(data_dir), "RASA_TELEMETRY_ENABLED": "false",
            "PYTHONUNBUFFERED": "1", "DATABASE_URL": f"sqlite:///{data_dir / 'supportbot.db'}"}
    if embedded_rasa:
        full.pop("RASA_URL", None)
        full["RASA_PORT"] = str(rasa_port)
    full.update(env or {})
    with open(data_dir / "gateway.log", "wb") as log:
        spawned_at = time.monotonic()
        proc = subprocess.Popen([sys.executable, "server.py"], cwd=ROOT, env=full, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return Gateway(proc, port, rasa_port if embedded_rasa else None, data_dir, spawned_at)


@contextmanager
def running_gateway(data_dir: Path, env: Mapping[str, str] | None = None, *, ready: str = "/readyz",
                    timeout_s: float = STARTUP_TIMEOUT_S, embedded_rasa: bool = True,
                    kb_index: Path | None = None) -> Iterator[Gateway]:
    """``start_gateway``, yielded once ``ready`` answers 200, stopped on the way out whatever happened."""
    gateway = start_gateway(data_dir, env, embedded_rasa=embedded_rasa, kb_index=kb_index)
    try:
        gateway.wait_ready(timeout_s, ready)
        yield gateway
    finally:
        gateway.stop()


@dataclass(frozen=True)
class LocalSystem:
    url: str
    database_url: str
    data_dir: Path
    admin_password: str  # the handoff administrator's (agent turns sign in with it)


@contextmanager
def local_system(keep_data: bool = False, say: Callable[[str], None] = print) -> Iterator[LocalSystem]:
    """Train if needed, start the gateway (+ supervised Rasa), yield it, stop everything."""
    from bot.training import ensure_model

    config = Path(os.environ.get("RASA_CONFIG", ROOT / "config.yml")).resolve()
    say("checking the trained model (training takes a few minutes when the training data changed)…")
    ensure_model(config, MODEL_CACHE)
    data_dir = Path(tempfile.mkdtemp(prefix="scenarios-"))
    admin_password = secrets.token_urlsafe(18)
    env = {"MODEL_DIR": str(MODEL_CACHE), "RASA_CONFIG": str(config), "HANDOFF_ADMIN_PASSWORD": admin_password,
           **LOCAL_CUSTOMERS}
    gateway = start_gateway(data_dir, env)
    say(f"starting the system (gateway :{gateway.port}, Rasa :{gateway.rasa_port}, data {data_dir})…")
    ok = False
    try:
        gateway.wait_ready()
        yield LocalSystem(gateway.url, gateway.database_url, data_dir, admin_password)
        ok = True
    finally:
        gateway.stop()
    if ok and not keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        say(f"logs and database kept in {data_dir}")
