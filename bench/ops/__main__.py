"""Support ops benchmark: training time of the shipped data through a retrain job, and promotion
(and rollback) downtime under load.

    .venv/bin/python -m bench.ops [--customers 8] [--write-results]

Method: starts the real gateway (``server.py``, embedded Rasa, fresh DATA_DIR, MODEL_DIR under
bench/out/ops-models) on a copy of config.yml, waits for /readyz, then changes only a comment in that
copy (a new training-data hash, the same pipeline) and queues a retrain through the ops API
(``POST /api/v1/ops/training/jobs``): the job trains the shipped data for real, evaluates candidate
and baseline on tests/nlu + tests/stories and runs the gate. Then ``customers`` closed-loop
customers talk to ``POST /api/v1/chat`` (en/zh/ru order-status and question turns) while the
candidate is promoted (ops starts a second Rasa on the new model and switches the gateway to it once it
is ready) and later rolled back; every request is recorded. A failed request is any non-200 answer or
transport error.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from scenarios.system import LOCAL_CUSTOMERS, start_gateway

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    ("en", "hi"), ("en", "where is my order?"), ("en", "what is your return policy for gold members?"),
    ("zh", "你好"), ("zh", "我的订单在哪里"), ("ru", "привет"), ("ru", "где мой заказ?"), ("en", "thanks"),
]


@dataclass
class Req:
    start: float
    end: float
    ok: bool
    detail: str = ""


class Customers:
    """Closed-loop customers; each request's start, end and outcome is kept."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.records: list[Req] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, idx: int) -> None:
        k = 0
        tokens: dict[str, str] = {}  # sender → conversation_token of its first answer (sent on later turns)
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while not self._stop.is_set():
                lang, text = TEXTS[(idx + k) % len(TEXTS)]
                k += 1
                sender = f"bench-ops-{idx}-{k // 16}"
                t0 = time.monotonic()
                try:
                    headers = {"X-Conversation-Token": tokens[sender]} if sender in tokens else {}
                    r = client.post("/api/v1/chat", json={"sender_id": sender, "text": text, "language": lang},
                                    headers=headers)
                    if r.status_code == 200 and r.json().get("conversation_token"):
                        tokens[sender] = r.json()["conversation_token"]
                    rec = Req(t0, time.monotonic(), r.status_code == 200, "" if r.status_code == 200 else f"HTTP {r.status_code}")
                except httpx.HTTPError as err:
                    rec = Req(t0, time.monotonic(), False, type(err).__name__)
                with self._lock:
                    self.records.append(rec)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(150)


def _window_stats(records: list[Req], lo: float, hi: float) -> dict[str, Any]:
    inside = [r for r in records if r.end >= lo and r.start <= hi]
    lat = sorted((r.end - r.start) * 1000 for r in inside if r.ok)
    return {
        "requests": len(inside), "failed": sum(not r.ok for r in inside),
        "failures": sorted({r.detail for r in inside if not r.ok}),
        "p50_ms": round(statistics.median(lat)) if lat else None,
        "p95_ms": round(lat[int(0.95 * (len(lat) - 1))]) if lat else None, "max_ms": round(lat[-1]) if lat else None,
    }  # fmt: skip


def run(customers: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    model_dir = ROOT / "bench" / "out" / "ops-models"
    model_dir.mkdir(parents=True, exist_ok=True)
    config = tmp / "config.yml"
    shutil.copy(ROOT / "config.yml", config)
    with open(config, "a", encoding="utf-8") as f:
        f.write("\n# bench.ops: baseline\n")
    token = secrets.token_urlsafe(16)
    env = {"MODEL_DIR": str(model_dir), "ADMIN_API_TOKEN": token, "RASA_CONFIG": str(config), "LOG_LEVEL": "WARNING",
           **LOCAL_CUSTOMERS}  # the simulated customers all come from 127.0.0.1
    gateway = start_gateway(tmp / "data", env)
    url = gateway.url
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    try:
        gateway.wait_ready(1800)
        out["ready_s"] = round(time.monotonic() - gateway.spawned_at, 1)
        startup_log = gateway.log_path.read_text(errors="replace")
        m = re.search(r"\[train\] done in (\d+) s", startup_log)
        out["startup_training_s"] = int(m.group(1)) if m else None
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        baseline = next(m for m in api.get("/api/v1/ops/models").json() if m["status"] == "active")
        # Same pipeline, new hash: the job trains the shipped data for real.
        config.write_text(config.read_text(encoding="utf-8").replace("# bench.ops: baseline", "# bench.ops: candidate"),
                          encoding="utf-8")
        job = api.post("/api/v1/ops/training/jobs", json={"auto_promote": False}).json()
        stages: dict[str, float] = {}
        job_t0 = time.monotonic()
        while job["status"] in ("queued", "running"):
            time.sleep(2)
            job = api.get(f"/api/v1/ops/training/jobs/{job['id']}").json()
            stages.setdefault(job["stage"].split(":")[0], round(time.monotonic() - job_t0, 1))
        out["job"] = {"status": job["status"], "seconds": round(time.monotonic() - job_t0, 1), "stages_started_at_s": stages,
                      "training_s": job["report"].get("training_seconds"), "gate": job["report"].get("summary"),
                      "error": job.get("error")}
        out["baseline"], out["candidate"] = baseline["id"], job["model_id"]
        models = {m["id"]: m for m in api.get("/api/v1/ops/models").json()}
        out["accuracy"] = {k: models[k]["accuracy"] for k in (baseline["id"], job["model_id"]) if k in models}
        crowd = Customers(url, customers)
        crowd.start()
        time.sleep(20)  # steady state before the swap
        swaps = []
        for action, path, body in [
            ("promote", f"/api/v1/ops/models/{job['model_id']}/promote", {"force": job["status"] != "passed"}),
            ("rollback", "/api/v1/ops/models/rollback", {"model_id": baseline["id"]}),
        ]:
            s0 = time.monotonic()
            r = api.post(path, json=body)
            s1 = time.monotonic()
            swaps.append({"action": action, "status": r.status_code, "seconds": round(s1 - s0, 2), "lo": s0, "hi": s1})
            time.sleep(20)
        crowd.stop()
        out["load_after"] = os.getloadavg()[0]
        records = crowd.records
        first = min(r.start for r in records)
        out["steady"] = _window_stats(records, first, swaps[0]["lo"] - 1)
        for s in swaps:
            s["during"] = _window_stats(records, s["lo"], s["hi"])
            s["after_10s"] = _window_stats(records, s["hi"], s["hi"] + 10)
            del s["lo"], s["hi"]
        out["swaps"] = swaps
        out["total"] = {"requests": len(records), "failed": sum(not r.ok for r in records),
                        "failure_kinds": sorted({r.detail for r in records if not r.ok})}
        out["customers"] = customers
        return out
    finally:
        gateway.stop(grace_s=60)
        out["log"] = str(gateway.log_path)


def markdown(r: dict[str, Any]) -> str:
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    job = r["job"]
    lines = [
        f"Generated by `bench/ops` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (commit {commit} + working tree).",
        "",
        "- **Command**: `.venv/bin/python -m bench.ops --write-results`",
        f"- **Machine**: {cpus} CPUs (nproc), {platform.machine()}, shared with other work; gateway, Rasa, the training "
        f"job and the load generator all on it. 1-min load average {r['load_before']:.1f} at the start and "
        f"{r.get('load_after', float('nan')):.1f} at the end: other sessions were busy, so the times are upper bounds.",
        "- **Method**: the real gateway (`server.py`, embedded Rasa) on a copy of `config.yml`; a retrain job through "
        "`POST /api/v1/ops/training/jobs` after changing only a comment in that copy (new hash, same pipeline, the "
        "shipped `bot/data` + `nlu_data`); then "
        f"{r['customers']} closed-loop customers on `POST /api/v1/chat` while the candidate is promoted and then "
        "rolled back through the ops API (a second Rasa on the new model, then the switch; "
        "`ops.registry.BlueGreenSwapper`). Failed = non-200 or transport error.",
        f"- **Gateway cold start**: {r['ready_s']} s, of which `rasa train` of the shipped data from scratch "
        f"(beside the knowledge base's first index build): "
        f"**{r['startup_training_s'] if r['startup_training_s'] is not None else 'cached'} s**.",
        f"- **Retrain job** ({job['status']}): {job['seconds']} s in all; its `rasa train` took "
        f"**{job['training_s']:.0f} s** because only a comment changed, so Rasa's training cache (`.rasa/cache`) "
        "served every component: that is the cost of a retrain whose pipeline is unchanged up to the first "
        "component whose input changed; new examples re-run the featurizers and classifiers from there."
        if job.get("training_s") else f"- **Retrain job** ({job['status']}): {job['seconds']} s",
        "- The two evaluations (candidate, then the active model as baseline: `tests/nlu` per language + "
        "`tests/stories`) are most of the job's time on a busy machine; the baseline's metrics are stored and "
        "reused by the next job.",
        f"- Job stages started at (s): {job['stages_started_at_s']}.",
        f"- **Gate**: {job['gate']}."
        + ("" if job["status"] == "passed" else " The benchmark then promoted the candidate with `force` to measure the "
           "swap (the baseline, trained on the same data, is the same model up to TED's training noise)."),
        f"- Accuracy on tests/nlu per model: {r['accuracy']}.",
        "",
        "| phase | API answered in | requests in window | failed | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| steady state before | - | {r['steady']['requests']} | {r['steady']['failed']} | {r['steady']['p50_ms']} | "
        f"{r['steady']['p95_ms']} | {r['steady']['max_ms']} |",
    ]
    for s in r["swaps"]:
        d, a = s["during"], s["after_10s"]
        lines.append(f"| {s['action']} (HTTP {s['status']}), during | {s['seconds']} s | {d['requests']} | {d['failed']} | "
                     f"{d['p50_ms']} | {d['p95_ms']} | {d['max_ms']} |")
        lines.append(f"| {s['action']}, 10 s after | - | {a['requests']} | {a['failed']} | {a['p50_ms']} | {a['p95_ms']} | "
                     f"{a['max_ms']} |")
    total = r["total"]
    verdict = "met" if total["failed"] == 0 else "NOT met"
    lines += ["", f"**No failed request during a swap: {verdict}** ({total['failed']} failed of {total['requests']} "
              "requests in the whole run; failures: " + (", ".join(total.get("failure_kinds", [])) or "none") + ").",
              "",
              "Why not Rasa's own `PUT /model`: the first run of this benchmark (2026-11-22 20:21 UTC, commit 0a1bf03, "
              "load average 10) swapped with it. Rasa 3.6 loads the new agent on its event loop, so every turn waited "
              "for the load: the promote call took 37 s and the rollback 27 s, turns in flight waited up to 30 s, and 8 "
              "of 267 requests failed with 503 when the gateway's 30 s Rasa timeout ran out. With the second process the "
              "old model answers until the new one is ready."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=8)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.customers)
    import json

    print(json.dumps(result, indent=2, default=str))
    text = markdown(result)
    print(text)
    if args.write_results:
        from bench.results import replace_section

        replace_section("Support ops: retraining and promotion", text)
    return 0 if result["total"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
