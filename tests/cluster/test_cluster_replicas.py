"""Issue 16, ``make test-cluster``: 2 gateways + 2 Rasa servers behind HAProxy (``python -m cluster run``),
on PostgreSQL and Redis, driven only through the balancer:

- the conversation scenario suite passes;
- 20 concurrent REST customers keep talking while one gateway and one Rasa server are killed with
  SIGKILL (and restarted by the launcher): every acknowledged message stored once, each reply stored
  once (Rasa ran each message once), order kept per conversation, no helpdesk delivery twice;
- an agent's websocket (through the balancer) gets every customer message of its chat exactly once,
  whichever gateway took the message.

Not part of ``make test`` (pyproject's ``norecursedirs``): ``make test-cluster`` runs it. The cluster is
started once for tests/cluster (conftest.py); test_cluster_rollout.py runs on it afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from scenarios.system import ROOT
from tests.cluster.harness import ADMIN_PASSWORD, AGENT_PASSWORD, RunningCluster
from tests.cluster.load import Customer, check, converse, send

pytestmark = [pytest.mark.cluster, pytest.mark.rasa]

CONVERSATIONS = 20
TEXTS = ["hi", "what is your return policy?", "how long does shipping take?", "do you ship to Canada?",
         "how do I use a promo code?", "thanks, bye"]
HANDOFF_TEXTS = ["hello", "I want to talk to a person", "my parcel is late", "it was due on Monday",
                 "are you still there?", "thanks"]
RESTART_TIMEOUT_S = 300


def test_the_scenario_suite_passes_through_the_balancer(cluster: RunningCluster) -> None:
    env = {**os.environ, "HANDOFF_ADMIN_PASSWORD": ADMIN_PASSWORD}
    run = subprocess.run([sys.executable, "-m", "scenarios", "test-conversations", "tests/scenarios",
                          "--url", cluster.url, "--database-url", cluster.database_url],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=3600)
    summary = run.stdout[-3000:]
    print(summary)
    assert run.returncode == 0, summary + run.stderr[-2000:]


async def _restarted(cluster: RunningCluster, name: str, killed: int) -> float:
    """Seconds until ``name`` runs again under a new pid and answers its health check."""
    child = next(c for c in [*cluster.status["gateways"], *cluster.status["rasa"]] if c["name"] == name)
    health = f"{child['url']}/healthz" if name.startswith("gateway") else f"{child['url']}/"
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        while time.monotonic() - started < RESTART_TIMEOUT_S:
            pid = cluster.pid(name)
            if pid is not None and pid != killed:
                try:
                    if (await client.get(health, timeout=3)).status_code == 200:
                        return time.monotonic() - started
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"{name} was not restarted within {RESTART_TIMEOUT_S} s; see {cluster.log(name)}")


async def _chaos(cluster: RunningCluster, customers: list[Customer], total: int) -> dict[str, Any]:
    """SIGKILL gateway-1 a third of the way through the messages, rasa-1 at half way; both must come back."""
    def acknowledged() -> int:
        return sum(len(c.sent) for c in customers)

    killed: dict[str, Any] = {}
    for name, at in (("gateway-1", total // 3), ("rasa-1", total // 2)):
        while acknowledged() < at:
            await asyncio.sleep(0.05)
        killed[name] = {"pid": cluster.sigkill(name), "acknowledged_then": acknowledged()}
    for name, info in killed.items():
        info["restarted_after_s"] = round(await _restarted(cluster, name, info["pid"]), 1)
    return killed


async def _load(cluster: RunningCluster, customers: list[Customer]) -> dict[str, Any]:
    total = sum(len(c.texts) for c in customers)
    limits = httpx.Limits(max_connections=CONVERSATIONS * 2)
    async with httpx.AsyncClient(limits=limits) as client:
        # Every conversation's first message (its answer carries the conversation token) before the kills:
        # a customer whose very first answer is lost cannot prove the conversation is theirs (see the report).
        for c, first in zip(customers, await asyncio.gather(*(send(client, cluster.url, c, 0, c.texts[0])
                                                              for c in customers)), strict=True):
            c.sent.append(first)
        chaos = asyncio.create_task(_chaos(cluster, customers, total))
        await asyncio.gather(*(converse(client, cluster.url, c, 1, len(c.texts)) for c in customers))
        return await chaos


def _wait_outbox(cluster: RunningCluster, limit_s: float = 240) -> None:
    """Every helpdesk item delivered (one claimed by a killed gateway waits out its 120 s lease)."""
    deadline = time.monotonic() + limit_s
    while cluster.query("select count(*) from handoff_outbox where status <> 'delivered'")[0][0]:
        if time.monotonic() > deadline:
            return  # check() names what is left
        time.sleep(1)


def test_nothing_lost_duplicated_or_reordered_when_a_gateway_and_a_rasa_are_killed(cluster: RunningCluster) -> None:
    run = uuid.uuid4().hex[:6]
    customers = [Customer(f"load-{run}-{i:02d}", HANDOFF_TEXTS if i % 7 == 3 else TEXTS) for i in range(CONVERSATIONS)]
    killed = asyncio.run(_load(cluster, customers))
    _wait_outbox(cluster)
    found = check(cluster, customers)
    failures: dict[str, int] = {}
    for c in customers:
        for why, n in c.failures.items():
            failures[why] = failures.get(why, 0) + n
    tickets = cluster.query("select count(*) from handoff_tickets t join conversations v on v.id = t.conversation_id "
                            "where v.sender_id like :p", p=f"load-{run}-%")[0][0]
    print(f"\nload: {found.conversations} conversations, {found.acknowledged} messages acknowledged, "
          f"{found.stored_in} stored, {found.stored_replies} replies stored, {len(found.lost)} lost, "
          f"{len(found.duplicated)} duplicated, {len(found.out_of_order)} out of order, "
          f"{found.rasa_user_events} in Rasa's tracker ({len(found.rasa_twice)} twice), {tickets} tickets, "
          f"{sum(cluster.helpdesk.deliveries.values())} helpdesk deliveries ({len(found.outbox_twice)} twice); "
          f"retries {sum(c.retries for c in customers)} ({json.dumps(failures)}); killed {json.dumps(killed)}")
    assert found.acknowledged == sum(len(c.texts) for c in customers)
    assert found.rasa_user_events >= found.conversations  # the tracker check reads Rasa's shared tracker
    assert all(info["acknowledged_then"] < found.acknowledged for info in killed.values())  # killed mid-run
    assert sum(c.retries for c in customers) > 0, "no request was interrupted: the kills did not hit traffic"
    assert tickets == sum(1 for c in customers if c.texts is HANDOFF_TEXTS)
    items = [str(r[0]) for r in cluster.query(
        "select o.id from handoff_outbox o join handoff_tickets t on t.id = o.ticket_id join conversations v "
        "on v.id = t.conversation_id where v.sender_id like :p and o.adapter = 'webhook'", p=f"load-{run}-%")]
    assert len(items) >= tickets  # each ticket went to the helpdesk, each item once
    assert {i: cluster.helpdesk.deliveries[i] for i in items} == dict.fromkeys(items, 1)
    assert not found.problems, json.dumps(found.problems, indent=2, ensure_ascii=False)


def _chat_requests(cluster: RunningCluster) -> dict[str, int]:
    """Customer messages each gateway has answered so far (its access log)."""
    return {g["name"]: Path(g["log"]).read_text(errors="replace").count('"POST /api/v1/chat ')
            for g in cluster.status["gateways"]}


async def _agent_sees_each_message_once(cluster: RunningCluster) -> tuple[list[str], list[str]]:
    url, sender = cluster.url, f"agent-ws-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        login = await http.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PASSWORD})
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    first = httpx.post(f"{url}/api/v1/chat", json={"sender_id": sender, "text": "hello"}, timeout=120)
    assert first.status_code == 200, first.text
    customer = {"X-Conversation-Token": first.json()["conversation_token"]}
    asked = httpx.post(f"{url}/api/v1/chat", json={"sender_id": sender, "text": "I want to talk to a person"},
                       headers=customer, timeout=120)
    assert asked.status_code == 200 and asked.json()["state"] == "queued", asked.text
    ticket_id = cluster.query("select t.id from handoff_tickets t join conversations v on v.id = t.conversation_id "
                              "where v.sender_id = :s", s=sender)[0][0]
    ws_url = url.replace("http://", "ws://") + "/api/v1/agent/ws"
    sent = [f"customer line {n} of {sender}" for n in range(8)]
    received: list[str] = []
    async with websockets.connect(ws_url, additional_headers=bearer) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            claim = await http.post(f"/api/v1/agent/tickets/{ticket_id}/claim", headers=bearer)
            assert claim.status_code == 200, claim.text
        before = _chat_requests(cluster)
        for text in sent:  # a new connection each: the balancer spreads them over both gateways
            resp = httpx.post(f"{url}/api/v1/chat", json={"sender_id": sender, "text": text}, headers=customer,
                              timeout=120)
            assert resp.status_code == 200 and resp.json()["state"] == "human", resp.text
        took = {name: n - before[name] for name, n in _chat_requests(cluster).items()}
        assert all(took.values()), f"the balancer sent every message to one gateway: {took}"
        deadline = time.monotonic() + 60
        quiet_until = None
        while time.monotonic() < deadline:
            if len(received) >= len(sent):  # all there: listen a little longer for any copy
                quiet_until = quiet_until or time.monotonic() + 3
                if time.monotonic() > quiet_until:
                    break
            try:
                event = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except TimeoutError:
                continue
            if event.get("type") == "message" and event.get("ticket_id") == ticket_id \
                    and event["message"]["from"] == "customer":
                received.append(event["message"]["text"])
    return sent, received


def test_an_agent_socket_gets_every_customer_message_once(cluster: RunningCluster) -> None:
    sent, received = asyncio.run(_agent_sees_each_message_once(cluster))
    print(f"\nagent socket: {len(sent)} customer messages sent, {len(received)} events received")
    assert received == sent
