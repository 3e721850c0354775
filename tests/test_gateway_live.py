"""The REST contract's edges on the live system: bad input, idempotency, health, Rasa restarts."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from store.seed import DEMO
from tests.conftest import LiveSystem, rasa_pids, texts

pytestmark = pytest.mark.rasa


def message_count(live: LiveSystem) -> int:
    return live.query("select count(*) from messages")[0][0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"sender_id": "bad-1"}, "text"),
        ({"sender_id": "bad-1", "text": ""}, "text"),
        ({"sender_id": "bad-1", "text": "   "}, "text"),
        ({"sender_id": "bad-1", "text": "x" * 4001}, "4000"),
        ({"sender_id": "bad id with spaces", "text": "hi"}, "sender_id"),
        ({"sender_id": "x" * 129, "text": "hi"}, "sender_id"),
        ({"sender_id": "bad-1", "text": "hi", "language": "fr"}, "language"),
        ({"sender_id": "bad-1", "text": "hi", "unexpected": 1}, "unexpected"),
    ],
)
def test_bad_input_is_rejected_and_nothing_stored(live: LiveSystem, body: dict, fragment: str) -> None:
    before = message_count(live)
    resp = httpx.post(f"{live.url}/api/v1/chat", json=body, timeout=30)
    assert resp.status_code == 422
    assert fragment in resp.text
    assert message_count(live) == before


def test_malformed_json_is_rejected(live: LiveSystem) -> None:
    before = message_count(live)
    resp = httpx.post(
        f"{live.url}/api/v1/chat", content=b'{"sender_id": "x", "text": ', headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert "JSON" in resp.text or "json" in resp.text
    assert message_count(live) == before


def test_health_and_readiness(live: LiveSystem) -> None:
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/readyz")
    assert ready.status_code == 200 and ready.json()["model"]


def test_same_message_id_is_answered_once(live: LiveSystem) -> None:
    s = f"idem-{uuid.uuid4().hex[:8]}"
    first = live.say(s, "hello", message_id="m-1")
    again = live.say(s, "hello", message_id="m-1")
    assert again["messages"] == first["messages"]
    rows = live.query(
        "select count(*) from messages m join conversations c on c.id = m.conversation_id "
        "where c.sender_id = :s and m.direction = 'in'", s=s
    )
    assert rows[0][0] == 1


def test_rasa_killed_mid_conversation_and_restarted(live: LiveSystem) -> None:
    """The message sent while Rasa is down is kept, answered once after the restart, and the form goes on."""
    order = DEMO["shipped"]
    s = f"restart-{uuid.uuid4().hex[:8]}"
    asked = live.say(s, "where is my order?")
    assert "order number" in texts(asked)

    pids = rasa_pids(live.rasa_port)
    assert pids, "no Rasa child process found"
    for pid in pids:
        os.killpg(os.getpgid(pid), signal.SIGKILL)

    down = live.chat(s, order.order_id, message_id="after-kill")
    assert down.status_code == 503
    assert int(down.headers["Retry-After"]) > 0
    assert down.json()["message_id"] == "after-kill"
    assert httpx.get(f"{live.url}/readyz").status_code == 503
    stored = live.query(
        "select m.status, m.text from messages m join conversations c on c.id = m.conversation_id "
        "where c.sender_id = :s and m.client_message_id = 'after-kill'", s=s
    )
    assert stored == [("pending", order.order_id)]

    live.wait_ready(timeout_s=240)
    assert set(rasa_pids(live.rasa_port)).isdisjoint(pids)  # a new process, started by the supervisor

    retried = live.say(s, order.order_id, message_id="after-kill")
    assert "email address or username" in texts(retried)  # dialogue state survived the restart
    twice = live.say(s, order.order_id, message_id="after-kill")
    assert twice["messages"] == retried["messages"]
    inbound = live.query(
        "select count(*), min(m.status) from messages m join conversations c on c.id = m.conversation_id "
        "where c.sender_id = :s and m.client_message_id = 'after-kill'", s=s
    )
    assert inbound == [(1, "answered")]
    done = live.say(s, order.email)
    assert "shipped on" in texts(done)


def test_external_rasa_mode_starts_no_rasa(live: LiveSystem, tmp_path: Path) -> None:
    """With RASA_URL set, a second gateway uses the given Rasa and starts none of its own."""
    import subprocess

    from tests.conftest import gateway_process

    def rasa_processes() -> int:
        return len(subprocess.run(["pgrep", "-f", "rasa(_serve)? run"], capture_output=True, text=True).stdout.split())

    before = rasa_processes()
    # External mode: the operator gives this gateway the token the running Rasa's channel accepts.
    with gateway_process(tmp_path, RASA_URL=f"http://127.0.0.1:{live.rasa_port}", RASA_TOKEN="test-token",
                         RASA_CHANNEL_TOKEN=live.channel_token) as url:
        reply = httpx.post(f"{url}/api/v1/chat", json={"sender_id": "ext-1", "text": "hello"}, timeout=60)
        assert reply.status_code == 200 and reply.json()["messages"]
        assert rasa_processes() == before
