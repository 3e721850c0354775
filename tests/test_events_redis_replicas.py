"""Two gateway replicas on one database and one Redis, no sticky sessions (issue 16): what happens on
one replica reaches the sockets held by the other, once each, in order.

- the handoff API (agent console, customer socket) on two apps built as tests/test_handoff_api.py
  builds one, each with its own ``RedisEventBus`` (the bus a gateway gets from ``REDIS_URL``);
- the widget on two whole gateways (``server.create_app``, REDIS_URL set), Rasa unreachable as in
  tests/test_widget.py.

A duplicate would arrive before a later event of the same publisher, so each exchange ends with
one: the next frame on the socket must be exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.actions.handoff import ActionHandoffRequest
from channels.events_redis import RedisEventBus
from channels.ratelimit import SharedSenderLimiter
from channels.rest import router as rest_router
from channels.widget.identity import sender_for_token
from conversations.service import OutboundMessage
from handoff.accounts import Accounts
from handoff.api import HandoffApp, agent_router, customer_router
from handoff.auth import LoginThrottle
from server import create_app
from settings import Settings
from tests.conftest import free_port
from tests.helpers import DEMO_AGENTS, HandoffWorld, make_settings, open_world, runs, says
from tests.redis_fixtures import redis_or_skip, unique_prefix

Replica = tuple[TestClient, HandoffWorld]


def handoff_replica(world: HandoffWorld, bus: RedisEventBus) -> FastAPI:
    world.handoff.events = bus
    app = FastAPI()
    app.state.settings = world.settings
    app.state.conversations = world.conversations
    app.state.handoff = HandoffApp(world.handoff, Accounts(world.sessions, 12, world.handoff.clock),
                                   LoginThrottle(per_ip="20/5minutes", per_account="5/5minutes"))
    for router in (rest_router, agent_router, customer_router):
        app.include_router(router)
    return app


@pytest.fixture
def two_replicas(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    url, prefix = redis_or_skip(), unique_prefix()
    settings = make_settings(tmp_path)
    # B is opened last: the bot's handoff action (one per process) acts through B, where customers chat.
    worlds = [open_world(settings, HandoffWorld, DEMO_AGENTS) for _ in range(2)]
    world_a, world_b = (next(w) for w in worlds)
    bus_a, bus_b = RedisEventBus(url, prefix), RedisEventBus(url, prefix)
    with TestClient(handoff_replica(world_a, bus_a)) as a, TestClient(handoff_replica(world_b, bus_b)) as b:
        yield (a, world_a), (b, world_b)
        a.portal.call(bus_a.close)
        b.portal.call(bus_b.close)
    for w in worlds:
        w.close()


def login(client: TestClient, username: str) -> dict[str, str]:
    resp = client.post("/api/v1/agent/login", json={"username": username, "password": "agent-password-1"})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def test_console_on_one_replica_and_customer_on_the_other(two_replicas: tuple[Replica, Replica]) -> None:
    (a, _), (b, world_b) = two_replicas
    world_b.rasa.script = [says("Hi!"), runs(ActionHandoffRequest(), "human_handoff")]
    token = b.post("/api/v1/chat", json={"sender_id": "cust-x", "text": "hello"}).json()["conversation_token"]
    alice = login(a, "alice")
    customer_headers = {"X-Conversation-Token": token}
    with a.websocket_connect("/api/v1/agent/ws", headers=alice) as console, \
            b.websocket_connect("/api/v1/conversations/cust-x/ws", headers=customer_headers) as customer:
        assert console.receive_json()["type"] == "hello"
        assert customer.receive_json()["type"] == "backlog"
        # The customer asks for a person on B; the console on A hears of the ticket.
        assert b.post("/api/v1/chat", json={"sender_id": "cust-x", "text": "I need a human"},
                      headers=customer_headers).json()["state"] == "queued"
        created = console.receive_json()
        assert created["type"] == "ticket.created" and created["ticket"]["queue"] == "general-en"
        ticket_id = created["ticket"]["id"]
        # Alice claims and replies on A; the customer's socket on B gets both, once.
        assert a.post(f"/api/v1/agent/tickets/{ticket_id}/claim", headers=alice).status_code == 200
        assert console.receive_json()["type"] == "ticket.assigned"
        assert customer.receive_json()["message"]["text"] == "Alice from our team has joined the chat."
        assert a.post(f"/api/v1/agent/tickets/{ticket_id}/reply", headers=alice, json={"text": "How can I help?"}
                      ).status_code == 200
        live = customer.receive_json()
        assert live["message"]["from"] == "agent" and live["message"]["text"] == "How can I help?"
        assert console.receive_json()["type"] == "message"
        # The customer writes on B: relayed to A's console, in order.
        for text in ("my order is late", "it was due Monday"):
            assert b.post("/api/v1/chat", json={"sender_id": "cust-x", "text": text},
                          headers=customer_headers).json()["state"] == "human"
        assert [console.receive_json()["message"]["text"] for _ in range(2)] == ["my order is late", "it was due Monday"]
        # Nothing twice: the next frame on each socket is the next event of the other replica.
        assert a.post(f"/api/v1/agent/tickets/{ticket_id}/reply", headers=alice, json={"text": "Checking."}
                      ).status_code == 200
        assert customer.receive_json()["message"]["text"] == "Checking."
        assert console.receive_json()["message"]["text"] == "Checking."
        b.post("/api/v1/chat", json={"sender_id": "cust-x", "text": "thanks"}, headers=customer_headers)
        assert console.receive_json()["message"]["text"] == "thanks"
    # Seen by a socket on the other replica: stored as delivered (not returned again on the next turn).
    agent_rows = [m for m in world_b.messages("cust-x") if m.type == "agent"]
    assert [m.status for m in agent_rows] == ["delivered", "delivered"]


# --- the widget on two whole gateways ------------------------------------------------------------
@pytest.fixture
def two_gateways(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    url, prefix = redis_or_skip(), unique_prefix()
    (tmp_path / "help").mkdir()
    settings = Settings(data_dir=tmp_path, rasa_url=f"http://127.0.0.1:{free_port()}", widget_user_secret="unit-test",
                        demo=True, redis_url=url, kb_source_dir=tmp_path / "help",
                        secret_key="replicas-share-this-key")  # REDIS_URL: replicas must share SECRET_KEY
    apps = [create_app(settings), create_app(settings)]
    for app in apps:
        app.state.events = RedisEventBus(url, prefix)  # the gateway's bus, on this test's own channels
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        yield a, b


def hello(ws: Any, token: str) -> dict[str, Any]:
    ws.send_text(json.dumps({"type": "hello", "token": token}))
    return ws.receive_json()


def test_a_widget_push_reaches_the_senders_sockets_on_every_gateway(two_gateways: tuple[TestClient, TestClient]) -> None:
    a, b = two_gateways
    assert isinstance(a.app.state.widget_hub.limiter, SharedSenderLimiter)  # REDIS_URL: one budget per sender
    assert a.app.state.handoff.service.events is a.app.state.events  # one bus per process, handoff's too
    token = "replica-push-token-000000"
    sender = sender_for_token(token)
    with a.websocket_connect("/api/v1/ws") as on_a, b.websocket_connect("/api/v1/ws") as on_b:
        assert hello(on_a, token)["type"] == "ready" and hello(on_b, token)["type"] == "ready"
        on_a.send_text(json.dumps({"type": "message", "id": "w-rep-1", "text": "I need a person"}))
        assert [on_a.receive_json()["type"] for _ in range(2)] == ["ack", "pending"]  # the conversation exists
        first = OutboundMessage(type="agent", text="Anna here")
        assert b.portal.call(b.app.state.pushers.push, "widget", sender, [first]) is True
        second = OutboundMessage(type="handoff", text="You are number 1 in the queue.")
        assert a.portal.call(a.app.state.pushers.push, "widget", sender, [second]) is True
        for ws in (on_a, on_b):
            frames = [ws.receive_json() for _ in range(2)]
            assert [f["type"] for f in frames] == ["push", "push"]
            texts = sorted(f["messages"][0]["text"] for f in frames)  # two publishers: no order between them
            assert texts == ["Anna here", "You are number 1 in the queue."]
            assert frames[0]["state"] == "bot" and frames[0]["language"] == "en"
        last = OutboundMessage(type="agent", text="Anything else?")
        b.portal.call(b.app.state.pushers.push, "widget", sender, [last])
        for ws in (on_a, on_b):  # once each: the next frame is the next push
            assert ws.receive_json()["messages"][0]["text"] == "Anything else?"
    assert a.app.state.widget_hub.open_connections(sender) == 0 == b.app.state.widget_hub.open_connections(sender)
