"""Telegram end to end: real-format updates → webhook → conversation service → the live Rasa (with
the project's trained model) → sendMessage to the local Bot API server. Rasa is reached through a
TCP forwarder so that one test can take it down and bring it back."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from store.seed import DEMO
from tests.conftest import LiveSystem
from tests.fakes.gateway import LIVE_RETRIES, ChannelGateway, wait_for
from tests.fakes.http import service_fixture
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_api import FakeBotApi, callback_update, text_update

pytestmark = pytest.mark.rasa

SECRET = "live-Secret"
SHIPPED = DEMO["shipped"]


bot_api = service_fixture(FakeBotApi, "bot_api", scope="module")  # one Bot API server for the module's gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, live: LiveSystem, rasa_proxy: TcpProxy,
            bot_api: FakeBotApi) -> Iterator[ChannelGateway]:
    with ChannelGateway(tmp_path_factory.mktemp("tg-live"), rasa_proxy.url, rasa_channel_token=live.channel_token,
                        telegram_bot_token=bot_api.token, telegram_webhook_secret=SECRET,
                        telegram_api_base=bot_api.url, **LIVE_RETRIES) as gw:
        yield gw


def new_chat() -> int:
    return random.randint(10_000_000, 99_999_999)


class Chat:
    """One Telegram user talking to the bot; each step waits until the answer has been delivered."""

    def __init__(self, gw: ChannelGateway, api: FakeBotApi, language_code: str = "en") -> None:
        self.gw, self.api, self.id, self.language_code = gw, api, new_chat(), language_code
        self.update_id = random.randint(1, 10**9)

    @property
    def sender(self) -> str:
        return f"telegram:{self.id}"

    def send(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        before = len(self.messages())
        resp = httpx.post(f"{self.gw.url}/webhooks/telegram", json=update,
                          headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}, timeout=120)
        assert resp.status_code == 200, resp.text
        wait_for(lambda: self.gw.count("channel_inbound", "external_id = :e and done_at is not null",
                                       e=f"u{update['update_id']}"), timeout=120, what="the turn")
        wait_for(lambda: self.gw.count("channel_outbox", "sender_id = :s and status = 'pending'", s=self.sender) == 0,
                 timeout=60, what="delivery")
        return self.messages()[before:]

    def say(self, text: str) -> list[dict[str, Any]]:
        self.update_id += 1
        return self.send(text_update(self.update_id, self.id, text, self.language_code))

    def tap(self, callback_data: str) -> list[dict[str, Any]]:
        self.update_id += 1
        return self.send(callback_update(self.update_id, self.id, callback_data, self.language_code))

    def messages(self) -> list[dict[str, Any]]:
        with self.api.lock:
            return [m for m in self.api.sent if m["chat"]["id"] == self.id]


def joined(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in messages)


def test_order_status_in_russian_from_start_to_answer(gateway: ChannelGateway, bot_api: FakeBotApi, live: LiveSystem) -> None:
    chat = Chat(gateway, bot_api, language_code="ru")
    greeting = chat.say("/start")
    assert greeting and re.search(r"[А-Яа-я]", joined(greeting)), joined(greeting)
    chat.say("где мой заказ?")
    asked = chat.say(SHIPPED.order_id)
    assert SHIPPED.order_id in joined(asked)
    final = chat.say(SHIPPED.email)
    tracking = live.query("select tracking_number from orders where order_id = :o", o=SHIPPED.order_id)[0][0]
    assert "отправлен" in joined(final) and tracking in joined(final)
    conv = gateway.query("select channel, language from conversations where sender_id = :s", s=chat.sender)
    assert [tuple(r) for r in conv] == [("telegram", "ru")]


def test_knowledge_answer_with_link_and_feedback_button(gateway: ChannelGateway, bot_api: FakeBotApi, live: LiveSystem) -> None:
    chat = Chat(gateway, bot_api)
    answer = chat.say("how much is express delivery? and when is shipping free")
    stored = gateway.query("select m.type, m.text from messages m join conversations c on c.id = m.conversation_id "
                           "where c.sender_id = :s and m.direction = 'out'", s=chat.sender)
    assert any(r[0] == "kb_answer" for r in stored), f"the bot gave no knowledge-base answer: {stored}"
    raw = [c.params["text"] for c in bot_api.calls_to("sendMessage") if c.params["chat_id"] == chat.id]
    assert any('<a href="https://help.' in r for r in raw), raw  # the source, as a link
    keyboards = [m["reply_markup"]["inline_keyboard"] for m in answer if "reply_markup" in m]
    assert keyboards, joined(answer)
    helped = keyboards[-1][0][0]  # "That helped"
    thanks = chat.tap(helped["callback_data"])
    assert "helped" in joined(thanks).lower()
    assert any(c.params["callback_query_id"] == f"cq{chat.update_id}" for c in bot_api.calls_to("answerCallbackQuery"))
    rows = live.query("select helpful from kb_answers where sender_id = :s order by id", s=chat.sender)
    assert [r[0] for r in rows] == [None, 1]  # two questions, two answers: the second one was rated


def test_rasa_down_then_up_answers_once(gateway: ChannelGateway, bot_api: FakeBotApi, rasa_proxy: TcpProxy) -> None:
    chat = Chat(gateway, bot_api)
    rasa_proxy.down()
    try:
        chat.update_id += 1
        update = text_update(chat.update_id, chat.id, "hello there")
        for _ in range(2):  # Telegram redelivers: still one message
            resp = httpx.post(f"{gateway.url}/webhooks/telegram", json=update,
                              headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}, timeout=60)
            assert resp.status_code == 200
        wait_for(lambda: gateway.count("channel_inbound", "sender_id = :s and status = 'pending'", s=chat.sender),
                 what="the message waiting for Rasa")
        assert chat.messages() == []
    finally:
        rasa_proxy.up()
    wait_for(lambda: gateway.count("channel_inbound", "sender_id = :s and status = 'answered'", s=chat.sender),
             timeout=60, what="the retry")
    wait_for(lambda: gateway.count("channel_outbox", "sender_id = :s and status = 'pending'", s=chat.sender) == 0
             and chat.messages(), what="delivery")
    replies = gateway.count("messages m join conversations c on c.id = m.conversation_id",
                            "c.sender_id = :s and m.direction = 'out'", s=chat.sender)
    assert len(chat.messages()) == replies > 0  # every reply delivered, once
    assert gateway.count("messages m join conversations c on c.id = m.conversation_id",
                         "c.sender_id = :s and m.direction = 'in'", s=chat.sender) == 1


def test_route_is_wired_in_the_real_gateway(live: LiveSystem) -> None:
    """server.py includes the webhook; without TELEGRAM_BOT_TOKEN it says the channel is off."""
    resp = httpx.post(f"{live.url}/webhooks/telegram", json=text_update(1, 1, "hi"), timeout=10)
    assert resp.status_code == 404 and "TELEGRAM_BOT_TOKEN" in resp.json()["detail"]

