"""WeChat's side, both directions.

``FakeWeChatApi``: the API endpoints the gateway calls, in WeChat's JSON format:
``GET /cgi-bin/token`` → ``{"access_token": ..., "expires_in": 7200}`` (or ``{"errcode": 40013, ...}``),
``POST /cgi-bin/message/custom/send?access_token=...`` → ``{"errcode": 0, "errmsg": "ok"}``, with
40001 for an unknown token, 42001 for an expired one, 43004 for a customer who unfollowed, 45002
for content over 2,048 bytes, -1 "system error" when told to be busy. With ``supersede_grace_s`` set,
as WeChat does (one token per appid; 300 s there), a token stops working that long after a newer
one was fetched: 40001 "access_token is invalid or not latest". ``token_delay_s`` makes each token
fetch that slow (two fetches at once overlap).

``WeChatPush``: what WeChat's servers POST to our webhook: XML messages signed with the token and,
in safe mode, encrypted with wechatpy's ``WeChatCrypto`` exactly as WeChat does (ciphertext in
``<Encrypt>``, ``msg_signature`` in the query string). Every push gets a fresh timestamp and nonce
unless a test passes them (to replay a captured request).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import httpx
from wechatpy.crypto import WeChatCrypto

from tests.fakes.http import FakeService

APP_ID = "wx1234567890abcdef"
APP_SECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "wechat-test-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as the console issues them
ACCOUNT = "gh_0123456789ab"


@dataclass
class FakeWeChatApi(FakeService):
    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    expires_in: int = 7200
    tokens_issued: list[str] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)
    unfollowed: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)  # accepted custom messages (parsed JSON)
    raw_bodies: list[bytes] = field(default_factory=list)
    send_attempts: int = 0
    supersede_grace_s: float | None = None  # None: every token issued stays valid
    token_delay_s: float = 0.0
    superseded_at: dict[str, float] = field(default_factory=dict)  # token -> when a newer one was issued
    _busy: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    def busy_next(self, times: int) -> None:
        with self.lock:
            self._busy += times

    def expire_all_tokens(self) -> None:
        with self.lock:
            self.expired.update(self.tokens_issued)

    def contents(self, openid: str | None = None) -> list[str]:
        with self.lock:
            return [m["text"]["content"] for m in self.messages if openid is None or m["touser"] == openid]

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and path == "/cgi-bin/token":
            return self.json_response(200, self._token(query))
        if method == "POST" and path == "/cgi-bin/message/custom/send":
            return self.json_response(200, self._custom_send(query, body))
        return self.json_response(404, {"errcode": 40066, "errmsg": "invalid url"})

    def _token(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.app_id:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.app_secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        if self.token_delay_s:
            threading.Event().wait(self.token_delay_s)
        with self.lock:
            token = f"ACCESS_TOKEN_{len(self.tokens_issued) + 1}_{secrets.token_hex(8)}"
            now = time.monotonic()
            for older in self.tokens_issued:
                self.superseded_at.setdefault(older, now)
            self.tokens_issued.append(token)
        return {"access_token": token, "expires_in": self.expires_in}

    def _superseded(self, token: str) -> bool:
        since = self.superseded_at.get(token)
        return self.supersede_grace_s is not None and since is not None and time.monotonic() - since >= self.supersede_grace_s

    def _custom_send(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        with self.lock:
            self.send_attempts += 1
            token = query.get("access_token", "")
            if token in self.expired:
                return {"errcode": 42001, "errmsg": "access_token expired"}
            if token not in self.tokens_issued or self._superseded(token):
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
            if self._busy:
                self._busy -= 1
                return {"errcode": -1, "errmsg": "system error"}
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return {"errcode": 47001, "errmsg": "data format error"}
            if data.get("msgtype") != "text" or "content" not in (data.get("text") or {}):
                return {"errcode": 40008, "errmsg": "invalid message type"}
            if data.get("touser") in self.unfollowed:
                return {"errcode": 43004, "errmsg": "require subscribe"}
            if len(data["text"]["content"].encode()) > 2048:
                return {"errcode": 45002, "errmsg": "content size out of limit"}
            self.messages.append(data)
            self.raw_bodies.append(body)
        return {"errcode": 0, "errmsg": "ok"}


def _sign(*parts: str) -> str:
    import hashlib

    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def text_xml(openid: str, content: str, msg_id: int, account: str = ACCOUNT) -> str:
    return (f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def image_xml(openid: str, msg_id: int, account: str = ACCOUNT) -> str:
    return (f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/x.jpg]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId>"
            f"<MsgId>{msg_id}</MsgId></xml>")


def event_xml(openid: str, event: str, created: int | None = None, account: str = ACCOUNT) -> str:
    return (f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{escape(event)}]]></Event></xml>")


@dataclass
class WeChatPush:
    """Signs (and in safe mode encrypts) messages and POSTs them to our webhook as WeChat does."""

    webhook_url: str
    token: str = TOKEN
    aes_key: str | None = None
    app_id: str = APP_ID

    @property
    def crypto(self) -> WeChatCrypto:
        assert self.aes_key is not None
        return WeChatCrypto(self.token, self.aes_key, self.app_id)

    def query(self, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or secrets.token_hex(5)
        return {"signature": _sign(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}

    def build(self, xml: str, openid: str, timestamp: str | None = None,
              nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """Query string and body of one push (a fresh timestamp and nonce unless given, as WeChat does)."""
        params = {**self.query(timestamp, nonce), "openid": openid}
        if self.aes_key is None:
            return params, xml.encode()
        sealed = SafeET.fromstring(self.crypto.encrypt_message(xml, params["nonce"], params["timestamp"]))
        encrypt = sealed.findtext("Encrypt") or ""
        params.update(encrypt_type="aes", msg_signature=sealed.findtext("MsgSignature") or "")
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return params, body.encode()

    def post(self, xml: str, openid: str, timeout: float = 30.0) -> httpx.Response:
        params, body = self.build(xml, openid)
        return httpx.post(self.webhook_url, params=params, content=body,
                          headers={"Content-Type": "text/xml"}, timeout=timeout)

    def reply_text(self, response: httpx.Response) -> str | None:
        """The passive reply's Content (decrypted in safe mode), or None for ``success``/empty."""
        if response.text in ("success", ""):
            return None
        root = SafeET.fromstring(response.content)
        if self.aes_key is not None:
            encrypt = root.findtext("Encrypt") or ""
            timestamp, nonce = root.findtext("TimeStamp") or "", root.findtext("Nonce") or ""
            assert root.findtext("MsgSignature") == _sign(self.token, timestamp, nonce, encrypt)
            root = SafeET.fromstring(self.crypto.decrypt_message(response.text, root.findtext("MsgSignature"),
                                                                 timestamp, nonce))
        assert root.findtext("MsgType") == "text"
        return root.findtext("Content")
