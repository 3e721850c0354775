"""An agent's name and the customer's script, end to end through the real handoff.

A customer writes on Telegram, WeChat or REST; a business-rule keyword hands the chat to a person
before Rasa is asked (Rasa is down here: a closed port); the agent claims, replies and resolves
through the real ``HandoffService``, whose messages reach Telegram and WeChat through the real
pushers, outbox and renderers (local Bot API / WeChat API servers). Checked on what the customer
receives:

- an agent's reply is labelled with the agent's display name, as the widget shows it
  ("<b>Alice</b>: …" on Telegram, "王偉：…" on WeChat);
- a zh-Hant customer reads no Simplified-only character in any notice (queue, agent joined,
  rating, option hint), on any channel; a character c is Simplified-only when OpenCC's
  ``to_traditional(c) != c``. A zh-Hans customer still reads Simplified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

import handoff
from channels import notices
from conversations import language as lang
from conversations.models import Conversation
from conversations.rasa_client import RasaClient
from conversations.service import ConversationService, InboundMessage, OutboundMessage
from handoff import texts
from handoff.accounts import identity
from handoff.models import Agent
from handoff.service import AgentIdentity, HandoffService
from settings import Settings
from storage.db import make_engine, make_session_factory, transaction, upgrade
from tests.fakes.gateway import QUICK_RETRIES, ChannelGateway, closed_port_url, wait_for
from tests.fakes.telegram_api import FakeBotApi, callback_update, photo_update, text_update
from tests.fakes.wechat_api import AES_KEY, APP_ID, APP_SECRET, TOKEN, FakeWeChatApi, WeChatPush, text_xml
from tests.helpers import latest_ticket

# A Wednesday, 11:00 in Shanghai: the Chinese queues are open.
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
# A legal threat ("打官司" is written alike in both scripts; "們" makes the message Traditional).
HANT_THREAT = "我要跟你們打官司"
HANS_THREAT = "我要跟你们打官司"
TG_SECRET = "s3cret-Token_for-tests"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
HANDOFF_SETTINGS: dict[str, Any] = {
    "handoff_admin_password": "admin-password-1",
    "handoff_demo_agent_password": "agent-password-1",
    "handoff_secret": "test-secret",
    "handoff_auto_assign": False,
    "demo": True,  # demo agents alice, wei, olga
}


def simplified_only(text: str) -> list[str]:
    """The characters of ``text`` a Traditional reader would not write (OpenCC s2t changes them)."""
    return [c for c in text if lang.to_traditional(c) != c]


def test_simplified_only_check_can_fail() -> None:
    assert simplified_only(texts.text("assigned", "zh", agent="王伟")) == ["伟", "对", "话"]
    assert simplified_only(lang.to_traditional(texts.text("assigned", "zh", agent="王伟"))) == []


# --- the handoff desk: the real HandoffService wired into a running gateway -----------------------------
@dataclass
class Desk:
    service: HandoffService
    engine: Engine
    run: Any  # runs a coroutine where the service lives

    def agent(self, username: str, display_name: str | None = None) -> AgentIdentity:
        with transaction(self.service._sessions) as db:
            a = db.scalar(select(Agent).where(Agent.username == username))
            assert a is not None
            a.status, a.last_seen_at = "online", NOW
            if display_name:
                a.display_name = display_name
            return identity(a)

    def ticket_id(self, sender_id: str) -> int:
        return latest_ticket(self.service._sessions, sender_id).id

    def script(self, sender_id: str) -> str | None:
        with self.service._sessions() as db:
            return db.scalar(select(Conversation.script).where(Conversation.sender_id == sender_id))

    def claim_reply_resolve(self, sender_id: str, agent: AgentIdentity, reply: str) -> None:
        ticket_id = self.ticket_id(sender_id)
        self.run(self.service.claim(agent, ticket_id))
        self.run(self.service.reply(agent, ticket_id, reply))
        self.run(self.service.resolve(agent, ticket_id))


def attach_desk(gw: ChannelGateway) -> Desk:
    """What server.py does with handoff.start: the service is the conversation service's turn hooks."""
    engine = make_engine(gw.settings.sqlalchemy_url)
    service, _outbox = handoff.build(make_session_factory(engine), gw.settings, pushers=gw.app.state.pushers)
    service.clock = lambda: NOW
    gw.app.state.conversations.hooks = service
    return Desk(service, engine, gw.run)


@pytest.fixture
def gateway(tmp_path: Path, bot_api: FakeBotApi, wx_api: FakeWeChatApi) -> Iterator[tuple[ChannelGateway, Desk]]:
    gw = ChannelGateway(
        tmp_path,
        closed_port_url(),
        telegram_bot_token=bot_api.token,
        telegram_webhook_secret=TG_SECRET,
        telegram_api_base=bot_api.url,
        wechat_token=TOKEN,
        wechat_app_id=APP_ID,
        wechat_app_secret=APP_SECRET,
        wechat_encoding_aes_key=AES_KEY,
        wechat_api_base=wx_api.url,
        **QUICK_RETRIES,
        **HANDOFF_SETTINGS,
    ).start()
    desk = attach_desk(gw)
    yield gw, desk
    gw.stop()
    desk.engine.dispose()


def telegram(gw: ChannelGateway, update: dict[str, Any]) -> None:
    resp = httpx.post(
        f"{gw.url}/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}, timeout=30
    )
    assert resp.status_code == 200


# --- Telegram ------------------------------------------------------------------------------------------
def test_telegram_agent_reply_carries_the_agents_name(
    gateway: tuple[ChannelGateway, Desk], bot_api: FakeBotApi
) -> None:
    gw, desk = gateway
    chat = 7001
    telegram(gw, text_update(1, chat, "I will sue you over this"))
    wait_for(lambda: bot_api.texts(chat), what="the escalation notice")
    alice = desk.agent("alice", display_name="Anna <Support>")  # escaped, not markup
    desk.claim_reply_resolve(f"telegram:{chat}", alice, "Your refund is approved.")
    sent = wait_for(lambda: [t for t in bot_api.texts(chat) if "refund is approved" in t], what="the agent's reply")
    assert sent == ["Anna <Support>: Your refund is approved."]
    raw = [c.params["text"] for c in bot_api.calls_to("sendMessage") if "refund is approved" in c.params["text"]]
    assert raw == ["<b>Anna &lt;Support&gt;</b>: Your refund is approved."]


def test_telegram_zh_hant_customer_reads_traditional_notices(
    gateway: tuple[ChannelGateway, Desk],
    bot_api: FakeBotApi,
) -> None:
    gw, desk = gateway
    chat, sender = 7002, "telegram:7002"
    wei = desk.agent("wei")  # display name 王伟, online for the Chinese queues
    telegram(gw, text_update(1, chat, HANT_THREAT, language_code="zh-hant"))
    wait_for(lambda: len(bot_api.texts(chat)) >= 2, what="the escalation notices")
    assert desk.script(sender) == "hant"
    desk.claim_reply_resolve(sender, wei, "好的，我来帮您看看。")  # the agent's own words are left as written
    wait_for(lambda: len(bot_api.texts(chat)) >= 5, what="joined, the reply and the rating question")
    telegram(gw, callback_update(2, chat, "/csat_5", language_code="zh-hant"))  # the customer rates: 5
    wait_for(lambda: len(bot_api.texts(chat)) >= 6, what="the comment question")
    telegram(gw, callback_update(3, chat, "/csat_skip", language_code="zh-hant"))
    sent = wait_for(lambda: len(bot_api.texts(chat)) >= 7 and bot_api.texts(chat), what="the thanks")

    notices_sent = [t for n, t in enumerate(sent) if n != 3]
    assert {t: simplified_only(t) for t in notices_sent} == {t: [] for t in notices_sent}
    assert sent[3] == "王偉：好的，我来帮您看看。"  # the name in Traditional too; the agent's words untouched
    assert notices_sent[:2] == [
        lang.to_traditional(texts.text("rule_escalated", "zh")),
        lang.to_traditional(texts.text("queued", "zh", position=1, minutes=6)),
    ]
    assert notices_sent[2:] == [
        lang.to_traditional(t)
        for t in (
            texts.text("assigned", "zh", agent="王伟"),
            texts.text("resolved", "zh", agent="王伟"),
            texts.text("csat_comment", "zh"),
            texts.text("csat_thanks", "zh"),
        )
    ]
    buttons = [
        b["text"]
        for c in bot_api.calls_to("sendMessage")
        if "reply_markup" in c.params
        for row in c.params["reply_markup"]["inline_keyboard"]
        for b in row
    ]
    assert lang.to_traditional(texts.text("csat_skip", "zh")) in buttons
    assert all(simplified_only(b) == [] for b in buttons)

    # The channel's own notices follow the conversation too, whatever Telegram's UI language says.
    telegram(gw, photo_update(4, chat, language_code="en"))
    wait_for(lambda: len(bot_api.texts(chat)) >= 8, what="the text-only notice")
    assert (
        bot_api.texts(chat)[-1]
        == notices.notice("unsupported", "zh", "hant")
        == lang.to_traditional(notices.NOTICES["unsupported"]["zh"])
    )
    assert simplified_only(bot_api.texts(chat)[-1]) == []


# --- WeChat --------------------------------------------------------------------------------------------
def test_wechat_zh_hant_customer_reads_traditional_notices_and_the_agents_name(
    gateway: tuple[ChannelGateway, Desk],
    wx_api: FakeWeChatApi,
) -> None:
    gw, desk = gateway
    sender = f"wechat:{OPENID}"
    wei = desk.agent("wei")
    push = WeChatPush(f"{gw.url}/webhooks/wechat", aes_key=AES_KEY)
    passive = push.reply_text(push.post(text_xml(OPENID, HANT_THREAT, 9001), OPENID))  # within WeChat's 5 s
    wait_for(lambda: desk.ticket_id(sender), what="the ticket")
    assert desk.script(sender) == "hant"
    desk.claim_reply_resolve(sender, wei, "您好，请稍等。")
    rating = wait_for(lambda: [c for c in wx_api.contents(OPENID) if "5." in c], what="the numbered rating options")

    contents = wx_api.contents(OPENID)
    replies = [c for c in contents if c.startswith("王偉：")]
    assert replies == ["王偉：您好，请稍等。"]  # the agent's name, in the customer's script and punctuation
    shown = [*([passive] if passive else []), *(c for c in contents if c not in replies)]
    escalated = [texts.text("rule_escalated", "zh"), texts.text("queued", "zh", position=1, minutes=6)]
    assert all(lang.to_traditional(t) in "\n\n".join(shown) for t in escalated)  # passive, or by the outbox
    assert lang.to_traditional(texts.text("assigned", "zh", agent="王伟")) in shown
    assert rating[0].endswith("\n" + lang.to_traditional(notices.button_hint("zh")))  # the option hint too
    assert {c: simplified_only(c) for c in shown} == {c: [] for c in shown}


def test_wechat_zh_hans_customer_keeps_simplified(gateway: tuple[ChannelGateway, Desk], wx_api: FakeWeChatApi) -> None:
    gw, desk = gateway
    sender = f"wechat:{OPENID}"
    wei = desk.agent("wei")
    WeChatPush(f"{gw.url}/webhooks/wechat", aes_key=AES_KEY).post(text_xml(OPENID, HANS_THREAT, 9002), OPENID)
    wait_for(lambda: desk.ticket_id(sender), what="the ticket")
    assert desk.script(sender) == "hans"
    desk.claim_reply_resolve(sender, wei, "您好，请稍等。")
    wait_for(lambda: [c for c in wx_api.contents(OPENID) if "5." in c], what="the rating options")
    contents = wx_api.contents(OPENID)
    assert "王伟：您好，请稍等。" in contents
    assert texts.text("assigned", "zh", agent="王伟") in contents
    assert any(c.endswith("请回复数字进行选择。") for c in contents)


# --- REST (and the widget's history, read from the same transcript) ------------------------------------
@pytest.fixture
def rest(tmp_path: Path) -> Iterator[tuple[ConversationService, Desk]]:
    settings = Settings(data_dir=tmp_path, rasa_url=closed_port_url(), rasa_token="t", **HANDOFF_SETTINGS)
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_session_factory(engine)
    conversations = ConversationService(sessions, RasaClient(str(settings.rasa_url), "t", 5.0))
    service, _outbox = handoff.build(sessions, settings)  # no pushers: plain REST reads its messages later
    service.clock = lambda: NOW
    conversations.hooks = service
    yield conversations, Desk(service, engine, None)
    engine.dispose()


@pytest.mark.parametrize("threat, script", [(HANT_THREAT, "hant"), (HANS_THREAT, "hans")])
async def test_rest_notices_follow_the_conversations_script(
    rest: tuple[ConversationService, Desk],
    threat: str,
    script: str,
) -> None:
    conversations, desk = rest
    sender = f"rest-{script}"
    wei = desk.agent("wei")
    first = await conversations.handle(InboundMessage(sender_id=sender, channel="rest", text=threat))
    assert first.state == "queued" and desk.script(sender) == script
    ticket_id = desk.ticket_id(sender)
    await desk.service.claim(wei, ticket_id)
    await desk.service.reply(wei, ticket_id, "您好，请稍等。")
    await desk.service.resolve(wei, ticket_id)
    rated = await conversations.handle(InboundMessage(sender_id=sender, channel="rest", text="5"))
    _state, later = desk.service.customer_messages(sender)  # GET /api/v1/conversations/{sender}/messages
    history = conversations.transcript(sender)  # what the widget shows on connect

    convert = lang.to_traditional if script == "hant" else (lambda s: s)
    name = convert("王伟")
    # REST cannot push: what the agent sent comes with the customer's next answer, then the answer.
    assert [m.text for m in first.messages + rated.messages] == [
        convert(texts.text("rule_escalated", "zh")),
        convert(texts.text("queued", "zh", position=1, minutes=6)),
        convert(texts.text("assigned", "zh", agent="王伟")),
        "您好，请稍等。",
        convert(texts.text("resolved", "zh", agent="王伟")),
        convert(texts.text("csat_comment", "zh")),
    ]
    assert [m.agent for m in rated.messages] == [None, name, None, None]
    assert rated.messages[-1].buttons == [{"title": convert(texts.text("csat_skip", "zh")), "payload": "/csat_skip"}]
    outgoing = [m for m in later if m["from"] != "customer"]
    assert [m["text"] for m in outgoing if m["type"] == "agent"] == ["您好，请稍等。"]
    assert [m.get("agent") for m in outgoing if m["type"] == "agent"] == [name]
    assert convert(texts.text("assigned", "zh", agent="王伟")) in [m["text"] for m in outgoing]
    assert [e["agent"] for e in history if e["type"] == "agent"] == [name]
    if script == "hant":
        notices_out = [m["text"] for m in outgoing if m["type"] != "agent"]
        assert {t: simplified_only(t) for t in notices_out} == {t: [] for t in notices_out}


# --- the pieces ------------------------------------------------------------------------------------------
def test_in_script_converts_gateway_texts_but_not_an_agents_words() -> None:
    messages = [
        OutboundMessage("handoff", "客服 王伟 已加入对话。"),
        OutboundMessage("handoff", "请评分", [{"title": "跳过", "payload": "/csat_skip"}]),
        OutboundMessage("kb_answer", "退货说明", sources=[{"title": "退货政策", "url": "https://x/r"}]),
        OutboundMessage("agent", "我来看看", agent="王伟"),
    ]
    hant = notices.in_script(messages, "zh", "hant")
    assert [m.text for m in hant] == ["客服 王偉 已加入對話。", "請評分", "退貨說明", "我来看看"]
    assert hant[1].buttons == [{"title": "跳過", "payload": "/csat_skip"}]
    assert hant[2].sources == [{"title": "退貨政策", "url": "https://x/r"}]
    assert hant[3].agent == "王偉"
    assert notices.in_script(messages, "zh", "hans") == messages
    assert notices.in_script(messages, "en", None) == messages


@pytest.mark.parametrize(
    "name, language, script, expected",
    [
        ("Anna", "en", None, ("Anna", ": ")),
        ("王伟", "zh", "hant", ("王偉", "：")),
        ("王伟", "zh", "hans", ("王伟", "：")),
        ("Ольга", "ru", None, ("Ольга", ": ")),
        (None, "en", None, None),  # no name: the text as it is (only handoff knows who wrote it)
        ("  ", "zh", "hant", None),
    ],
)
def test_agent_label_is_the_name_as_the_widget_shows_it(
    name: str | None, language: str, script: str | None, expected: tuple[str, str] | None
) -> None:
    assert notices.agent_label(name, language, script) == expected
