"""Outbound adapters against real local peers: an aiosmtpd SMTP server and an HTTP receiver that
verifies the timestamped HMAC signature; and the outbox with the peer down, then up (nothing lost, sent once)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bot.actions.handoff import ActionHandoffRequest
from handoff.adapters.email import EmailAdapter
from handoff.adapters.outbox import OutboxWorker
from handoff.adapters.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookAdapter, verify
from handoff.models import OutboxItem
from scenarios.system import free_port
from tests.test_handoff_service import World, make_world, runs, says

SECRET = b"webhook-secret"


class Receiver:
    """A helpdesk's webhook endpoint: accepts only correctly signed bodies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.rejected = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                if not verify(SECRET, self.headers.get(TIMESTAMP_HEADER), body, self.headers.get(SIGNATURE_HEADER)):
                    outer.rejected += 1
                    self.send_response(401)
                else:
                    outer.received.append((self.headers[DELIVERY_HEADER], json.loads(body)))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def webhook_port() -> int:
    return free_port()


@pytest.fixture
def world(tmp_path: Path, smtp: tuple[Inbox, int], webhook_port: int) -> Iterator[World]:
    _, smtp_port = smtp
    yield from make_world(
        tmp_path, handoff_webhook_url=f"http://127.0.0.1:{webhook_port}/tickets", handoff_webhook_secret=SECRET.decode(),
        handoff_smtp_host="127.0.0.1", handoff_smtp_port=smtp_port, handoff_smtp_tls="none",
        handoff_email_to="helpdesk@example.com", handoff_email_from="bot@example.com",
    )


def worker(world: World, webhook_port: int, smtp_port: int) -> OutboxWorker:
    return OutboxWorker(world.handoff._sessions, {
        "webhook": WebhookAdapter(f"http://127.0.0.1:{webhook_port}/tickets", SECRET, timeout_s=5),
        "email": EmailAdapter("127.0.0.1", smtp_port, "bot@example.com", "helpdesk@example.com", tls="none"),
    }, backoff_s=5, clock=world.handoff.clock)


async def file_ticket(world: World) -> int:
    world.rasa.script = [says("Hi!", "request_refund"), runs(ActionHandoffRequest(), "human_handoff")]
    await world.say("s-out", "refund for my jacket")
    await world.say("s-out", "a person please")
    return world.ticket("s-out").id


async def test_email_carries_the_ticket_and_transcript(world: World, smtp: tuple[Inbox, int], webhook_port: int) -> None:
    inbox, smtp_port = smtp
    ticket_id = await file_ticket(world)
    out = worker(world, webhook_port, smtp_port)
    await out.run_once()  # the webhook peer is down; the email goes
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    body = mail.content.decode()
    assert mail.rcpt_tos == ["helpdesk@example.com"]
    assert f"[support ticket #{ticket_id}] explicit request" in body
    assert "customer (rest, en): refund for my jacket" in body and "a person please" in body
    assert "bot (rest, en): Hi!" in body and "queue billing-en" in body


async def test_webhook_peer_down_then_up_delivers_once_signed(world: World, smtp: tuple[Inbox, int],
                                                               webhook_port: int) -> None:
    _, smtp_port = smtp
    ticket_id = await file_ticket(world)
    out = worker(world, webhook_port, smtp_port)
    await out.run_once()
    with world.handoff._sessions() as db:
        item = db.scalar(select(OutboxItem).where(OutboxItem.adapter == "webhook"))
        assert (item.status, item.attempts) == ("pending", 1) and "ConnectError" in item.last_error
    with Receiver(webhook_port) as receiver:
        assert await out.run_once() == 0  # not due yet: backoff
        world.now[0] += timedelta(seconds=6)
        assert await out.run_once() == 1
        assert await out.run_once() == 0  # delivered once, never again
        world.now[0] += timedelta(hours=2)
        assert await out.run_once() == 0
    assert receiver.rejected == 0 and len(receiver.received) == 1
    delivery, payload = receiver.received[0]
    assert payload["event"] == "ticket.created" and payload["ticket"]["id"] == ticket_id
    assert [m["text"] for m in payload["ticket"]["transcript"]][:3] == ["refund for my jacket", "Hi!", "a person please"]
    assert payload["ticket"]["context"]["turns"][0]["intent"] == "request_refund"
    with world.handoff._sessions() as db:
        item = db.get_one(OutboxItem, int(delivery))
        assert (item.status, item.attempts) == ("delivered", 2)


def test_a_wrong_signature_is_refused_by_the_receiver(webhook_port: int) -> None:
    import httpx

    with Receiver(webhook_port) as receiver:
        resp = httpx.post(f"http://127.0.0.1:{webhook_port}/tickets", content=b"{}",
                          headers={SIGNATURE_HEADER: "sha256=" + "0" * 64, TIMESTAMP_HEADER: str(int(time.time())),
                                   DELIVERY_HEADER: "1"})
    assert resp.status_code == 401 and receiver.rejected == 1
