"""The load itself: the two targets (the gateway's REST contract, Rasa's gateway channel), scripted
customers in closed loop ``concurrency`` at a time, in alternating blocks, and what each turn took."""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench.load import log
from bench.load.cluster import Launched
from bench.load.conversations import (
    FIRST_TURNS,
    SCRIPT_OF,
    VERIFY_FAILED,
    Order,
    Script,
    conversation_plan,
    demo_orders,
    planned_texts,
    turn_text,
)
from bench.load.processes import ProcessWatch, cpu_delta
from bench.results import ms, percentile


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
    client: httpx.AsyncClient, target: Target, sender: str, script: Script, order: Order, stats: Stats
) -> None:
    order_id = order[0]
    clean = True
    token: str | None = None  # the gateway's conversation_token (first answer), sent on every later turn
    for step in script.steps:
        text = turn_text(step, order)
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
    orders: list[Order],
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


def conversations(args: argparse.Namespace, concurrency: int) -> int:
    """Conversations per target at a level: ``--conversations``, else the larger of 80 and 4 × concurrency."""
    return int(args.conversations or max(80, 4 * concurrency))


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


async def prewarm_nlu(run: Run, rasa_url: str, token: str | None, orders: list[Order]) -> None:
    """Parse every text the benchmark will send, twice: the NLU's embedding cache (E5Featurizer keeps a
    text → embedding LRU) then holds them all, so neither target pays the misses the other already paid.
    The first pass measures a cache miss, the second a hit."""
    texts = planned_texts(max(run.args.warmup, *(conversations(run.args, c) for c in run.levels)), orders)
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
        n = conversations(a, c)
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
