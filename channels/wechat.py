"""WeChat Official Account (公众号): `/webhooks/wechat`, passive replies and the customer-service API.

Inbound: ``GET`` is WeChat's server-URL check (``signature`` over token/timestamp/nonce → echo
``echostr``). Every ``POST`` is signature-checked (constant-time), then its XML is parsed with
defusedxml with DTDs forbidden, so entity expansion (billion laughs) and external entities are
refused with 400 before anything is stored. With ``WECHAT_ENCODING_AES_KEY`` set the account runs
in safe mode: messages must arrive encrypted (``encrypt_type=aes``, ``msg_signature`` over the
ciphertext) and are decrypted with wechatpy's ``WeChatCrypto``; passive replies are encrypted.

Text messages and the ``subscribe`` event go to the bot; voice with WeChat's speech recognition
is read as its text; images, voice, video, location, links get a polite "text only" notice in the
customer's language; other events (unsubscribe, menu clicks) are acknowledged. WeChat redelivers
after 5 s with the same ``MsgId``; the relay processes it once.

The 5-second rule: WeChat waits 5 s for the HTTP answer. If the bot's reply is ready within
``WECHAT_PASSIVE_TIMEOUT_S`` (4 s) and fits one message, it is the passive reply; otherwise we
answer ``success`` at once and the reply goes through the outbox to the customer-service message
API (``/cgi-bin/message/custom/send``), as do agents' replies during a handoff. The access token
is fetched from ``/cgi-bin/token``, cached until shortly before it expires, and refreshed at once
when WeChat says it is invalid or expired (40001, 40014, 42001).

Buttons: WeChat text messages have none, so options are shown numbered ("1. …") and a reply
that is just one of those numbers is sent to the bot as that button's payload.

Replays. WeChat's URL signature covers only token, timestamp and nonce, never the body: in
plaintext mode (明文模式, no AES key) anyone who saw one signed URL could post any message with it.
So plaintext mode is refused at start-up unless ``WECHAT_ALLOW_PLAINTEXT=true`` (the webhook then
answers 503 saying why), and every verified request's timestamp and nonce are remembered for as
long as its timestamp is accepted (``NonceCache``, both modes): the same pair again with the same
body (a WeChat retry) is acknowledged without being processed again, with any other body refused
(403). The cache is per gateway process; with several processes the MsgId de-duplication in the
database still keeps a message from being processed twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
import unicodedata
import xml.etree.ElementTree as StdET
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
from anyio import to_thread
from defusedxml import DefusedXmlException
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply

from channels import notices
from channels.models import ChannelButton
from channels.nonces import NonceCache
from channels.outbox import Delivery, Rejected, RetryLater
from channels.relay import ChannelMessage, ChannelRelay, PassiveSlot, render_script
from channels.telegram import read_limited
from conversations.service import OutboundMessage
from storage.db import transaction

__all__ = [
    "NonceCache", "WeChatApi", "WeChatApiError", "WeChatChannel", "WeChatDeliverer", "WeChatRenderer", "parse_xml",
    "router",
]

log = logging.getLogger(__name__)

CHANNEL = "wechat"
CUSTOM_SEND = "message/custom/send"
MAX_BODY_BYTES = 64 * 1024
MAX_CONTENT_BYTES = 2048  # WeChat's limit for one text message
OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOKEN_ERRORS = {40001, 40014, 42001}  # invalid / expired access token: refresh and resend
# The message itself can never be delivered: bad openid, unfollowed, outside the 48-hour window…
PERMANENT_ERRORS = {40003, 40008, 43004, 45002, 45015, 47001}
UNSUPPORTED_TYPES = {"image", "voice", "video", "shortvideo", "location", "link", "file", "music", "miniprogrampage"}
PLAINTEXT_REFUSED = ("WeChat plaintext mode (no WECHAT_ENCODING_AES_KEY) is refused: its signature covers nothing of the "
                     "message. Set WECHAT_ENCODING_AES_KEY (safe mode), or WECHAT_ALLOW_PLAINTEXT=true to accept it")

router = APIRouter(tags=["channels"])


# --- XML ---------------------------------------------------------------------------------------
def parse_xml(raw: bytes | str) -> dict[str, str]:
    """WeChat's flat ``<xml><Field>value</Field>…</xml>`` → dict. DTDs (and so entities) refused."""
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True)
    except DefusedXmlException as err:
        raise HTTPException(400, f"XML refused: {err.__class__.__name__} (DTDs and entities are not allowed)") from err
    except StdET.ParseError as err:
        raise HTTPException(400, f"malformed XML: {err}") from err
    if root.tag != "xml":
        raise HTTPException(400, "not a WeChat message: the root element must be <xml>")
    return {child.tag: (child.text or "") for child in root}


def _cdata_safe(text: str) -> str:
    """wechatpy writes content into CDATA unescaped; a literal ``]]>`` must not close it."""
    return text.replace("]]>", "]]]]><![CDATA[>")


# --- signatures and crypto ---------------------------------------------------------------------
def signature(*parts: str) -> str:
    """WeChat's SHA-1 over the sorted, concatenated parts (token, timestamp, nonce[, ciphertext])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# --- API client ----------------------------------------------------------------------------------
class WeChatApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatApi:
    """Access token (cached, refreshed) and the customer-service message API."""

    def __init__(self, app_id: str, app_secret: str, base_url: str = "https://api.weixin.qq.com",
                 timeout_s: float = 10.0) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        await self._http.aclose()

    async def access_token(self) -> str:
        async with self._lock:  # one fetch at a time: each fetch invalidates the previous token
            if self._token is None or time.monotonic() >= self._expires_at:
                resp = await self._http.get(f"{self.base_url}/cgi-bin/token", params={
                    "grant_type": "client_credential", "appid": self.app_id, "secret": self._secret})
                data = self._json(resp)
                if "access_token" not in data:
                    raise WeChatApiError(int(data.get("errcode", -1)), str(data.get("errmsg", "no access_token")))
                expires_in = float(data.get("expires_in", 7200))
                # Refresh a little early: WeChat's clock and ours disagree, and a send takes time.
                self._token = str(data["access_token"])
                self._expires_at = time.monotonic() + max(expires_in - min(300.0, expires_in / 10), 1.0)
            return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON (UTF-8, not \\u-escaped: WeChat shows escapes literally) with the access token.

        A token WeChat calls invalid or expired is dropped and the call made once more with a new one.
        """
        for attempt in (1, 2):
            token = await self.access_token()
            resp = await self._http.post(
                f"{self.base_url}/cgi-bin/{path}", params={"access_token": token},
                content=json.dumps(body, ensure_ascii=False).encode(), headers={"Content-Type": "application/json"},
            )
            data = self._json(resp)
            errcode = int(data.get("errcode", 0))
            if errcode in TOKEN_ERRORS and attempt == 1:
                self.invalidate(token)
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


class WeChatDeliverer:
    def __init__(self, api: WeChatApi) -> None:
        self.api = api

    async def deliver(self, delivery: Delivery) -> None:
        try:
            await self.api.post(delivery.method, delivery.body)
        except WeChatApiError as err:
            if err.errcode in PERMANENT_ERRORS:
                raise Rejected(str(err)) from err
            if err.errcode == 45047:  # too many messages to this customer without a reply from them
                raise RetryLater(str(err), after_s=60.0) from err
            raise RetryLater(str(err), channel_wide=True) from err  # busy (-1), quota, credentials, token
        except httpx.HTTPError as err:
            raise RetryLater(f"WeChat unreachable: {err.__class__.__name__}", channel_wide=True) from err


# --- rendering ------------------------------------------------------------------------------------
def _split_bytes(text: str, limit: int) -> list[str]:
    """Split at line or word breaks so each part is at most ``limit`` UTF-8 bytes."""
    parts: list[str] = []
    rest = text
    while len(rest.encode()) > limit:
        fit = len(rest.encode()[:limit].decode(errors="ignore"))
        window = rest[:fit]
        # A line, a space, or just after a sentence end (Chinese has no spaces between words).
        cut = max(window.rfind("\n"), window.rfind(" "), *(window.rfind(p) + 1 for p in "。！？；"))
        cut = cut if cut > 0 else fit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


class WeChatRenderer:
    """Messages → customer-service text messages; buttons become numbered options kept per customer."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def render(self, sender_id: str, language: str, messages: list[OutboundMessage]) -> list[Delivery]:
        openid = openid_of(sender_id)
        script = render_script(self._sessions, sender_id, language, messages)  # for our agent label and option hint
        options: list[dict[str, str]] = []
        texts: list[str] = []
        for message in messages:
            text = message.text or ""
            if (named := notices.agent_label(message.agent, language, script)) is not None:  # who writes (handoff)
                text = f"{named[0]}{named[1]}{text}"
            lines = [text] if text else []
            if message.sources:
                lines.append("\n".join(f"{s.get('title', '')} {s.get('url', '')}".strip() for s in message.sources))
            if message.buttons:
                start = len(options)
                options.extend(message.buttons)
                numbered = "\n".join(f"{start + n}. {b['title'] or b['payload']}"
                                     for n, b in enumerate(message.buttons, start=1))
                lines.append(f"{numbered}\n{notices.button_hint(language, script)}")
            if lines:
                texts.extend(_split_bytes("\n\n".join(lines), MAX_CONTENT_BYTES))
        self._remember(sender_id, options)
        return [Delivery(CUSTOM_SEND, {"touser": openid, "msgtype": "text", "text": {"content": t}}) for t in texts]

    def _remember(self, sender_id: str, options: list[dict[str, str]]) -> None:
        """The latest options replace older ones; a reply without options forgets them."""
        now = datetime.now(UTC)
        with transaction(self._sessions) as db:
            db.execute(delete(ChannelButton).where(ChannelButton.sender_id == sender_id,
                                                   ChannelButton.slot.is_not(None)))
            for n, option in enumerate(options, start=1):
                db.add(ChannelButton(sender_id=sender_id, slot=n, title=option["title"], payload=option["payload"],
                                     created_at=now))

    def choice(self, sender_id: str, text: str) -> str | None:
        """The payload of the option whose number the customer sent, if the text is just that number."""
        number = unicodedata.normalize("NFKC", text).strip().rstrip(".")
        if not number.isdigit() or len(number) > 3:
            return None
        with self._sessions() as db:
            return db.scalar(select(ChannelButton.payload).where(
                ChannelButton.sender_id == sender_id, ChannelButton.slot == int(number)))

    @staticmethod
    def passive_text(deliveries: list[Delivery]) -> str | None:
        """All replies as one passive message, or None when they do not fit in one."""
        text = "\n\n".join(d.body["text"]["content"] for d in deliveries)
        return text if deliveries and len(text.encode()) <= MAX_CONTENT_BYTES else None


def sender_id_of(openid: str) -> str:
    return f"{CHANNEL}:{openid}"


def openid_of(sender_id: str) -> str:
    channel, _, openid = sender_id.partition(":")
    if channel != CHANNEL or not OPENID.match(openid):
        raise ValueError(f"not a WeChat sender id: {sender_id!r}")
    return openid


# --- inbound ------------------------------------------------------------------------------------
@dataclass
class WeChatChannel:
    token: str
    app_id: str
    relay: ChannelRelay
    renderer: WeChatRenderer
    crypto: WeChatCrypto | None  # set in safe mode
    passive_timeout_s: float = 4.0
    max_clock_skew_s: int = 300
    default_language: str = "zh"
    allow_plaintext: bool = False  # WECHAT_ALLOW_PLAINTEXT: accept 明文模式 despite its unsigned bodies
    nonces: NonceCache | None = None

    def __post_init__(self) -> None:
        if self.crypto is None and not self.allow_plaintext:
            raise ValueError(PLAINTEXT_REFUSED)
        if self.max_clock_skew_s <= 0:
            raise ValueError("the WeChat clock-skew window must be positive: nonces are remembered that long")
        if self.nonces is None:
            self.nonces = NonceCache(self.max_clock_skew_s)

    def check_nonce(self, timestamp: str, nonce: str, content: bytes) -> bool:
        """After the request is verified: True when it is new, False for a retry of one already taken."""
        assert self.nonces is not None
        verdict = self.nonces.check(timestamp, nonce, content)
        if verdict == "replay":
            raise HTTPException(403, "replayed request: this timestamp and nonce were already used")
        return verdict == "new"

    def check_signature(self, signature_: str | None, timestamp: str | None, nonce: str | None) -> None:
        if not signature_ or not timestamp or not nonce:
            raise HTTPException(403, "signature, timestamp and nonce are required")
        if not _same(signature_, signature(self.token, timestamp, nonce)):
            raise HTTPException(403, "wrong signature")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise HTTPException(403, "timestamp is not a number")
        skew = abs(time.time() - int(timestamp))
        if skew > self.max_clock_skew_s:
            raise HTTPException(403, f"timestamp is {int(skew)} s away from our clock (replay?)")
        if len(nonce) > 64:
            raise HTTPException(403, "nonce is too long")

    def open(self, body: bytes, encrypt_type: str | None, msg_signature: str | None, timestamp: str,
             nonce: str) -> dict[str, str]:
        """Verified body → the message's fields (decrypted in safe mode)."""
        outer = parse_xml(body)
        if self.crypto is None:
            if encrypt_type == "aes":
                raise HTTPException(400, "encrypted message, but WECHAT_ENCODING_AES_KEY is not set")
            return outer
        if encrypt_type != "aes" or "Encrypt" not in outer:
            raise HTTPException(400, "safe mode: the message must be encrypted (encrypt_type=aes)")
        if not _same(msg_signature, signature(self.token, timestamp, nonce, outer["Encrypt"])):
            raise HTTPException(403, "wrong msg_signature")
        try:
            plain = self.crypto.decrypt_message({"Encrypt": outer["Encrypt"]}, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException) as err:
            raise HTTPException(403, f"message refused: {err.__class__.__name__}") from err
        except Exception as err:  # bad padding, bad base64: not something WeChat sent
            raise HTTPException(400, f"cannot decrypt: {err.__class__.__name__}") from err
        return parse_xml(plain)

    def to_message(self, fields: dict[str, str]) -> ChannelMessage | None:
        """WeChat fields → ChannelMessage; None for events we only acknowledge."""
        openid = fields.get("FromUserName", "")
        if not OPENID.match(openid):
            raise HTTPException(400, "FromUserName is not an openid")
        sender = sender_id_of(openid)
        msg_type = fields.get("MsgType", "")
        msg_id = fields.get("MsgId", "")
        if msg_type == "event":
            event = fields.get("Event", "").lower()
            if event != "subscribe":
                return None
            created = fields.get("CreateTime", "")
            if not created.isdigit():
                raise HTTPException(400, "CreateTime must be a number")
            return ChannelMessage(CHANNEL, f"ev:{openid}:{created}:subscribe", sender, payload="/greet",
                                  language=self._service_language(), language_hint=self.default_language)
        if not msg_id.isdigit():
            raise HTTPException(400, "MsgId must be a number")
        if msg_type == "text" or (msg_type == "voice" and fields.get("Recognition", "").strip()):
            text = fields.get("Content", "") if msg_type == "text" else fields["Recognition"]
            if not text.strip():
                return None
            payload = self.renderer.choice(sender, text)
            return ChannelMessage(CHANNEL, msg_id, sender, text=None if payload else text, payload=payload,
                                  language_hint=self.default_language)
        if msg_type in UNSUPPORTED_TYPES:
            return ChannelMessage(CHANNEL, msg_id, sender, language_hint=self.default_language, supported=False)
        raise HTTPException(400, f"unknown MsgType {msg_type!r}")

    def _service_language(self) -> str | None:
        code = self.default_language.lower()
        return next((x for x in ("en", "zh", "ru") if code.startswith(x)), None)

    def passive_reply(self, fields: dict[str, str], content: str, nonce: str, timestamp: str) -> str:
        reply = TextReply(source=fields.get("ToUserName", ""), target=fields["FromUserName"],
                          content=_cdata_safe(content)).render()
        if self.crypto is None:
            return reply
        return self.crypto.encrypt_message(reply, nonce, timestamp)


def _channel(request: Request) -> WeChatChannel:
    channel: WeChatChannel | None = getattr(request.app.state, "wechat", None)
    if channel is None:
        refused: str | None = getattr(request.app.state, "wechat_refused", None)
        if refused:
            raise HTTPException(503, refused)
        raise HTTPException(404, "the WeChat channel is not configured (WECHAT_TOKEN)")
    return channel


@router.get("/webhooks/wechat", response_class=PlainTextResponse)
async def wechat_verify(
    request: Request, signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
    echostr: str | None = None,
) -> str:
    """Server URL verification: echo ``echostr`` when the signature is ours."""
    channel = _channel(request)
    channel.check_signature(signature, timestamp, nonce)
    if echostr is None:
        raise HTTPException(400, "echostr is required")
    assert timestamp is not None and nonce is not None
    channel.check_nonce(timestamp, nonce, b"GET\n" + echostr.encode())  # its URL must not sign a POST later
    return echostr


@router.post("/webhooks/wechat", responses={403: {"description": "wrong signature"}, 400: {"description": "bad XML"}})
async def wechat_message(
    request: Request,
    signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
    encrypt_type: str | None = None, msg_signature: str | None = None,
    openid: str | None = Query(default=None),  # noqa: ARG001 - sent by WeChat; FromUserName is authoritative
) -> Response:
    channel = _channel(request)
    channel.check_signature(signature, timestamp, nonce)
    assert timestamp is not None and nonce is not None
    body = await read_limited(request, MAX_BODY_BYTES)
    fields = channel.open(body, encrypt_type, msg_signature, timestamp, nonce)
    if not channel.check_nonce(timestamp, nonce, b"POST\n" + body):
        log.info("WeChat request retried with the same nonce: acknowledged, not processed again")
        return PlainTextResponse("success")
    msg = await to_thread.run_sync(channel.to_message, fields)  # reads the numbered options
    if msg is None:
        return PlainTextResponse("success")
    slot = PassiveSlot(lambda deliveries: channel.renderer.passive_text(deliveries) is not None)
    channel.relay.spawn(channel.relay.handle(msg, slot))
    deliveries = await slot.wait(channel.passive_timeout_s)
    text = channel.renderer.passive_text(deliveries) if deliveries else None
    if text is None:
        return PlainTextResponse("success")
    return Response(channel.passive_reply(fields, text, nonce, timestamp), media_type="application/xml")
