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
import os
import re
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.load import log
from bench.load.cluster import launch, log_problems, rasa_call_latencies, stop_system
from bench.load.processes import ProcessWatch, background_cpu, cmdline, pid_listening_on, rasa_child_of
from bench.load.report import SECTION, render, write_section
from bench.load.traffic import Run, measure
from scenarios.system import ROOT, tail

DEFAULT_OUT = ROOT / "bench" / "RESULTS.md"


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
    gateway = sut.gateway
    run.sut = sut
    run.channel_token = sut.channel_token
    log(
        f"started gateway pid {gateway.proc.pid} on {gateway.url}, Rasa on {gateway.rasa_url}; config {sut.config}; "
        f"model {'cached' if sut.model_cached else 'NOT cached (training first)'}; logs in {gateway.data_dir}"
    )
    watch = ProcessWatch(lambda: gateway.proc.pid if gateway.proc.poll() is None else None, rasa_child_of)
    watch.start()
    run.watch = watch
    failed, interrupted = True, False
    try:
        sut.cold_start_s = gateway.wait_ready(args.start_timeout, interval=0.1)
        watch.mark_ready()
        gw, tree = watch.pids()
        if tree:
            match = re.search(r"--model\s+(\S+)", cmdline(tree[0]))
            sut.model_name = Path(match.group(1)).name if match else None
        log(f"ready after {sut.cold_start_s:.1f} s (gateway pid {gw}, Rasa tree {tree})")
        await measure(run, gateway.url, gateway.rasa_url, sut.token)
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
            run.notes += stop_system(sut)
        finally:
            watch.stop()
        if interrupted:
            shutil.rmtree(gateway.data_dir, ignore_errors=True)
        elif failed:
            log(f"gateway log tail ({gateway.log_path}):\n{tail(gateway.log_path)}")
        else:
            problems = log_problems(gateway.data_dir)
            with contextlib.suppress(Exception):
                run.rasa_calls = rasa_call_latencies(gateway.data_dir / "supportbot.db", run.run_id)
            if problems:
                run.notes.append(
                    f"{len(problems)} ERROR/Traceback line(s) in the gateway/Rasa logs, first: `{problems[0][:200]}`"
                )
            shutil.rmtree(gateway.data_dir, ignore_errors=True)
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
