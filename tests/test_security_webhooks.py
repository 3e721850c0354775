"""Issue 12, items 8 and 10 (webhooks, keys, outboxes), each test performing the attack:

- the helpdesk webhook key must not mint customers' conversation tokens (separate derived keys);
- a captured helpdesk webhook cannot be replayed later, nor its timestamp moved;
- WeChat plaintext mode (its signature covers nothing of the body) is refused unless allowed, and
  a signed URL is used once: replayed with another body → 403, nothing stored, nothing answered;
- the helpdesk outbox never gives up (attempt 11 and beyond are still retried, an hour apart) and
  reports an item undelivered for over a day; the channel outbox finds a due row behind 150 rows in
  backoff in one pass and then sleeps instead of spinning.

Real components throughout: SQLite migrated by Alembic, the real gateway channel stack on HTTP,
local fakes only for WeChat's and Telegram's servers and a helpdesk's HTTP receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

import handoff
from channels.models import ChannelOutbox
from channels.nonces import NonceCache
from channels.outbox import Delivery, Outbox, OutboxWorker
from channels.telegram import BotApi, TelegramDeliverer
from conversations.service import OutboundMessage
from handoff.adapters.outbox import MAX_BACKOFF_S
from handoff.adapters.outbox import OutboxWorker as HelpdeskOutbox
from handoff.adapters.webhook import WebhookAdapter, sign, verify
from handoff.models import OutboxItem
from handoff.tokens import LEGACY_FILE
from storage.db import make_engine, make_session_factory, transaction, upgrade
from tests.fakes.gateway import QUICK_RETRIES, ChannelGateway, closed_port_url, wait_for
from tests.fakes.telegram_api import FakeBotApi, text_update
from tests.fakes.wechat_api import AES_KEY, APP_ID, APP_SECRET, TOKEN, FakeWeChatApi, WeChatPush, image_xml, text_xml
from tests.test_handoff_adapters import SECRET, Receiver, free_port
from tests.test_handoff_service import make_settings

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
SENDER = f"wechat:{OPENID}"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


# --- keys: conversation tokens vs the helpdesk webhook -----------------------------------------------
def build_handoff(tmp_path: Path, **over: Any) -> tuple[Any, Any, Any]:
    settings = make_settings(tmp_path, **over)
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    service, outbox = handoff.build(make_session_factory(engine), settings, seed_accounts=False)
    return service, outbox, engine


def test_the_webhook_key_cannot_mint_conversation_tokens(tmp_path: Path) -> None:
    # No HANDOFF_SECRET and no HANDOFF_WEBHOOK_SECRET: before, both used the same key.
    service, outbox, engine = build_handoff(tmp_path, handoff_secret="", handoff_webhook_url="http://127.0.0.1:9/t")
    try:
        webhook_key: bytes = outbox.adapters["webhook"].secret
        victim = "rest-victim-1"
        forged = hmac.new(webhook_key, b"conversation:" + victim.encode(), hashlib.sha256).hexdigest()
        assert not service.tokens.check(victim, forged)
        assert service.tokens.check(victim, service.tokens.issue(victim))  # the real token still works
        # Nor does any webhook signature the helpdesk receives equal a customer's token.
        body = b"conversation:" + victim.encode()
        signature = sign(webhook_key, int(time.time()), body).removeprefix("sha256=")
        assert signature != service.tokens.issue(victim)
        assert not service.tokens.check(victim, signature)
    finally:
        engine.dispose()


def test_an_older_install_keeps_its_conversation_tokens_but_not_for_webhooks(tmp_path: Path) -> None:
    (tmp_path / LEGACY_FILE).write_text("legacy-random-key\n")
    (tmp_path / LEGACY_FILE).chmod(0o644)
    service, outbox, engine = build_handoff(tmp_path, handoff_secret="", handoff_webhook_url="http://127.0.0.1:9/t")
    try:
        issued_before = hmac.new(b"legacy-random-key", b"conversation:s-1", hashlib.sha256).hexdigest()
        assert service.tokens.check("s-1", issued_before)  # customers' tokens survive the upgrade
        assert outbox.adapters["webhook"].secret != b"legacy-random-key"
        assert (tmp_path / LEGACY_FILE).stat().st_mode & 0o077 == 0
    finally:
        engine.dispose()


def test_configured_secrets_are_used_each_for_its_own_purpose(tmp_path: Path) -> None:
    (tmp_path / LEGACY_FILE).write_text("legacy-random-key")
    service, outbox, engine = build_handoff(tmp_path, handoff_secret="tokens-key",
                                            handoff_webhook_url="http://127.0.0.1:9/t", handoff_webhook_secret="hook")
    try:
        assert service.tokens.issue("s") == hmac.new(b"tokens-key", b"conversation:s", hashlib.sha256).hexdigest()
        assert outbox.adapters["webhook"].secret == b"hook"
        assert not service.tokens.check("s", "é" * 64)  # non-ASCII input: refused, not an error
    finally:
        engine.dispose()


# --- helpdesk webhook signatures carry a timestamp --------------------------------------------------
def test_a_captured_webhook_cannot_be_replayed_later() -> None:
    body = b'{"event":"ticket.created","ticket":{"id":1}}'
    sent_at = 1_800_000_000
    signature = sign(SECRET, sent_at, body)
    assert verify(SECRET, str(sent_at), body, signature, 300, now=sent_at + 2)
    # The same request an hour later: refused.
    assert not verify(SECRET, str(sent_at), body, signature, 300, now=sent_at + 3600)
    # Moving the timestamp to "now" breaks the signature.
    assert not verify(SECRET, str(sent_at + 3600), body, signature, 300, now=sent_at + 3600)
    # Another body under the same signature, no timestamp, junk timestamps: refused.
    assert not verify(SECRET, str(sent_at), body + b" ", signature, 300, now=sent_at)
    for junk in (None, "", "-1", "1e9", "１８", "9" * 40):
        assert not verify(SECRET, junk, body, signature, 300, now=sent_at)
    assert not verify(SECRET, str(sent_at), body, "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
                      300, now=sent_at)  # the old, timestamp-less signature


async def test_the_adapter_signs_each_attempt_with_its_time(tmp_path: Path) -> None:
    port = free_port()
    adapter = WebhookAdapter(f"http://127.0.0.1:{port}/tickets", SECRET, timeout_s=5)
    try:
        with Receiver(port) as receiver:  # verifies timestamp + signature with webhook.verify
            await adapter.deliver(7, "ticket.created", {"event": "ticket.created", "ticket": {"id": 7}})
        assert receiver.rejected == 0 and [d for d, _ in receiver.received] == ["7"]
    finally:
        await adapter.close()


# --- WeChat: plaintext refused unless allowed, nonces used once --------------------------------------
def wechat_gateway(tmp_path: Path, wx_api: FakeWeChatApi, **settings: Any) -> ChannelGateway:
    values: dict[str, Any] = {
        "wechat_token": TOKEN, "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET, "wechat_api_base": wx_api.url,
        **QUICK_RETRIES,
    }
    return ChannelGateway(tmp_path, closed_port_url(), **{**values, **settings}).start()


def nothing_stored(gw: ChannelGateway) -> bool:
    return gw.count("channel_inbound") == 0 and gw.count("messages") == 0 and gw.count("conversations") == 0


def test_plaintext_wechat_is_refused_unless_allowed(tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    gw = wechat_gateway(tmp_path, wx_api, wechat_encoding_aes_key="")
    try:
        push = WeChatPush(f"{gw.url}/webhooks/wechat")  # plaintext, correctly signed URL
        resp = push.post(text_xml(OPENID, "退款给我", 9001), OPENID)
        assert resp.status_code == 503
        assert "WECHAT_ENCODING_AES_KEY" in resp.json()["detail"] and "退款" not in resp.text
        assert httpx.get(push.webhook_url, params={**push.query(), "echostr": "123"}).status_code == 503
        assert nothing_stored(gw)
        # Replies already owed to WeChat customers still go out.
        gw.run(gw.app.state.pushers.push("wechat", SENDER, [OutboundMessage(type="agent", text="您好")]))
        wait_for(lambda: wx_api.contents(OPENID) == ["您好"], what="outbound delivery")
    finally:
        gw.stop()


@pytest.fixture(params=["safe", "plain-allowed"])
def wechat(request: pytest.FixtureRequest, tmp_path: Path, wx_api: FakeWeChatApi) -> Iterator[tuple[ChannelGateway, WeChatPush]]:
    safe = request.param == "safe"
    gw = wechat_gateway(tmp_path, wx_api, wechat_encoding_aes_key=AES_KEY if safe else "",
                        wechat_allow_plaintext=not safe)
    yield gw, WeChatPush(f"{gw.url}/webhooks/wechat", aes_key=AES_KEY if safe else None)
    gw.stop()


def test_a_replayed_request_is_not_answered_twice(wechat: tuple[ChannelGateway, WeChatPush]) -> None:
    gw, push = wechat
    params, body = push.build(image_xml(OPENID, 9101), OPENID)
    first = httpx.post(push.webhook_url, params=params, content=body)
    assert push.reply_text(first) == "抱歉，我只能阅读文字消息。请用文字输入您的问题。"
    again = httpx.post(push.webhook_url, params=params, content=body)  # the same captured request
    assert again.status_code == 200 and again.text == "success"  # acknowledged (a WeChat retry), not answered
    assert gw.count("channel_inbound") == 1 and gw.count("channel_outbox") == 0


def test_a_signed_url_cannot_carry_another_message(wechat: tuple[ChannelGateway, WeChatPush]) -> None:
    gw, push = wechat
    timestamp, nonce = str(int(time.time())), "captured1"
    params, body = push.build(image_xml(OPENID, 9201), OPENID, timestamp=timestamp, nonce=nonce)
    assert httpx.post(push.webhook_url, params=params, content=body).status_code == 200
    # Same timestamp and nonce (so the same URL signature), another message.
    forged_params, forged = push.build(text_xml("attacker_openid", "cancel order 5120648393", 9202), "attacker_openid",
                                       timestamp=timestamp, nonce=nonce)
    assert forged_params["signature"] == params["signature"]
    resp = httpx.post(push.webhook_url, params=forged_params, content=forged)
    assert resp.status_code == 403 and "replayed" in resp.json()["detail"]
    assert "5120648393" not in resp.text
    assert gw.count("channel_inbound") == 1 and gw.count("messages") == 0


def test_the_url_check_signature_cannot_sign_a_message(tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    gw = wechat_gateway(tmp_path, wx_api, wechat_encoding_aes_key="", wechat_allow_plaintext=True)
    try:
        push = WeChatPush(f"{gw.url}/webhooks/wechat")
        query = push.query()
        assert httpx.get(push.webhook_url, params={**query, "echostr": "42"}).text == "42"
        # The plaintext signature covers only token, timestamp and nonce: reuse it for a POST.
        resp = httpx.post(push.webhook_url, params={**query, "openid": OPENID},
                          content=text_xml(OPENID, "hello", 9301).encode())
        assert resp.status_code == 403
        assert nothing_stored(gw)
    finally:
        gw.stop()


def test_the_nonce_cache_forgets_after_the_window_and_stays_bounded() -> None:
    now = [1000.0]
    cache = NonceCache(300, max_entries=3, clock=lambda: now[0])
    assert cache.check("1000", "a", b"x") == "new"
    assert cache.check("1000", "a", b"x") == "retry"
    assert cache.check("1000", "a", b"y") == "replay"
    now[0] += 599
    assert cache.check("1000", "a", b"y") == "replay"  # still inside ts + skew (+ arrival skew)
    now[0] += 2
    assert cache.check("1601", "b", b"z") == "new" and len(cache) == 1  # "a" expired: its timestamp is refused now
    for n in range(5):
        cache.check("1601", f"n{n}", b"")
    assert len(cache) == 3


# --- Telegram: the secret token is required and compared in constant time ------------------------------
def test_telegram_webhook_needs_its_secret(tmp_path: Path) -> None:
    api = FakeBotApi().start()
    gw = ChannelGateway(tmp_path, closed_port_url(), telegram_bot_token=api.token, telegram_api_base=api.url,
                        telegram_webhook_secret="right-secret_1").start()
    update = text_update(1, 5, "hi")
    try:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "right-secret_2"},
                        {"X-Telegram-Bot-Api-Secret-Token": b"right-secret_\xe9"}):
            resp = httpx.post(f"{gw.url}/webhooks/telegram", json=update, headers=headers)
            assert resp.status_code == 401, headers
        assert gw.count("channel_inbound") == 0
        ok = httpx.post(f"{gw.url}/webhooks/telegram", json=update,
                        headers={"X-Telegram-Bot-Api-Secret-Token": "right-secret_1"})
        assert ok.status_code == 200 and gw.count("channel_inbound") == 1
    finally:
        gw.stop()
        api.stop()


# --- the helpdesk outbox never gives up ------------------------------------------------------------
def outbox_world(tmp_path: Path) -> tuple[sessionmaker[Session], Any]:
    settings = make_settings(tmp_path)
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    return make_session_factory(engine), engine


def add_item(sessions: sessionmaker[Session], adapter: str = "webhook", status: str = "pending",
             created: datetime = T0) -> int:
    with transaction(sessions) as db:
        item = OutboxItem(ticket_id=1, adapter=adapter, event="ticket.created", payload={"ticket": {"id": 1}},
                          status=status, attempts=0, next_attempt_at=created, created_at=created)
        db.add(item)
        db.flush()
        return item.id


async def test_the_helpdesk_outbox_keeps_retrying_past_ten_attempts(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    sessions, engine = outbox_world(tmp_path)
    now = [T0]
    worker = HelpdeskOutbox(sessions, {"webhook": WebhookAdapter(f"http://127.0.0.1:{port}/t", SECRET, timeout_s=5)},
                            backoff_s=5, clock=lambda: now[0])
    try:
        item_id = add_item(sessions)
        delays = []
        caplog.set_level(logging.WARNING, logger="handoff.adapters.outbox")
        for _ in range(40):  # the helpdesk is down for well over a day
            assert await worker.run_once() == 0
            with sessions() as db:
                item = db.get_one(OutboxItem, item_id)
                assert item.status == "pending"
                delays.append((item.next_attempt_at - now[0]).total_seconds())
                now[0] = item.next_attempt_at
        with sessions() as db:
            assert db.get_one(OutboxItem, item_id).attempts == 40
        assert delays[:4] == [5, 10, 20, 40] and delays[10:] == [MAX_BACKOFF_S] * 30
        assert worker.undelivered_for_over_a_day() == 1
        stuck = [r for r in caplog.records if "over a day" in r.getMessage()]
        assert len(stuck) == 1  # once a day, not at every attempt (by then an hour apart)
        with Receiver(port) as receiver:
            assert await worker.run_once() == 1
        assert len(receiver.received) == 1 and worker.undelivered_for_over_a_day() == 0
    finally:
        await worker.close()
        engine.dispose()


async def test_items_of_a_removed_adapter_or_given_up_by_older_versions_do_not_block(tmp_path: Path) -> None:
    port = free_port()
    sessions, engine = outbox_world(tmp_path)
    worker = HelpdeskOutbox(sessions, {"webhook": WebhookAdapter(f"http://127.0.0.1:{port}/t", SECRET, timeout_s=5)},
                            backoff_s=5, clock=lambda: T0)
    try:
        for _ in range(60):
            add_item(sessions, adapter="email")  # email no longer configured: kept, not in the way
        old = add_item(sessions, status="failed")  # given up by a version with a last attempt
        new = add_item(sessions)
        with Receiver(port) as receiver:
            assert await worker.run_once() == 2
        assert sorted(int(d) for d, _ in receiver.received) == [old, new]
        with sessions() as db:
            assert db.scalar(select(OutboxItem.status).where(OutboxItem.adapter == "email").limit(1)) == "pending"
    finally:
        await worker.close()
        engine.dispose()


# --- the channel outbox reads due rows only ---------------------------------------------------------
@pytest.fixture
def channel_db(tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], list[str]]]:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    engine = make_engine(url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    yield make_session_factory(engine), statements
    engine.dispose()


def message(chat: int, text: str) -> list[Delivery]:
    return [Delivery("sendMessage", {"chat_id": chat, "text": text})]


def defer_all(sessions: sessionmaker[Session], seconds: float) -> None:
    with transaction(sessions) as db:
        db.execute(update(ChannelOutbox).values(next_attempt_at=datetime.now(UTC) + timedelta(seconds=seconds),
                                                attempts=3))


@pytest.fixture
async def telegram_outbox(channel_db: tuple[sessionmaker[Session], list[str]],
                          bot_api: FakeBotApi) -> AsyncIterator[tuple[Outbox, OutboxWorker]]:
    """The channel outbox and a worker delivering to the local Bot API (backoff 1 s to 300 s, poll 2 s)."""
    sessions, _ = channel_db
    client = BotApi(bot_api.token, bot_api.url)
    outbox = Outbox(sessions)
    worker = OutboxWorker(outbox, sessions, retry_base_s=1, retry_max_s=300, poll_s=2)
    worker.register("telegram", TelegramDeliverer(client))
    yield outbox, worker
    await client.close()


async def test_a_due_row_behind_150_deferred_rows_goes_out_and_the_loop_sleeps(
    channel_db: tuple[sessionmaker[Session], list[str]], telegram_outbox: tuple[Outbox, OutboxWorker],
    bot_api: FakeBotApi,
) -> None:
    (sessions, statements), (outbox, worker), api = channel_db, telegram_outbox, bot_api
    for chat in range(1, 151):  # 150 customers whose messages wait in backoff (Telegram was failing)
        outbox.enqueue_sync("telegram", f"telegram:{chat}", message(chat, f"later {chat}"))
    defer_all(sessions, 3600)
    outbox.enqueue_sync("telegram", "telegram:999", message(999, "due now"))

    first = await worker.drain("telegram")
    assert api.texts(999) == ["due now"] and len(api.sent) == 1  # found in the first pass
    assert first == 0.0  # it sent something: look once more for that customer's next row
    statements.clear()
    second = await worker.drain("telegram")
    assert second > worker.poll_s  # nothing due: the loop waits (poll_s at most), it does not spin
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
    assert len(api.sent) == 1


async def test_a_customers_later_row_waits_for_their_deferred_one_without_spinning(
    channel_db: tuple[sessionmaker[Session], list[str]], telegram_outbox: tuple[Outbox, OutboxWorker],
    bot_api: FakeBotApi,
) -> None:
    (sessions, _), (outbox, worker), api = channel_db, telegram_outbox, bot_api
    outbox.enqueue_sync("telegram", "telegram:1", message(1, "first"))
    defer_all(sessions, 600)
    outbox.enqueue_sync("telegram", "telegram:1", message(1, "second"))  # due, but must not overtake
    assert await worker.drain("telegram") > 500
    assert api.sent == []
    defer_all(sessions, -1)  # the first one's retry time has come
    waits = [await worker.drain("telegram") for _ in range(3)]
    assert waits == [0.0, 0.0, worker.poll_s]  # a row per pass for this customer, in order, then it sleeps
    assert api.texts(1) == ["first", "second"]
