"""The widget's websocket against the live system (real gateway + Rasa + trained model).

Whole conversations over ``/api/v1/ws`` as widget.js speaks it: an anonymous order-status check
in Chinese, a resend after a reconnect answered from the stored reply (never twice), a signed-in
customer whom the bot does not ask to verify again, and the REST fallback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import ClientConnection, connect

from channels.widget.identity import sender_for_token, sign_user_id
from tests.conftest import LiveSystem

# The live fixture's gateway inherits the environment when it starts (after collection), so the
# signed-user tests set the shared secret here. tests/test_widget_browser.py reads the same value.
WIDGET_SECRET = os.environ.setdefault("WIDGET_USER_SECRET", "live-test-widget-secret")


def ws_url(live: LiveSystem) -> str:
    return live.url.replace("http://", "ws://") + "/api/v1/ws"


class Browser:
    """One widget socket: sends frames, waits for the reply to a given client message id."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ready: dict[str, Any] = {}
        self.seen: list[dict[str, Any]] = []

    def recv(self) -> dict[str, Any]:
        frame = json.loads(self.ws.recv(timeout=120))
        self.seen.append(frame)
        return frame

    def send(self, client_id: str, text: str | None = None, payload: str | None = None) -> dict[str, Any]:
        frame = {"type": "message", "id": client_id, "text": text}
        if payload is not None:
            frame["payload"] = payload
        self.ws.send(json.dumps(frame, ensure_ascii=False))
        while True:
            got = self.recv()
            assert got["type"] not in ("error", "pending"), got
            if got["type"] == "reply" and got["id"] == client_id:
                return got


@contextmanager
def widget(live: LiveSystem, **identity: str) -> Iterator[Browser]:
    with connect(ws_url(live), open_timeout=30) as ws:
        ws.send(json.dumps({"type": "hello", **identity}))
        browser = Browser(ws)
        browser.ready = browser.recv()
        assert browser.ready["type"] == "ready", browser.ready
        yield browser


def text_of(reply: dict[str, Any]) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


def test_order_status_in_chinese_and_a_resend_is_answered_once(live: LiveSystem) -> None:
    token = "live-widget-zh-0000000000"
    sender = sender_for_token(token)
    with widget(live, token=token) as browser:
        assert browser.ready["history"] == []
        first = browser.send("w-zh-1", "我的订单到哪了")
        assert first["language"] == "zh" and "订单号" in text_of(first)
        # Acknowledged (received and stored) before it is answered.
        assert [f["type"] for f in browser.seen if f.get("id") == "w-zh-1"] == ["ack", "reply"]
        browser.send("w-zh-2", "3348917502")
        answer = browser.send("w-zh-3", "cminh730@email.com")
        assert "发货" in text_of(answer) and answer["duplicate"] is False
    # The connection dropped before the browser saw the answer: it reconnects and resends.
    with widget(live, token=token) as browser:
        history = browser.ready["history"]
        assert [(h["client_id"], h["status"]) for h in history if h["direction"] == "in"] == [
            ("w-zh-1", "answered"), ("w-zh-2", "answered"), ("w-zh-3", "answered"),
        ]
        assert any("发货" in h["text"] for h in history if h["direction"] == "out")
        again = browser.send("w-zh-3", "cminh730@email.com")
        assert again["duplicate"] is True and again["messages"] == answer["messages"]
    rows = live.query(
        "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE c.sender_id = :s AND m.client_message_id = 'w-zh-3'", s=sender,
    )
    turns = live.query(
        "SELECT count(*) FROM turns t JOIN conversations c ON c.id = t.conversation_id WHERE c.sender_id = :s",
        s=sender,
    )
    assert rows[0][0] == 1 and turns[0][0] == 3
    channel = live.query("SELECT channel FROM conversations WHERE sender_id = :s", s=sender)
    assert channel[0][0] == "widget"


def test_a_signed_in_customer_is_not_asked_to_verify_their_own_order(live: LiveSystem) -> None:
    sig = sign_user_id("cminh730", WIDGET_SECRET)
    with widget(live, user_id="cminh730", user_sig=sig) as browser:
        assert browser.ready["user"] == "cminh730"
        browser.send("w-v-1", "where is my order?")
        answer = browser.send("w-v-2", "3348917502")
        assert "shipped" in text_of(answer).lower()
        assert "email" not in text_of(answer).lower()  # no "tell me the email or username on the order"
    slots = live.query(
        "SELECT t.slots FROM turns t JOIN conversations c ON c.id = t.conversation_id "
        "WHERE c.sender_id = 'web-user:cminh730' ORDER BY t.id DESC LIMIT 1"
    )
    recorded = json.loads(slots[0][0])
    assert recorded["verified"] is True and recorded["verified_username"] == "cminh730"


def test_a_signed_in_customer_still_verifies_someone_elses_order(live: LiveSystem) -> None:
    sig = sign_user_id("jbanter553", WIDGET_SECRET)
    with widget(live, user_id="jbanter553", user_sig=sig) as browser:
        browser.send("w-o-1", "where is my order?")
        asked = browser.send("w-o-2", "3348917502")  # cminh730's order
        assert "email" in text_of(asked).lower() and "shipped" not in text_of(asked).lower()


def test_a_bad_signature_is_refused_by_the_live_gateway(live: LiveSystem) -> None:
    with connect(ws_url(live), open_timeout=30) as ws:
        ws.send(json.dumps({"type": "hello", "user_id": "cminh730", "user_sig": sign_user_id("cminh730", "guess")}))
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=30)
        assert ws.close_code == 4401 and "does not match" in (ws.close_reason or "")


def test_rest_fallback_answers_like_the_socket(live: LiveSystem) -> None:
    token = "live-widget-rest-00000000"
    body = {"token": token, "id": "w-r-1", "text": "where is my order?"}
    resp = httpx.post(f"{live.url}/api/v1/widget/chat", content=json.dumps(body), timeout=60,
                      headers={"content-type": "text/plain", "origin": "https://shop.example"})
    assert resp.status_code == 200, resp.text
    reply = resp.json()
    assert reply["type"] == "reply" and reply["id"] == "w-r-1" and "order number" in text_of(reply)
    assert resp.headers["access-control-allow-origin"] == "https://shop.example"
    history = httpx.post(f"{live.url}/api/v1/widget/history", json={"token": token}, timeout=30).json()
    assert [h["client_id"] for h in history["history"] if h["direction"] == "in"] == ["w-r-1"]
