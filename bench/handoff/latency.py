"""Handoff latency at N simultaneous live chats (issue 4 §9).

    .venv/bin/python -m bench.handoff.latency [--chats 50] [--rounds 3] [--out bench/RESULTS.md | --no-write]
    .venv/bin/python -m bench.handoff.latency --url http://127.0.0.1:8000 --admin-password ...   # a running gateway

What is measured, per round of ``--chats`` customers acting at the same moment:

* **escalation → console**: from just before a customer's ``POST /api/v1/chat`` "I want to talk to a
  human" to the ``ticket.created`` (or ``ticket.assigned``) event for that customer on a connected
  agent websocket (``/api/v1/agent/ws``, what the console listens to). The customer's own answer
  time for that message is reported beside it.
* **agent reply → customer**: from just before the agent's ``POST /api/v1/agent/tickets/{id}/reply``
  to the ``message`` event carrying that reply on the customer's websocket
  (``/api/v1/conversations/{sender}/ws``). The reply request's own time is reported beside it.

Method: by default the benchmark starts the whole system itself (``server.py`` with free ports, a
temporary DATA_DIR, MODEL_DIR from the environment or ``models/``, the knowledge-base index copied
from the test cache when there is one so that start-up does not re-embed the help centre),
``HANDOFF_AUTO_ASSIGN=false`` so that tickets wait for a claim (the console's flow, independent of
the queues' business hours), and random admin/agent passwords. It creates benchmark agents with the
admin API (capacity 50 each, every queue), signs one in, keeps its websocket open, and per round:
every customer says hello (not measured) and opens its websocket; all customers escalate at once;
the agent claims every ticket (not measured); all replies are sent at once; every ticket is resolved.
Clocks: one process, ``time.perf_counter``; an event's time is when this process read it, so the
client's own event loop (sharing the machine's cores with the gateway and Rasa) is included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect

import scenarios.system
from bench import results
from bench.results import git_revision, percentile
from scenarios.system import LOCAL_CUSTOMERS, Gateway, StartError, cached_kb_index, start_gateway, tail

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "bench" / "RESULTS.md"
SECTION = "Handoff latency"
ESCALATE_TEXT = "I want to talk to a human"
AGENT_CAPACITY = 50  # the admin API's maximum per agent
T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[handoff-latency {datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ================================================================================================ system
@dataclass
class System:
    url: str
    admin_password: str
    gateway: Gateway | None = None  # None: a running gateway (--url)
    cold_start_s: float | None = None


def launch() -> System:
    """The whole system by the project's launcher, with the help-centre index the tests cached (if any)."""
    kb = cached_kb_index()
    admin_password = secrets.token_urlsafe(18)
    model_dir = Path(os.environ.get("MODEL_DIR") or ROOT / "models")
    env = {
        "MODEL_DIR": str(model_dir if model_dir.is_absolute() else ROOT / model_dir),
        "RASA_TOKEN": secrets.token_urlsafe(18), "LOG_LEVEL": "WARNING",
        "HANDOFF_AUTO_ASSIGN": "false", "HANDOFF_ADMIN_PASSWORD": admin_password,
        "SUPPORTBOT_DEMO_AGENT_PASSWORD": secrets.token_urlsafe(18),
        **LOCAL_CUSTOMERS,  # every simulated customer comes from 127.0.0.1 and asks for a person
    }
    gateway = start_gateway(Path(tempfile.mkdtemp(prefix="bench-handoff-")), env, kb_index=kb)
    log(f"gateway starting on :{gateway.port} (DATA_DIR {gateway.data_dir}, "
        f"KB index {'copied from ' + str(kb) if kb else 'built at start'})")
    return System(gateway.url, admin_password, gateway)


def wait_ready(system: System, timeout_s: float = 900) -> None:
    gateway = system.gateway
    try:
        if gateway is None:
            scenarios.system.wait_ready(system.url, None, None, timeout_s)
        else:
            system.cold_start_s = gateway.wait_ready(timeout_s)
    except StartError as err:
        raise SystemExit(f"{err}\n{tail(gateway.log_path) if gateway else ''}") from None


def stop(system: System) -> None:
    """SIGTERM the gateway (it stops its Rasa), then kill anything of ours still alive, by pid."""
    if system.gateway is None:
        return
    for note in system.gateway.stop():
        log(note)
    shutil.rmtree(system.gateway.data_dir, ignore_errors=True)


# ================================================================================================ clients
class Api:
    """The agent API with a bearer token."""

    def __init__(self, client: httpx.AsyncClient, token: str = "") -> None:
        self.client = client
        self.token = token

    async def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        resp = await self.client.request(method, f"/api/v1/agent{path}", json=body,
                                         headers={"Authorization": f"Bearer {self.token}"} if self.token else {})
        if resp.status_code != expect:
            raise RuntimeError(f"{method} {path} → {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    async def login(self, username: str, password: str) -> Api:
        data = await self.call("POST", "/login", {"username": username, "password": password})
        return Api(self.client, data["token"])


class AgentSocket:
    """The console's view: records when each customer's ticket was first announced."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: dict[str, tuple[float, int]] = {}  # sender → (perf_counter, ticket id)
        self.waiters: dict[str, asyncio.Event] = {}
        self.hello = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            event = json.loads(raw)
            if event.get("type") == "hello":
                self.hello.set()
            elif event.get("type") in ("ticket.created", "ticket.assigned"):
                sender = event["ticket"]["sender_id"]
                if sender not in self.seen:
                    self.seen[sender] = (now, int(event["ticket"]["id"]))
                    self.waiter(sender).set()

    def waiter(self, sender: str) -> asyncio.Event:
        return self.waiters.setdefault(sender, asyncio.Event())

    async def pinger(self) -> None:
        while True:
            await asyncio.sleep(30)
            await self.ws.send(json.dumps({"type": "ping"}))


class CustomerSocket:
    """One customer's websocket: records when each agent message (by text) arrived."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.agent_messages: dict[str, float] = {}
        self.got = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                now = time.perf_counter()
                event = json.loads(raw)
                message = event.get("message") or {}
                if event.get("type") == "message" and message.get("from") == "agent":
                    self.agent_messages.setdefault(message["text"], now)
                    self.got.set()


async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()
    return await asyncio.gather(*(one(j) for j in jobs))


# ================================================================================================ run
@dataclass
class Samples:
    escalation_to_console: list[float] = field(default_factory=list)
    escalation_answer: list[float] = field(default_factory=list)
    reply_to_customer: list[float] = field(default_factory=list)
    reply_request: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    per_round: list[tuple[list[float], list[float]]] = field(default_factory=list)  # (escalation, reply) per round


async def one_round(round_no: int, run_id: str, chats: int, client: httpx.AsyncClient, agent: Api,
                    agent_ws: AgentSocket, ws_base: str, samples: Samples, timeout_s: float) -> None:
    senders = [f"bench-ho-{run_id}-r{round_no}-{i:03d}" for i in range(chats)]
    first_escalation, first_reply = len(samples.escalation_to_console), len(samples.reply_to_customer)
    tokens: dict[str, str] = {}  # sender → conversation_token; every turn after the first sends it

    async def hello(sender: str) -> tuple[str, CustomerSocket]:
        resp = await client.post("/api/v1/chat", json={"sender_id": sender, "text": "hello"})
        resp.raise_for_status()
        tokens[sender] = token = resp.json()["conversation_token"]
        # Tokens travel in headers, never in the URL (access logs).
        ws = await connect(f"{ws_base}/api/v1/conversations/{sender}/ws", open_timeout=60,
                           additional_headers={"X-Conversation-Token": token})
        return sender, CustomerSocket(ws)
    log(f"round {round_no}: {chats} customers say hello and open their websockets")
    customers = dict(await bounded(8, [lambda s=s: hello(s) for s in senders]))  # type: ignore[misc]

    # --- all customers escalate at once ------------------------------------------------------
    start_gate = asyncio.Event()
    sent_at: dict[str, float] = {}

    async def escalate(sender: str) -> None:
        await start_gate.wait()
        sent_at[sender] = t0 = time.perf_counter()
        resp = await client.post("/api/v1/chat", json={"sender_id": sender, "text": ESCALATE_TEXT},
                                 headers={"X-Conversation-Token": tokens[sender]})
        samples.escalation_answer.append(time.perf_counter() - t0)
        if resp.status_code != 200 or resp.json().get("state") not in ("queued", "human"):
            samples.failures.append(f"{sender}: escalation answered {resp.status_code} {resp.text[:200]}")
    log(f"round {round_no}: {chats} customers ask for a person at the same moment")
    tasks = [asyncio.create_task(escalate(s)) for s in senders]
    await asyncio.sleep(0.2)
    start_gate.set()
    await asyncio.gather(*tasks)
    waits = [asyncio.wait_for(agent_ws.waiter(s).wait(), timeout_s) for s in senders]
    for sender, result in zip(senders, await asyncio.gather(*waits, return_exceptions=True), strict=True):
        if isinstance(result, BaseException):
            samples.failures.append(f"{sender}: no ticket event within {timeout_s:.0f} s")
        else:
            samples.escalation_to_console.append(agent_ws.seen[sender][0] - sent_at[sender])

    tickets = {s: agent_ws.seen[s][1] for s in senders if s in agent_ws.seen}
    log(f"round {round_no}: the agent claims {len(tickets)} tickets")
    await bounded(8, [lambda t=t: agent.call("POST", f"/tickets/{t}/claim") for t in tickets.values()])  # type: ignore[misc]

    # --- the agent replies to everyone at once -------------------------------------------------
    reply_gate = asyncio.Event()

    async def reply(sender: str, ticket_id: int) -> None:
        text = f"Hello, this is a person: {secrets.token_hex(4)}"
        await reply_gate.wait()
        t0 = time.perf_counter()
        try:
            await agent.call("POST", f"/tickets/{ticket_id}/reply", {"text": text})
        except RuntimeError as err:
            samples.failures.append(f"{sender}: reply failed: {err}")
            return
        samples.reply_request.append(time.perf_counter() - t0)
        sock = customers[sender]
        deadline = time.monotonic() + timeout_s
        while text not in sock.agent_messages and time.monotonic() < deadline:
            sock.got.clear()
            if text in sock.agent_messages:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sock.got.wait(), max(0.0, deadline - time.monotonic()))
        if text in sock.agent_messages:
            samples.reply_to_customer.append(sock.agent_messages[text] - t0)
        else:
            samples.failures.append(f"{sender}: reply not on the customer's websocket within {timeout_s:.0f} s")
    log(f"round {round_no}: {len(tickets)} replies sent at the same moment")
    tasks = [asyncio.create_task(reply(s, t)) for s, t in tickets.items()]
    await asyncio.sleep(0.2)
    reply_gate.set()
    await asyncio.gather(*tasks)

    samples.per_round.append((samples.escalation_to_console[first_escalation:], samples.reply_to_customer[first_reply:]))
    await bounded(8, [lambda t=t: agent.call("POST", f"/tickets/{t}/resolve") for t in tickets.values()])  # type: ignore[misc]
    for sock in customers.values():
        await sock.ws.close()
        sock.task.cancel()


async def run(args: argparse.Namespace) -> tuple[Samples, System]:
    system = System(args.url.rstrip("/"), args.admin_password) if args.url else launch()
    samples = Samples()
    try:
        wait_ready(system)
        if system.cold_start_s is not None:
            log(f"gateway ready after {system.cold_start_s:.0f} s")
        limits = httpx.Limits(max_connections=args.chats * 2 + 10, max_keepalive_connections=args.chats * 2 + 10)
        async with httpx.AsyncClient(base_url=system.url, timeout=120, limits=limits) as client:
            admin = await Api(client).login(args.admin_username, system.admin_password)
            queues = [q["name"] for q in await admin.call("GET", "/queues")]
            run_id = secrets.token_hex(3)
            password = secrets.token_urlsafe(18)
            username = f"bench-agent-{run_id}"
            # One account; capacity counts only open chats and every round resolves its tickets.
            if args.chats > AGENT_CAPACITY:
                raise SystemExit(f"--chats at most {AGENT_CAPACITY} (one agent's maximum capacity)")
            await admin.call("POST", "/admin/agents", {"username": username, "display_name": "Bench Agent",
                                                       "password": password, "queues": queues,
                                                       "capacity": AGENT_CAPACITY}, expect=201)
            agent = await Api(client).login(username, password)
            ws_base = system.url.replace("http://", "ws://").replace("https://", "wss://")
            agent_ws = AgentSocket(await connect(f"{ws_base}/api/v1/agent/ws", open_timeout=60, max_size=2**22,
                                                 additional_headers={"Authorization": f"Bearer {agent.token}"}))
            await asyncio.wait_for(agent_ws.hello.wait(), 30)  # subscribed: no event can be missed from here
            pinger = asyncio.create_task(agent_ws.pinger())
            try:
                for r in range(1, args.rounds + 1):
                    await one_round(r, run_id, args.chats, client, agent, agent_ws, ws_base, samples, args.timeout)
            finally:
                pinger.cancel()
                await agent_ws.ws.close()
    finally:
        stop(system)
    return samples, system


# ================================================================================================ report
def ms(v: float) -> str:
    return results.ms(v, ",.0f")


def machine() -> str:
    m = results.machine()
    ram = psutil.virtual_memory().total / 2**30
    return f"{m['nproc']} cores ({m['cpu']}), {ram:.1f} GiB RAM, Linux {m['kernel']}"


def render(args: argparse.Namespace, samples: Samples, system: System, started: datetime, busy_before: float,
           busy_during: float, duration_s: float) -> str:
    rows = [
        ("escalating message → ticket event on the agent websocket", samples.escalation_to_console),
        ("  (the customer's answer to that message)", samples.escalation_answer),
        ("agent's reply → message on the customer's websocket", samples.reply_to_customer),
        ("  (the agent's POST reply answered)", samples.reply_request),
    ]
    argv = list(sys.argv[1:])
    for i, arg in enumerate(argv[:-1]):
        if arg == "--admin-password":
            argv[i + 1] = "…"  # never write a password into the results
    argv = [re.sub(r"^(--admin-password=).*", r"\1…", a) for a in argv]
    command = shlex.join([".venv/bin/python", "-m", "bench.handoff.latency", *argv])
    out = [
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}; revision {git_revision()}.",
        "Command: `" + (f"MODEL_DIR={shlex.quote(os.environ['MODEL_DIR'])} " if os.environ.get("MODEL_DIR") else "")
        + f"{command}`.",
        "",
        f"{args.chats} simultaneous live chats (REST customers, each with its websocket open), "
        f"{args.rounds} round{'s' if args.rounds != 1 else ''}, "
        f"{args.chats * args.rounds} chats in all; agents claim (`HANDOFF_AUTO_ASSIGN=false`); "
        f"{'a running gateway at ' + args.url if args.url else 'gateway + embedded Rasa started by the benchmark'}"
        + (f", ready {system.cold_start_s:.0f} s after start (training included when the model was not cached)"
           if system.cold_start_s else "") + ".",
        "",
        "| measure (ms) | n | p50 | p90 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, values in rows:
        out.append(f"| {label} | {len(values)} | {ms(percentile(values, .5))} | {ms(percentile(values, .9))} | "
                   f"{ms(percentile(values, .99))} | {ms(max(values) if values else math.nan)} |")
    def p50_max(values: list[float]) -> str:
        return f"{ms(percentile(values, .5))}/{ms(max(values) if values else math.nan)}"
    out += [
        "",
        "Per round, p50/max ms: escalation → console "
        + ", ".join(p50_max(e) for e, _ in samples.per_round)
        + "; reply → customer " + ", ".join(p50_max(r) for _, r in samples.per_round) + ".",
        f"Failures: {len(samples.failures)}" + (" — " + "; ".join(samples.failures[:5]) if samples.failures else "") + ".",
        f"Machine load: {busy_before:.1f} cores busy before the run (other work on this machine), "
        f"{busy_during:.1f} on average during it ({duration_s:.0f} s, everything on the machine: other work, the "
        "gateway, Rasa and this client).",
        "",
        "How to read it: the ticket is announced to the consoles when the escalating turn is stored, so the "
        f"first figure is that turn's time through Rasa and the action under {args.chats} concurrent turns (the "
        "customer's own answer returns right after; the event can arrive a little before or after it). The "
        "reply path does not touch Rasa: store the message, publish it to the customer's websocket. p99 of "
        f"{args.chats * args.rounds} samples lies between the two largest.",
    ]
    return "\n".join(out)


def busy_cores(seconds: float = 2.0) -> float:
    return psutil.cpu_percent(interval=seconds) / 100 * psutil.cpu_count()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.handoff.latency", description=__doc__.splitlines()[0])
    p.add_argument("--chats", type=int, default=50, help="simultaneous chats per round (1–50, default 50)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of --chats chats (default 3)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for one event before counting a failure")
    p.add_argument("--url", help="benchmark this running gateway instead of starting one")
    p.add_argument("--admin-username", default="admin")
    p.add_argument("--admin-password", default=os.environ.get("HANDOFF_ADMIN_PASSWORD", ""),
                   help="with --url: the handoff admin's password (default $HANDOFF_ADMIN_PASSWORD)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file (its '## Handoff latency' section)")
    p.add_argument("--no-write", action="store_true", help="print the section only")
    args = p.parse_args(argv)
    if not 1 <= args.chats <= AGENT_CAPACITY:
        p.error(f"--chats must be between 1 and {AGENT_CAPACITY}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.url and not args.admin_password:
        p.error("--url needs --admin-password (or HANDOFF_ADMIN_PASSWORD): the benchmark creates its agent")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    busy_before = busy_cores()
    psutil.cpu_percent(interval=None)
    t0 = time.monotonic()
    samples, system = asyncio.run(run(args))
    duration = time.monotonic() - t0
    busy_during = psutil.cpu_percent(interval=None) / 100 * psutil.cpu_count()
    section = render(args, samples, system, started, busy_before, busy_during, duration)
    print(f"## {SECTION}\n\n{section}")
    if not args.no_write:
        results.replace_section(SECTION, section, args.out)
        log(f"wrote the '## {SECTION}' section of {args.out}")
    return 1 if samples.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
