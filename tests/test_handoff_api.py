"""The handoff's HTTP/websocket API through FastAPI's TestClient: security (401/403/429, customer
tokens), the agent console's flow (live events, claim, reply) and the customer's websocket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, WebSocketDisconnect
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.actions.handoff import ActionHandoffRequest
from channels.rest import router as rest_router
from handoff.accounts import Accounts
from handoff.api import HandoffApp, agent_router, customer_router
from handoff.auth import LoginThrottle
from handoff.models import AuditEntry
from tests.test_handoff_service import World, make_world, runs, says


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[TestClient, World]]:
    for world in make_world(tmp_path):
        app = FastAPI()
        app.state.settings = world.settings
        app.state.conversations = world.conversations
        app.state.handoff = HandoffApp(world.handoff, Accounts(world.handoff._sessions, 12, world.handoff.clock),
                                       LoginThrottle(per_ip="20/5minutes", per_account="5/5minutes"))
        app.include_router(rest_router)
        app.include_router(agent_router)
        app.include_router(customer_router)
        with TestClient(app) as client:
            yield client, world


def login(client: TestClient, username: str, password: str = "agent-password-1") -> dict[str, str]:
    resp = client.post("/api/v1/agent/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    client.cookies.clear()  # use the bearer token explicitly in these tests
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def test_agent_routes_need_a_session_and_admin_routes_the_admin_role(setup: tuple[TestClient, World]) -> None:
    client, _ = setup
    assert client.get("/api/v1/agent/tickets").status_code == 401
    assert client.get("/api/v1/agent/tickets", headers={"Authorization": "Bearer forged"}).status_code == 401
    alice = login(client, "alice")
    assert client.get("/api/v1/agent/tickets", headers=alice).status_code == 200
    assert client.get("/api/v1/agent/admin/agents", headers=alice).status_code == 403
    assert client.post("/api/v1/agent/admin/queues", headers=alice,
                       json={"name": "vip-en", "topic": "vip", "language": "en"}).status_code == 403
    admin = login(client, "admin", "admin-password-1")
    created = client.post("/api/v1/agent/admin/agents", headers=admin, json={
        "username": "bob", "display_name": "Bob", "password": "bob-password-1", "queues": ["billing-en"]})
    assert created.status_code == 201 and created.json()["role"] == "agent"
    assert client.post("/api/v1/agent/admin/agents", headers=admin, json={
        "username": "eve", "display_name": "Eve", "password": "short", "queues": []}).status_code == 422
    audit = client.get("/api/v1/agent/admin/audit", headers=admin).json()
    assert {"actor": "admin", "action": "create_agent"}.items() <= audit[0].items()
    assert client.post("/api/v1/agent/logout", headers=admin).status_code == 200
    assert client.get("/api/v1/agent/me", headers=admin).status_code == 401


def test_login_attempts_are_rate_limited(setup: tuple[TestClient, World]) -> None:
    client, _ = setup
    for _ in range(5):
        assert client.post("/api/v1/agent/login", json={"username": "alice", "password": "wrong"}).status_code == 401
    blocked = client.post("/api/v1/agent/login", json={"username": "alice", "password": "agent-password-1"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # another account from the same address is not locked out by alice's failures (the address has its own budget)
    assert client.post("/api/v1/agent/login", json={"username": "wei", "password": "agent-password-1"}).status_code == 200


def test_a_customer_reads_only_their_own_conversation(setup: tuple[TestClient, World]) -> None:
    client, world = setup
    world.rasa.script = [says("Hi!"), says("Hello!")]
    mine = client.post("/api/v1/chat", json={"sender_id": "cust-a", "text": "hi"}).json()
    other = client.post("/api/v1/chat", json={"sender_id": "cust-b", "text": "hi"}).json()
    token = mine["conversation_token"]
    assert token and other["conversation_token"] != token
    assert client.get("/api/v1/conversations/cust-a/messages").status_code == 401
    assert client.get("/api/v1/conversations/cust-a/messages",
                      headers={"X-Conversation-Token": other["conversation_token"]}).status_code == 403
    ok = client.get("/api/v1/conversations/cust-a/messages", headers={"X-Conversation-Token": token})
    assert ok.status_code == 200 and [m["text"] for m in ok.json()["messages"]] == ["hi", "Hi!"]
    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect("/api/v1/conversations/cust-a/ws",
                                     headers={"X-Conversation-Token": other["conversation_token"]}) as ws:
        ws.receive_json()
    assert refused.value.code == 4403


def test_console_flow_live_events_claim_reply_and_customer_websocket(setup: tuple[TestClient, World]) -> None:
    client, world = setup
    world.rasa.script = [says("Hi!"), runs(ActionHandoffRequest(), "human_handoff")]
    first = client.post("/api/v1/chat", json={"sender_id": "cust-live", "text": "hello"}).json()
    token = first["conversation_token"]
    alice = login(client, "alice")
    # tokens travel in headers (or a first frame), never in the URL
    with client.websocket_connect("/api/v1/agent/ws", headers=alice) as console, \
            client.websocket_connect("/api/v1/conversations/cust-live/ws", headers={"X-Conversation-Token": token}) as customer:
        assert console.receive_json()["type"] == "hello"
        assert customer.receive_json()["type"] == "backlog"
        queued = client.post("/api/v1/chat", json={"sender_id": "cust-live", "text": "I need a human"},
                             headers={"X-Conversation-Token": token}).json()
        assert queued["state"] == "queued"
        created = console.receive_json()
        assert created["type"] == "ticket.created" and created["ticket"]["queue"] == "general-en"
        ticket_id = created["ticket"]["id"]

        listing = client.get("/api/v1/agent/tickets", headers=alice).json()
        assert listing[0]["id"] == ticket_id and listing[0]["waiting_s"] is not None
        detail = client.get(f"/api/v1/agent/tickets/{ticket_id}", headers=alice).json()
        assert [m["text"] for m in detail["transcript"]][:3] == ["hello", "Hi!", "I need a human"]

        assert client.post(f"/api/v1/agent/tickets/{ticket_id}/reply", headers=alice, json={"text": "x"}).status_code == 409
        assert client.post(f"/api/v1/agent/tickets/{ticket_id}/claim", headers=alice).status_code == 200
        assert console.receive_json()["type"] == "ticket.assigned"
        assert customer.receive_json()["message"]["text"] == "Alice from our team has joined the chat."

        reply = client.post(f"/api/v1/agent/tickets/{ticket_id}/reply", headers=alice, json={"canned_id": "greeting"})
        assert reply.status_code == 200
        live = customer.receive_json()
        assert live["message"]["from"] == "agent" and live["message"]["text"].startswith("Hi, I'm here to help")
        assert console.receive_json()["type"] == "message"

        silent = client.post("/api/v1/chat", json={"sender_id": "cust-live", "text": "<script>alert(1)</script>"},
                             headers={"X-Conversation-Token": token}).json()
        assert silent["state"] == "human" and silent["messages"] == []
        relayed = console.receive_json()
        assert relayed["type"] == "message" and relayed["message"]["text"] == "<script>alert(1)</script>"

        assert client.post(f"/api/v1/agent/tickets/{ticket_id}/notes", headers=alice, json={"text": "VIP"}).status_code == 200
        assert client.post(f"/api/v1/agent/tickets/{ticket_id}/resolve", headers=alice).status_code == 200
    with world.handoff._sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.ticket_id == ticket_id))]
    assert actions == ["escalate", "claim", "reply", "note", "resolve"]
