"""Issue 12, items 1, 3 and 10: the action server and Rasa's channel answer only each other, no
secret is on a command line, and a message is answered (and its actions run) once, whatever
fails in between.

Each test performs the attack and passes only when it is refused: a forged tracker sent to the
action server, a customer impersonated on Rasa's channel, a token read from ``ps``, a turn run
twice after its answer was lost, a poison message that blocks the conversation forever.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from bot.actions import runtime as action_runtime
from bot.actions.runs import ActionRun
from bot.actions.webhook import router as actions_router
from conversations.models import Message
from conversations.rasa_client import RasaClient
from conversations.service import GAVE_UP, ConversationService, InboundMessage, MessagePending
from scenarios.system import rasa_pids
from settings import Settings
from storage.db import make_engine, make_session_factory, upgrade
from storage.secrets import derive, load_master
from store.models import Order
from store.seed import DEMO, seed
from store.service import SqlOrdersService
from tests.conftest import LiveSystem, texts

SHIPPED = DEMO["shipped"]  # 3348917502 / cminh730
PROCESSING = DEMO["processing"]  # 5120648393 / jwu477: cancellable
ACTION_TOKEN = "action-token-for-tests"


# --- the action server ----------------------------------------------------------------------------
@pytest.fixture
def action_app(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    """The real action server (rasa-sdk executor, our actions) over a real seeded SQLite store."""
    settings = Settings(data_dir=tmp_path, rasa_url="http://127.0.0.1:9")
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_session_factory(engine)
    seed(sessions, auto_refund_limit=settings.auto_refund_limit)
    action_runtime.configure(SqlOrdersService(sessions, auto_refund_limit=settings.auto_refund_limit), settings,
                             sessions=sessions)
    app = FastAPI()
    app.include_router(actions_router)
    app.state.action_server_token = ACTION_TOKEN
    try:
        yield TestClient(app), sessions
    finally:
        engine.dispose()


def action_call(action: str, slots: dict[str, Any], message_id: str = "m-1", sender: str = "victim") -> dict[str, Any]:
    """rasa-sdk's wire format, as Rasa sends it (tracker state + domain)."""
    return {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": sender, "slots": {"language": "en", **slots},
            "latest_message": {"text": "yes", "intent": {"name": "affirm", "confidence": 1.0}, "entities": [],
                               "message_id": message_id},
            "events": [{"event": "user", "text": "yes", "parse_data": {"intent": {"name": "affirm"}},
                        "message_id": message_id}],
            "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen",
            "latest_event_time": 0,
        },
    }


FORGED = action_call("action_order_status", {"order_id": SHIPPED.order_id, "verified": True})


def test_action_server_refuses_a_caller_without_the_token(action_app: tuple[TestClient, Any]) -> None:
    client, _ = action_app
    for headers in ({}, {"X-Action-Token": "guess"}, {"X-Action-Token": ACTION_TOKEN[:-1]}):
        refused = client.post("/actions/webhook", json=FORGED, headers=headers)
        assert refused.status_code == 401, refused.text
        assert SHIPPED.order_id not in refused.text and "tracking" not in refused.text.lower()
    assert client.get("/actions").status_code == 401


def test_action_server_refuses_every_action_unconfigured(action_app: tuple[TestClient, Any]) -> None:
    """No token configured means no caller is trusted, not every caller."""
    client, _ = action_app
    client.app.state.action_server_token = ""  # type: ignore[attr-defined]
    assert client.post("/actions/webhook", json=FORGED, headers={"X-Action-Token": ""}).status_code == 401


def test_action_server_runs_for_our_rasa(action_app: tuple[TestClient, Any]) -> None:
    client, _ = action_app
    ok = client.post("/actions/webhook", json=action_call("action_listen_probe", {}), headers={"X-Action-Token": ACTION_TOKEN})
    assert ok.status_code == 404 and "action_listen_probe" in ok.text  # authenticated: the executor answered


def test_an_action_runs_once_per_customer_message(action_app: tuple[TestClient, Any]) -> None:
    """Rasa crashed after the cancellation ran, before it saved the tracker: the retried message asks
    for the same action again, and gets the first result instead of a second run."""
    client, sessions = action_app
    slots = {"order_id": PROCESSING.order_id, "verified": True, "verified_username": PROCESSING.username,
             "customer_identifier": PROCESSING.email, "confirm_write": True}
    headers = {"X-Action-Token": ACTION_TOKEN}
    call = action_call("action_cancel_order", slots, message_id="confirm-1", sender="joyce")
    first = client.post("/actions/webhook", json=call, headers=headers)
    assert first.status_code == 200, first.text
    with sessions() as db:
        assert db.scalar(select(Order.status).where(Order.order_id == PROCESSING.order_id)) == "cancelled"
    again = client.post("/actions/webhook", json=call, headers=headers)
    assert again.json() == first.json()
    with sessions() as db:
        assert len(list(db.scalars(select(ActionRun.key).where(ActionRun.sender_id == "joyce")))) == 1
    from bot.actions.webhook import _runs

    assert _runs() is _runs()  # one store per database: its write counter paces the pruning, not every call
    # A new message is a new run: the order is already cancelled, so the answer differs.
    other = client.post("/actions/webhook", json=action_call("action_cancel_order", slots, message_id="confirm-2",
                                                                 sender="joyce"), headers=headers)
    assert other.status_code == 200 and other.json() != first.json()


# --- poison messages -------------------------------------------------------------------------------
class _FailingRasa(BaseHTTPRequestHandler):
    """Rasa's gateway channel on the wire, failing on one text (a message that crashes the pipeline)."""

    calls: list[str] = []
    poison = "💥"
    status = 500

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).calls.append(body["message"])
        if body["message"] == self.poison:
            self.send_response(self.status)
            self.end_headers()
            self.wfile.write(b'{"error": "Internal Server Error"}')
            return
        out = json.dumps({"messages": [{"recipient_id": body["sender"], "text": f"echo {body['message']}"}],
                          "turn": {"intent": {"name": "greet", "confidence": 0.9}}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def failing_rasa(tmp_path: Path) -> Iterator[tuple[ConversationService, type[_FailingRasa], Any]]:
    _FailingRasa.calls, _FailingRasa.status = [], 500
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingRasa)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rasa = RasaClient(f"http://127.0.0.1:{server.server_address[1]}", timeout_s=5)
    try:
        yield ConversationService(sessions, rasa, max_attempts=3), _FailingRasa, sessions
    finally:
        asyncio.run(rasa.close())
        server.shutdown()
        engine.dispose()


def test_a_poison_message_is_given_up_and_later_messages_go_through(failing_rasa: Any) -> None:
    service, rasa, sessions = failing_rasa

    async def scenario() -> None:
        poison = InboundMessage("p-1", "rest", text=rasa.poison, message_id="bad")
        for _ in range(2):
            with pytest.raises(MessagePending):
                await service.handle(poison)
        gave_up = await service.handle(poison)  # the third failure: answered, a person offered
        assert gave_up.messages and gave_up.messages[0].buttons[0]["payload"] == "/human_handoff"
        assert rasa.calls.count(rasa.poison) == 3
        again = await service.handle(poison)  # a client retry gets the stored answer, Rasa is not asked
        assert again.duplicate and rasa.calls.count(rasa.poison) == 3
        later = await service.handle(InboundMessage("p-1", "rest", text="hello", message_id="next"))
        assert texts_of(later) == "echo hello"

    asyncio.run(scenario())
    with sessions() as db:
        bad = db.scalar(select(Message).where(Message.client_message_id == "bad"))
        assert (bad.status, bad.attempts) == ("answered", 3)
    assert GAVE_UP == "gateway_gave_up"


def test_rasa_restarting_is_not_counted_against_the_message(failing_rasa: Any) -> None:
    """503 is Rasa loading a model: the message waits however long that takes, nothing is given up."""
    service, rasa, sessions = failing_rasa
    rasa.status = 503

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(MessagePending):
                await service.handle(InboundMessage("p-2", "rest", text=rasa.poison, message_id="wait"))

    asyncio.run(scenario())
    with sessions() as db:
        msg = db.scalar(select(Message).where(Message.client_message_id == "wait"))
        assert (msg.status, msg.attempts) == ("pending", 0)


def texts_of(result: Any) -> str:
    return "\n".join(m.text for m in result.messages)


# --- the live system: Rasa's channel, the command line, a lost answer ---------------------------------
def test_rasa_channel_refuses_callers_without_the_gateway_token(live: LiveSystem) -> None:
    rasa = f"http://127.0.0.1:{live.rasa_port}"
    impersonation = {"sender": "attacker-1", "message": f"where is my order {SHIPPED.order_id}",
                     "metadata": {"language": "en", "verified_username": SHIPPED.username}}
    for headers in ({}, {"Authorization": "Bearer guess"}):
        refused = httpx.post(f"{rasa}/webhooks/gateway/webhook", json=impersonation, headers=headers, timeout=30)
        assert refused.status_code == 401
    assert httpx.post(f"{rasa}/webhooks/rest/webhook", json={"sender": "a", "message": "hi"}, timeout=30).status_code == 404
    tracker = httpx.get(f"{rasa}/conversations/attacker-1/tracker", params={"token": "test-token"}, timeout=30).json()
    assert not [e for e in tracker.get("events", []) if e.get("event") == "user"]  # nothing reached the tracker


def test_action_server_on_the_public_port_refuses_a_forged_tracker(live: LiveSystem) -> None:
    refused = httpx.post(f"{live.url}/actions/webhook", json=FORGED, timeout=30)
    assert refused.status_code == 401
    assert SHIPPED.order_id not in refused.text


def test_no_secret_on_the_rasa_command_line(live: LiveSystem) -> None:
    pids = rasa_pids(live.rasa_port)
    assert pids, "the embedded Rasa was not found"
    secrets = ["test-token", live.channel_token, derive(load_master("", live.data_dir), "action-server").hex()]
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "run" in cmdline
        for secret in secrets:
            assert secret not in cmdline


def test_answer_lost_after_rasa_ran_the_turn_is_not_run_again(live: LiveSystem) -> None:
    """Rasa answered, the gateway never got it (timeout, crash, cut connection), the customer retries:
    the retry gets the same answer and the tracker holds the message once."""
    s = "lost-answer-1"
    live.say(s, "where is my order?")
    live.say(s, SHIPPED.order_id)
    rasa = f"http://127.0.0.1:{live.rasa_port}"
    lost = httpx.post(f"{rasa}/webhooks/gateway/webhook", headers={"Authorization": f"Bearer {live.channel_token}"},
                      json={"sender": s, "message": SHIPPED.email, "message_id": "final-1",
                            "metadata": {"language": "en"}}, timeout=60)
    assert lost.status_code == 200 and lost.json()["replayed"] is False
    retried = live.say(s, SHIPPED.email, message_id="final-1")
    answered = "\n".join(m.get("text", "") for m in lost.json()["messages"])
    assert "shipped" in answered
    assert texts(retried).startswith(answered)  # Rasa's stored answer (the gateway may add its own notices)
    tracker = httpx.get(f"{rasa}/conversations/{s}/tracker", params={"token": "test-token"}, timeout=30).json()
    users = [e for e in tracker["events"] if e.get("event") == "user" and e.get("message_id") == "final-1"]
    assert len(users) == 1


def test_the_rasa_api_token_reaches_rasa_in_one_word() -> None:
    """A token_urlsafe token can start with "-": as a separate word argparse took it for a flag."""
    import argparse

    from bot.rasa_serve import with_token

    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("-t", "--auth-token")
    assert parser.parse_args(with_token(["run"], "-starts-with-a-dash")).auth_token == "-starts-with-a-dash"
    assert with_token(["run", "--auth-token=x"], "y") == ["run", "--auth-token=x"]
    assert with_token(["run"], "") == ["run"]
