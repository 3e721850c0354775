"""Issue 16: what was per gateway process and is now shared by replicas behind a round-robin balancer
(no sticky sessions), each shown with two replicas on the real shared store:

- the handoff's memory between turns (``handoff_turn_memory``: failure streak, frustration, a pending
  "talk to a person?" offer, a ticket opened during the turn) on PostgreSQL: turns of one customer
  alternate between two replicas, and the bot's handoff action runs on the other replica, as when
  Rasa's action call reaches another gateway through the balancer;
- WeChat's replay nonces in Redis (two gateways with ``REDIS_URL``);
- the push-channel relay's per-customer lock (catch-up, turn, delivery) on PostgreSQL;
- live-event subscriber counts asked of Redis without blocking the event loop.

Each replica has its own engine, services and locks, as a gateway process does; only Rasa's server is
scripted (tests/helpers.py). PostgreSQL and Redis are skipped with the reason when absent, and fail
under CI=true.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

import handoff
from bot.actions import runtime as action_runtime
from bot.actions.handoff import ActionHandoffRequest
from channels.events import EventBus
from channels.events_redis import RedisEventBus
from channels.nonces import NonceCache, NonceStoreUnavailable, RedisNonceCache
from conversations.service import ConversationService, InboundMessage, TurnResult
from handoff.events import AGENTS
from handoff.models import OutboxItem, Ticket, TurnMemory
from handoff.service import HandoffService
from storage.coordination import RELAY_LOCKS, PgTurnLocks
from storage.db import make_engine, make_session_factory, upgrade
from store.seed import seed
from store.service import SqlOrdersService
from tests.fakes.gateway import QUICK_RETRIES, ChannelGateway, closed_port_url
from tests.fakes.wechat_api import APP_ID, APP_SECRET, TOKEN, FakeWeChatApi, WeChatPush, image_xml, text_xml
from tests.helpers import ScriptedRasa, make_settings, runs, says
from tests.redis_fixtures import redis_or_skip, unique_prefix, until
from tests.store_fixtures import fixture_postgres_schema_url  # noqa: F401

HANDOFF = "/human_handoff"


@dataclass
class Replica:
    """One gateway process: its engine, conversation service (PostgreSQL turn locks) and handoff service."""

    name: str
    engine: Engine
    conversations: ConversationService
    handoff: HandoffService
    events: EventBus

    async def say(self, sender: str, text: str, address: str | None = None) -> TurnResult:
        metadata = {"client_address": address} if address else {}
        return await self.conversations.handle(InboundMessage(sender_id=sender, channel="rest", text=text, language="en",
                                                              metadata=metadata))


@asynccontextmanager
async def two_replicas(url: str, tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[Replica, Replica, ScriptedRasa]]:
    # A helpdesk webhook, so that a new ticket's outside copy is queued (the worker is not started).
    config = make_settings(tmp_path, database_url=url, handoff_webhook_url="http://127.0.0.1:9/tickets", **settings)
    upgrade(url)
    rasa = ScriptedRasa()  # one Rasa behind both replicas
    replicas = []
    for n, name in enumerate("ab"):
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        if n == 0:
            seed(sessions, auto_refund_limit=config.auto_refund_limit)
        orders = SqlOrdersService(sessions, auto_refund_limit=config.auto_refund_limit)
        conversations = ConversationService(sessions, rasa, turn_locks=PgTurnLocks(url))  # type: ignore[arg-type]
        events = EventBus()
        service, _outbox = handoff.build(sessions, config, orders=orders, events=events, seed_accounts=n == 0)
        conversations.hooks = service
        replicas.append(Replica(name, engine, conversations, service, events))
    a, b = replicas
    # Rasa's action calls reach replica b through the balancer, whichever replica runs the turn.
    action_runtime.configure(b.handoff.orders, config, sessions=b.handoff.sessions, handoff=b.handoff)
    try:
        yield a, b, rasa
    finally:
        for r in replicas:
            await r.conversations.turn_locks.aclose()
            r.engine.dispose()


@pytest.fixture(name="replicas")
async def fixture_replicas(postgres_schema_url: str, tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica, ScriptedRasa]]:
    async with two_replicas(postgres_schema_url, tmp_path) as replicas:
        yield replicas


def offered(result: TurnResult) -> bool:
    """The gateway's own offer of a person ends the reply."""
    last = result.messages[-1]
    return last.type == "handoff" and [b["payload"] for b in last.buttons] == [HANDOFF, "/deny"]


def fallback() -> Any:
    return says("Sorry, I didn't get that.", "nlu_fallback")


async def test_failures_on_two_replicas_add_up_to_the_offer_of_a_person(replicas: tuple[Replica, Replica, ScriptedRasa]) -> None:
    a, b, rasa = replicas
    sender = f"s-{uuid.uuid4().hex[:8]}"
    rasa.script += [fallback(), fallback()]
    first = await a.say(sender, "blorp the frobnicator")
    assert not offered(first)
    second = await b.say(sender, "frobnicate the blorp")  # the second failure in a row, on the other replica
    assert offered(second)
    assert a.handoff.pending_offer(sender) == b.handoff.pending_offer(sender) == "repeated_failure"


async def test_an_offer_made_on_one_replica_is_accepted_by_the_action_on_the_other_and_announced_once(
        replicas: tuple[Replica, Replica, ScriptedRasa]) -> None:
    a, b, rasa = replicas
    sender = f"s-{uuid.uuid4().hex[:8]}"
    rasa.script += [fallback(), fallback()]
    await a.say(sender, "blorp")
    assert offered(await a.say(sender, "blorp again"))  # offered on a
    consoles = [a.events.subscribe(AGENTS), b.events.subscribe(AGENTS)]
    rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))  # Rasa's action call: on replica b
    result = await a.say(sender, "yes")
    assert rasa.calls[-1][1] == HANDOFF  # the yes became the handoff button
    assert result.state in ("queued", "human") and a.handoff.pending_offer(sender) is None
    with a.handoff.sessions() as db:
        tickets = list(db.scalars(select(Ticket).where(Ticket.sender_id == sender)))
        assert [(t.reason, t.context["trigger"].get("accepted_offer")) for t in tickets] == [("repeated_failure", True)]
        copies = db.scalar(select(func.count()).select_from(OutboxItem).where(
            OutboxItem.ticket_id == tickets[0].id, OutboxItem.event == "ticket.created"))
    # The turn ended on a: the ticket opened by b's action is announced there, once, with its helpdesk copy.
    created = [[e for e in drain(sub) if e["type"] == "ticket.created"] for sub in consoles]
    assert [len(c) for c in created] == [1, 0] and created[0][0]["ticket"]["id"] == tickets[0].id
    assert copies == 1
    rasa.script.append(says("Anything else while you wait?"))
    await b.say(sender, "thanks, what are your opening hours")  # b's next turn announces nothing again
    assert not [e for e in drain(consoles[1]) if e["type"] == "ticket.created"]


async def test_a_no_on_the_other_replica_declines_without_asking_the_bot(replicas: tuple[Replica, Replica, ScriptedRasa]) -> None:
    a, b, rasa = replicas
    sender = f"s-{uuid.uuid4().hex[:8]}"
    rasa.script += [fallback(), fallback()]
    await a.say(sender, "blorp")
    assert offered(await a.say(sender, "blorp again"))
    asked = len(rasa.calls)
    declined = await b.say(sender, "no thanks")  # ScriptedRasa fails the test if it is asked
    assert len(rasa.calls) == asked and declined.messages[-1].type == "handoff"
    assert a.handoff.pending_offer(sender) is None
    rasa.script += [fallback(), fallback()]  # the cooldown after a "no" holds on the other replica too
    assert not offered(await a.say(sender, "blorp"))
    assert not offered(await a.say(sender, "blorp"))


async def test_the_daily_ticket_cap_per_address_holds_when_the_action_runs_on_the_other_replica(
        postgres_schema_url: str, tmp_path: Path) -> None:
    redis_url = redis_or_skip()  # the quota itself is shared through Redis, as REDIS_URL gives every replica
    async with two_replicas(postgres_schema_url, tmp_path, redis_url=redis_url, tickets_per_address_per_day=1,
                            tickets_per_sender_per_day=5) as (a, b, rasa):
        senders = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(2)]  # a script inventing sender ids, one address
        for sender in senders:
            rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))  # the request's action runs on b
            await a.say(sender, "I want to talk to a person", address="203.0.113.7")
        with a.handoff.sessions() as db:
            opened = list(db.scalars(select(Ticket.sender_id).where(Ticket.sender_id.in_(senders))))
            kept = set(db.scalars(select(TurnMemory.client_key)))
    assert opened == senders[:1]  # the second is refused: the address had its ticket today
    assert "203.0.113.7" not in kept and len(kept - {None}) == 1  # a keyed digest, never the address itself


def drain(sub: Any) -> list[dict[str, Any]]:
    events = []
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    return events


# --- WeChat replay nonces, shared in Redis ---------------------------------------------------------------
async def test_a_nonce_used_on_one_replica_is_known_to_the_other() -> None:
    url = redis_or_skip()
    prefix = unique_prefix()
    a, b = RedisNonceCache(url, 300, prefix), RedisNonceCache(url, 300, prefix)
    try:
        assert await a.acheck("1000", "n1", b"POST\nhello") == "new"
        assert await b.acheck("1000", "n1", b"POST\nhello") == "retry"  # WeChat retrying through the other replica
        assert await b.acheck("1000", "n1", b"POST\nforged") == "replay"
        assert await b.acheck("1000", "n2", b"POST\nhello") == "new"
    finally:
        await a.aclose()
        await b.aclose()
    # In memory (no REDIS_URL) each process knows only its own: the reason for the shared store.
    assert await NonceCache(300).acheck("1000", "n1", b"POST\nforged") == "new"


async def test_without_redis_a_nonce_cannot_be_checked_and_the_request_waits() -> None:
    cache = RedisNonceCache(closed_port_url().replace("http://", "redis://"), 300, timeout_s=0.5)
    try:
        with pytest.raises(NonceStoreUnavailable):  # the webhook answers 503 and WeChat retries
            await cache.acheck("1000", "n1", b"x")
    finally:
        await cache.aclose()
    with pytest.raises(ValueError, match="REDIS_URL must start with"):
        RedisNonceCache("http://127.0.0.1:6379", 300)


@pytest.fixture(name="wechat_replicas")
def fixture_wechat_replicas(tmp_path: Path, wx_api: FakeWeChatApi) -> Iterator[tuple[ChannelGateway, ChannelGateway]]:
    url = redis_or_skip()
    values: dict[str, Any] = {
        "wechat_token": TOKEN, "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET, "wechat_api_base": wx_api.url,
        "wechat_encoding_aes_key": "", "wechat_allow_plaintext": True, "redis_url": url, **QUICK_RETRIES,
    }
    gateways = [ChannelGateway(tmp_path / name, closed_port_url(), **values).start() for name in "ab"]
    yield gateways[0], gateways[1]
    for gw in gateways:
        gw.stop()


def test_a_signed_url_used_on_one_gateway_cannot_carry_another_message_to_the_other(
        wechat_replicas: tuple[ChannelGateway, ChannelGateway]) -> None:
    a, b = wechat_replicas
    to_a, to_b = WeChatPush(f"{a.url}/webhooks/wechat"), WeChatPush(f"{b.url}/webhooks/wechat")
    timestamp, nonce = str(int(time.time())), f"captured-{uuid.uuid4().hex[:8]}"
    params, body = to_a.build(image_xml("o-customer", 9401), "o-customer", timestamp=timestamp, nonce=nonce)
    assert httpx.post(to_a.webhook_url, params=params, content=body).status_code == 200
    again = httpx.post(to_b.webhook_url, params=params, content=body)  # WeChat's retry, through the other replica
    assert again.status_code == 200 and again.text == "success"
    forged_params, forged = to_b.build(text_xml("o-attacker", "cancel order 5120648393", 9402), "o-attacker",
                                       timestamp=timestamp, nonce=nonce)
    assert forged_params["signature"] == params["signature"]
    resp = httpx.post(to_b.webhook_url, params=forged_params, content=forged)
    assert resp.status_code == 403 and "replayed" in resp.json()["detail"]
    assert b.count("channel_inbound") == 0 and a.count("channel_inbound") == 1


# --- the push-channel relay: one customer's catch-up, turn and delivery at a time, across replicas ---------
def inbound(gw: ChannelGateway) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in gw.query("SELECT status, attempts FROM channel_inbound")]


def relay_waiters(engine: Engine, key: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = :ns "
            "AND objid::bigint = (hashtext(:key)::bigint & 4294967295) AND objsubid = 2"),
            {"ns": RELAY_LOCKS, "key": key}).scalar())


async def wait(condition: Callable[[], Any], what: str) -> None:
    await until(lambda: bool(condition()), what, limit_s=30)


async def test_a_customers_message_waits_while_another_replica_relays_the_previous_one(
        postgres_schema_url: str, tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    url = postgres_schema_url
    upgrade(url)
    values: dict[str, Any] = {
        "database_url": url, "wechat_token": TOKEN, "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET,
        "wechat_api_base": wx_api.url, "wechat_encoding_aes_key": "", "wechat_allow_plaintext": True,
        "wechat_passive_timeout_s": 0.2, **QUICK_RETRIES, "channel_inbound_retry_s": 3600,
    }
    gw = await asyncio.to_thread(lambda: ChannelGateway(tmp_path, closed_port_url(), **values).start())
    engine = make_engine(url)
    other = PgTurnLocks(url, namespace=RELAY_LOCKS)  # replica a's relay, mid-way through this customer's message
    sender = "wechat:o-waiting"
    push = WeChatPush(f"{gw.url}/webhooks/wechat")
    try:
        async with other.hold(sender):
            resp = await asyncio.to_thread(push.post, text_xml("o-waiting", "where is my parcel", 9501), "o-waiting")
            assert resp.status_code == 200  # recorded; the answer will come through the outbox
            await wait(lambda: relay_waiters(engine, sender) == 1, "replica b's relay waits for the customer's lock")
            assert inbound(gw) == [("received", 0)]  # not touched yet
        # Released: b catches up and tries the message (Rasa is down here, so it stays pending).
        await wait(lambda: inbound(gw) == [("pending", 1)], "b processes the message once the lock is free")
    finally:
        await other.aclose()
        engine.dispose()
        await asyncio.to_thread(gw.stop)


# --- live-event subscriber counts without blocking the event loop ------------------------------------------
async def test_the_async_subscriber_count_sees_sockets_on_the_other_replica() -> None:
    url = redis_or_skip()
    prefix = unique_prefix()
    a, b = RedisEventBus(url, prefix), RedisEventBus(url, prefix)
    topic = f"conversation:s-{uuid.uuid4().hex[:8]}"
    try:
        assert await a.asubscribers(topic) == 0
        async with b.listen(topic):
            assert await a.asubscribers(topic) == 1  # the customer's socket, on the other replica
            assert await b.asubscribers(topic) == 1
            await wait(lambda: b.connected, "b's subscriber connection")
        await until(lambda: b.subscribers(topic) == 0, "b's socket to close")
    finally:
        await a.close()
        await b.close()
    assert await EventBus().asubscribers(topic) == 0
