"""The website widget's gateway side, against the real app (storage, conversation service, routes).

Rasa is deliberately unreachable here (RASA_URL names a closed port), which exercises the paths
that must not lose a message: the socket answers ``pending`` and a resend is stored once. Turns
answered by the real bot are in tests/test_widget_live.py, the browser in test_widget_browser.py.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketDisconnect

from channels.ratelimit import SlidingWindowLimiter
from channels.widget.identity import (
    IdentityError,
    WidgetIdentity,
    resolve_identity,
    sender_for_token,
    sign_user_id,
)
from conversations.models import Conversation, Message
from conversations.service import OutboundMessage
from server import create_app
from settings import Settings
from tests.conftest import free_port

SECRET = "unit-test-widget-secret"
TOKEN = "tok_" + "A1b2C3d4" * 3  # 28 characters of the allowed alphabet
WIDGET_JS = Path(__file__).resolve().parent.parent / "channels" / "widget" / "static" / "widget.js"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("widget")
    extra: dict[str, Any] = {}
    if "kb" in Settings.model_fields:  # an empty help centre (settings.kb.source_dir): nothing to index here
        (data_dir / "help").mkdir()
        extra["kb_source_dir"] = data_dir / "help"
    settings = Settings(
        data_dir=data_dir, rasa_url=f"http://127.0.0.1:{free_port()}", widget_user_secret=SECRET,
        retry_after_s=7, demo=True, **extra,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def hello(ws: Any, **fields: Any) -> dict[str, Any]:
    ws.send_text(json.dumps({"type": "hello", **fields}))
    return ws.receive_json()


def closed_with(ws: Any) -> WebSocketDisconnect:
    with pytest.raises(WebSocketDisconnect) as err:
        ws.receive_json()
    return err.value


def inbound_rows(client: TestClient, sender_id: str) -> list[dict[str, Any]]:
    return [m for m in client.app.state.conversations.transcript(sender_id) if m["direction"] == "in"]


# --- identity -----------------------------------------------------------------------------------
def test_anonymous_sender_is_derived_from_the_token_and_hides_it() -> None:
    sender = sender_for_token(TOKEN)
    assert sender == sender_for_token(TOKEN)
    assert sender.startswith("web:") and TOKEN not in sender
    assert sender != sender_for_token(TOKEN + "x")
    for bad in ("short", "A" * 129, "has space in it........", "emoji😀" * 5):
        with pytest.raises(IdentityError):
            sender_for_token(bad)


def test_signed_user_id_is_verified() -> None:
    sig = sign_user_id("cminh730", SECRET)
    assert len(sig) == 64
    assert resolve_identity(None, "cminh730", sig, SECRET) == WidgetIdentity("web-user:cminh730", "cminh730")
    assert resolve_identity(None, "cminh730", sig.upper(), SECRET).verified_username == "cminh730"
    # The signed identity wins over any token the browser also sent.
    assert resolve_identity(TOKEN, "cminh730", sig, SECRET).sender_id == "web-user:cminh730"
    assert resolve_identity(None, "cminh730", sig, SECRET).metadata == {"verified_username": "cminh730"}
    assert resolve_identity(TOKEN, None, None, SECRET).metadata == {}


@pytest.mark.parametrize(
    ("user_id", "sig", "secret", "reason"),
    [
        ("cminh730", sign_user_id("jwu477", SECRET), SECRET, "does not match"),
        ("cminh730", sign_user_id("cminh730", "other-secret"), SECRET, "does not match"),
        ("cminh730", None, SECRET, "together"),
        (None, sign_user_id("cminh730", SECRET), SECRET, "together"),
        ("cminh730", sign_user_id("cminh730", SECRET), "", "not enabled"),
        ("cminh730", "zz" * 32, SECRET, "64-hex-digit"),
        ("a b", sign_user_id("a b", SECRET), SECRET, "user_id must be"),
    ],
)
def test_bad_or_unsigned_user_ids_are_refused(user_id: str | None, sig: str | None, secret: str, reason: str) -> None:
    with pytest.raises(IdentityError, match=reason):
        resolve_identity(TOKEN, user_id, sig, secret)


# --- static routes ------------------------------------------------------------------------------
def test_widget_script_is_served_small_and_cacheable(client: TestClient) -> None:
    resp = client.get("/widget.js", headers={"accept-encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.content == WIDGET_JS.read_bytes()  # httpx decoded the gzip
    assert len(gzip.compress(WIDGET_JS.read_bytes(), 9)) <= 30 * 1024  # the size budget
    again = client.get("/widget.js", headers={"if-none-match": resp.headers["etag"]})
    assert again.status_code == 304


def test_widget_script_never_parses_server_text_as_html() -> None:
    source = WIDGET_JS.read_text()
    # The only innerHTML is the launcher's constant icon; messages go through textContent.
    assert source.count("innerHTML") == 1 and "launcher.innerHTML = '<svg" in source
    assert "insertAdjacentHTML" not in source and "outerHTML" not in source and "eval(" not in source


def test_demo_page_anonymous_and_signed(client: TestClient) -> None:
    page = client.get("/demo")
    assert page.status_code == 200 and '<script src="/widget.js"' in page.text
    assert "data-user-id" not in page.text and '<html lang="en">' in page.text
    signed = client.get("/demo", params={"user": "cminh730", "lang": "zh-Hans"})
    assert signed.status_code == 200 and '<html lang="zh-Hans">' in signed.text
    assert 'data-user-id="cminh730"' in signed.text
    assert f'data-user-sig="{sign_user_id("cminh730", SECRET)}"' in signed.text
    # The demo signs only the demo store's customers, never an arbitrary id.
    assert client.get("/demo", params={"user": "admin"}).status_code == 422
    assert client.get("/demo", params={"lang": "fr"}).status_code == 422


def test_demo_page_does_not_sign_customers_outside_demo_mode(client: TestClient) -> None:
    """In production the demo store's customers are real rows: /demo must not sign anyone in as them."""
    client.app.state.settings = client.app.state.settings.model_copy(update={"demo": False})  # type: ignore[attr-defined]
    try:
        refused = client.get("/demo", params={"user": "cminh730"})
        assert refused.status_code == 404 and "data-user-sig" not in refused.text
    finally:
        client.app.state.settings = client.app.state.settings.model_copy(update={"demo": True})  # type: ignore[attr-defined]


# --- websocket ----------------------------------------------------------------------------------
def test_hello_gives_an_empty_history_for_a_new_browser(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as ws:
        ready = hello(ws, token="new-browser-token-0000000")
        assert ready == {"type": "ready", "state": "bot", "language": None, "user": None, "history": []}
        ws.send_text('{"type": "ping"}')
        assert ws.receive_json() == {"type": "pong"}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"user_id": "cminh730", "user_sig": "0" * 64}, "does not match"),
        ({"user_id": "cminh730"}, "together"),
        ({"token": "short"}, "token must be"),
        ({}, "send a per-browser token"),
    ],
)
def test_refused_identity_closes_with_4401(client: TestClient, fields: dict[str, Any], reason: str) -> None:
    with client.websocket_connect("/api/v1/ws") as ws:
        ws.send_text(json.dumps({"type": "hello", **fields}))
        closed = closed_with(ws)
    assert closed.code == 4401 and reason in closed.reason


@pytest.mark.parametrize("first", ["not json", '{"type": "message", "id": "x", "text": "hi"}', '{"type": "hello", "x": 1}'])
def test_a_bad_first_frame_closes_with_4400(client: TestClient, first: str) -> None:
    with client.websocket_connect("/api/v1/ws") as ws:
        ws.send_text(first)
        closed = closed_with(ws)
    assert closed.code == 4400 and "hello" in closed.reason


def test_origins_outside_the_allowed_list_are_refused(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = client.app.state.settings
    monkeypatch.setattr(settings, "widget_allowed_origins", ["https://shop.example"])
    with client.websocket_connect("/api/v1/ws", headers={"origin": "https://evil.example"}) as ws:
        assert closed_with(ws).code == 4403
    with client.websocket_connect("/api/v1/ws", headers={"origin": "https://shop.example"}) as ws:
        assert hello(ws, token=TOKEN)["type"] == "ready"
    resp = client.post("/api/v1/widget/history", json={"token": TOKEN}, headers={"origin": "https://evil.example"})
    assert resp.status_code == 403


def test_message_while_the_bot_is_down_is_kept_and_a_resend_is_stored_once(client: TestClient) -> None:
    token = "resend-token-000000000000"
    sender = sender_for_token(token)
    frame = json.dumps({"type": "message", "id": "w-resend-1", "text": "where is my order?"})
    with client.websocket_connect("/api/v1/ws") as ws:
        hello(ws, token=token)
        ws.send_text(frame)
        assert ws.receive_json() == {"type": "ack", "id": "w-resend-1"}
        pending = ws.receive_json()
        assert pending["type"] == "pending" and pending["id"] == "w-resend-1" and pending["retry_after"] == 7
    # The browser reconnects (a reload) and resends the unanswered message with the same id.
    with client.websocket_connect("/api/v1/ws") as ws:
        ready = hello(ws, token=token)
        assert [(h["direction"], h["client_id"], h["status"], h["text"]) for h in ready["history"]] == [
            ("in", "w-resend-1", "pending", "where is my order?")
        ]
        ws.send_text(frame)
        assert ws.receive_json()["type"] == "ack"
        assert ws.receive_json()["type"] == "pending"
    rows = inbound_rows(client, sender)
    assert [(r["client_message_id"], r["channel"]) for r in rows] == [("w-resend-1", "widget")]


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ({"type": "message", "id": "bad-1", "text": "   "}, "non-empty"),
        ({"type": "message", "id": "bad-2", "text": "x" * 4001}, "4000"),
        ({"type": "message", "id": "bad 3", "text": "hi"}, "id"),
        ({"type": "message", "id": "bad-4", "text": "hi", "language": "fr"}, "language"),
        ({"type": "message", "id": "bad-5", "text": "hi", "sender_id": "someone-else"}, "sender_id"),
        ({"type": "dance"}, "type must be"),
        ([1, 2], "type must be"),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_open(client: TestClient, frame: Any, detail: str) -> None:
    token = "bad-frames-token-00000000"
    with client.websocket_connect("/api/v1/ws") as ws:
        hello(ws, token=token)
        ws.send_text(json.dumps(frame))
        error = ws.receive_json()
        assert error["type"] == "error" and detail in error["detail"]
        ws.send_text('{"type": "ping"}')
        assert ws.receive_json() == {"type": "pong"}
    assert inbound_rows(client, sender_for_token(token)) == []


def test_oversized_and_binary_frames_are_refused(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws") as ws:
        hello(ws, token=TOKEN)
        ws.send_text(json.dumps({"type": "message", "id": "big", "text": "x" * 20000}))
        assert "bytes" in ws.receive_json()["detail"]
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["detail"] == "send JSON text frames"


def test_pusher_delivers_to_every_open_socket_of_the_sender(client: TestClient) -> None:
    token = "push-token-00000000000000"
    sender = sender_for_token(token)
    app = client.app
    with client.websocket_connect("/api/v1/ws") as tab1, client.websocket_connect("/api/v1/ws") as tab2:
        hello(tab1, token=token)
        hello(tab2, token=token)
        # A conversation must exist for the state: one (pending) message creates it.
        tab1.send_text(json.dumps({"type": "message", "id": "w-push-1", "text": "I need a person"}))
        assert tab1.receive_json()["type"] == "ack"
        assert tab1.receive_json()["type"] == "pending"
        assert app.state.widget_hub.open_connections(sender) == 2
        message = OutboundMessage(type="agent", text="Anna here <b>hi</b>", buttons=[{"title": "OK", "payload": "/affirm"}])
        delivered = client.portal.call(app.state.pushers.push, "widget", sender, [message])
        assert delivered is True
        for tab in (tab1, tab2):
            assert tab.receive_json() == {
                "type": "push", "state": "bot", "language": "en", "messages": [message.as_dict()],
            }
    assert app.state.widget_hub.open_connections(sender) == 0
    # Nobody connected: nothing to send, no error (the message is read from history on reconnect).
    assert client.portal.call(app.state.pushers.push, "widget", sender, [message]) is True


def test_agent_replies_carry_the_agents_name_live_and_in_history(client: TestClient) -> None:
    """Handoff stores the agent's display name beside the message (Message.data["agent"]), then pushes."""
    token = "agent-name-token-00000000"
    sender = sender_for_token(token)
    app = client.app
    with client.websocket_connect("/api/v1/ws") as ws:
        hello(ws, token=token)
        ws.send_text(json.dumps({"type": "message", "id": "w-agent-1", "text": "I need a person"}))
        assert [ws.receive_json()["type"] for _ in range(2)] == ["ack", "pending"]
        engine = create_engine(app.state.settings.sqlalchemy_url)
        with Session(engine) as db, db.begin():
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
            db.add(Message(conversation_id=conv.id, direction="out", type="agent", text="Hello, I can help.",
                           data={"agent": "Anna"}, language="en", channel="widget", created_at=datetime.now(UTC)))
        engine.dispose()
        client.portal.call(app.state.pushers.push, "widget", sender, [OutboundMessage("agent", "Hello, I can help.")])
        pushed = ws.receive_json()
        assert pushed["messages"] == [{"type": "agent", "text": "Hello, I can help.", "buttons": [], "sources": [],
                                       "agent": "Anna"}]
    with client.websocket_connect("/api/v1/ws") as ws:
        history = hello(ws, token=token)["history"]
    assert [(h["type"], h["agent"]) for h in history] == [("text", None), ("agent", "Anna")]


def test_a_flood_from_one_sender_is_refused_politely(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client.app.state.widget_hub, "limiter", SlidingWindowLimiter(2, 60))
    token = "flood-token-0000000000000"
    with client.websocket_connect("/api/v1/ws") as ws:
        hello(ws, token=token, locale="zh-Hans")
        for n in (1, 2):
            ws.send_text(json.dumps({"type": "message", "id": f"w-flood-{n}", "text": "你好"}))
            assert [ws.receive_json()["type"] for _ in range(2)] == ["ack", "pending"]
        ws.send_text(json.dumps({"type": "message", "id": "w-flood-3", "text": "你好"}))
        refused = ws.receive_json()
    assert refused["type"] == "error" and refused["id"] == "w-flood-3" and refused["rate_limited"] is True
    assert "请稍等一分钟" in refused["detail"] and "retry" not in refused
    # The limit is per sender: the REST fallback shares it.
    resp = client.post("/api/v1/widget/chat", json={"token": token, "id": "w-flood-4", "text": "hi", "locale": "ru"})
    assert resp.status_code == 429 and "Подождите минуту" in resp.json()["detail"]
    assert [r["client_message_id"] for r in inbound_rows(client, sender_for_token(token))] == ["w-flood-1", "w-flood-2"]


# --- REST fallback ------------------------------------------------------------------------------
def test_rest_fallback_history_and_pending_answer(client: TestClient) -> None:
    token = "rest-token-00000000000000"
    origin = {"origin": "https://shop.example"}
    history = client.post("/api/v1/widget/history", content=json.dumps({"token": token}),
                          headers={"content-type": "text/plain", **origin})
    assert history.status_code == 200
    assert history.json()["history"] == [] and history.headers["access-control-allow-origin"] == "https://shop.example"
    body = {"token": token, "id": "w-rest-1", "text": "hello", "language": "en"}
    resp = client.post("/api/v1/widget/chat", content=json.dumps(body), headers={"content-type": "text/plain", **origin})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "7"
    assert resp.json()["type"] == "pending" and resp.json()["id"] == "w-rest-1"
    assert client.post("/api/v1/widget/chat", json=body).status_code == 503
    rows = inbound_rows(client, sender_for_token(token))
    assert [(r["client_message_id"], r["language"]) for r in rows] == [("w-rest-1", "en")]


def test_rest_fallback_refuses_bad_identity_and_bodies(client: TestClient) -> None:
    bad_sig = {"user_id": "cminh730", "user_sig": "1" * 64, "id": "w-1", "text": "hi"}
    resp = client.post("/api/v1/widget/chat", json=bad_sig)
    assert resp.status_code == 401 and "does not match" in resp.json()["detail"]
    assert client.post("/api/v1/widget/history", json={"user_id": "cminh730"}).status_code == 401
    assert client.post("/api/v1/widget/chat", content=b"{not json").status_code == 422
    resp = client.post("/api/v1/widget/chat", json={"token": TOKEN, "id": "w-2", "text": "hi", "sender_id": "x"})
    assert resp.status_code == 422 and "sender_id" in resp.json()["detail"]
    assert client.post("/api/v1/widget/chat", content=b"x" * 20000).status_code == 413
    preflight = client.options("/api/v1/widget/chat", headers={"origin": "https://shop.example"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-methods"] == "POST"
