"""Security of agent accounts and sessions (issue 12, items 6, 8 and 11, agent side), attacked through
FastAPI's TestClient over the real handoff service, accounts and ops admin check on a temporary
SQLite database (only Rasa is scripted, as in tests/test_handoff_service.py).

Each test performs an attack that worked before and passes only when it is refused: rotating
usernames or addresses to dodge the sign-in throttle, hashing floods, cross-site writes with the
session cookie, foreign origins on the console's socket, tokens in query strings, taking another
agent's chat by transfer, stale sessions after a password change or a disabled account, and
generated passwords in the log.
"""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, WebSocketDisconnect
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.actions.handoff import ActionHandoffRequest
from channels.rest import router as rest_router
from deps import admin_session_check
from handoff import config as handoff_config
from handoff.accounts import Accounts
from handoff.api import HandoffApp, agent_router, customer_router
from handoff.auth import LoginThrottle
from handoff.models import Agent, AuditEntry
from handoff.seed import CREDENTIALS_FILE, seed_handoff
from kb_index.admin_routes import require_admin
from storage.db import make_engine, make_session_factory, upgrade
from tests.test_handoff_service import World, make_settings, make_world, runs

AGENT_PW = "agent-password-1"
ADMIN_PW = "admin-password-1"
BASE = "https://testserver"  # the session cookie is Secure: the test client must speak https to get it back
CONSOLE = {"X-Requested-With": "supportbot-console"}
EVIL = "https://evil.example"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[FastAPI, World, LoginThrottle]]:
    """The handoff routes, the REST chat and one admin-only route guarded like every ops/KB route."""
    for world in make_world(tmp_path, console_allowed_origins=["https://console.example"]):
        throttle = LoginThrottle(per_ip="6/15minutes", per_account="4/15minutes", max_concurrent_hashes=1,
                                 hash_wait_s=0.2)
        app = FastAPI()
        app.state.settings = world.settings
        app.state.conversations = world.conversations
        app.state.handoff = HandoffApp(world.handoff, Accounts(world.handoff._sessions, 12, world.handoff.clock), throttle)
        app.state.admin_session_check = admin_session_check
        app.include_router(rest_router)
        app.include_router(agent_router)
        app.include_router(customer_router)

        @app.post("/admin-probe")
        async def admin_probe(who: Annotated[str, Depends(require_admin)]) -> dict[str, str]:
            return {"who": who}

        yield app, world, throttle


@pytest.fixture
def client(site: tuple[FastAPI, World, LoginThrottle]) -> Iterator[TestClient]:
    with TestClient(site[0], base_url=BASE) as c:
        yield c


def sign_in(client: TestClient, username: str, password: str = AGENT_PW) -> str:
    resp = client.post("/api/v1/agent/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit(world: World, action: str) -> list[AuditEntry]:
    with world.handoff._sessions() as db:
        return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def escalate(client: TestClient, world: World, sender: str) -> int:
    world.rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))
    resp = client.post("/api/v1/chat", json={"sender_id": sender, "text": "I want a person"})
    assert resp.status_code == 200 and resp.json()["state"] == "queued", resp.text
    return world.ticket(sender).id


# --- item 6: sign-in throttle, bounded hashing, audit ---------------------------------------------
def test_rotating_usernames_from_one_address_is_throttled_before_any_password_check(client: TestClient) -> None:
    for i in range(6):
        resp = client.post("/api/v1/agent/login", json={"username": f"guess{i}", "password": "wrong"})
        assert resp.status_code == 401
    # The address is spent: even alice's right password is refused, so the check ran before hashing.
    blocked = client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert "address" in blocked.json()["detail"] and AGENT_PW not in blocked.text


def test_one_account_guessed_from_many_addresses_is_locked(site: tuple[FastAPI, World, LoginThrottle]) -> None:
    app, world, _ = site
    for i in range(4):
        with TestClient(app, base_url=BASE, client=(f"203.0.113.{i}", 40000)) as c:
            assert c.post("/api/v1/agent/login", json={"username": "alice", "password": "guess"}).status_code == 401
    with TestClient(app, base_url=BASE, client=("198.51.100.7", 40000)) as fresh:
        blocked = fresh.post("/api/v1/agent/login", json={"username": "ALICE", "password": AGENT_PW})
        assert blocked.status_code == 429 and "account" in blocked.json()["detail"]
        # only that account is locked: another agent signs in from the same fresh address
        assert fresh.post("/api/v1/agent/login", json={"username": "wei", "password": AGENT_PW}).status_code == 200


def test_failed_sign_ins_and_the_lockout_are_audited_without_the_password(site: tuple[FastAPI, World, LoginThrottle],
                                                                         client: TestClient) -> None:
    _, world, _ = site
    for _ in range(4):
        client.post("/api/v1/agent/login", json={"username": "alice", "password": "hunter2-guess"})
    failed, locked = audit(world, "login_failed"), audit(world, "login_locked")
    assert [e.actor for e in failed] == ["alice"] * 4 and failed[0].detail == {"address": "testclient"}
    assert [(e.actor, e.detail["scope"]) for e in locked] == [("alice", "account")]
    assert all("hunter2" not in str(e.detail) for e in failed + locked)


def test_password_checks_run_a_bounded_number_at_a_time(site: tuple[FastAPI, World, LoginThrottle],
                                                        client: TestClient) -> None:
    _, _, throttle = site
    held = throttle.hashing()  # the only slot (max_concurrent_hashes=1), as a slow sign-in would hold it
    loop = asyncio.new_event_loop()  # not asyncio.run: its shutdown would close (release) the slot at once
    try:
        loop.run_until_complete(held.__aenter__())
        busy = client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW})
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) > 0
        loop.run_until_complete(held.__aexit__(None, None, None))
    finally:
        loop.close()
    assert client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW}).status_code == 200


# --- item 11: cookie, cross-site requests, websocket origin -----------------------------------------
def test_the_session_cookie_is_secure_httponly_and_strict(client: TestClient) -> None:
    resp = client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW})
    cookie = resp.headers["set-cookie"].lower()
    assert "agent_session=" in cookie and "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_cookie_writes_from_another_site_are_refused(client: TestClient) -> None:
    # login CSRF: another site's page cannot sign the browser into an account of the attacker's
    forged = client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW}, headers={"Origin": EVIL})
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    token = sign_in(client, "alice")  # the client now holds the cookie, as a signed-in browser would
    away = {"status": "away"}
    for headers in ({"Origin": EVIL}, {}, {"Referer": f"{EVIL}/page"}, {"Origin": "null"},
                    {"Origin": "https://testserver.evil.example"}):
        refused = client.post("/api/v1/agent/status", json=away, headers=headers)
        assert refused.status_code == 403 and "cross-site" in refused.json()["detail"], headers
    assert client.get("/api/v1/agent/me").json()["status"] == "online"  # nothing changed
    # the console (custom header), this origin, an allowed origin, and bearer clients pass
    for headers in (CONSOLE, {"Origin": BASE}, {"Origin": "https://console.example"}, {"Referer": f"{BASE}/console"}):
        assert client.post("/api/v1/agent/status", json=away, headers=headers).status_code == 200, headers
    client.cookies.clear()
    assert client.post("/api/v1/agent/status", json=away, headers={**bearer(token), "Origin": EVIL}).status_code == 200


def test_cookie_writes_to_admin_routes_from_another_site_are_refused(client: TestClient) -> None:
    sign_in(client, "admin", ADMIN_PW)
    refused = client.post("/admin-probe", headers={"Origin": EVIL})
    assert refused.status_code == 403 and "cross-site" in refused.json()["detail"]
    assert client.post("/admin-probe", headers=CONSOLE).json() == {"who": "agent:admin"}
    created = client.post("/api/v1/agent/admin/agents", headers={"Origin": EVIL}, json={
        "username": "mallory", "display_name": "M", "password": "mallory-password-1", "queues": []})
    assert created.status_code == 403


def test_the_console_socket_refuses_foreign_origins_and_tokens_in_the_url(client: TestClient) -> None:
    token = sign_in(client, "alice")
    cookie = {"Cookie": f"agent_session={token}"}
    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect("/api/v1/agent/ws", headers={**cookie, "Origin": EVIL}) as ws:
        ws.receive_json()
    assert refused.value.code == 4403
    # ?token= is not a credential any more: the socket waits for an auth frame and closes on anything else
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(f"/api/v1/agent/ws?token={token}") as ws:
        ws.send_json({"type": "ping"})
        ws.receive_json()
    assert refused.value.code == 4401
    # what works: the cookie from our own origin, a bearer header, or the token in the first frame
    with client.websocket_connect("/api/v1/agent/ws", headers={**cookie, "Origin": BASE}) as ws:
        assert ws.receive_json()["type"] == "hello"
    with client.websocket_connect("/api/v1/agent/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "hello"
    with client.websocket_connect("/api/v1/agent/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["agent"]["username"] == "alice"


# --- item 8: customer tokens never in query strings --------------------------------------------------
def test_customer_tokens_are_refused_in_query_strings(client: TestClient, site: tuple[FastAPI, World, Any]) -> None:
    world = site[1]
    world.rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))
    token = client.post("/api/v1/chat", json={"sender_id": "cust-q", "text": "hi"}).json()["conversation_token"]
    assert client.get(f"/api/v1/conversations/cust-q/messages?token={token}").status_code == 401
    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect(f"/api/v1/conversations/cust-q/ws?token={token}") as ws:
        ws.send_json({"type": "hello"})
        ws.receive_json()
    assert refused.value.code == 4403
    assert client.get("/api/v1/conversations/cust-q/messages", headers={"X-Conversation-Token": token}).status_code == 200
    with client.websocket_connect("/api/v1/conversations/cust-q/ws", headers={"X-Conversation-Token": token}) as ws:
        assert ws.receive_json()["type"] == "backlog"
    with client.websocket_connect("/api/v1/conversations/cust-q/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "backlog"


# --- item 11: transfer, password change, disable, revoke ----------------------------------------------
def test_an_agent_cannot_take_another_agents_chat_by_transfer(site: tuple[FastAPI, World, Any], client: TestClient) -> None:
    world = site[1]
    admin = bearer(sign_in(client, "admin", ADMIN_PW))
    for username, queues, capacity in (("bob", ["general-en"], 1), ("carol", ["billing-zh"], 3)):
        assert client.post("/api/v1/agent/admin/agents", headers=admin, json={
            "username": username, "display_name": username.title(), "password": f"{username}-password-1",
            "queues": queues, "capacity": capacity}).status_code == 201
    alice, bob = bearer(sign_in(client, "alice")), bearer(sign_in(client, "bob", "bob-password-1"))
    client.cookies.clear()
    ticket_id = escalate(client, world, "cust-transfer")
    assert client.post(f"/api/v1/agent/tickets/{ticket_id}/claim", headers=alice).status_code == 200

    # bob serves the queue but the chat is alice's: he can neither pull it to himself nor push it away
    for body in ({"agent": "bob"}, {"queue": "general-zh"}):
        stolen = client.post(f"/api/v1/agent/tickets/{ticket_id}/transfer", headers=bob, json=body)
        assert stolen.status_code == 403, body
    assert world.ticket("cust-transfer").agent_id == world.agent("alice").id
    # alice may pass it on, but only to someone who serves its queue and has room
    refused = client.post(f"/api/v1/agent/tickets/{ticket_id}/transfer", headers=alice, json={"agent": "carol"})
    assert refused.status_code == 409 and "does not serve" in refused.json()["detail"]
    other = escalate(client, world, "cust-other")
    assert client.post(f"/api/v1/agent/tickets/{other}/claim", headers=bob).status_code == 200  # bob is now full
    full = client.post(f"/api/v1/agent/tickets/{ticket_id}/transfer", headers=alice, json={"agent": "bob"})
    assert full.status_code == 409 and "capacity" in full.json()["detail"]
    # an admin may move anyone's chat
    assert client.post(f"/api/v1/agent/tickets/{other}/transfer", headers=admin, json={"queue": "general-en"}).status_code == 200
    assert client.post(f"/api/v1/agent/tickets/{ticket_id}/transfer", headers=alice, json={"agent": "bob"}).status_code == 200
    assert world.ticket("cust-transfer").agent_id == world.agent("bob").id


def test_password_change_needs_the_current_password_and_signs_out_other_sessions(
        site: tuple[FastAPI, World, Any], client: TestClient) -> None:
    world = site[1]
    laptop, stolen = sign_in(client, "alice"), sign_in(client, "alice")
    client.cookies.clear()
    change = "/api/v1/agent/password"
    wrong = client.post(change, headers=bearer(stolen), json={"current_password": "guess-1234", "new_password": "x" * 12})
    assert wrong.status_code == 403
    short = client.post(change, headers=bearer(laptop), json={"current_password": AGENT_PW, "new_password": "short"})
    assert short.status_code == 422 and "10 characters" in short.json()["detail"]
    ok = client.post(change, headers=bearer(laptop), json={"current_password": AGENT_PW, "new_password": "new-alice-pw-99"})
    assert ok.status_code == 200
    assert client.get("/api/v1/agent/me", headers=bearer(stolen)).status_code == 401  # the other session is gone
    assert client.get("/api/v1/agent/me", headers=bearer(laptop)).status_code == 200
    assert client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW}).status_code == 401
    sign_in(client, "alice", "new-alice-pw-99")
    assert [e.detail for e in audit(world, "password_change")] == [{"sessions_revoked": 1}]
    assert len(audit(world, "password_change_failed")) == 1


def test_a_disabled_agent_is_signed_out_everywhere_and_cannot_sign_in(site: tuple[FastAPI, World, Any],
                                                                    client: TestClient) -> None:
    world = site[1]
    admin = bearer(sign_in(client, "admin", ADMIN_PW))
    alice_token = sign_in(client, "alice")
    client.cookies.clear()
    alice = bearer(alice_token)
    assert client.post("/api/v1/agent/admin/agents/wei/disable", headers=alice).status_code == 403
    assert client.post("/api/v1/agent/admin/agents/admin/disable", headers=admin).status_code == 409
    assert client.post("/api/v1/agent/admin/agents/nobody/disable", headers=admin).status_code == 404
    disabled = client.post("/api/v1/agent/admin/agents/alice/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert client.get("/api/v1/agent/me", headers=alice).status_code == 401
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/api/v1/agent/ws", headers=alice) as ws:
        ws.receive_json()
    assert refused.value.code == 4401
    assert client.post("/api/v1/agent/login", json={"username": "alice", "password": AGENT_PW}).status_code == 401
    assert client.post("/api/v1/agent/admin/agents/alice/enable", headers=admin).json()["active"] is True
    sign_in(client, "alice")
    assert [(e.actor, e.detail) for e in audit(world, "disable_agent")] == [("admin", {"agent": "alice", "sessions": 1})]
    assert [e.detail for e in audit(world, "enable_agent")] == [{"agent": "alice"}]


def test_sessions_can_be_revoked_by_an_admin_and_by_the_agent(site: tuple[FastAPI, World, Any], client: TestClient) -> None:
    world = site[1]
    admin = bearer(sign_in(client, "admin", ADMIN_PW))
    wei_1, wei_2 = bearer(sign_in(client, "wei")), bearer(sign_in(client, "wei"))
    client.cookies.clear()
    assert client.post("/api/v1/agent/admin/agents/admin/sessions/revoke", headers=wei_1).status_code == 403
    assert client.post("/api/v1/agent/admin/agents/wei/sessions/revoke", headers=admin).json()["sessions"] == 2
    assert client.get("/api/v1/agent/me", headers=wei_1).status_code == 401
    assert client.get("/api/v1/agent/me", headers=wei_2).status_code == 401
    phone, laptop = bearer(sign_in(client, "wei")), bearer(sign_in(client, "wei"))
    client.cookies.clear()
    assert client.post("/api/v1/agent/sessions/revoke", headers=laptop).json()["sessions"] == 2
    assert client.get("/api/v1/agent/me", headers=phone).status_code == 401
    assert client.get("/api/v1/agent/me", headers=laptop).status_code == 401
    assert [(e.actor, e.detail["agent"]) for e in audit(world, "sessions_revoked")] == [("admin", "wei"), ("wei", "wei")]


# --- item 8: generated passwords, demo accounts -----------------------------------------------------
def _fresh_db(tmp_path: Path, **over: Any) -> tuple[Any, Any]:
    settings = make_settings(tmp_path, handoff_admin_password="", handoff_demo_agent_password="", **over)
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    return settings, (engine, make_session_factory(engine))


def test_generated_passwords_go_to_a_private_file_never_to_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings, (engine, sessions) = _fresh_db(tmp_path, demo=True)
    try:
        with caplog.at_level(logging.DEBUG):
            generated = seed_handoff(sessions, settings, handoff_config.load(settings.handoff_config))
    finally:
        engine.dispose()
    assert set(generated) == {"admin", "alice", "wei", "olga"}
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert not any(pw in logged for pw in generated.values())
    path = tmp_path / CREDENTIALS_FILE
    assert str(path) in caplog.text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert all(f"{user}: {pw}" in content for user, pw in generated.items())


def test_demo_agents_exist_only_in_demo_mode(tmp_path: Path) -> None:
    settings, (engine, sessions) = _fresh_db(tmp_path, demo=False)  # as in production
    try:
        seed_handoff(sessions, settings, handoff_config.load(settings.handoff_config))
        with sessions() as db:
            assert list(db.scalars(select(Agent.username))) == ["admin"]
    finally:
        engine.dispose()
