"""Issue 16: WeChat's access token shared by the gateway replicas through Redis (channels/wechat_token.py).

WeChat keeps one token per appid and invalidates the previous one when a new one is fetched (after a
grace period: 300 s there, none in the strict fake here). Against the fake WeChat API
(tests/fakes/wechat_api.py, WeChat's wire format): replicas keeping their own token fight (each
fetch breaks the other's); two clients sharing Redis fetch it once, even when both need it at the
same moment; a refused token is replaced once, not once per replica; with Redis unreachable nothing
is fetched and the outbox is told to retry. Needs the Redis at 127.0.0.1:6379 (skipped without it,
except under CI=true).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from channels.outbox import Delivery, RetryLater
from channels.wechat_api import WeChatApi
from channels.wechat_token import LocalTokenStore, RedisTokenStore
from conversations.service import OutboundMessage
from scenarios.system import free_port
from tests.fakes.gateway import QUICK_RETRIES, ChannelGateway, closed_port_url, wait_for
from tests.fakes.wechat_api import APP_SECRET, TOKEN, FakeWeChatApi
from tests.redis_fixtures import redis_or_skip

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def send(text: str) -> Delivery:
    return Delivery("message/custom/send", {"touser": OPENID, "msgtype": "text", "text": {"content": text}})


@pytest.fixture
def wechat() -> Iterator[FakeWeChatApi]:
    """WeChat as strict as it gets: a token stops working as soon as a newer one is fetched; an appid of
    this test's own, so that no other test's token in the shared Redis is ever this one's."""
    with FakeWeChatApi(app_id=f"wx{uuid.uuid4().hex[:16]}", supersede_grace_s=0.0) as api:
        yield api


@pytest.fixture
def prefix() -> Iterator[str]:
    url = redis_or_skip()
    prefix = f"test-{uuid.uuid4().hex[:12]}:wechat:"
    yield prefix
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def replica(wechat: FakeWeChatApi, prefix: str | None) -> WeChatApi:
    """One gateway replica's client: its own token in memory, or the one in Redis (its own connection)."""
    store = RedisTokenStore(redis_or_skip(), wechat.app_id, prefix=prefix) if prefix else LocalTokenStore()
    return WeChatApi(wechat.app_id, APP_SECRET, wechat.url, 5.0, token_store=store)


async def test_replicas_with_their_own_tokens_fight(wechat: FakeWeChatApi) -> None:
    """Why the token is shared: each fetch invalidates the other replica's token."""
    a, b = replica(wechat, None), replica(wechat, None)
    try:
        await a.deliver(send("one"))
        await b.deliver(send("two"))  # b's fetch invalidates a's token
        await a.deliver(send("three"))  # refused with 40001: a fetches again, invalidating b's
        assert len(wechat.tokens_issued) == 3 and len(wechat.messages) == 3
    finally:
        await a.close()
        await b.close()


async def test_two_replicas_sharing_redis_fetch_the_token_once(wechat: FakeWeChatApi, prefix: str) -> None:
    wechat.token_delay_s = 0.3  # both replicas need a token while the first fetch is under way
    a, b = replica(wechat, prefix), replica(wechat, prefix)
    try:
        await asyncio.gather(
            *(client.deliver(send(f"{name}{n}")) for n in range(5) for name, client in (("a", a), ("b", b)))
        )
        assert len(wechat.tokens_issued) == 1
        assert sorted(wechat.contents(OPENID)) == sorted(f"{name}{n}" for n in range(5) for name in "ab")
        assert wechat.send_attempts == 10  # no send was refused: no replica ever held a superseded token
        await b.deliver(send("later"))
        assert len(wechat.tokens_issued) == 1
        ttl = redis.Redis.from_url(redis_or_skip()).pttl(f"{prefix}{wechat.app_id}:access_token")
        assert 0 < ttl <= (7200 - 300) * 1000  # kept as long as WeChat said, less the early-refresh margin
    finally:
        await a.close()
        await b.close()


async def test_a_refused_token_is_replaced_once_for_every_replica(wechat: FakeWeChatApi, prefix: str) -> None:
    a, b = replica(wechat, prefix), replica(wechat, prefix)
    try:
        await a.deliver(send("before"))
        wechat.expire_all_tokens()  # 42001 access_token expired, for both replicas at once
        await asyncio.gather(a.deliver(send("a after")), b.deliver(send("b after")))
        assert len(wechat.tokens_issued) == 2  # not one fetch per replica
        assert set(wechat.contents(OPENID)) == {"before", "a after", "b after"}
        # A replica reporting the old token does not remove the new one.
        old, new = wechat.tokens_issued
        await b.invalidate(old)
        assert await a.access_token() == new and len(wechat.tokens_issued) == 2
    finally:
        await a.close()
        await b.close()


async def test_without_redis_nothing_is_fetched_and_the_outbox_retries(wechat: FakeWeChatApi) -> None:
    store = RedisTokenStore(f"redis://127.0.0.1:{free_port()}/0", wechat.app_id, timeout_s=0.5)
    client = WeChatApi(wechat.app_id, APP_SECRET, wechat.url, 5.0, token_store=store)
    try:
        with pytest.raises(RetryLater) as retry:
            await client.deliver(send("hello"))
        assert retry.value.channel_wide and "Redis" in str(retry.value)
        assert wechat.tokens_issued == []  # no replica fetches a token of its own meanwhile
    finally:
        await client.close()


def test_a_redis_url_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="REDIS_URL must start with"):
        RedisTokenStore("http://127.0.0.1:6379", "wx1")


@pytest.fixture
def gateways(tmp_path: Path, wechat: FakeWeChatApi) -> Iterator[list[ChannelGateway]]:
    url = redis_or_skip()
    values: dict[str, Any] = {
        "wechat_token": TOKEN,
        "wechat_app_id": wechat.app_id,
        "wechat_app_secret": APP_SECRET,
        "wechat_api_base": wechat.url,
        "wechat_encoding_aes_key": "",
        "wechat_allow_plaintext": True,
        "redis_url": url,
        **QUICK_RETRIES,
    }
    started = [ChannelGateway(tmp_path / name, closed_port_url(), **values).start() for name in "ab"]
    yield started
    for gw in started:
        gw.stop()
    client = redis.Redis.from_url(url)
    client.delete(f"supportbot:wechat:{wechat.app_id}:access_token")
    client.close()


def test_two_gateways_with_redis_url_share_one_token(gateways: list[ChannelGateway], wechat: FakeWeChatApi) -> None:
    """The gateway's own wiring (REDIS_URL → the shared store): agents' replies sent by both replicas."""
    a, b = gateways
    for n in range(3):
        for name, gw in (("a", a), ("b", b)):
            gw.run(
                gw.app.state.pushers.push(
                    "wechat", f"wechat:{OPENID}", [OutboundMessage(type="agent", text=f"{name}{n}")]
                )
            )
    wait_for(lambda: len(wechat.messages) == 6, what="six messages delivered")
    assert len(wechat.tokens_issued) == 1 and wechat.send_attempts == 6
