"""Scale-out benchmark (issue 16): turns/s and latency at one concurrency for gateways × Rasa servers.

    .venv/bin/python -m bench.scaleout [--shapes 1x1 1x2 2x2] [--concurrency 20] [--conversations 80]

For each shape it starts a local cluster (``python -m cluster run``: HAProxy in front, PostgreSQL and
Redis of this machine), sends the load benchmark's scripted customers (bench/load/scripts.yml, closed
loop, ``--concurrency`` at a time) through the balancer's REST contract, stops the cluster, and writes
``## Scale-out`` in bench/RESULTS.md. All shapes run in one invocation, one after the other, on the same
machine. CPU time of the whole machine during each block gives CPU-seconds per turn; what a host with
more cores would give is computed from it (marked so), not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.load.conversations import demo_orders
from bench.load.processes import all_pids, cmdline, cpu_busy_ticks, proc_stat
from bench.load.traffic import Stats, Target, run_block
from bench.results import percentile, replace_section
from scenarios.system import LOCAL_CUSTOMERS, MODEL_CACHE, ROOT

TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Measured:
    shape: str
    turns: int
    errors: int
    wall_s: float
    p50_ms: float
    p99_ms: float
    cpu_s: float  # the whole machine's busy CPU time during the block
    split: dict[str, float]  # CPU seconds per kind of process during the block (GROUPS, "other")

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_turn(self) -> float:
        return 1000 * self.cpu_s / self.turns if self.turns else 0.0


# What each process of the machine is, from its command line: the CPU split of a block.
GROUPS = (("Rasa", ("bot.rasa_serve", "rasa run")), ("gateway", ("server.py",)), ("HAProxy", ("haproxy",)),
          ("PostgreSQL", ("postgres",)), ("Redis", ("redis-server",)))


def group_of(pid: int) -> str:
    if pid == os.getpid():
        return "load generator"
    cmd = cmdline(pid)
    return next((name for name, marks in GROUPS if any(m in cmd for m in marks)), "other")


def cpu_by_group() -> dict[str, int]:
    """CPU ticks (user + system, threads included) of every live process, summed per group."""
    ticks: dict[str, int] = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            group = group_of(pid)
            ticks[group] = ticks.get(group, 0) + st[2]
    return ticks


def start_cluster(gateways: int, rasa: int, run_dir: Path) -> tuple[subprocess.Popen[bytes], dict]:
    # the test suite's cached model (trained once for the tests), and every customer from 127.0.0.1 allowed
    env = {"MODEL_DIR": str(MODEL_CACHE), **os.environ, **LOCAL_CUSTOMERS, "LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "cluster", "run", "--gateways", str(gateways), "--rasa", str(rasa),
           "--port", "0", "--rasa-port", "0", "--run-dir", str(run_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status_file = run_dir / "cluster.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not status_file.exists():
        if proc.poll() is not None:
            raise SystemExit(f"the {gateways}x{rasa} cluster stopped while starting (logs in {run_dir})")
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGINT)
            raise SystemExit(f"the {gateways}x{rasa} cluster was not ready in {START_TIMEOUT_S:.0f} s (logs in {run_dir})")
        time.sleep(1)
    return proc, json.loads(status_file.read_text())


def stop_cluster(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def measure(url: str, shape: str, concurrency: int, conversations: int, cap_s: float) -> Measured:
    target = Target("gateway", f"cluster {shape}", f"{url}/api/v1/chat")
    orders = demo_orders()
    run_id = datetime.now(UTC).strftime("%H%M%S")
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        await run_block(target, client, list(range(concurrency)), concurrency, cap_s, 30.0, f"w{run_id}", orders, Stats())
        stats = Stats()
        before, groups_before = cpu_busy_ticks(), cpu_by_group()
        wall = await run_block(target, client, list(range(concurrency, concurrency + conversations)), concurrency,
                               cap_s, 30.0, run_id, orders, stats)
        cpu_s = (cpu_busy_ticks() - before) / TICKS
        groups_after = cpu_by_group()
    split = {g: max(0, groups_after.get(g, 0) - groups_before.get(g, 0)) / TICKS
             for g in (*(name for name, _ in GROUPS), "load generator")}
    split["other"] = max(0.0, cpu_s - sum(split.values()))  # processes outside the groups, and those that ended
    lat = sorted(stats.latencies)
    return Measured(shape, stats.turns_ok, sum(stats.errors.values()), wall,
                    1000 * percentile(lat, 0.5), 1000 * percentile(lat, 0.99), cpu_s, split)


def render(results: list[Measured], concurrency: int, cores: int) -> str:
    base = next((m for m in results if m.shape == "1x1"), None)
    rows = ["| gateways × Rasa | turns | errors | turns/s | p50 ms | p99 ms | CPU ms per turn (whole machine) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {m.shape.replace('x', ' × ')} | {m.turns} | {m.errors} | {m.turns_per_s:.2f} | {m.p50_ms:.0f} | "
             f"{m.p99_ms:.0f} | {m.cpu_ms_per_turn:.0f} |" for m in results]
    lines = [f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this machine ({cores} cores), one run of every shape, "
             f"closed loop at concurrency {concurrency} through HAProxy (`python -m cluster run`). Reproduce: "
             "`.venv/bin/python -m bench.scaleout`.", "", *rows, ""]
    if base is not None:
        for m in results:
            if m.shape != "1x1":
                lines.append(f"- {m.shape.replace('x', ' × ')} against 1 × 1: **{m.turns_per_s / base.turns_per_s:.2f}×** turns/s.")
    names = list(results[0].split) if results else []
    lines += ["", "CPU-ms per turn by process (user + system; \"other\" = the rest of the machine):", "",
              "| gateways × Rasa | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {m.shape.replace('x', ' × ')} | " + " | ".join(
        f"{1000 * m.split[n] / m.turns:.1f}" if m.turns else "-" for n in names) + " |" for m in results]
    lines.append("")
    best = max(results, key=lambda m: m.turns_per_s)
    if best.cpu_ms_per_turn:
        per_core = 1000 / best.cpu_ms_per_turn
        lines.append(f"- Computed, not measured: at {best.cpu_ms_per_turn:.0f} CPU-ms per turn ({best.shape}), a host "
                     f"whose cores all serve turns gives about {per_core:.1f} turns/s per core: "
                     f"{4 * per_core:.0f} turns/s on 4 cores and {8 * per_core:.0f} on 8, with as many Rasa "
                     "servers as cores and the load generator elsewhere.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["1x1", "1x2", "2x2"], help="gateways x Rasa (default 1x1 1x2 2x2)")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--conversations", type=int, default=80, help="measured conversations per shape")
    parser.add_argument("--time-cap", type=float, default=240.0, help="seconds per measured block")
    parser.add_argument("--no-results", action="store_true", help="print, do not write bench/RESULTS.md")
    args = parser.parse_args(argv)
    results = []
    for shape in args.shapes:
        try:
            gateways, rasa = (int(n) for n in shape.lower().split("x"))
        except ValueError:
            parser.error(f"a shape is GATEWAYSxRASA, e.g. 2x2 (got {shape!r})")
        run_dir = Path(tempfile.mkdtemp(prefix=f"scaleout-{shape}-"))
        print(f"[scaleout] starting {shape} (logs in {run_dir})", flush=True)
        proc, status = start_cluster(gateways, rasa, run_dir)
        try:
            measured = asyncio.run(measure(status["url"], shape, args.concurrency, args.conversations, args.time_cap))
        finally:
            stop_cluster(proc)
        print(f"[scaleout] {shape}: {measured.turns_per_s:.2f} turns/s, p50 {measured.p50_ms:.0f} ms, "
              f"p99 {measured.p99_ms:.0f} ms, {measured.errors} errors", flush=True)
        results.append(measured)
    section = render(results, args.concurrency, os.cpu_count() or 0)
    print(section)
    if not args.no_results:
        replace_section("Scale-out", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
