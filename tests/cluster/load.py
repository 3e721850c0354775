"""Concurrent REST customers against the balancer, and what the database must say afterwards.

A customer sends its messages one after the other, each with its own ``message_id``; when the
connection fails or the answer is 502/503/504 (a gateway or a Rasa server just died, or the message
is stored and pending) it sends the same message again, with the same id, until it is answered (200:
acknowledged). The checks then read the conversation store (and Rasa's tracker) directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.cluster.harness import RunningCluster

RETRYABLE = (502, 503, 504)
MESSAGE_DEADLINE_S = 300.0  # one message: a Rasa server reloading its model takes about a minute


@dataclass
class Sent:
    message_id: str
    text: str
    replies: int  # messages in the 200 answer
    attempts: int
    seconds: float = 0.0  # the answered attempt's round trip
    answered_at: float = 0.0  # time.monotonic() when it was answered


@dataclass
class Customer:
    sender: str
    texts: Sequence[str]
    token: str | None = None
    sent: list[Sent] = field(default_factory=list)
    retries: int = 0  # attempts beyond the first, over all messages
    failures: dict[str, int] = field(default_factory=dict)  # what went wrong on the way: status or error → count

    def message_id(self, n: int) -> str:
        return f"{self.sender}-m{n:03d}"


async def send(client: httpx.AsyncClient, url: str, customer: Customer, n: int, text: str) -> Sent:
    """Message ``n`` of ``customer`` until it is answered; AssertionError on any other refusal."""
    mid = customer.message_id(n)
    deadline = time.monotonic() + MESSAGE_DEADLINE_S
    attempts = 0
    while True:
        attempts += 1
        headers = {"X-Conversation-Token": customer.token} if customer.token else {}
        why = ""
        sent_at = time.monotonic()
        try:
            resp = await client.post(f"{url}/api/v1/chat", json={"sender_id": customer.sender, "text": text,
                                                                 "message_id": mid}, headers=headers, timeout=120)
        except httpx.TransportError as err:
            why = type(err).__name__
        else:
            body: dict[str, Any] = {}
            if resp.headers.get("content-type", "").startswith("application/json"):
                body = resp.json()
            customer.token = customer.token or body.get("conversation_token")
            if resp.status_code == 200:
                customer.retries += attempts - 1
                now = time.monotonic()
                return Sent(mid, text, len(body["messages"]), attempts, now - sent_at, now)
            if resp.status_code not in RETRYABLE:
                raise AssertionError(f"{customer.sender} {mid}: HTTP {resp.status_code} {resp.text[:300]}")
            why = str(resp.status_code)
        customer.failures[why] = customer.failures.get(why, 0) + 1
        if time.monotonic() > deadline:
            raise AssertionError(f"{customer.sender} {mid} not answered after {attempts} attempts ({why})")
        await asyncio.sleep(min(0.5 * attempts, 3.0))


async def converse(client: httpx.AsyncClient, url: str, customer: Customer, start: int, stop: int) -> None:
    for n in range(start, stop):
        customer.sent.append(await send(client, url, customer, n, customer.texts[n]))


async def converse_until(client: httpx.AsyncClient, url: str, customer: Customer, stop: asyncio.Event,
                         pause_s: float = 0.3) -> None:
    """Its texts over and over (each message with a new id) until ``stop`` is set."""
    n = len(customer.sent)
    while not stop.is_set():
        customer.sent.append(await send(client, url, customer, n, customer.texts[n % len(customer.texts)]))
        n += 1
        await asyncio.sleep(pause_s)


# --- what the database must say ------------------------------------------------------------------
@dataclass
class Findings:
    conversations: int = 0
    acknowledged: int = 0
    stored_in: int = 0
    stored_replies: int = 0
    rasa_user_events: int = 0  # the messages Rasa's shared tracker holds for these conversations
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    reply_mismatch: list[str] = field(default_factory=list)
    rasa_twice: list[str] = field(default_factory=list)
    outbox_twice: list[str] = field(default_factory=list)
    outbox_undelivered: list[str] = field(default_factory=list)

    @property
    def problems(self) -> dict[str, list[str]]:
        names = ("lost", "duplicated", "out_of_order", "reply_mismatch", "rasa_twice", "outbox_twice",
                 "outbox_undelivered")
        return {n: getattr(self, n) for n in names if getattr(self, n)}


def check(cluster: RunningCluster, customers: Sequence[Customer]) -> Findings:
    found = Findings(conversations=len(customers))
    for c in customers:
        found.acknowledged += len(c.sent)
        rows = cluster.query(
            "select m.id, m.client_message_id, m.status, "
            "(select count(*) from messages r where r.reply_to_id = m.id and r.direction = 'out') as replies "
            "from messages m join conversations v on v.id = m.conversation_id "
            "where v.sender_id = :s and m.direction = 'in' order by m.id", s=c.sender)
        found.stored_in += len(rows)
        found.stored_replies += sum(r.replies for r in rows)
        stored = [r.client_message_id for r in rows]
        sent = [s.message_id for s in c.sent]
        found.lost += [f"{c.sender}/{m}" for m in sent if m not in stored]
        found.duplicated += [f"{c.sender}/{m}" for m in set(stored) if stored.count(m) > 1]
        if [m for m in stored if m in sent] != sent:
            found.out_of_order.append(f"{c.sender}: stored {stored}, sent {sent}")
        by_id = {r.client_message_id: r for r in rows}
        for s in c.sent:  # the replies stored for a message are the ones its customer got, once
            row = by_id.get(s.message_id)
            if row is not None and (row.status != "answered" or row.replies != s.replies):
                found.reply_mismatch.append(f"{c.sender}/{s.message_id}: {row.status}, {row.replies} stored, "
                                            f"{s.replies} received")
    schema = cluster.status["rasa_schema"]
    senders = [c.sender for c in customers]
    twice = cluster.query(  # Rasa ran each message (its user event) at most once, whichever server got it
        f'select sender_id, data::json->>\'message_id\' as mid, count(*) as n from "{schema}".events '
        "where type_name = 'user' and sender_id = any(:s) group by 1, 2 having count(*) > 1", s=senders)
    found.rasa_twice += [f"{r.sender_id}/{r.mid} x{r.n}" for r in twice]
    found.rasa_user_events = cluster.query(f'select count(*) from "{schema}".events where type_name = \'user\' '
                                           "and sender_id = any(:s)", s=senders)[0][0]
    items = cluster.query("select id, status from handoff_outbox where adapter = 'webhook' order by id")
    seen = cluster.helpdesk.deliveries
    found.outbox_twice += [f"item {i} x{n}" for i, n in seen.items() if n > 1]
    found.outbox_undelivered += [f"item {r.id}: {r.status}" for r in items if r.status != "delivered"]
    return found
