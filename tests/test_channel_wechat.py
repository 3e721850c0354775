"""WeChat Official Account channel: messages signed and encrypted by wechatpy exactly as WeChat
sends them, a local WeChat API server (token + customer-service messages, WeChat's JSON), and
the real gateway channel stack. Rasa is down here (a closed port); answers from a live Rasa are
in test_channel_wechat_live.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conversations.service import OutboundMessage
from tests.fakes.gateway import QUICK_RETRIES, ChannelGateway, closed_port_url, wait_for
from tests.fakes.telegram_api import FakeBotApi
from tests.fakes.wechat_api import (
    AES_KEY,
    APP_ID,
    APP_SECRET,
    TOKEN,
    FakeWeChatApi,
    WeChatPush,
    event_xml,
    image_xml,
    text_xml,
)

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
SENDER = f"wechat:{OPENID}"

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[OPENID]]></FromUserName>
<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>&lol9;</Content>
<MsgId>6000000000000000001</MsgId></xml>""".replace("OPENID", OPENID)

XXE = """<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[OPENID]]></FromUserName>
<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>&xxe;</Content>
<MsgId>6000000000000000002</MsgId></xml>""".replace("OPENID", OPENID)


def make_gateway(tmp_path: Path, wx_api: FakeWeChatApi, safe: bool = True, **settings: Any) -> ChannelGateway:
    defaults: dict[str, Any] = {
        "wechat_token": TOKEN, "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET,
        "wechat_encoding_aes_key": AES_KEY if safe else "", "wechat_api_base": wx_api.url,
        "wechat_allow_plaintext": not safe,  # plaintext mode must be allowed explicitly
        **QUICK_RETRIES,
    }
    return ChannelGateway(tmp_path, closed_port_url(), **{**defaults, **settings}).start()


@pytest.fixture(params=["safe", "plain"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def gateway(tmp_path: Path, wx_api: FakeWeChatApi, mode: str) -> Iterator[ChannelGateway]:
    gw = make_gateway(tmp_path, wx_api, safe=mode == "safe")
    yield gw
    gw.stop()


@pytest.fixture
def wechat(gateway: ChannelGateway, mode: str) -> WeChatPush:
    return WeChatPush(f"{gateway.url}/webhooks/wechat", aes_key=AES_KEY if mode == "safe" else None)


def nothing_stored(gw: ChannelGateway) -> bool:
    return gw.count("channel_inbound") == 0 and gw.count("messages") == 0 and gw.count("conversations") == 0


# --- URL verification and signatures -------------------------------------------------------------------
def test_url_verification_echoes_echostr(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    resp = httpx.get(wechat.webhook_url, params={**wechat.query(), "echostr": "4837265920573"})
    assert resp.status_code == 200
    assert resp.text == "4837265920573"


def test_url_verification_with_wrong_signature_refused(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    params = {**wechat.query(), "echostr": "123"}
    params["signature"] = "0" * 40
    assert httpx.get(wechat.webhook_url, params=params).status_code == 403
    assert httpx.get(wechat.webhook_url, params={"echostr": "123"}).status_code == 403


def test_message_with_wrong_signature_refused(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    params, body = wechat.build(text_xml(OPENID, "你好", 1), OPENID)
    params["signature"] = "f" * 40
    resp = httpx.post(wechat.webhook_url, params=params, content=body)
    assert resp.status_code == 403
    assert nothing_stored(gateway)


def test_message_signed_with_another_token_refused(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    impostor = WeChatPush(wechat.webhook_url, token="not-our-token", aes_key=wechat.aes_key)
    assert impostor.post(text_xml(OPENID, "你好", 2), OPENID).status_code == 403
    assert nothing_stored(gateway)


def test_stale_timestamp_refused(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    old = str(int(time.time()) - 3600)
    params = {**wechat.query(timestamp=old), "openid": OPENID}
    resp = httpx.post(wechat.webhook_url, params=params, content=text_xml(OPENID, "hi", 3).encode())
    assert resp.status_code == 403
    assert "replay" in resp.json()["detail"]


def test_safe_mode_wrong_msg_signature_refused(tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    gw = make_gateway(tmp_path, wx_api, safe=True)
    try:
        push = WeChatPush(f"{gw.url}/webhooks/wechat", aes_key=AES_KEY)
        params, body = push.build(text_xml(OPENID, "hello", 4), OPENID)
        params["msg_signature"] = "a" * 40
        assert httpx.post(push.webhook_url, params=params, content=body).status_code == 403
        # Plain text to an account in safe mode is refused too.
        plain = WeChatPush(push.webhook_url)
        assert plain.post(text_xml(OPENID, "hello", 5), OPENID).status_code == 400
        assert nothing_stored(gw)
    finally:
        gw.stop()


# --- hostile XML ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "external-entity"])
def test_entity_attacks_refused_and_nothing_stored(gateway: ChannelGateway, wechat: WeChatPush, payload: str) -> None:
    resp = wechat.post(payload, OPENID)  # correctly signed (and in safe mode correctly encrypted)
    assert resp.status_code == 400
    assert "DTDs and entities are not allowed" in resp.json()["detail"]
    assert nothing_stored(gateway)


def test_entity_attack_in_the_outer_envelope_refused(tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    gw = make_gateway(tmp_path, wx_api, safe=True)
    try:
        push = WeChatPush(f"{gw.url}/webhooks/wechat", aes_key=AES_KEY)
        resp = httpx.post(push.webhook_url, params={**push.query(), "encrypt_type": "aes", "msg_signature": "x"},
                          content=BILLION_LAUGHS.encode())
        assert resp.status_code == 400
        assert nothing_stored(gw)
    finally:
        gw.stop()


@pytest.mark.parametrize("body", [b"<xml><Content>unclosed</xml>", b"not xml at all", b"<other/>"])
def test_malformed_xml_refused(gateway: ChannelGateway, wechat: WeChatPush, body: bytes) -> None:
    resp = wechat.post(body.decode(), OPENID)
    assert resp.status_code == 400
    assert nothing_stored(gateway)


# --- messages ------------------------------------------------------------------------------------------
def test_image_gets_a_polite_passive_reply_in_chinese(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    resp = wechat.post(image_xml(OPENID, 7001), OPENID)
    assert resp.status_code == 200
    assert wechat.reply_text(resp) == "抱歉，我只能阅读文字消息。请用文字输入您的问题。"
    assert gateway.count("messages") == 0


def test_duplicate_msgid_is_processed_once(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    xml = text_xml(OPENID, "我的订单到哪了？", 7002)
    for _ in range(3):  # WeChat retries the same MsgId after 5 s, twice
        resp = wechat.post(xml, OPENID)
        assert resp.status_code == 200 and resp.text == "success"  # Rasa is down: answered later
    assert gateway.count("channel_inbound") == 1
    rows = gateway.query("select m.text, m.status, c.sender_id, c.language from messages m "
                         "join conversations c on c.id = m.conversation_id")
    assert [tuple(r) for r in rows] == [("我的订单到哪了？", "pending", SENDER, "zh")]


def test_subscribe_event_greets_and_other_events_are_acknowledged(gateway: ChannelGateway, wechat: WeChatPush) -> None:
    assert wechat.post(event_xml(OPENID, "subscribe", created=1700000001), OPENID).text == "success"
    assert wechat.post(event_xml(OPENID, "subscribe", created=1700000001), OPENID).text == "success"  # retry
    assert wechat.post(event_xml(OPENID, "unsubscribe"), OPENID).text == "success"
    assert wechat.post(event_xml(OPENID, "CLICK"), OPENID).text == "success"
    rows = gateway.query("select payload, language from channel_inbound")
    assert [tuple(r) for r in rows] == [("/greet", "zh")]


# --- outbound: customer-service API, token, buttons ------------------------------------------------------
def push(gw: ChannelGateway, messages: list[OutboundMessage], sender: str = SENDER) -> None:
    """What the handoff module does with an agent's reply."""
    gw.run(gw.app.state.pushers.push("wechat", sender, messages))


def test_customer_service_messages_with_cached_token(gateway: ChannelGateway, wx_api: FakeWeChatApi) -> None:
    for n in range(3):
        push(gateway, [OutboundMessage(type="agent", text=f"您好，我是客服小王 ({n})")])
    wait_for(lambda: len(wx_api.messages) == 3, what="three messages")
    assert wx_api.contents(OPENID) == [f"您好，我是客服小王 ({n})" for n in range(3)]
    assert len(wx_api.tokens_issued) == 1  # cached, not fetched per message
    assert "客服小王".encode() in wx_api.raw_bodies[0]  # UTF-8, not \\u escapes (WeChat shows those literally)


def test_expired_token_is_refreshed_and_the_message_delivered(gateway: ChannelGateway, wx_api: FakeWeChatApi) -> None:
    push(gateway, [OutboundMessage(type="agent", text="first")])
    wait_for(lambda: wx_api.messages, what="first message")
    wx_api.expire_all_tokens()  # WeChat: 42001 access_token expired
    push(gateway, [OutboundMessage(type="agent", text="second")])
    wait_for(lambda: len(wx_api.messages) == 2, what="second message")
    assert len(wx_api.tokens_issued) == 2
    wait_for(lambda: gateway.count("channel_outbox", "status = 'sent'") == 2, what="rows sent")
    assert gateway.query("select attempts from channel_outbox order by id")[1][0] == 1  # refreshed within one attempt


def test_busy_wechat_is_retried(gateway: ChannelGateway, wx_api: FakeWeChatApi) -> None:
    wx_api.busy_next(2)
    push(gateway, [OutboundMessage(type="agent", text="try again")])
    wait_for(lambda: wx_api.messages, what="delivery after errcode -1")
    wait_for(lambda: gateway.count("channel_outbox", "status = 'sent'") == 1, what="row sent")
    assert gateway.query("select attempts from channel_outbox")[0][0] == 3


def test_unfollowed_customer_rejected_without_retries(gateway: ChannelGateway, wx_api: FakeWeChatApi) -> None:
    wx_api.unfollowed.add("gone_openid")
    push(gateway, [OutboundMessage(type="agent", text="hello?")], sender="wechat:gone_openid")
    wait_for(lambda: gateway.count("channel_outbox", "status = 'rejected'") == 1, what="rejection")
    assert "43004" in gateway.query("select last_error from channel_outbox")[0][0]


def test_buttons_are_numbered_and_a_number_reply_is_the_payload(
    gateway: ChannelGateway, wechat: WeChatPush, wx_api: FakeWeChatApi,
) -> None:
    push(gateway, [OutboundMessage(type="text", text="确定要取消订单吗？", buttons=[
        {"title": "确定取消", "payload": "/affirm"}, {"title": "不取消了", "payload": "/deny"}])])
    content = wait_for(lambda: wx_api.contents(OPENID), what="the options")[0]
    assert content == "确定要取消订单吗？\n\n1. 确定取消\n2. 不取消了\n请回复数字进行选择。"
    wechat.post(text_xml(OPENID, "２", 8001), OPENID)  # a full-width digit from a Chinese keyboard
    row = gateway.query("select text, payload from channel_inbound")[0]
    assert tuple(row) == (None, "/deny")
    wechat.post(text_xml(OPENID, "7", 8002), OPENID)  # not an option: plain text
    assert tuple(gateway.query("select text, payload from channel_inbound order by id")[1]) == ("7", None)


def test_long_replies_are_split_within_wechat_limits(gateway: ChannelGateway, wx_api: FakeWeChatApi) -> None:
    push(gateway, [OutboundMessage(type="kb_answer", text="退货政策说明。" * 300,
                                   sources=[{"title": "退货政策", "url": "https://shop.example/help/returns"}])])
    wait_for(lambda: gateway.count("channel_outbox", "status = 'pending'") == 0, what="all parts")
    assert gateway.count("channel_outbox", "status = 'rejected'") == 0
    contents = wx_api.contents(OPENID)
    assert len(contents) == 4 and all(len(c.encode()) <= 2048 for c in contents)
    assert all(c.startswith("退货政策说明。") for c in contents)  # split after a sentence end
    assert "".join(contents).replace("\n", "") == "退货政策说明。" * 300 + "退货政策 https://shop.example/help/returns"


def test_api_down_then_up_and_other_channels_unaffected(tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    bot_api = FakeBotApi().start()
    gw = make_gateway(tmp_path, wx_api, telegram_bot_token=bot_api.token, telegram_api_base=bot_api.url,
                      telegram_webhook_secret="s")
    try:
        wx_api.stop()  # WeChat's API is down
        for n in range(3):
            push(gw, [OutboundMessage(type="agent", text=f"消息 {n}")])
        gw.run(gw.app.state.pushers.push("telegram", "telegram:42", [OutboundMessage(type="agent", text="hi")]))
        wait_for(lambda: bot_api.texts(42) == ["hi"], what="Telegram delivery during the WeChat outage")
        wait_for(lambda: gw.count("channel_outbox", "channel = 'wechat' and attempts >= 2") >= 1, what="retries")
        assert gw.count("channel_outbox", "channel = 'wechat' and status = 'pending'") == 3
        wx_api.start()
        wait_for(lambda: len(wx_api.messages) == 3, what="WeChat delivery after the outage")
        assert wx_api.contents(OPENID) == ["消息 0", "消息 1", "消息 2"]
        wait_for(lambda: gw.count("channel_outbox", "status = 'sent'") == 4, what="all rows sent")
    finally:
        gw.stop()
        bot_api.stop()


def test_bad_credentials_keep_messages_pending(tmp_path: Path, wx_api: FakeWeChatApi) -> None:
    gw = make_gateway(tmp_path, wx_api, wechat_app_secret="wrong-secret")
    try:
        push(gw, [OutboundMessage(type="agent", text="kept")])
        wait_for(lambda: gw.count("channel_outbox", "attempts >= 2") == 1, what="retries")
        row = gw.query("select status, last_error from channel_outbox")[0]
        assert row[0] == "pending" and "40125" in row[1]
    finally:
        gw.stop()
