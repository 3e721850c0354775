"""Load benchmark: whole scripted conversations, gateway (POST /api/v1/chat) vs. Rasa's gateway channel (the channel the gateway itself calls).

    .venv/bin/python -m bench.load [--concurrency 1 20] [--conversations N] [--out bench/RESULTS.md]
    .venv/bin/python -m bench.load --url http://127.0.0.1:8000 --rasa-url http://127.0.0.1:5005

Method
------
* By default the benchmark starts the whole system itself: ``.venv/bin/python server.py`` with free
  ports, a temporary DATA_DIR (fresh SQLite databases) and MODEL_DIR = models/ (so a cached model is
  reused). Cold start is process start → first ``GET /readyz`` 200. At the end the gateway's process
  group is terminated (the gateway stops Rasa's own process group), and anything of ours still alive
  is killed by pid and reported. With ``--url`` a running gateway is benchmarked instead (start it
  with RATE_LIMIT_PER_IP and RATE_LIMIT_GLOBAL high enough: every simulated customer has one address).
* Each conversation sends its first answer's ``conversation_token`` as ``X-Conversation-Token`` on
  its later turns, as every REST client must.
* A conversation is a scripted customer (en/zh/ru): greeting, order status with a real demo order id
  and the email on file (store.seed.DEMO), a question, thanks, goodbye — 6 to 9 turns, each
  conversation with its own sender id. Customers send their next message as soon as the reply
  arrives (closed loop, no think time), ``concurrency`` conversations at a time.
* Both targets get the same conversations, in blocks alternated A-B-B-A (the first target alternates
  between concurrency levels), so that both see the same machine conditions; each block is bounded by
  a number of conversations and a time cap (no new conversation after the cap, in-flight ones are
  cancelled after a grace period). Every target is warmed up first (not measured).
* Baseline: Rasa's REST channel on the same Rasa process, the same model and the same action server
  (the gateway's /actions/webhook). It does not get the gateway's language detection, so the zh/ru
  customers get English texts from it; the NLU and dialogue work is the same.
* Memory: RSS of the gateway process and of the Rasa process tree (all descendants of the gateway in
  the default mode; the process listening on the Rasa port and its descendants with ``--url``),
  sampled every 100 ms from /proc by a thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "bench" / "RESULTS.md"
SECTION = "## Load"
TARGET_OVERHEAD_P50 = 0.15  # the gateway adds at most 15 % to Rasa's p50 turn latency
TARGET_THROUGHPUT = 0.90  # and keeps at least 90 % of its throughput
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ================================================================================================
# Conversations
# ================================================================================================
@dataclass(frozen=True)
class Step:
    text: str
    verify: bool = False  # this turn completes identity verification: the reply must name the order
    form: bool = False  # a turn of the order-status form: Rasa calls the action server (validation, lookup)


@dataclass(frozen=True)
class Script:
    name: str
    language: str
    steps: tuple[Step, ...]


# Customer wording follows the NLU data (nlu_data/<lang>/nlu.yml) without copying it verbatim.
SCRIPTS: tuple[Script, ...] = (
    Script(
        "en-status",
        "en",
        (
            Step("hi"),
            Step("what's the status of my order?", form=True),
            Step("{order_id}", form=True),
            Step("{email}", verify=True, form=True),
            Step("do you offer free shipping"),
            Step("thank you so much"),
            Step("bye"),
        ),
    ),
    Script(
        "zh-status",
        "zh",
        (
            Step("你好"),
            Step("帮我查下订单状态", form=True),
            Step("订单号是{order_id}", form=True),
            Step("{email}", verify=True, form=True),
            Step("运费多少"),
            Step("谢谢"),
            Step("再见"),
        ),
    ),
    Script(
        "ru-status",
        "ru",
        (
            Step("здравствуйте"),
            Step("какой статус у моего заказа?", form=True),
            Step("номер заказа {order_id}", form=True),
            Step("{email}", verify=True, form=True),
            Step("сколько стоит доставка?"),
            Step("спасибо большое"),
            Step("до свидания"),
        ),
    ),
    Script(
        "en-status-inline",
        "en",
        (
            Step("hello there"),
            Step("has my order {order_id} shipped yet?", form=True),
            Step("my email is {email}", verify=True, form=True),
            Step("are you a bot?"),
            Step("how long does standard delivery take"),
            Step("what's your return policy"),
            Step("thanks a lot"),
            Step("goodbye"),
            Step("see you"),
        ),
    ),
    Script(
        "zh-status-inline",
        "zh",
        (
            Step("您好"),
            Step("订单号{order_id}帮我查下", form=True),
            Step("邮箱是{email}", verify=True, form=True),
            Step("一般多久能到"),
            Step("多谢"),
            Step("拜拜"),
        ),
    ),
    Script(
        "ru-status-inline",
        "ru",
        (
            Step("добрый день"),
            Step("хочу узнать статус заказа {order_id}", form=True),
            Step("моя почта {email}", verify=True, form=True),
            Step("сколько дней идет доставка?"),
            Step("спасибо"),
            Step("всего доброго"),
        ),
    ),
)
# The bot's "that email doesn't match order …" reply (utter_verification_failed) in en/zh/ru.
VERIFY_FAILED = ("doesn't match", "不符", "не совпадает")
# The gateway answers in the customer's language (Rasa's REST channel knows nothing about it).
SCRIPT_OF = {"zh": re.compile(r"[\u4e00-\u9fff]"), "ru": re.compile(r"[\u0400-\u04ff]"), "en": re.compile(r"[A-Za-z]")}


def demo_orders() -> list[tuple[str, str, str]]:
    """(order_id, username, email) of the demo store's well-known orders."""
    from store.seed import DEMO

    return [(o.order_id, o.username, o.email) for o in DEMO.values()]


def conversation_plan(index: int, orders: list[tuple[str, str, str]]) -> tuple[Script, tuple[str, str, str]]:
    """The same index gives the same customer on both targets."""
    return SCRIPTS[index % len(SCRIPTS)], orders[(index // len(SCRIPTS) + index) % len(orders)]


# ================================================================================================
# Targets
# ================================================================================================
@dataclass(frozen=True)
class Target:
    key: str  # "gateway" | "rasa"
    label: str
    url: str
    auth: str = ""  # "rasa": the gateway channel's bearer token (the channel the gateway itself uses)

    def body(self, sender: str, text: str) -> dict[str, Any]:
        if self.key == "gateway":
            return {"sender_id": sender, "text": text}
        return {"sender": sender, "message": text}

    def headers(self, token: str | None) -> dict[str, str]:
        """The gateway's REST contract: a conversation's later turns carry its X-Conversation-Token;
        Rasa's gateway channel takes only callers with its bearer token."""
        if self.key == "rasa":
            return {"Authorization": f"Bearer {self.auth}"}
        return {"X-Conversation-Token": token} if token else {}

    def token(self, data: Any) -> str | None:
        return data.get("conversation_token") if self.key == "gateway" and isinstance(data, dict) else None

    def texts(self, data: Any) -> list[str]:
        if self.key == "gateway":
            return [str(m.get("text") or "") for m in data.get("messages") or []]
        return [str(m.get("text") or "") for m in (data or {}).get("messages") or []]


@dataclass
class Stats:
    planned: int = 0
    started: int = 0
    completed: int = 0  # all turns sent (with or without errors)
    clean: int = 0  # completed without an error or a failed check
    aborted: int = 0  # cancelled by the hard time cap
    turns_ok: int = 0
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    by_language: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # CPU-seconds by owner
    examples: list[str] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # the 3 slowest turns: (seconds, description)
    records: list[dict[str, Any]] = field(default_factory=list)  # every measured turn, for --dump

    def turn(self, seconds: float, what: str) -> None:
        self.slowest = sorted([*self.slowest, (seconds, what)], reverse=True)[:3]

    def note(self, msg: str) -> None:
        if len(self.examples) < 3:
            self.examples.append(msg)


async def converse(
    client: httpx.AsyncClient, target: Target, sender: str, script: Script, order: tuple[str, str, str], stats: Stats
) -> None:
    order_id, username, email = order
    clean = True
    token: str | None = None  # the gateway's conversation_token (first answer), sent on every later turn
    for step in script.steps:
        text = step.text.format(order_id=order_id, username=username, email=email)
        started = time.perf_counter()
        try:
            resp = await client.post(target.url, json=target.body(sender, text), headers=target.headers(token))
            elapsed = time.perf_counter() - started
            if resp.status_code != 200:
                stats.errors[f"HTTP {resp.status_code}"] += 1
                stats.note(f"{target.key} {sender} {text!r}: HTTP {resp.status_code} {resp.text[:160]!r}")
                clean = False
                continue
            data = resp.json()
            token = token or target.token(data)
            replies = target.texts(data)
        except (httpx.HTTPError, ValueError) as err:
            stats.errors[type(err).__name__] += 1
            stats.note(f"{target.key} {sender} {text!r}: {type(err).__name__} {err}")
            clean = False
            continue
        stats.turns_ok += 1
        stats.latencies.append(elapsed)
        stats.by_language[script.language].append(elapsed)
        stats.by_language["form" if step.form else "other"].append(elapsed)
        stats.turn(elapsed, f"{script.name} turn {script.steps.index(step) + 1} {text!r}")
        stats.records.append(
            {
                "target": target.key,
                "sender": sender,
                "script": script.name,
                "turn": script.steps.index(step) + 1,
                "text": text,
                "form": step.form,
                "latency_s": round(elapsed, 6),
                "end": time.time(),
                "replies": replies,
            }
        )
        joined = " ".join(replies)
        if not replies:
            stats.checks["empty reply"] += 1
            clean = False
        if target.key == "gateway" and replies and not SCRIPT_OF[script.language].search(joined):
            stats.checks["reply not in the customer's language"] += 1
            stats.note(f"{target.key} {script.name} {text!r} → {joined[:160]!r}")
            clean = False
        if step.verify and (order_id not in joined or any(m in joined for m in VERIFY_FAILED)):
            stats.checks["not verified / no order status"] += 1
            stats.note(f"{target.key} {script.name} {text!r} → {joined[:160]!r}")
            clean = False
    stats.completed += 1
    stats.clean += clean


async def run_block(
    target: Target,
    client: httpx.AsyncClient,
    indices: list[int],
    concurrency: int,
    cap_s: float,
    grace_s: float,
    run_id: str,
    orders: list[tuple[str, str, str]],
    stats: Stats,
) -> float:
    """Run ``indices`` conversations, ``concurrency`` at a time; returns the block's wall time."""
    pending: Iterator[int] = iter(indices)
    started = time.perf_counter()
    deadline = started + cap_s
    in_flight: set[int] = set()

    async def worker() -> None:
        while time.perf_counter() < deadline:
            index = next(pending, None)
            if index is None:
                return
            script, order = conversation_plan(index, orders)
            stats.started += 1
            in_flight.add(index)
            await converse(client, target, f"load-{run_id}-{target.key}-c{concurrency}-{index}", script, order, stats)
            in_flight.discard(index)

    tasks = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(indices)))]
    _, still = await asyncio.wait(tasks, timeout=cap_s + grace_s)
    for task in still:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    stats.aborted += len(in_flight)
    return time.perf_counter() - started


# ================================================================================================
# Processes: /proc helpers, memory sampler, CPU accounting
# ================================================================================================
def proc_stat(pid: int) -> tuple[int, int, int, int] | None:
    """(ppid, pgrp, utime+stime ticks, starttime) of a live process, None if it's gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]), int(fields[19])


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return 0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            children[st[0]].append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pid_listening_on(port: int) -> int | None:
    """The process with a listening TCP socket on ``port`` (needs permission to read its fds)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    if not inodes:
        return None
    for pid in all_pids():
        with contextlib.suppress(FileNotFoundError, PermissionError, ProcessLookupError, NotADirectoryError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None


def cpu_busy_ticks() -> int:
    """All CPUs' non-idle time, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]) - values[3] - values[4]  # minus idle, iowait (guest is inside user)


@dataclass
class Peak:
    at_ready: int = 0
    startup: int = 0
    load: int = 0


class ProcessWatch(threading.Thread):
    """Tracks the gateway pid and the Rasa tree; samples RSS every ``interval`` s."""

    def __init__(
        self,
        gateway_pid: Callable[[], int | None],
        rasa_root: Callable[[int | None], int | None],
        interval: float = 0.1,
    ) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self._gateway_pid = gateway_pid
        self._rasa_root = rasa_root
        self.interval = interval
        self.gateway = Peak()
        self.rasa = Peak()
        self.phase = "startup"
        self.samples = 0
        self.gateway_now: int | None = None
        self.rasa_tree: list[int] = []
        self.rasa_roots_seen: dict[int, int] = {}  # pid → starttime, for restarts and for cleanup
        self.seen: dict[int, tuple[int, str]] = {}  # every pid we sampled → (starttime, cmdline)
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def rediscover(self) -> None:
        gw = self._gateway_pid()
        root = self._rasa_root(gw)
        tree: list[int] = []
        if root is not None:
            tree = [root, *descendants(root)]
            st = proc_stat(root)
            if st:
                self.rasa_roots_seen.setdefault(root, st[3])
        elif gw is not None:  # e.g. `rasa train` while starting, before `rasa run`
            tree = descendants(gw)
        for pid in [p for p in (gw, *tree) if p is not None]:
            st = proc_stat(pid)
            if st and pid not in self.seen:
                self.seen[pid] = (st[3], cmdline(pid))
        with self._lock:
            self.gateway_now, self.rasa_tree = gw, tree

    def pids(self) -> tuple[int | None, list[int]]:
        with self._lock:
            return self.gateway_now, list(self.rasa_tree)

    def mark_ready(self) -> None:
        self.rediscover()
        gw, tree = self.pids()
        self.gateway.at_ready = rss_bytes(gw) if gw else 0
        self.rasa.at_ready = sum(rss_bytes(p) for p in tree)
        self.phase = "load"

    def run(self) -> None:
        last_discovery = 0.0
        while not self._halt.is_set():
            now = time.monotonic()
            gw, tree = self.pids()
            if now - last_discovery > 1.0 or not tree or any(proc_stat(p) is None for p in tree[:1]):
                self.rediscover()
                gw, tree = self.pids()
                last_discovery = now
            g = rss_bytes(gw) if gw else 0
            r = sum(rss_bytes(p) for p in tree)
            for peak, value in ((self.gateway, g), (self.rasa, r)):
                if self.phase == "startup":
                    peak.startup = max(peak.startup, value)
                elif self.phase == "load":
                    peak.load = max(peak.load, value)
            self.samples += 1
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - now)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)

    def cpu_snapshot(self) -> dict[str, int]:
        gw, tree = self.pids()
        own = proc_stat(os.getpid())
        return {
            "gateway": (proc_stat(gw) or (0, 0, 0, 0))[2] if gw else 0,
            "rasa": sum((proc_stat(p) or (0, 0, 0, 0))[2] for p in tree),
            "load generator": own[2] if own else 0,
            "total": cpu_busy_ticks(),
        }


def cpu_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    d = {k: max(0, after[k] - before[k]) / CLK_TCK for k in before}
    d["other processes"] = max(0.0, d.pop("total") - d["gateway"] - d["rasa"] - d["load generator"])
    return d


# ================================================================================================
# The system under test (default mode)
# ================================================================================================
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Launched:
    proc: subprocess.Popen[bytes]
    gateway_url: str
    rasa_url: str
    rasa_port: int
    data_dir: Path
    log_path: Path
    config: Path
    model_dir: Path
    model_cached: bool | None
    token: str = ""
    channel_token: str = ""
    spawned_at: float = 0.0  # time.monotonic() just before Popen
    model_name: str | None = None
    cold_start_s: float | None = None


def expected_model(config: Path, model_dir: Path) -> Path | None:
    try:
        from bot.training import DEFAULT_DATA, DEFAULT_DOMAIN, model_hash

        return model_dir / f"model-{model_hash(config, DEFAULT_DOMAIN, DEFAULT_DATA)}.tar.gz"
    except Exception:  # noqa: BLE001 — only used to say whether training was needed
        return None


def launch() -> Launched:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    port, rasa_port = free_port(), free_port()
    while rasa_port == port:
        rasa_port = free_port()
    config = Path(os.environ.get("RASA_CONFIG") or ROOT / "config.yml")
    config = config if config.is_absolute() else ROOT / config
    model_dir = Path(os.environ.get("MODEL_DIR") or ROOT / "models")
    model_dir = model_dir if model_dir.is_absolute() else ROOT / model_dir
    if not config.exists():
        raise SystemExit(f"Rasa config {config} does not exist (set RASA_CONFIG to develop against another one)")
    model = expected_model(config, model_dir)
    token = secrets.token_urlsafe(18)
    channel_token = secrets.token_urlsafe(24)  # the baseline calls Rasa's gateway channel with it
    env = dict(os.environ)
    env.pop("RASA_URL", None)  # embedded mode: the gateway starts and supervises Rasa
    env.update(
        PORT=str(port),
        RASA_PORT=str(rasa_port),
        DATA_DIR=str(data_dir),
        MODEL_DIR=str(model_dir),
        RASA_CONFIG=str(config),
        RASA_TOKEN=token,
        RASA_CHANNEL_TOKEN=channel_token,
        DATABASE_URL=f"sqlite:///{data_dir / 'supportbot.db'}",
        RASA_TELEMETRY_ENABLED="false",
        PYTHONUNBUFFERED="1",
        # every simulated customer comes from 127.0.0.1: the per-address and global limits would throttle them
        RATE_LIMIT_PER_IP="1000000/minute",
        RATE_LIMIT_GLOBAL="1000000/minute",
    )
    log_path = data_dir / "gateway.log"
    with open(log_path, "wb") as out:
        spawned_at = time.monotonic()
        proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "server.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Launched(
        proc=proc,
        gateway_url=f"http://127.0.0.1:{port}",
        rasa_url=f"http://127.0.0.1:{rasa_port}",
        rasa_port=rasa_port,
        data_dir=data_dir,
        log_path=log_path,
        config=config,
        model_dir=model_dir,
        model_cached=model.exists() if model else None,
        token=token,
        channel_token=channel_token,
        spawned_at=spawned_at,
    )


def rasa_child_of(gateway_pid: int | None) -> int | None:
    if gateway_pid is None:
        return None
    for pid in descendants(gateway_pid):
        cmd = cmdline(pid)
        if " run " in f" {cmd} " and "rasa" in cmd and "--model" in cmd:
            return pid
    return None


def _alive(pid: int, starttime: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[3] == starttime


def _wait_gone(pids: dict[int, int], timeout: float) -> dict[int, int]:
    end = time.monotonic() + timeout
    while True:
        left = {p: s for p, s in pids.items() if _alive(p, s)}
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.1)


def stop_system(sut: Launched, watch: ProcessWatch | None) -> list[str]:
    """SIGTERM the gateway's process group (it stops Rasa's), then kill whatever of ours is left."""
    notes: list[str] = []
    if watch is not None:
        watch.rediscover()
    ours: dict[int, int] = {p: start for p, (start, _) in watch.seen.items()} if watch else {}
    rasa_roots = dict(watch.rasa_roots_seen) if watch else {}
    started = time.monotonic()
    if sut.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sut.proc.pid, signal.SIGTERM)
        try:
            sut.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            notes.append("the gateway did not exit within 25 s of SIGTERM; killed its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sut.proc.pid, signal.SIGKILL)
            sut.proc.wait()
    left = _wait_gone(ours, 5)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not left:
            break
        for pid, start in rasa_roots.items():  # Rasa runs in its own session/process group
            if _alive(pid, start):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        notes.append(
            f"{len(left)} process(es) outlived the gateway; sent {sig.name}: "
            + ", ".join(f"{p} ({cmdline(p)[:60]})" for p in left)
        )
        left = _wait_gone(left, 10)
    # Anything still holding our Rasa port?
    holder = pid_listening_on(sut.rasa_port)
    if left or holder:
        notes.append(f"STILL RUNNING after stop: {sorted(left)} port holder {holder}")
    log(
        f"system stopped in {time.monotonic() - started:.1f} s; no gateway/Rasa process left"
        if not (left or holder)
        else f"system stop incomplete: {notes[-1]}"
    )
    return notes


async def wait_ready(sut: Launched, timeout: float) -> float:
    """Seconds from the gateway's Popen to its first /readyz 200."""
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - sut.spawned_at < timeout:
            if sut.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with code {sut.proc.returncode}:\n{tail(sut.log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                resp = await client.get(f"{sut.gateway_url}/readyz")
                if resp.status_code == 200:
                    return time.monotonic() - sut.spawned_at
            await asyncio.sleep(0.1)
    raise RuntimeError(f"/readyz not 200 after {timeout:.0f} s:\n{tail(sut.log_path)}")


def rasa_call_latencies(db: Path, run_id: str) -> dict[int, list[float]]:
    """The gateway stores how long each Rasa call took (turns.latency_ms): per concurrency level, seconds."""
    import sqlite3

    found: dict[int, list[float]] = defaultdict(list)
    pattern = re.compile(rf"^load-{re.escape(run_id)}-gateway-c(\d+)-\d+$")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT c.sender_id, t.latency_ms FROM turns t JOIN conversations c ON c.id = t.conversation_id"
        ).fetchall()
    for sender, latency_ms in rows:
        match = pattern.match(sender or "")
        if match and latency_ms is not None:
            found[int(match.group(1))].append(latency_ms / 1000)
    return found


def background_cpu(seconds: float = 2.0) -> float:
    """Cores busy on this machine before we start anything."""
    before = cpu_busy_ticks()
    time.sleep(seconds)
    return (cpu_busy_ticks() - before) / CLK_TCK / seconds


def tail(path: Path, n: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    return ""


# ================================================================================================
# Statistics and report
# ================================================================================================
def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ms(v: float) -> str:
    return "–" if math.isnan(v) else f"{v * 1000:.0f}"


def mib(v: int) -> str:
    return f"{v / 2**20:.0f} MiB" if v else "n/a"


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError):
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        ram = f"{kb / 2**20:.1f} GiB"
    nproc = len(os.sched_getaffinity(0))
    return {"nproc": str(nproc), "cpu": cpu, "ram": ram, "kernel": os.uname().release}


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"


def reproduce_command() -> str:
    prefix = ""
    if os.environ.get("RASA_CONFIG"):
        prefix = f"RASA_CONFIG={shlex.quote(os.environ['RASA_CONFIG'])} "
    return prefix + shlex.join([".venv/bin/python", "-m", "bench.load", *sys.argv[1:]])


@dataclass
class Run:
    args: argparse.Namespace
    levels: list[int]
    targets: list[Target]
    stats: dict[tuple[int, str], Stats]
    sut: Launched | None
    watch: ProcessWatch | None
    started_at: datetime
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    channel_token: str = ""  # Rasa's gateway channel token (the baseline target and NLU pre-warm)
    background_cores: float = math.nan
    rasa_calls: dict[int, list[float]] = field(default_factory=dict)
    first_turns: list[tuple[str, float]] = field(default_factory=list)
    prewarm: dict[str, Any] = field(default_factory=dict)  # level → Rasa call latencies inside the gateway
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    per_level_conversations: dict[int, int] = field(default_factory=dict)


def render(run: Run) -> str:
    m = machine()
    a = run.args
    out: list[str] = [SECTION, ""]
    out.append(
        f"Generated by `bench/load` on {run.started_at:%Y-%m-%d %H:%M} UTC (commit {git_revision()}); "
        f"the whole run took {run.duration_s:.0f} s."
    )
    out.append("")
    out.append(f"- **Command** (from the repository root): `{reproduce_command()}`")
    out.append(
        f"- **Machine**: {m['nproc']} CPUs (nproc), {m['cpu']}, {m['ram']} RAM, Linux {m['kernel']}; "
        "gateway, Rasa and the load generator all on this machine, over 127.0.0.1; "
        f"CPU already busy before the benchmark started: {run.background_cores:.2f} cores"
        + (
            " (**other work on the machine: the figures below are contaminated**)."
            if run.background_cores > 0.25
            else "."
        )
    )
    if run.sut:
        sut = run.sut
        cfg = sut.config.relative_to(ROOT) if sut.config.is_relative_to(ROOT) else sut.config
        cached = {True: "cached", False: "**not cached: cold start includes training**", None: "cache unknown"}
        out.append(
            f"- **System**: started by the benchmark (`server.py`, embedded Rasa, fresh SQLite DATA_DIR); "
            f"Rasa config `{cfg}`{'' if cfg == Path('config.yml') else ' (**not the project default**)'}, "
            f"model `{sut.model_name or '?'}` ({cached[sut.model_cached]})."
        )
        cold = f"{sut.cold_start_s:.1f} s" if sut.cold_start_s is not None else "n/a"
        first = ", ".join(f"{lang} {ms(t)} ms" for lang, t in run.first_turns) or "n/a"
        out.append(
            f"- **Cold start** (process start → first `GET /readyz` 200, polled every 100 ms): **{cold}**; "
            f"then the first customer turn per language through the gateway took: {first}."
        )
    else:
        out.append(f"- **System**: already running, gateway {a.url}, Rasa {a.rasa_url} (no cold start measured).")
    mix = ", ".join(f"{s.name} ({len(s.steps)} turns)" for s in SCRIPTS)
    plan = ", ".join(f"{n} at concurrency {c}" for c, n in run.per_level_conversations.items())
    out.append(
        f"- **Workload**: whole conversations, one sender id each, round-robin over {mix}, with the demo "
        f"store's real orders and emails (store.seed.DEMO); closed loop without think time. Per target: {plan} "
        f"(time cap {a.time_cap:.0f} s per target and level), in {a.rounds * 2} alternating blocks A-B-B-A, "
        f"after {a.warmup} warm-up conversations per target."
    )
    if run.prewarm:
        pw = run.prewarm
        out.append(
            f"- **NLU cache**: the E5 featurizer caches text → embedding, so every text the run sends "
            f"({pw['texts']} distinct) was parsed first via {pw['via']}, and both targets see a warm cache "
            f"(otherwise whichever target sends a text first pays for it). One NLU parse took "
            f"{ms(pw['miss_p50'])} ms (p50) for a text never seen before and {ms(pw['hit_p50'])} ms once cached: "
            "new customer wording costs Rasa that much more per turn than the figures below."
        )
    else:
        out.append(
            "- **NLU cache**: not pre-warmed (`--no-prewarm`): the first target to send a text pays its "
            "embedding, which favours the other."
        )
    out.append(
        "- **Targets**: gateway = `POST /api/v1/chat`; Rasa = `POST /webhooks/gateway/webhook` (the channel the gateway uses) on the same Rasa "
        "process (same model, same action server). Turn latency = one request → reply at the client; errors = "
        "non-200 or transport errors (not in the latency figures)."
    )
    out.append("")
    out.append("### Turn latency and throughput")
    out.append("")
    out.append(
        "| Concurrency | Target | Conversations done / planned | Turns | Errors | Failed checks "
        "| p50 ms | p95 ms | p99 ms | Turns/s | Conversations/s |"
    )
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in run.levels:
        for t in run.targets:
            s = run.stats[(c, t.key)]
            wall = s.wall_s or math.nan
            out.append(
                f"| {c} | {t.label} | {s.completed} / {s.planned} | {s.turns_ok} | {sum(s.errors.values())} | "
                f"{sum(s.checks.values())} | {ms(percentile(s.latencies, 0.5))} | {ms(percentile(s.latencies, 0.95))} | "
                f"{ms(percentile(s.latencies, 0.99))} | {s.turns_ok / wall:.1f} | {s.completed / wall:.2f} |"
            )
    out.append("")
    out.append(
        f"### Against the targets (gateway adds ≤ {TARGET_OVERHEAD_P50:.0%} to Rasa's p50, "
        f"keeps ≥ {TARGET_THROUGHPUT:.0%} of its turns/s)"
    )
    out.append("")
    out.append(
        "| Concurrency | Rasa p50 ms | Gateway p50 ms | Gateway overhead on p50 | Met? "
        "| Gateway throughput, % of Rasa's turns/s | Met? |"
    )
    out.append("|---:|---:|---:|---:|---|---:|---|")
    verdicts: list[bool] = []
    for c in run.levels:
        g, r = run.stats[(c, "gateway")], run.stats[(c, "rasa")]
        gp, rp = percentile(g.latencies, 0.5), percentile(r.latencies, 0.5)
        over = (gp - rp) / rp if rp and not math.isnan(gp) else math.nan
        gt = g.turns_ok / g.wall_s if g.wall_s else math.nan
        rt = r.turns_ok / r.wall_s if r.wall_s else math.nan
        ratio = gt / rt if rt else math.nan
        ok1, ok2 = over <= TARGET_OVERHEAD_P50, ratio >= TARGET_THROUGHPUT
        verdicts += [ok1, ok2]
        out.append(
            f"| {c} | {ms(rp)} | {ms(gp)} | {over:+.1%} | {'yes' if ok1 else '**no**'} | {ratio:.1%} "
            f"| {'yes' if ok2 else '**no**'} |"
        )
    out.append("")
    out.append(f"**Verdict: {'all targets met' if all(verdicts) else 'targets NOT all met'}.**")
    out.append("")
    if run.rasa_calls:
        out.append("### Where the gateway's extra time goes (ms)")
        out.append("")
        out.append(
            "The gateway records how long each of its Rasa calls took (`turns.latency_ms`, via Rasa's gateway "
            "channel, which also returns the turn's NLU/slots and keeps the language slot). End-to-end minus that "
            "is the gateway's own work (validation, token and rate checks, language detection, two SQLite "
            "transactions); the Rasa call minus the baseline's (the same channel, called directly) is transport."
        )
        out.append("")
        out.append(
            "| Concurrency | Rasa channel direct p50 (mean) | Gateway's Rasa call p50 (mean) | Gateway end-to-end p50 (mean) "
            "| Gateway's own work, mean | Rasa call minus direct, mean |"
        )
        out.append("|---:|---:|---:|---:|---:|---:|")
        for c in run.levels:
            calls = run.rasa_calls.get(c, [])
            g, r = run.stats[(c, "gateway")].latencies, run.stats[(c, "rasa")].latencies
            mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
            out.append(
                f"| {c} | {ms(percentile(r, 0.5))} ({ms(mean(r))}) | {ms(percentile(calls, 0.5))} ({ms(mean(calls))}) "
                f"| {ms(percentile(g, 0.5))} ({ms(mean(g))}) | {ms(mean(g) - mean(calls))} "
                f"| {ms(mean(calls) - mean(r))} |"
            )
        out.append("")
    out.append("### p50 turn latency by conversation language and by kind of turn (ms)")
    out.append("")
    out.append(
        "Order-form turns (asking for the status, giving the order id, giving the email) make Rasa call the "
        "action server, which runs inside the gateway process; the other turns are answered by Rasa alone."
    )
    out.append("")
    out.append("| Concurrency | Target | en | zh | ru | Order-form turns | Other turns |")
    out.append("|---:|---|---:|---:|---:|---:|---:|")
    for c in run.levels:
        for t in run.targets:
            s = run.stats[(c, t.key)]
            cells = " | ".join(
                ms(percentile(s.by_language.get(k, []), 0.5)) for k in ("en", "zh", "ru", "form", "other")
            )
            out.append(f"| {c} | {t.label} | {cells} |")
    out.append("")
    if run.watch:
        out.append(
            "### CPU while each target was loaded (average cores busy, out of "
            f"{m['nproc']}; CPU-ms per successful turn in brackets)"
        )
        out.append("")
        out.append("| Concurrency | Target | Gateway process | Rasa tree | Load generator | Other processes |")
        out.append("|---:|---|---:|---:|---:|---:|")
        for c in run.levels:
            for t in run.targets:
                s = run.stats[(c, t.key)]
                cells = []
                for k in ("gateway", "rasa", "load generator", "other processes"):
                    cores = s.cpu.get(k, 0.0) / s.wall_s if s.wall_s else math.nan
                    per_turn = s.cpu.get(k, 0.0) * 1000 / s.turns_ok if s.turns_ok else math.nan
                    cells.append(f"{cores:.2f} ({per_turn:.0f})")
                out.append(f"| {c} | {t.label} | {' | '.join(cells)} |")
        out.append("")
        w = run.watch
        out.append(f"### Memory (RSS, sampled every {w.interval * 1000:.0f} ms from /proc; {w.samples} samples)")
        out.append("")
        out.append("| Process | At ready | Peak during the load | Peak during startup |")
        out.append("|---|---:|---:|---:|")
        out.append(
            f"| Gateway (`server.py`, one process) | {mib(w.gateway.at_ready)} | {mib(w.gateway.load)} "
            f"| {mib(w.gateway.startup) if run.sut else 'n/a'} |"
        )
        out.append(
            f"| Rasa process tree | {mib(w.rasa.at_ready)} | {mib(w.rasa.load)} "
            f"| {mib(w.rasa.startup) if run.sut else 'n/a'} |"
        )
        out.append("")
    notes = list(run.notes)
    for c in run.levels:
        for t in run.targets:
            s = run.stats[(c, t.key)]
            if s.errors:
                notes.append(f"concurrency {c}, {t.label}: errors {dict(s.errors)}")
            if s.checks:
                notes.append(f"concurrency {c}, {t.label}: failed dialogue checks {dict(s.checks)}")
            if s.aborted or s.completed < s.planned:
                notes.append(
                    f"concurrency {c}, {t.label}: {s.completed}/{s.planned} conversations completed "
                    f"({s.aborted} cancelled by the hard cap; the rest not started before the time cap)"
                )
            for ex in s.examples:
                notes.append(f"e.g. {ex}")
            if s.slowest:
                notes.append(
                    f"concurrency {c}, {t.label}: slowest turns "
                    + "; ".join(f"{ms(sec)} ms {what}" for sec, what in s.slowest)
                )
    if notes:
        out.append("### Notes")
        out.append("")
        out += [f"- {n}" for n in notes]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the ``## Load`` section of ``path`` (bench/results.py owns the format)."""
    from bench.results import replace_section

    replace_section(SECTION.removeprefix("## "), section.removeprefix(SECTION), path)


# ================================================================================================
# Main
# ================================================================================================
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 20], help="levels (default: 1 20)")
    p.add_argument(
        "--conversations",
        type=int,
        default=None,
        help="conversations per target and level (default: the larger of 80 and 4 × concurrency; with 16 at concurrency 1 back-to-back runs scattered by ±10%%)",
    )
    p.add_argument("--url", help="benchmark this running gateway instead of starting one (needs --rasa-url)")
    p.add_argument("--rasa-url", help="the Rasa server behind --url (its gateway channel is the baseline)")
    p.add_argument(
        "--rasa-channel-token",
        default=os.environ.get("RASA_CHANNEL_TOKEN") or "",
        help="with --url: the bearer token Rasa's gateway channel accepts (default $RASA_CHANNEL_TOKEN)",
    )
    p.add_argument(
        "--rasa-token",
        default=os.environ.get("RASA_TOKEN") or None,
        help="with --url: Rasa's auth token, to pre-warm the NLU through /model/parse (default $RASA_TOKEN)",
    )
    p.add_argument("--dump", type=Path, help="also write every measured turn to this file (JSON lines)")
    p.add_argument("--no-prewarm", action="store_true", help="don't pre-warm the NLU embedding cache")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file (default: bench/RESULTS.md)")
    p.add_argument("--time-cap", type=float, default=90.0, help="seconds per target and level (default 90)")
    p.add_argument("--grace", type=float, default=20.0, help="seconds in-flight conversations get after the cap")
    p.add_argument("--rounds", type=int, default=2, help="A-B block pairs per level (default 2: A-B-B-A)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured conversations per target first (default 3)")
    p.add_argument("--start-timeout", type=float, default=600.0, help="seconds to wait for /readyz (default 600)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request timeout in seconds (default 30)")
    args = p.parse_args(argv)
    if args.url and not args.rasa_url:
        p.error("--url needs --rasa-url (the Rasa server whose gateway channel is the baseline)")
    if args.rasa_url and not args.url:
        p.error("--rasa-url is only used with --url")
    if any(c < 1 for c in args.concurrency) or args.rounds < 1:
        p.error("concurrency and rounds must be ≥ 1")
    return args


FIRST_TURNS = (("en", "hello"), ("zh", "你好"), ("ru", "здравствуйте"))


async def first_turns(run: Run, gateway: Target) -> None:
    """The first customer message per language right after /readyz said 200 (lazy loads show up here)."""
    async with httpx.AsyncClient(timeout=run.args.timeout) as client:
        for lang, text in FIRST_TURNS:
            started = time.perf_counter()
            try:
                resp = await client.post(gateway.url, json=gateway.body(f"load-{run.run_id}-first-{lang}", text))
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            run.first_turns.append((lang, time.perf_counter() - started if ok else math.nan))
    log("first turns after ready: " + ", ".join(f"{lang} {ms(t)} ms" for lang, t in run.first_turns))


def planned_texts(run: Run, orders: list[tuple[str, str, str]]) -> list[str]:
    n = max(run.args.warmup, *(run.args.conversations or max(80, 4 * c) for c in run.levels))
    texts: dict[str, None] = {}
    for index in range(n):
        script, (order_id, username, email) = conversation_plan(index, orders)
        for step in script.steps:
            texts[step.text.format(order_id=order_id, username=username, email=email)] = None
    return list(texts)


async def prewarm_nlu(run: Run, rasa_url: str, token: str | None, orders: list[tuple[str, str, str]]) -> None:
    """Parse every text the benchmark will send, twice: the NLU's embedding cache (E5Featurizer keeps a
    text → embedding LRU) then holds them all, so neither target pays the misses the other already paid.
    The first pass measures a cache miss, the second a hit."""
    texts = planned_texts(run, orders)
    base = rasa_url.rstrip("/")
    timings: dict[str, list[float]] = {"miss": [], "hit": []}
    async with httpx.AsyncClient(timeout=run.args.timeout) as client:
        for kind in ("miss", "hit"):
            for i, text in enumerate(texts):
                started = time.perf_counter()
                try:
                    if token:
                        resp = await client.post(f"{base}/model/parse", params={"token": token}, json={"text": text})
                    else:  # no token: a throw-away conversation per text through the gateway channel
                        resp = await client.post(
                            f"{base}/webhooks/gateway/webhook",
                            json={"sender": f"load-{run.run_id}-prewarm-{kind}-{i}", "message": text},
                            headers={"Authorization": f"Bearer {run.channel_token}"},
                        )
                    if resp.status_code == 200:
                        timings[kind].append(time.perf_counter() - started)
                except httpx.HTTPError:
                    pass
    run.prewarm = {
        "texts": len(texts),
        "via": "/model/parse" if token else "the gateway channel (one throw-away conversation per text)",
        "miss_p50": percentile(timings["miss"], 0.5),
        "hit_p50": percentile(timings["hit"], 0.5),
    }
    log(
        f"NLU cache pre-warmed with {len(texts)} texts: parse p50 {ms(run.prewarm['miss_p50'])} ms on first sight, "
        f"{ms(run.prewarm['hit_p50'])} ms when cached"
    )


async def measure(run: Run, gateway_url: str, rasa_url: str, token: str | None) -> None:
    a = run.args
    orders = demo_orders()
    run_id = run.run_id
    gateway = Target("gateway", "Gateway `/api/v1/chat`", f"{gateway_url.rstrip('/')}/api/v1/chat")
    rasa = Target("rasa", "Rasa gateway channel", f"{rasa_url.rstrip('/')}/webhooks/gateway/webhook", run.channel_token)
    run.targets = [gateway, rasa]
    if run.sut:
        await first_turns(run, gateway)
    if not a.no_prewarm:
        await prewarm_nlu(run, rasa_url, token, orders)

    for level_no, c in enumerate(run.levels):
        n = a.conversations or max(80, 4 * c)
        run.per_level_conversations[c] = n
        limits = httpx.Limits(max_connections=c + 4, max_keepalive_connections=c + 4)
        clients = {t.key: httpx.AsyncClient(timeout=a.timeout, limits=limits) for t in run.targets}
        try:
            if level_no == 0 and a.warmup:
                log(f"warm-up: {a.warmup} conversations per target")
                for t in run.targets:
                    await run_block(
                        t,
                        clients[t.key],
                        list(range(a.warmup)),
                        min(3, a.warmup),
                        120,
                        10,
                        f"{run_id}w",
                        orders,
                        Stats(),
                    )
            chunks = [list(range(n))[r :: a.rounds] for r in range(a.rounds)]
            first = run.targets if level_no % 2 == 0 else run.targets[::-1]
            for r, chunk in enumerate(chunks):
                for t in first if r % 2 == 0 else first[::-1]:
                    s = run.stats.setdefault((c, t.key), Stats())
                    s.planned += len(chunk)
                    cap = max(1.0, a.time_cap / a.rounds)
                    before = run.watch.cpu_snapshot() if run.watch else None
                    wall = await run_block(t, clients[t.key], sorted(chunk), c, cap, a.grace, run_id, orders, s)
                    if run.watch and before:
                        for k, v in cpu_delta(before, run.watch.cpu_snapshot()).items():
                            s.cpu[k] += v
                    s.wall_s += wall
                    log(
                        f"c={c:<3} {t.key:<8} block {r + 1}/{a.rounds}: {len(chunk)} conversations in {wall:.1f} s "
                        f"(total turns {s.turns_ok}, errors {sum(s.errors.values())}, checks {sum(s.checks.values())})"
                    )
        finally:
            for client in clients.values():
                await client.aclose()


async def main_async(args: argparse.Namespace) -> Run:
    run = Run(
        args=args,
        levels=list(dict.fromkeys(args.concurrency)),
        targets=[],
        stats={},
        sut=None,
        watch=None,
        started_at=datetime.now(UTC),
    )
    t0 = time.monotonic()
    run.background_cores = background_cpu()
    log(f"CPU busy before starting: {run.background_cores:.2f} cores (other processes on this machine)")
    if args.url:
        gw_port = httpx.URL(args.url).port or 80
        rasa_port = httpx.URL(args.rasa_url).port or 80
        watch = ProcessWatch(lambda: pid_listening_on(gw_port), lambda _gw: pid_listening_on(rasa_port))
        watch.phase = "load"
        watch.mark_ready()
        if watch.gateway_now is None and not watch.rasa_tree:
            run.notes.append("memory/CPU not measured: no local process found listening on the given ports")
        else:
            watch.start()
            run.watch = watch
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{args.url.rstrip('/')}/readyz")
            if resp.status_code != 200:
                raise SystemExit(f"{args.url}/readyz answered {resp.status_code}: {resp.text[:200]}")
        run.channel_token = args.rasa_channel_token
        try:
            await measure(run, args.url, args.rasa_url, args.rasa_token)
        finally:
            if run.watch:
                run.watch.stop()
        run.duration_s = time.monotonic() - t0
        return run

    sut = launch()
    run.sut = sut
    run.channel_token = sut.channel_token
    log(
        f"started gateway pid {sut.proc.pid} on {sut.gateway_url}, Rasa on {sut.rasa_url}; config {sut.config}; "
        f"model {'cached' if sut.model_cached else 'NOT cached (training first)'}; logs in {sut.data_dir}"
    )
    watch = ProcessWatch(lambda: sut.proc.pid if sut.proc.poll() is None else None, rasa_child_of)
    watch.start()
    run.watch = watch
    failed, interrupted = True, False
    try:
        sut.cold_start_s = await wait_ready(sut, args.start_timeout)
        watch.mark_ready()
        gw, tree = watch.pids()
        if tree:
            match = re.search(r"--model\s+(\S+)", cmdline(tree[0]))
            sut.model_name = Path(match.group(1)).name if match else None
        log(f"ready after {sut.cold_start_s:.1f} s (gateway pid {gw}, Rasa tree {tree})")
        await measure(run, sut.gateway_url, sut.rasa_url, sut.token)
        restarts = len(watch.rasa_roots_seen) - 1
        if restarts > 0:
            run.notes.append(f"Rasa was restarted {restarts} time(s) by the supervisor during the run")
        failed = False
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        raise
    finally:
        watch.phase = "stopping"  # shutdown is not part of the load peak
        try:
            run.notes += stop_system(sut, watch)
        finally:
            watch.stop()
        if interrupted:
            shutil.rmtree(sut.data_dir, ignore_errors=True)
        elif failed:
            log(f"gateway log tail ({sut.log_path}):\n{tail(sut.log_path)}")
        else:
            rasa_log = sut.data_dir / "rasa.log"
            problems = [
                ln
                for ln in (
                    sut.log_path.read_text(errors="replace")
                    + "\n"
                    + (rasa_log.read_text(errors="replace") if rasa_log.exists() else "")
                ).splitlines()
                if re.search(r"\b(ERROR|Traceback|CRITICAL)\b", ln)
            ]
            with contextlib.suppress(Exception):
                run.rasa_calls = rasa_call_latencies(sut.data_dir / "supportbot.db", run.run_id)
            if problems:
                run.notes.append(
                    f"{len(problems)} ERROR/Traceback line(s) in the gateway/Rasa logs, first: `{problems[0][:200]}`"
                )
            shutil.rmtree(sut.data_dir, ignore_errors=True)
    run.duration_s = time.monotonic() - t0
    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    dump = args.dump.resolve() if args.dump else None
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    os.chdir(ROOT)

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt  # unwinds through main_async's finally: the system is stopped

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        run = asyncio.run(main_async(args))
    except KeyboardInterrupt:
        log("interrupted; nothing written")
        return 130
    section = render(run)
    write_section(out, section)
    if dump:
        import json

        with open(dump, "w") as fh:
            for (level, _), st in sorted(run.stats.items()):
                for rec in st.records:
                    fh.write(json.dumps({"concurrency": level, **rec}, ensure_ascii=False) + "\n")
    print(section)
    log(f"wrote the '{SECTION}' section of {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
