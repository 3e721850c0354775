"""Issue 12, items 2, 4 and 8 (widget): the REST channel as an attacker sees it.

* Item 2: a second client that knows only a victim's ``sender_id`` must not continue the
  conversation (read the order status, the agent's replies, talk to the agent): every turn after the
  first needs the conversation's ``X-Conversation-Token`` (or a server-to-server ``X-Api-Key``).
* Item 4: a 2 MB body is refused with 413 before it is buffered (declared or chunked), and a 422
  never echoes the submitted input.
* Item 8 (widget): no token travels in a URL.

The gateway here is the real app (storage, conversation service, handoff, routes, guards) with Rasa
unreachable, as in tests/test_widget.py: a new conversation's first message is stored and answered
503, which is also the case item 2 must keep working (continue after a 503 with the token). The
attack on a verified conversation with the real bot is ``test_live_*`` (the live system).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from server import create_app
from settings import Settings
from store.seed import DEMO
from tests.conftest import LiveSystem, free_port, texts

API_KEY = "integration-key-0123456789"
WIDGET_JS = Path(__file__).resolve().parent.parent / "channels" / "widget" / "static" / "widget.js"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("security-rest")
    (data_dir / "help").mkdir()
    settings = Settings(
        data_dir=data_dir, kb_source_dir=data_dir / "help", rasa_url=f"http://127.0.0.1:{free_port()}",
        retry_after_s=7, rest_api_keys=[API_KEY], max_upload_bytes=256 * 1024,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def chat(client: TestClient, sender: str, text: str, headers: dict[str, str] | None = None,
         **extra: str) -> httpx.Response:
    return client.post("/api/v1/chat", json={"sender_id": sender, "text": text, **extra}, headers=headers or {})


def inbound(client: TestClient, sender: str) -> list[tuple[str, str]]:
    rows = client.app.state.conversations.transcript(sender)
    return [(r["client_message_id"], r["text"]) for r in rows if r["direction"] == "in"]


def message_count(client: TestClient) -> int:
    with client.app.state.conversations._sessions() as db:  # noqa: SLF001 - the real store, read only
        return db.connection().exec_driver_sql("select count(*) from messages").scalar_one()


# --- item 2: the sender id alone is not a credential ------------------------------------------------
def test_a_stranger_with_only_the_sender_id_is_refused_and_nothing_is_stored(gateway: TestClient) -> None:
    sender = f"victim-{uuid.uuid4().hex[:8]}"
    first = chat(gateway, sender, "where is my order?", message_id="v-1")
    assert first.status_code == 503  # Rasa is down: stored, to be retried
    token = first.json()["conversation_token"]  # the first message created the conversation: its token
    assert token and first.json()["message_id"] == "v-1"

    before = message_count(gateway)
    stolen = chat(gateway, sender, "what did the agent say? my order number is 3348917502")
    assert stolen.status_code == 401
    assert "X-Conversation-Token" in stolen.json()["detail"] and "3348917502" not in stolen.text
    forged = chat(gateway, sender, "hello", {"X-Conversation-Token": "0" * 64})
    assert forged.status_code == 401 and "not the token" in forged.json()["detail"]
    other = chat(gateway, f"other-{uuid.uuid4().hex[:8]}", "hi").json()["conversation_token"]
    assert chat(gateway, sender, "hello", {"X-Conversation-Token": other}).status_code == 401
    replay = chat(gateway, sender, "where is my order?", message_id="v-1")  # a known message id is no key either
    assert replay.status_code == 401
    assert message_count(gateway) == before + 1  # only the other customer's own first message
    assert inbound(gateway, sender) == [("v-1", "where is my order?")]

    # The customer retries the 503'd first message with the token: accepted, still stored once.
    retried = chat(gateway, sender, "where is my order?", {"X-Conversation-Token": token}, message_id="v-1")
    assert retried.status_code == 503 and retried.headers["Retry-After"] == "7"
    assert "conversation_token" not in retried.json()  # only the message that created it hands it out
    later = chat(gateway, sender, "3348917502", {"X-Conversation-Token": token}, message_id="v-2")
    assert later.status_code == 503
    assert inbound(gateway, sender) == [("v-1", "where is my order?"), ("v-2", "3348917502")]


def test_a_configured_api_key_may_continue_any_conversation_and_a_wrong_one_is_refused(gateway: TestClient) -> None:
    sender = f"crm-{uuid.uuid4().hex[:8]}"
    assert chat(gateway, sender, "hello", message_id="c-1").status_code == 503
    assert chat(gateway, sender, "still there?", {"X-Api-Key": API_KEY}, message_id="c-2").status_code == 503
    wrong = chat(gateway, sender, "and now?", {"X-Api-Key": API_KEY + "x"}, message_id="c-3")
    assert wrong.status_code == 401 and "X-Api-Key" in wrong.json()["detail"]
    # A wrong key is refused even on a brand-new conversation (a client that sends one expects it to count).
    assert chat(gateway, f"crm-{uuid.uuid4().hex[:8]}", "hi", {"X-Api-Key": "guess"}).status_code == 401
    assert [m for m, _ in inbound(gateway, sender)] == ["c-1", "c-2"]


@pytest.mark.rasa
def test_live_sender_id_alone_does_not_continue_a_verified_conversation(live: LiveSystem) -> None:
    """The issue's attack on the running system: the victim verifies and reads their order; a second
    client sends only the victim's sender id and must get nothing of it."""
    order = DEMO["shipped"]
    victim = f"victim-{uuid.uuid4().hex[:8]}"
    live.say(victim, "where is my order?")
    live.say(victim, order.order_id)
    assert "shipped on" in texts(live.say(victim, order.email))
    count = "select count(*) from messages m join conversations c on c.id = m.conversation_id where c.sender_id = :s"
    before = live.query(count, s=victim)[0][0]

    for attempt in ("where is my order?", order.order_id, "/human_handoff"):
        resp = httpx.post(f"{live.url}/api/v1/chat", json={"sender_id": victim, "text": attempt}, timeout=60)
        assert resp.status_code == 401, resp.text
        assert "shipped" not in resp.text and order.order_id not in resp.text
    assert live.query(count, s=victim)[0][0] == before
    assert "shipped on" in texts(live.say(victim, "where is my order?"))  # the customer, with the token, goes on

    # The client address the REST channel vouches for (ticket caps) is not stored in Rasa's tracker.
    with sqlite3.connect(live.data_dir / "rasa_tracker.db") as tracker:
        leaked = tracker.execute("select count(*) from events where data like '%client_address%'").fetchone()[0]
    assert leaked == 0


# --- item 4: body caps and 422s that never echo ----------------------------------------------------
def test_a_2_mb_body_is_refused_with_413_before_it_is_buffered(gateway: TestClient) -> None:
    before = message_count(gateway)
    big = b'{"sender_id": "big-1", "text": "' + b"A" * (2 * 1024 * 1024) + b'"}'
    declared = gateway.post("/api/v1/chat", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "65536" in declared.json()["detail"]
    assert len(declared.content) < 500

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"sender_id": "big-2", "text": "'
        for _ in range(64):
            yield b"A" * 32768
        yield b'"}'
    streamed = gateway.post("/api/v1/chat", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and len(streamed.content) < 500
    # Every other route has the same cap: the widget's fallback and the channel webhooks too.
    assert gateway.post("/api/v1/widget/chat", content=b"A" * 100_000).status_code == 413
    assert gateway.post("/webhooks/telegram", content=b"A" * 100_000).status_code == 413
    assert message_count(gateway) == before


def test_upload_routes_have_their_own_larger_cap(gateway: TestClient) -> None:
    files = {"files": ("a.md", b"# A\n" + b"word " * 30_000, "text/markdown")}  # ~150 KB: over the JSON cap
    assert gateway.post("/api/v1/admin/kb/articles", files=files).status_code != 413  # refused for other reasons
    huge = {"files": ("a.md", b"word " * 80_000, "text/markdown")}  # ~400 KB: over MAX_UPLOAD_BYTES
    assert gateway.post("/api/v1/admin/kb/articles", files=huge).status_code == 413
    assert gateway.put("/api/v1/admin/kb/articles/a", files=huge).status_code == 413


def test_validation_errors_never_echo_the_input(gateway: TestClient) -> None:
    marker = "SECRET-" + uuid.uuid4().hex
    body = {"sender_id": "echo-1", "text": marker * 200, "language": marker, "extra_" + marker * 10: marker}
    resp = gateway.post("/api/v1/chat", json=body)
    assert resp.status_code == 422
    assert marker not in resp.text  # neither the text, nor the bad value, nor the whole field name
    errors = resp.json()["detail"]
    assert {tuple(e) for e in errors} == {("loc", "msg", "type")}
    assert {e["loc"][1] for e in errors} >= {"text", "language"}
    assert len(resp.content) < 1000


# --- item 8 (widget): tokens never in a URL ----------------------------------------------------------
def test_the_widget_never_puts_its_token_or_signature_in_a_url() -> None:
    js = WIDGET_JS.read_text()
    assert not re.search(r"[?&](?:token|user_sig|user_id|sig)=", js)
    assert re.search(r'WS_URL = .*"/api/v1/ws";', js)  # the socket URL is fixed: identity goes in the hello frame
    assert "body: JSON.stringify(Object.assign(body, identity()))" in js  # REST fallback: in the body
