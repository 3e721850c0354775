"""WeChat's customer-service message API, as the WeChat channel (``channels/wechat.py``) uses it.

The access token is fetched from ``/cgi-bin/token``, cached until shortly before it expires, and
refreshed at once when WeChat says it is invalid or expired (40001, 40014, 42001). It is kept in
this process, or with ``redis_url`` (``REDIS_URL``) in Redis, where every gateway replica uses the
same one and only one replica at a time fetches a new one (channels/wechat_token.py: WeChat
invalidates the previous token at each fetch, so replicas fetching their own would fight). ``deliver`` turns
WeChat's answer into the outbox's verdict: the message can never be delivered (``Rejected``), or
retry later (this customer, or the whole channel).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from channels.outbox import Delivery, Rejected, RetryLater
from channels.wechat_token import TokenStore, TokenStoreUnavailable, token_store_for
from settings import ChannelsSettings

__all__ = ["WeChatApi", "WeChatApiError"]

_CHANNELS = ChannelsSettings()  # the defaults, written once in settings/sections.py (no environment read here)

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid / expired access token: refresh and resend
# The message itself can never be delivered: bad openid, unfollowed, outside the 48-hour window…
PERMANENT_ERRORS = {40003, 40008, 43004, 45002, 45015, 47001}


class WeChatApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatApi:
    """Access token (cached, refreshed; shared by the replicas through Redis) and the customer-service message API.

    ``redis_url``: keep the token in Redis for every gateway replica (``REDIS_URL``); empty: in this
    process. ``token_store``: another store (tests: Redis under a prefix of their own).
    """

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        base_url: str = _CHANNELS.wechat_api_base,
        timeout_s: float = _CHANNELS.api_timeout_s,
        *,
        redis_url: str = "",
        token_store: TokenStore | None = None,
    ) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout_s)
        # A fetch takes at most a few timeouts (connect, read): the Redis lock outlives it.
        self.tokens = token_store or token_store_for(redis_url, app_id, refresh_timeout_s=4 * timeout_s + 5)

    async def close(self) -> None:
        await self._http.aclose()
        await self.tokens.aclose()

    async def access_token(self) -> str:
        try:
            return await self.tokens.get(self._fetch_token)
        except TokenStoreUnavailable as err:  # the outbox retries later (WeChatApiError: channel-wide)
            raise WeChatApiError(-1, str(err)) from err

    async def _fetch_token(self) -> tuple[str, float]:
        """A new token from WeChat (invalidating the previous one) and how long to use it."""
        resp = await self._http.get(
            f"{self.base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret},
        )
        data = self._json(resp)
        if "access_token" not in data:
            raise WeChatApiError(int(data.get("errcode", -1)), str(data.get("errmsg", "no access_token")))
        expires_in = float(data.get("expires_in", 7200))
        # Refresh a little early: WeChat's clock and ours disagree, and a send takes time.
        return str(data["access_token"]), max(expires_in - min(300.0, expires_in / 10), 1.0)

    async def invalidate(self, token: str) -> None:
        await self.tokens.invalidate(token)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON (UTF-8, not \\u-escaped: WeChat shows escapes literally) with the access token.

        A token WeChat calls invalid or expired is dropped and the call made once more with a new one.
        """
        for attempt in (1, 2):
            token = await self.access_token()
            resp = await self._http.post(
                f"{self.base_url}/cgi-bin/{path}",
                params={"access_token": token},
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json"},
            )
            data = self._json(resp)
            errcode = int(data.get("errcode", 0))
            if errcode in TOKEN_ERRORS and attempt == 1:
                await self.invalidate(token)
                continue
            if errcode != 0:
                raise WeChatApiError(errcode, str(data.get("errmsg", "")))
            return data
        raise AssertionError("unreachable")

    @staticmethod
    def _json(resp: httpx.Response) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError as err:
            raise WeChatApiError(-1, f"HTTP {resp.status_code}, not JSON: {resp.text[:200]!r}") from err
        if not isinstance(data, dict):
            raise WeChatApiError(-1, f"HTTP {resp.status_code}, unexpected answer")
        return data

    async def deliver(self, delivery: Delivery) -> None:
        """One outbox row → the customer-service API, with WeChat's answer as the outbox's verdict."""
        try:
            await self.post(delivery.method, delivery.body)
        except WeChatApiError as err:
            if err.errcode in PERMANENT_ERRORS:
                raise Rejected(str(err)) from err
            if err.errcode == 45047:  # too many messages to this customer without a reply from them
                raise RetryLater(str(err), after_s=60.0) from err
            raise RetryLater(str(err), channel_wide=True) from err  # busy (-1), quota, credentials, token
        except httpx.HTTPError as err:
            raise RetryLater(f"WeChat unreachable: {err.__class__.__name__}", channel_wide=True) from err
