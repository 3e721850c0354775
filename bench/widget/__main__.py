"""Widget benchmark: websocket round-trip latency with 200 concurrent widget connections, and script size.

    .venv/bin/python -m bench.widget [--connections 200] [--out bench/RESULTS.md]
    .venv/bin/python -m bench.widget --url http://127.0.0.1:8000      # a gateway that is already running

Method
------
* By default the whole system is started as ``make run`` would (bench/load's launcher: free ports,
  a fresh temporary DATA_DIR, the cached model in models/); ``--url`` measures a running gateway.
* ``--connections`` widget sockets are opened at once from one asyncio process, each with its own
  browser token (so its own sender id and conversation), exactly the frames widget.js sends
  (``hello`` → ``ready``); all stay open for the whole run. Reported: connect + hello → ready time.
* Transport round trip: every socket sends ``{"type": "ping"}`` and waits for the ``pong``, ``--pings``
  times in a row, all sockets at once. This is the gateway's own websocket path (accept, JSON
  parse, serialised send) with no bot work.
* Bot turn round trip: a ``message`` frame → its ``reply`` frame at the client (the ``ack`` in
  between is not the end). It includes the gateway's storage of the message, language detection,
  the HTTP call to Rasa (NLU, dialogue policies, and for order questions the action server inside
  the gateway), storing the replies and the send back. Two workloads, both with all sockets open:
  - *burst*: every socket sends at the same moment and sends its next message as soon as its reply
    arrives (closed loop, ``--burst-turns`` each): how long customers wait when all are typing at once.
  - *paced*: each socket sends a message, then waits a random think time (uniform 0.5×–1.5×
    ``--think``) before the next, for ``--paced-seconds``: the latency at a realistic arrival rate.
* Messages are short customer openers in en/zh/ru (greeting, order status, a question, thanks).
  Memory: the gateway's RSS before and with the sockets open (from /proc).
* Script size: widget.js as committed, raw and gzip -9, and the bytes ``GET /widget.js`` sends with
  ``Accept-Encoding: gzip``. Target: ≤ 30 KB gzipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import secrets
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from bench.load.cluster import launch, stop_system
from bench.load.processes import ProcessWatch, background_cpu, pid_listening_on, rasa_child_of, rss_bytes
from bench.results import git_revision, machine, ms, percentile
from scenarios.system import tail

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "bench" / "RESULTS.md"
SECTION = "## Widget"
WIDGET_JS = ROOT / "channels" / "widget" / "static" / "widget.js"
SIZE_TARGET = 30 * 1024
MESSAGES = (
    "hi", "where is my order?", "what are your opening hours?", "thanks",
    "你好", "我的订单到哪了", "谢谢",
    "здравствуйте", "где мой заказ?", "спасибо",
)


def log(msg: str) -> None:
    print(f"[widget {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicates: int = 0
    pendings: int = 0  # "pending" answers (Rasa timed out or restarting), each followed by a resend
    wall_s: float = 0.0

    def summary(self) -> dict[str, float]:
        v = self.latencies
        return {"n": len(v), "p50": percentile(v, 0.5), "p90": percentile(v, 0.9), "p99": percentile(v, 0.99),
                "max": max(v) if v else float("nan")}


class Widget:
    """One browser's socket, speaking channels/widget/protocol.py."""

    def __init__(self, ws: ClientConnection, index: int) -> None:
        self.ws = ws
        self.index = index
        self.sent = 0

    async def frame(self, wanted: str, client_id: str | None = None) -> dict[str, Any]:
        """The next frame of type ``wanted`` (for ``client_id``); a ``pending`` one is returned as is."""
        while True:
            data = json.loads(await self.ws.recv())
            mine = client_id is None or data.get("id") == client_id
            if data.get("type") == "error" and mine:
                raise RuntimeError(f"error: {data.get('detail')}")
            if data.get("type") in (wanted, "pending") and mine:
                return data

    async def ping(self) -> float:
        started = time.perf_counter()
        await self.ws.send('{"type":"ping"}')
        await self.frame("pong")
        return time.perf_counter() - started

    async def turn(self, text: str) -> tuple[float, dict[str, Any], int]:
        """Send one message and wait for its reply, resending after ``pending`` as widget.js does (same id,
        after ``retry_after``); the latency is the customer's whole wait. Returns (seconds, reply, pendings)."""
        self.sent += 1
        client_id = f"b-{self.index}-{self.sent}"
        frame = json.dumps({"type": "message", "id": client_id, "text": text}, ensure_ascii=False)
        started = time.perf_counter()
        pendings = 0
        while True:
            await self.ws.send(frame)
            got = await self.frame("reply", client_id)
            if got["type"] == "reply":
                return time.perf_counter() - started, got, pendings
            pendings += 1
            if pendings > 5:
                raise RuntimeError(f"still pending after {pendings} resends: {got.get('detail')}")
            await asyncio.sleep(float(got.get("retry_after") or 5))


async def open_widget(ws_url: str, index: int, run_id: str) -> tuple[Widget, float]:
    started = time.perf_counter()
    ws = await connect(ws_url, open_timeout=60, max_size=2**20, ping_interval=None)
    await ws.send(json.dumps({"type": "hello", "token": f"bench-{run_id}-{index:05d}-" + secrets.token_hex(4)}))
    widget = Widget(ws, index)
    ready = await widget.frame("ready")
    assert ready["history"] == [], "a fresh token must start a fresh conversation"
    return widget, time.perf_counter() - started


async def pings(widgets: list[Widget], rounds: int) -> Sample:
    sample = Sample()

    async def one(w: Widget) -> None:
        for _ in range(rounds):
            try:
                sample.latencies.append(await w.ping())
            except Exception as err:  # noqa: BLE001 - counted and reported
                sample.errors.append(repr(err))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(w) for w in widgets))
    sample.wall_s = time.perf_counter() - t0
    return sample


async def _measured_turn(w: Widget, sample: Sample, rng: random.Random) -> None:
    """One customer message and its reply, added to ``sample`` (an error is recorded, not raised)."""
    try:
        latency, reply, pendings = await w.turn(rng.choice(MESSAGES))
        sample.latencies.append(latency)
        sample.duplicates += bool(reply.get("duplicate"))
        sample.pendings += pendings
    except Exception as err:  # noqa: BLE001
        sample.errors.append(repr(err))


async def burst(widgets: list[Widget], turns: int, rng: random.Random) -> Sample:
    sample = Sample()

    async def one(w: Widget) -> None:
        for _ in range(turns):
            await _measured_turn(w, sample, rng)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(w) for w in widgets))
    sample.wall_s = time.perf_counter() - t0
    return sample


async def paced(widgets: list[Widget], seconds: float, think: float, rng: random.Random) -> Sample:
    sample = Sample()
    deadline = time.monotonic() + seconds

    async def one(w: Widget) -> None:
        await asyncio.sleep(rng.uniform(0, think))  # customers do not all start at the same moment
        while time.monotonic() < deadline:
            await _measured_turn(w, sample, rng)
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(w) for w in widgets))
    sample.wall_s = time.perf_counter() - t0
    return sample


# --- script size ---------------------------------------------------------------------------------
def script_sizes(gateway_url: str) -> dict[str, int]:
    body = WIDGET_JS.read_bytes()
    served = httpx.get(f"{gateway_url}/widget.js", headers={"accept-encoding": "gzip"})
    served.raise_for_status()
    return {
        "raw": len(body),
        "gzip9": len(gzip.compress(body, 9)),
        "served": int(served.headers.get("content-length") or len(served.content)),
        "served_encoding": served.headers.get("content-encoding") == "gzip",
    }


# --- the run --------------------------------------------------------------------------------------
@dataclass
class Run:
    args: argparse.Namespace
    started_at: datetime
    sizes: dict[str, int] = field(default_factory=dict)
    connect: Sample = field(default_factory=Sample)
    ping: Sample = field(default_factory=Sample)
    burst: Sample = field(default_factory=Sample)
    paced: Sample = field(default_factory=Sample)
    rss_before: int = 0
    rss_open: int = 0
    cold_start_s: float | None = None
    background_cores: float = 0.0
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)


async def measure(run: Run, gateway_url: str, gateway_pid: int | None) -> None:
    args = run.args
    rng = random.Random(args.seed)
    run_id = secrets.token_hex(3)
    ws_url = gateway_url.replace("http://", "ws://").replace("https://", "wss://") + "/api/v1/ws"
    run.sizes = script_sizes(gateway_url)
    log(f"widget.js: {run.sizes['raw']} B raw, {run.sizes['gzip9']} B gzip -9, {run.sizes['served']} B served")
    # Warm-up (not measured): one socket, one turn per language, so first-use costs are paid.
    warm, _ = await open_widget(ws_url, 99999, run_id)
    for text in ("hi", "你好", "здравствуйте"):
        await warm.turn(text)  # (seconds, reply, pendings) not kept
    await warm.ws.close()
    run.rss_before = rss_bytes(gateway_pid) if gateway_pid else 0

    log(f"opening {args.connections} sockets at once")
    results = await asyncio.gather(
        *(open_widget(ws_url, i, run_id) for i in range(args.connections)), return_exceptions=True
    )
    widgets = []
    for r in results:
        if isinstance(r, BaseException):
            run.connect.errors.append(repr(r))
        else:
            widgets.append(r[0])
            run.connect.latencies.append(r[1])
    if len(widgets) < args.connections:
        raise SystemExit(f"only {len(widgets)} of {args.connections} sockets opened: {run.connect.errors[:3]}")
    run.rss_open = rss_bytes(gateway_pid) if gateway_pid else 0
    try:
        log(f"transport round trips: {args.pings} pings per socket")
        run.ping = await pings(widgets, args.pings)
        log(f"burst: {args.burst_turns} turns per socket, all at once")
        run.burst = await burst(widgets, args.burst_turns, rng)
        log(f"paced: {args.paced_seconds:.0f} s, think time {args.think:.0f} s ± 50 %")
        run.paced = await paced(widgets, args.paced_seconds, args.think, rng)
    finally:
        await asyncio.gather(*(w.ws.close() for w in widgets), return_exceptions=True)


async def main_async(args: argparse.Namespace) -> Run:
    run = Run(args=args, started_at=datetime.now(UTC))
    t0 = time.monotonic()
    run.background_cores = background_cpu()
    if args.url:
        url = args.url.rstrip("/")
        resp = httpx.get(f"{url}/readyz", timeout=10)
        if resp.status_code != 200:
            raise SystemExit(f"{url}/readyz answered {resp.status_code}: {resp.text[:200]}")
        pid = pid_listening_on(httpx.URL(url).port or 80)
        if pid is None:
            run.notes.append("gateway memory not measured: no local process found listening on its port")
        await measure(run, url, pid)
        run.duration_s = time.monotonic() - t0
        return run
    sut = launch()
    gateway = sut.gateway
    log(f"started gateway pid {gateway.proc.pid} on {gateway.url}; logs in {gateway.data_dir}")
    watch = ProcessWatch(lambda: gateway.proc.pid if gateway.proc.poll() is None else None, rasa_child_of)
    watch.start()
    failed = True
    try:
        run.cold_start_s = gateway.wait_ready(args.start_timeout, interval=0.1)
        watch.mark_ready()
        await measure(run, gateway.url, gateway.proc.pid)
        failed = False
    finally:
        run.notes += stop_system(sut)
        watch.stop()
        if failed:
            log(f"gateway log tail ({gateway.log_path}):\n{tail(gateway.log_path)}")
    run.duration_s = time.monotonic() - t0
    return run


# --- report ----------------------------------------------------------------------------------------
def row(name: str, sample: Sample, what: str) -> str:
    s = sample.summary()
    rate = s["n"] / sample.wall_s if sample.wall_s else float("nan")
    return (f"| {name} | {what} | {s['n']:.0f} | {len(sample.errors)} | {sample.pendings} | {ms(s['p50'])} | {ms(s['p90'])} | "
            f"{ms(s['p99'])} | {ms(s['max'])} | {rate:.1f} |")


def render(run: Run) -> str:
    args, m, sizes = run.args, machine(), run.sizes
    command = shlex.join([".venv/bin/python", "-m", "bench.widget", *sys.argv[1:]])
    verdict = "met" if sizes["gzip9"] <= SIZE_TARGET else "NOT met"
    out = [
        SECTION, "",
        f"Generated by `bench/widget` on {run.started_at:%Y-%m-%d %H:%M} UTC (commit {git_revision()}); "
        f"the whole run took {run.duration_s:.0f} s.", "",
        f"- **Command** (from the repository root): `{command}`",
        f"- **Machine**: {m['nproc']} CPUs (nproc), {m['cpu']}, {m['ram']} RAM, Linux {m['kernel']}; gateway, Rasa "
        f"and the {args.connections} client sockets all on this machine over 127.0.0.1; CPU already busy before "
        f"the benchmark: {run.background_cores:.2f} cores.",
        "- **System**: " + (f"started by the benchmark (`server.py`, embedded Rasa, fresh SQLite DATA_DIR), ready "
                            f"after {run.cold_start_s:.1f} s." if run.cold_start_s is not None
                            else f"the running gateway at {args.url}."),
        f"- **Connections**: {args.connections} widget sockets opened at once, each its own browser token and "
        f"conversation, all open for the whole run; connect + hello → ready p50 {ms(run.connect.summary()['p50'])} ms, "
        f"p99 {ms(run.connect.summary()['p99'])} ms. Gateway RSS "
        + (f"{run.rss_before / 2**20:.0f} MiB before, {run.rss_open / 2**20:.0f} MiB with the sockets open."
           if run.rss_before else "not measured."),
        "",
        "### Round-trip latency with all sockets open (ms, at the client)", "",
        "| Workload | Round trip | Samples | Errors | Pending → resent | p50 | p90 | p99 | max | per s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        row("transport", run.ping, f"`ping` → `pong`, {args.pings} per socket, all sockets at once"),
        row("bot turn, burst", run.burst,
            f"`message` → `reply`, all {args.connections} sockets send at once, {args.burst_turns} turns each "
            "(closed loop, no think time)"),
        row("bot turn, paced", run.paced,
            f"`message` → `reply`, think time {args.think * 0.5:.0f}–{args.think * 1.5:.0f} s between a reply and "
            f"the next message ({args.connections / args.think:.1f} messages/s offered), {args.paced_seconds:.0f} s"),
        "",
        "A transport round trip is the gateway's websocket path only (receive, JSON parse, send under the "
        "connection's lock). A bot turn adds everything a customer waits for: the message stored, its language "
        "detected, Rasa asked over HTTP (NLU, policies and, for order questions, the action server inside the "
        "gateway), the replies stored and sent. The burst row is queueing behind one Rasa process (CPU-bound, see "
        "## Load): its p50 grows with the number of customers typing at the same moment, not with the number of "
        "open sockets; the paced row is the latency at a realistic arrival rate with all sockets held open. "
        f"Duplicate replies seen: {run.burst.duplicates + run.paced.duplicates} (every message id is new, so 0 is expected). "
        "*Pending → resent*: the gateway answered `pending` (its call to Rasa timed out after RASA_TIMEOUT_S or Rasa was "
        "restarting; the message was stored) and the client resent the same id after `retry_after`, as widget.js does; "
        "the latency includes that wait.",
        "",
        "### Script size", "",
        "| File | Raw | gzip -9 | Served by `GET /widget.js` (gzip) | Target | Met? |",
        "|---|---:|---:|---:|---:|---|",
        f"| `channels/widget/static/widget.js` | {sizes['raw'] / 1024:.1f} KB | {sizes['gzip9'] / 1024:.1f} KB | "
        f"{sizes['served'] / 1024:.1f} KB{'' if sizes['served_encoding'] else ' (not gzipped!)'} | "
        f"≤ {SIZE_TARGET / 1024:.0f} KB gzipped | {verdict} |",
        "",
    ]
    errors = run.connect.errors + run.ping.errors + run.burst.errors + run.paced.errors
    notes = list(run.notes)
    if run.background_cores > 0.5:
        notes.insert(0, f"**The machine was already busy before the run ({run.background_cores:.2f} of {m['nproc']} cores "
                     "taken by other processes)**: the bot-turn figures include waiting for that CPU; rerun on an idle "
                     "machine for the system's own figures. The transport figures are affected far less.")
    if errors:
        notes.append(f"{len(errors)} error(s), first: `{errors[0][:200]}`")
    if notes:
        out += ["### Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(out)


def write_section(path: Path, section: str) -> None:
    """Replace the ``## Widget`` section of ``path`` (bench/results.py owns the format)."""
    from bench.results import replace_section

    replace_section(SECTION.removeprefix("## "), section.removeprefix(SECTION), path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.widget", description=__doc__.splitlines()[0])
    p.add_argument("--url", help="benchmark this running gateway instead of starting one")
    p.add_argument("--connections", type=int, default=200)
    p.add_argument("--pings", type=int, default=20, help="transport round trips per socket")
    p.add_argument("--burst-turns", type=int, default=2, help="bot turns per socket in the burst")
    p.add_argument("--paced-seconds", type=float, default=120.0)
    p.add_argument("--think", type=float, default=60.0, help="mean seconds between a reply and the next message")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--start-timeout", type=float, default=600.0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file (its ## Widget section is replaced)")
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["RASA_TELEMETRY_ENABLED"] = "false"
    os.chdir(ROOT)
    with contextlib.suppress(ValueError, OSError):  # 200 sockets + the gateway's own files
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    run = asyncio.run(main_async(args))
    section = render(run)
    if not args.no_write:
        write_section(args.out.resolve(), section)
        log(f"wrote {SECTION} to {args.out}")
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
