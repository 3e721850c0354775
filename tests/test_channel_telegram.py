"""Telegram channel against a local Bot API server (real HTTP, Telegram's JSON) and the real
gateway channel stack. Rasa is down here (a closed port): messages are stored and wait; the
answers from a live Rasa are in test_channel_telegram_live.py."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from channels.telegram import MAX_TEXT, split_text
from conversations.service import OutboundMessage
from tests.fakes.gateway import QUICK_RETRIES, ChannelGateway, closed_port_url, wait_for
from tests.fakes.telegram_api import FakeBotApi, callback_update, photo_update, text_update, utf16_len, visible_text

SECRET = "s3cret-Token_for-tests"
CHAT = 5550001


def make_gateway(tmp_path: Path, bot_api: FakeBotApi, **settings: Any) -> ChannelGateway:
    defaults: dict[str, Any] = {
        "telegram_bot_token": bot_api.token, "telegram_webhook_secret": SECRET, "telegram_api_base": bot_api.url,
        **QUICK_RETRIES,
    }
    return ChannelGateway(tmp_path, closed_port_url(), **{**defaults, **settings}).start()


@pytest.fixture
def gateway(tmp_path: Path, bot_api: FakeBotApi) -> Iterator[ChannelGateway]:
    gw = make_gateway(tmp_path, bot_api)
    yield gw
    gw.stop()


def post(gw: ChannelGateway, update: dict[str, Any] | bytes, secret: str | None = SECRET) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    if isinstance(update, bytes):
        return httpx.post(f"{gw.url}/webhooks/telegram", content=update, headers=headers, timeout=30)
    return httpx.post(f"{gw.url}/webhooks/telegram", json=update, headers=headers, timeout=30)


def stored(gw: ChannelGateway) -> tuple[int, int]:
    return gw.count("channel_inbound"), gw.count("messages")


# --- authentication and parsing ---------------------------------------------------------------------
@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
def test_webhook_refuses_missing_or_wrong_secret(gateway: ChannelGateway, secret: str | None) -> None:
    resp = post(gateway, text_update(1, CHAT, "hello"), secret=secret)
    assert resp.status_code == 401
    assert "X-Telegram-Bot-Api-Secret-Token" in resp.json()["detail"]
    assert stored(gateway) == (0, 0)


def test_webhook_without_configured_secret_accepts_nothing(tmp_path: Path, bot_api: FakeBotApi) -> None:
    gw = make_gateway(tmp_path, bot_api, telegram_webhook_secret="")
    try:
        resp = post(gw, text_update(1, CHAT, "hello"), secret="")
        assert resp.status_code == 403
        assert stored(gw) == (0, 0)
    finally:
        gw.stop()


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{not json", "not JSON"), (b"[1, 2]", "update_id"), (b'{"update_id": "7"}', "update_id"),
     (b'{"update_id": 7, "message": {"text": "no chat"}}', "malformed")],
)
def test_malformed_updates_get_400(gateway: ChannelGateway, body: bytes, reason: str) -> None:
    resp = post(gateway, body)
    assert resp.status_code == 400
    assert reason in resp.json()["detail"]
    assert stored(gateway) == (0, 0)


def test_oversized_body_refused(gateway: ChannelGateway) -> None:
    resp = post(gateway, b'{"update_id": 1, "x": "' + b"a" * 1_100_000 + b'"}')
    assert resp.status_code == 413
    assert stored(gateway) == (0, 0)


def test_unhandled_update_types_are_acknowledged_and_ignored(gateway: ChannelGateway) -> None:
    edited = text_update(10, CHAT, "edited")
    edited["edited_message"] = edited.pop("message")
    poll = {"update_id": 11, "poll": {"id": "1", "question": "?", "options": [], "total_voter_count": 0,
                                       "is_closed": False, "is_anonymous": True, "type": "regular",
                                       "allows_multiple_answers": False}}
    group = text_update(12, -100123, "hello group", chat_type="supergroup")
    for update in (edited, poll, group, {"update_id": 13}):
        resp = post(gateway, update)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"ok": True}
    assert stored(gateway) == (0, 0)


# --- processing -------------------------------------------------------------------------------------
def test_duplicate_update_is_processed_once(gateway: ChannelGateway) -> None:
    update = text_update(100, CHAT, "where is my order?")
    for _ in range(3):
        assert post(gateway, update).status_code == 200
    assert gateway.count("channel_inbound") == 1
    # Stored once in the conversation (Rasa is down here, so it waits as pending).
    rows = gateway.query("select m.text, m.status, m.client_message_id, c.sender_id, c.channel from messages m "
                         "join conversations c on c.id = m.conversation_id")
    assert [tuple(r) for r in rows] == [("where is my order?", "pending", "telegram:u100", f"telegram:{CHAT}", "telegram")]
    assert gateway.query("select status from channel_inbound")[0][0] == "pending"


def test_each_chat_is_its_own_conversation(gateway: ChannelGateway) -> None:
    post(gateway, text_update(1, 111, "hello"))
    post(gateway, text_update(2, 222, "hello"))
    post(gateway, text_update(3, 111, "again"))
    senders = [r[0] for r in gateway.query("select sender_id from conversations order by sender_id")]
    assert senders == ["telegram:111", "telegram:222"]


def test_start_command_is_a_greeting_in_the_users_language(gateway: ChannelGateway) -> None:
    post(gateway, text_update(5, CHAT, "/start", language_code="ru"))
    row = gateway.query("select text, payload, language from channel_inbound")[0]
    assert tuple(row) == (None, "/greet", "ru")
    assert gateway.query("select language from conversations")[0][0] == "ru"


def test_typed_commands_are_read_as_words(gateway: ChannelGateway) -> None:
    post(gateway, text_update(6, CHAT, "/human_handoff"))
    row = gateway.query("select text, payload from channel_inbound")[0]
    assert tuple(row) == ("human handoff", None)  # a typed "/intent" must not skip the NLU


def test_photo_gets_a_polite_notice_in_the_users_language(gateway: ChannelGateway, bot_api: FakeBotApi) -> None:
    assert post(gateway, photo_update(7, CHAT, language_code="ru")).status_code == 200
    texts = wait_for(lambda: bot_api.texts(CHAT), what="the notice")
    assert texts == ["Извините, я понимаю только текстовые сообщения. Напишите, пожалуйста, ваш вопрос текстом."]
    assert gateway.count("messages") == 0  # the bot never saw it


def test_too_long_message_gets_a_notice(gateway: ChannelGateway, bot_api: FakeBotApi) -> None:
    post(gateway, text_update(8, CHAT, "please help " * 400))
    texts = wait_for(lambda: bot_api.texts(CHAT), what="the notice")
    assert "too long" in texts[0] and "4000" in texts[0]
    assert gateway.count("messages") == 0


def test_rate_limit_sends_one_polite_notice(tmp_path: Path, bot_api: FakeBotApi) -> None:
    gw = make_gateway(tmp_path, bot_api, channel_rate_limit_count=3, channel_rate_limit_window_s=600)
    try:
        for n in range(6):
            assert post(gw, text_update(200 + n, CHAT, f"message number {n}")).status_code == 200
        post(gw, text_update(300, 999, "another customer"))  # not affected
        texts = wait_for(lambda: bot_api.texts(CHAT), what="the notice")
        reasons = [r[0] for r in gw.query("select reason from channel_inbound where sender_id = :s order by id",
                                          s=f"telegram:{CHAT}")]
        assert reasons == [None, None, None, "rate_limited", "rate_limited_silent", "rate_limited_silent"]
        assert gw.count("messages", "text like 'message number%'") == 3
        assert gw.count("messages", "text = 'another customer'") == 1
        wait_for(lambda: gw.count("channel_inbound", "done_at is not null and reason like 'rate%'") == 3,
                 what="declined rows finished")
        assert texts == ["You're sending messages faster than I can read them. Please wait a minute, then write again."]
    finally:
        gw.stop()


# --- outbound: rendering, 429, outages ----------------------------------------------------------------
def push(gw: ChannelGateway, sender_id: str, messages: list[OutboundMessage]) -> None:
    """What the handoff module does with an agent's reply."""
    gw.run(gw.app.state.pushers.push("telegram", sender_id, messages))


def test_split_text_keeps_words_and_limit() -> None:
    text = ("Lorem ipsum dolor sit amet. " * 200 + "\n\n") * 3 + "😀" * 5000
    parts = split_text(text)
    assert all(utf16_len(p) <= MAX_TEXT for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")
    assert all(not p.endswith("Lor") for p in parts[:3])  # cut at a space, not inside a word


def test_html_is_escaped_sources_linked_and_long_texts_split(gateway: ChannelGateway, bot_api: FakeBotApi) -> None:
    evil = '<script>alert("x")</script> & <img src=x onerror=alert(1)> <b>not bold</b>'
    long_text = "word " * 2000  # 10,000 characters: three messages
    push(gateway, f"telegram:{CHAT}", [
        OutboundMessage(type="text", text=evil),
        OutboundMessage(type="kb_answer", text="Returns are free within 30 days.",
                        sources=[{"title": 'Returns "policy" <2024>', "url": "https://shop.example/help?a=1&b=2"},
                                 {"title": "Not a link", "url": "javascript:alert(1)"}]),
        OutboundMessage(type="agent", text=long_text),
    ])
    sent = wait_for(lambda: len(bot_api.sent) >= 5 and bot_api.sent, what="five messages")
    assert len(sent) == 5
    assert sent[0]["text"] == evil  # what the user sees is the literal text, not markup
    raw = [c.params["text"] for c in bot_api.calls_to("sendMessage")]
    assert "&lt;script&gt;" in raw[0] and "<script>" not in raw[0]
    assert '<a href="https://shop.example/help?a=1&amp;b=2">Returns "policy" &lt;2024&gt;</a>' in raw[1]
    assert "javascript:" not in raw[1] and "Not a link" in sent[1]["text"]
    assert all(utf16_len(m["text"]) <= MAX_TEXT for m in sent[2:])
    assert " ".join(m["text"] for m in sent[2:]).split() == long_text.split()
    wait_for(lambda: gateway.count("channel_outbox", "status = 'sent'") == 5, what="rows marked sent")


def test_buttons_become_an_inline_keyboard_and_long_payloads_a_reference(
    gateway: ChannelGateway, bot_api: FakeBotApi,
) -> None:
    long_payload = '/kb_feedback{"kb_helpful":"yes","kb_answer_id":"a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"}'
    assert len(long_payload.encode()) > 64
    push(gateway, f"telegram:{CHAT}", [OutboundMessage(type="kb_answer", text="Did that help?", buttons=[
        {"title": "That helped", "payload": long_payload}, {"title": "Talk to a person", "payload": "/human_handoff"}])])
    message = wait_for(lambda: bot_api.sent and bot_api.sent[0], what="the message")
    keyboard = message["reply_markup"]["inline_keyboard"]
    assert [[b["text"] for b in row] for row in keyboard] == [["That helped"], ["Talk to a person"]]
    reference = keyboard[0][0]["callback_data"]
    assert reference.startswith("~") and keyboard[1][0]["callback_data"] == "/human_handoff"

    # The customer taps it: the callback is answered and the full payload goes to the bot.
    assert post(gateway, callback_update(400, CHAT, reference)).status_code == 200
    assert gateway.query("select payload from channel_inbound")[0][0] == long_payload
    wait_for(lambda: bot_api.calls_to("answerCallbackQuery"), what="answerCallbackQuery")
    assert bot_api.calls_to("answerCallbackQuery")[0].params == {"callback_query_id": "cq400"}

    # Another chat cannot use this chat's reference.
    post(gateway, callback_update(401, 777, reference))
    assert gateway.count("channel_inbound") == 1


def test_429_retry_after_is_honoured(gateway: ChannelGateway, bot_api: FakeBotApi) -> None:
    bot_api.throttle_next(retry_after=2)
    push(gateway, f"telegram:{CHAT}", [OutboundMessage(type="agent", text="Hi, this is Anna.")])
    wait_for(lambda: bot_api.sent, what="delivery after the pause")
    first, second = bot_api.calls_to("sendMessage")[:2]
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 2.0  # not before Telegram's retry_after
    wait_for(lambda: gateway.count("channel_outbox", "status = 'sent'") == 1, what="row marked sent")
    row = gateway.query("select status, attempts from channel_outbox")[0]
    assert tuple(row) == ("sent", 2)


def test_api_down_then_up_delivers_everything_in_order(gateway: ChannelGateway, bot_api: FakeBotApi) -> None:
    bot_api.stop()
    for n in range(5):
        push(gateway, f"telegram:{CHAT}", [OutboundMessage(type="agent", text=f"agent reply {n}")])
    wait_for(lambda: gateway.count("channel_outbox", "attempts >= 2") >= 1, what="failed attempts")
    assert gateway.count("channel_outbox", "status = 'pending'") == 5
    bot_api.start()  # same port: Telegram is back
    wait_for(lambda: len(bot_api.sent) == 5, what="all five delivered")
    assert bot_api.texts(CHAT) == [f"agent reply {n}" for n in range(5)]
    wait_for(lambda: gateway.count("channel_outbox", "status = 'sent'") == 5, what="rows marked sent")
    assert "Telegram unreachable" in gateway.query("select last_error from channel_outbox where id = 1")[0][0]


def test_blocked_user_is_rejected_for_good_and_others_go_on(gateway: ChannelGateway, bot_api: FakeBotApi) -> None:
    bot_api.blocked_chats.add(666)
    push(gateway, "telegram:666", [OutboundMessage(type="agent", text="to a blocked chat")])
    push(gateway, f"telegram:{CHAT}", [OutboundMessage(type="agent", text="to a normal chat")])
    wait_for(lambda: bot_api.texts(CHAT), what="the normal chat's message")
    wait_for(lambda: gateway.count("channel_outbox", "status = 'rejected'") == 1, what="the rejection")
    reason = gateway.query("select last_error from channel_outbox where status = 'rejected'")[0][0]
    assert "blocked by the user" in reason
    assert len(bot_api.calls_to("sendMessage")) == 2  # not retried


def test_fake_checks_html_like_telegram() -> None:
    """The fake Bot API's HTML check is strict, so the escaping tests above can fail."""
    assert visible_text("a &lt;b&gt; <b>c</b> &amp; &#33;") == "a <b> c & !"
    for bad in ("<script>x</script>", "a & b", "<b>open", "<i>x</b>", "&nbsp;"):
        with pytest.raises(ValueError):
            visible_text(bad)
    assert html.escape("<b>", quote=False) == "&lt;b&gt;"

