"""Issue 12, item 5: floods. Per-sender limits reset with a new sender id, so customer messages are
also limited per client address and globally (REST chat, the widget's socket and REST fallback),
webhook calls per address, and the tickets keyword rules and requests for a person open are capped
per sender and per address per day.

The real app (storage, conversation service, handoff, routes, guards) with Rasa unreachable, as in
tests/test_widget.py. Client addresses come from ``X-Forwarded-For`` through uvicorn's own proxy
middleware (what a deployment behind a reverse proxy runs), so each test speaks from addresses of
its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from conversations.models import Conversation
from handoff import texts as handoff_texts
from handoff.models import Ticket
from server import create_app
from settings import Settings
from tests.conftest import free_port


def gateway(data_dir: Path, **limits: Any) -> Iterator[TestClient]:
    (data_dir / "help").mkdir()
    settings = Settings(data_dir=data_dir, kb_source_dir=data_dir / "help", rasa_url=f"http://127.0.0.1:{free_port()}",
                        retry_after_s=7, **limits)
    app = create_app(settings)
    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts="*")) as client:  # type: ignore[arg-type]
        client.app_under_test = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from gateway(tmp_path_factory.mktemp("limits"), rate_limit_per_ip="4/minute", rate_limit_webhook="3/minute",
                       tickets_per_address_per_day=2, tickets_per_sender_per_day=1)


def app_of(client: TestClient) -> FastAPI:
    return client.app_under_test  # type: ignore[attr-defined,no-any-return]


def from_(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def new_sender() -> str:
    return f"flood-{uuid.uuid4().hex[:10]}"


def chat(client: TestClient, address: str, sender: str, text: str, token: str | None = None) -> httpx.Response:
    headers = {**from_(address), **({"X-Conversation-Token": token} if token else {})}
    return client.post("/api/v1/chat", json={"sender_id": sender, "text": text}, headers=headers)


def stored_senders(client: TestClient, senders: list[str]) -> list[str]:
    service = app_of(client).state.conversations
    return [s for s in senders if service.conversation_state(s) is not None]


# --- per address and global ------------------------------------------------------------------------
def test_rest_chat_is_limited_per_address_whatever_the_sender_id(limited: TestClient) -> None:
    senders = [new_sender() for _ in range(6)]
    answers = [chat(limited, "10.0.1.1", s, "hello") for s in senders[:5]]
    assert [r.status_code for r in answers] == [503, 503, 503, 503, 429]  # Rasa is down: stored, 503
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) > 0 and "Too many requests" in refused.json()["detail"]
    assert refused.json()["retry_after"] == int(refused.headers["Retry-After"])
    assert stored_senders(limited, senders[:5]) == senders[:4]  # nothing of the refused one is stored
    assert chat(limited, "10.0.1.2", senders[5], "hello").status_code == 503  # another address is not affected


def test_rest_chat_has_a_global_limit_across_addresses(tmp_path: Path) -> None:
    for client in gateway(tmp_path, rate_limit_global="3/minute"):
        codes = [chat(client, f"10.0.2.{n}", new_sender(), "hello").status_code for n in range(1, 6)]
        assert codes == [503, 503, 503, 429, 429]


def test_webhooks_are_limited_per_address(limited: TestClient) -> None:
    update_ = {"update_id": 1,
               "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "hi"}}
    codes = [limited.post("/webhooks/telegram", json=update_, headers=from_("10.0.3.1")).status_code for _ in range(3)]
    assert 429 not in codes  # (the channel is not configured here: 404)
    refused = limited.post("/webhooks/wechat", content=b"<xml/>", headers=from_("10.0.3.1"))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert limited.post("/webhooks/telegram", json=update_, headers=from_("10.0.3.2")).status_code != 429


def test_widget_socket_messages_are_limited_per_address(limited: TestClient) -> None:
    frames = []
    for n in range(5):  # a new browser token (a new sender) for every message
        with limited.websocket_connect("/api/v1/ws", headers=from_("10.0.4.1")) as ws:
            ws.send_text(json.dumps({"type": "hello", "token": f"tok-{uuid.uuid4().hex}", "locale": "ru"}))
            assert ws.receive_json()["type"] == "ready"
            ws.send_text(json.dumps({"type": "message", "id": f"w-{n}", "text": "hi"}))
            frames.append(ws.receive_json())
    assert [f["type"] for f in frames] == ["ack", "ack", "ack", "ack", "error"]
    refused = frames[-1]
    assert refused["rate_limited"] is True and refused["retry_after"] > 0 and "Подождите" in refused["detail"]


def test_widget_rest_fallback_is_limited_per_address(limited: TestClient) -> None:
    codes = []
    for n in range(5):
        body = {"token": f"tok-{uuid.uuid4().hex}", "id": f"r-{n}", "text": "hi", "locale": "zh-Hans"}
        resp = limited.post("/api/v1/widget/chat", json=body, headers=from_("10.0.5.1"))
        codes.append(resp.status_code)
    assert codes == [503, 503, 503, 503, 429]
    assert int(resp.headers["Retry-After"]) > 0 and "请稍等" in resp.json()["detail"]


# --- tickets ---------------------------------------------------------------------------------------
def tickets_of(client: TestClient, senders: list[str]) -> list[str]:
    with app_of(client).state.conversations._sessions() as db:  # noqa: SLF001 - the real store, read only
        return [t.sender_id for t in db.query(Ticket).filter(Ticket.sender_id.in_(senders)).order_by(Ticket.id)]


def test_keyword_tickets_are_capped_per_address(limited: TestClient) -> None:
    """"lawyer" opens an urgent ticket before the bot is asked: one per invented sender id, before."""
    senders = [new_sender() for _ in range(3)]
    answers = [chat(limited, "10.0.6.1", s, "I will call my lawyer about this").json() for s in senders]
    assert [a["state"] for a in answers] == ["queued", "queued", "bot"]
    assert tickets_of(limited, senders) == senders[:2]
    assert handoff_texts.text("ticket_cap", "en") in [m["text"] for m in answers[2]["messages"]]
    assert chat(limited, "10.0.6.2", new_sender(), "I want a chargeback").json()["state"] == "queued"


def test_tickets_are_capped_per_sender(limited: TestClient) -> None:
    sender = new_sender()
    first = chat(limited, "10.0.7.1", sender, "I will file a chargeback with my bank")
    token = first.json()["conversation_token"]
    assert first.json()["state"] == "queued"
    with app_of(limited).state.conversations._sessions.begin() as db:  # noqa: SLF001 - an agent resolved it
        db.execute(update(Ticket).where(Ticket.sender_id == sender).values(status="resolved"))
        db.execute(update(Conversation).where(Conversation.sender_id == sender).values(state="bot"))
    again = chat(limited, "10.0.7.2", sender, "chargeback, now", token).json()  # even from another address
    assert again["state"] == "bot" and tickets_of(limited, [sender]) == [sender]
    assert any("already with our team" in m["text"] for m in again["messages"])


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(tmp_path: Path) -> None:
    """`python server.py` as `make run` starts it: uvicorn trusts X-Forwarded-For only from the proxies
    named in FORWARDED_ALLOW_IPS (none by default), so rotating the header does not rotate the limit."""
    from tests.conftest import gateway_process

    (tmp_path / "help").mkdir()
    with gateway_process(tmp_path, ready="/healthz", KB_SOURCE_DIR=str(tmp_path / "help"),
                         RASA_URL=f"http://127.0.0.1:{free_port()}", RATE_LIMIT_PER_IP="2/minute",
                         FORWARDED_ALLOW_IPS="") as url:
        codes = [
            httpx.post(f"{url}/api/v1/chat", json={"sender_id": new_sender(), "text": "hi"},
                       headers=from_(f"198.51.100.{i}"), timeout=30).status_code
            for i in range(3)
        ]
    assert codes[:2] == [503, 503] and codes[2] == 429  # 503: no Rasa here; the third is over 127.0.0.1's limit
