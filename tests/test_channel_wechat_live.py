"""WeChat end to end in safe (AES) mode: messages encrypted by wechatpy as WeChat sends them →
webhook → conversation service → the live Rasa → a passive reply within WeChat's 5 seconds, or
``success`` and the customer-service message API when the bot is slow or down."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

import pytest

from tests.conftest import LiveSystem
from tests.fakes.gateway import LIVE_RETRIES, ChannelGateway, wait_for
from tests.fakes.http import service_fixture
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.wechat_api import AES_KEY, APP_ID, APP_SECRET, TOKEN, FakeWeChatApi, WeChatPush, text_xml

pytestmark = pytest.mark.rasa


wx_api = service_fixture(FakeWeChatApi, "wx_api", scope="module")  # one WeChat API server for the module's gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, live: LiveSystem, rasa_proxy: TcpProxy,
            wx_api: FakeWeChatApi) -> Iterator[ChannelGateway]:
    settings = {"wechat_token": TOKEN, "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET,
                "wechat_encoding_aes_key": AES_KEY, "wechat_api_base": wx_api.url}
    # Generous so a loaded test machine still answers passively; the slow-path test lowers it.
    with ChannelGateway(tmp_path_factory.mktemp("wx-live"), rasa_proxy.url, rasa_channel_token=live.channel_token,
                        wechat_passive_timeout_s=20.0, **settings, **LIVE_RETRIES) as gw:
        yield gw


@pytest.fixture
def wechat(gateway: ChannelGateway) -> WeChatPush:
    return WeChatPush(f"{gateway.url}/webhooks/wechat", aes_key=AES_KEY)


def new_openid() -> str:
    return "o" + "".join(random.choices(string.ascii_letters + string.digits + "_-", k=27))


def msg_id() -> int:
    return random.randint(10**18, 2 * 10**18)


def out_count(gw: ChannelGateway, openid: str) -> int:
    return gw.count("messages m join conversations c on c.id = m.conversation_id",
                    "c.sender_id = :s and m.direction = 'out'", s=f"wechat:{openid}")


def test_fast_answer_is_a_passive_encrypted_reply(gateway: ChannelGateway, wechat: WeChatPush, wx_api: FakeWeChatApi) -> None:
    openid = new_openid()
    resp = wechat.post(text_xml(openid, "我的订单到哪了？", msg_id()), openid)
    reply = wechat.reply_text(resp)
    assert reply is not None and "订单号" in reply, resp.text
    assert wx_api.contents(openid) == []  # nothing through the customer-service API
    # Marked answered right after the reply was handed to the HTTP response.
    wait_for(lambda: gateway.count("channel_inbound", "sender_id = :s and status = 'answered'", s=f"wechat:{openid}"),
             what="the message marked answered")
    assert gateway.count("channel_outbox", "sender_id = :s", s=f"wechat:{openid}") == 0


def test_slow_answer_goes_through_the_customer_service_api_once(
    gateway: ChannelGateway, wechat: WeChatPush, wx_api: FakeWeChatApi, rasa_proxy: TcpProxy,
) -> None:
    openid = new_openid()
    channel = gateway.app.state.wechat
    channel.passive_timeout_s, rasa_proxy.delay_s = 0.3, 2.0  # the bot takes longer than WeChat waits
    try:
        xml = text_xml(openid, "我的订单到哪了？", msg_id())
        first = wechat.post(xml, openid)
        assert first.text == "success"
        retry = wechat.post(xml, openid)  # WeChat's retry of the same MsgId while we are still working
        assert retry.text == "success"
        contents = wait_for(lambda: out_count(gateway, openid) and len(wx_api.contents(openid)) == out_count(gateway, openid)
                            and wx_api.contents(openid), timeout=60, what="the customer-service message")
    finally:
        channel.passive_timeout_s, rasa_proxy.delay_s = 20.0, 0.0
    assert "订单号" in "\n".join(contents)
    assert gateway.count("channel_inbound", "sender_id = :s", s=f"wechat:{openid}") == 1
    assert gateway.count("channel_outbox", "sender_id = :s", s=f"wechat:{openid}") == out_count(gateway, openid)


def test_rasa_down_then_up_answers_through_the_api(
    gateway: ChannelGateway, wechat: WeChatPush, wx_api: FakeWeChatApi, rasa_proxy: TcpProxy,
) -> None:
    openid = new_openid()
    rasa_proxy.down()
    try:
        assert wechat.post(text_xml(openid, "你好", msg_id()), openid).text == "success"
        wait_for(lambda: gateway.count("channel_inbound", "sender_id = :s and status = 'pending'", s=f"wechat:{openid}"),
                 what="pending message")
    finally:
        rasa_proxy.up()
    contents = wait_for(lambda: out_count(gateway, openid) and len(wx_api.contents(openid)) == out_count(gateway, openid)
                        and wx_api.contents(openid), timeout=60, what="the answer after Rasa is back")
    assert any(ch >= "\u4e00" for ch in "".join(contents))  # answered in Chinese
