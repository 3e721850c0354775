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
API (``/cgi-bin/message/custom/send``, ``channels/wechat_api.py``), as do agents' replies during a
handoff.

Buttons: WeChat text messages have none, so options are shown numbered ("1. …") and a reply
that is just one of those numbers is sent to the bot as that button's payload.

Replays. WeChat's URL signature covers only token, timestamp and nonce, never the body: in
plaintext mode (明文模式, no AES key) anyone who saw one signed URL could post any message with it.
So plaintext mode is refused at start-up unless ``WECHAT_ALLOW_PLAINTEXT=true`` (the webhook then
answers 503 saying why), and every verified request's timestamp and nonce are remembered for as
long as its timestamp is accepted (``NonceCache``, both modes): the same pair again with the same
body (a WeChat retry) is acknowledged without being processed again, with any other body refused
(403). The cache is per gateway process, or in Redis for every replica when ``REDIS_URL`` is set
(``RedisNonceCache``: a replay sent to another replica is refused too); the MsgId de-duplication in the
database also keeps a message from being processed twice.

A turn: ``wechat_message`` → ``WeChatChannel.check_signature`` → ``open`` → ``check_nonce`` →
``receive`` (``parse``; ``ChannelRelay.reply_within`` the passive window → ``WeChatChannel.render``)
→ the passive reply, or ``success`` and outbox → ``WeChatChannel.deliver``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import unicodedata
import xml.etree.ElementTree as StdET
from datetime import UTC, datetime

import defusedxml.ElementTree as SafeET
from anyio import to_thread
from defusedxml import DefusedXmlException
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply

from api_errors import ERROR_RESPONSES, ApiError, ErrorBody
from channels import notices
from channels.channel import ChannelMessage, PushChannel, render_script, service_language
from channels.models import ChannelButton
from channels.nonces import NonceCache, NonceStoreUnavailable, RedisNonceCache, nonce_cache
from channels.outbox import Delivery
from channels.relay import ChannelRelay
from channels.text import split, utf8
from channels.webhook import channel_on, read_limited, same
from channels.wechat_api import WeChatApi, WeChatApiError
from conversations.service import OutboundMessage
from settings import ChannelsSettings, Settings
from storage.db import transaction

__all__ = ["NonceCache", "WeChatApi", "WeChatApiError", "WeChatChannel", "parse_xml", "router"]

log = logging.getLogger(__name__)
_CHANNELS = ChannelsSettings()  # the defaults, written once in settings/sections.py (no environment read here)

CHANNEL = "wechat"
CUSTOM_SEND = "message/custom/send"
MAX_BODY_BYTES = 64 * 1024
MAX_CONTENT_BYTES = 2048  # WeChat's limit for one text message
OPENID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
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
        raise ApiError(400, f"XML refused: {err.__class__.__name__} (DTDs and entities are not allowed)") from err
    except StdET.ParseError as err:
        raise ApiError(400, f"malformed XML: {err}") from err
    if root.tag != "xml":
        raise ApiError(400, "not a WeChat message: the root element must be <xml>")
    return {child.tag: (child.text or "") for child in root}


def _cdata_safe(text: str) -> str:
    """wechatpy writes content into CDATA unescaped; a literal ``]]>`` must not close it."""
    return text.replace("]]>", "]]]]><![CDATA[>")


# --- signatures and crypto ---------------------------------------------------------------------
def signature(*parts: str) -> str:
    """WeChat's SHA-1 over the sorted, concatenated parts (token, timestamp, nonce[, ciphertext])."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def sender_id_of(openid: str) -> str:
    return f"{CHANNEL}:{openid}"


def openid_of(sender_id: str) -> str:
    channel, _, openid = sender_id.partition(":")
    if channel != CHANNEL or not OPENID.match(openid):
        raise ValueError(f"not a WeChat sender id: {sender_id!r}")
    return openid


# --- the channel ----------------------------------------------------------------------------------
class WeChatChannel(PushChannel):
    """Signed (safe mode: encrypted) XML in; a passive reply or customer-service text messages out.
    Buttons become numbered options, kept per customer."""

    name = CHANNEL
    router = router
    not_configured = "the WeChat channel is not configured (WECHAT_TOKEN)"

    def __init__(
        self, *, token: str, api: WeChatApi, sessions: sessionmaker[Session], relay: ChannelRelay,
        crypto: WeChatCrypto | None, passive_timeout_s: float = _CHANNELS.wechat_passive_timeout_s,
        max_clock_skew_s: int = _CHANNELS.wechat_max_clock_skew_s, default_language: str = _CHANNELS.wechat_default_language,
        allow_plaintext: bool = _CHANNELS.wechat_allow_plaintext, nonces: NonceCache | RedisNonceCache | None = None,
    ) -> None:
        super().__init__(relay, sessions, default_language)
        if max_clock_skew_s <= 0:
            raise ValueError("the WeChat clock-skew window must be positive: nonces are remembered that long")
        self.token = token
        self.api = api
        self.crypto = crypto  # set in safe mode
        self.passive_timeout_s = passive_timeout_s
        self.max_clock_skew_s = max_clock_skew_s
        self.nonces = nonces or NonceCache(max_clock_skew_s)
        # WECHAT_ALLOW_PLAINTEXT: accept 明文模式 despite its unsigned bodies; else the webhook refuses it.
        self.refused = PLAINTEXT_REFUSED if crypto is None and not allow_plaintext else None

    @classmethod
    def from_settings(cls, settings: Settings, sessions: sessionmaker[Session], relay: ChannelRelay) -> WeChatChannel | None:
        token = settings.wechat_token.get_secret_value()
        if not token:
            return None
        aes_key = settings.wechat_encoding_aes_key.get_secret_value()
        skew = settings.wechat_max_clock_skew_s or settings.webhook_max_skew_s
        channel = cls(
            token=token, sessions=sessions, relay=relay,
            api=WeChatApi(settings.wechat_app_id, settings.wechat_app_secret.get_secret_value(),
                          settings.wechat_api_base, settings.channel_api_timeout_s,
                          redis_url=settings.redis_url),  # the access token shared by the replicas
            crypto=WeChatCrypto(token, aes_key, settings.wechat_app_id) if aes_key else None,
            passive_timeout_s=settings.wechat_passive_timeout_s,
            # The clock-skew window is also how long nonces are remembered, so it cannot be off.
            max_clock_skew_s=skew,
            default_language=settings.wechat_default_language, allow_plaintext=settings.wechat_allow_plaintext,
            nonces=nonce_cache(settings, skew),  # in Redis, shared by the replicas, when REDIS_URL is set
        )
        if channel.refused:
            log.error(PLAINTEXT_REFUSED + "; /webhooks/wechat answers 503 until then")
        elif channel.crypto is None:
            log.warning("WeChat plaintext mode allowed (WECHAT_ALLOW_PLAINTEXT): message bodies are not signed")
        return channel

    # --- inbound: verify, parse, the passive reply ------------------------------------------------
    def check_signature(self, signature_: str | None, timestamp: str | None, nonce: str | None) -> None:
        if not signature_ or not timestamp or not nonce:
            raise ApiError(403, "signature, timestamp and nonce are required")
        if not same(signature_, signature(self.token, timestamp, nonce)):
            raise ApiError(403, "wrong signature")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise ApiError(403, "timestamp is not a number")
        skew = abs(time.time() - int(timestamp))
        if skew > self.max_clock_skew_s:
            raise ApiError(403, f"timestamp is {int(skew)} s away from our clock (replay?)")
        if len(nonce) > 64:
            raise ApiError(403, "nonce is too long")

    async def check_nonce(self, timestamp: str, nonce: str, content: bytes) -> bool:
        """After the request is verified: True when it is new, False for a retry of one already taken."""
        try:
            verdict = await self.nonces.acheck(timestamp, nonce, content)
        except NonceStoreUnavailable as err:
            raise ApiError(503, "replay protection is unavailable for a moment (Redis); retry") from err
        if verdict == "replay":
            raise ApiError(403, "replayed request: this timestamp and nonce were already used")
        return verdict == "new"

    def open(self, body: bytes, encrypt_type: str | None, msg_signature: str | None, timestamp: str,
             nonce: str) -> dict[str, str]:
        """Verified body → the message's fields (decrypted in safe mode)."""
        outer = parse_xml(body)
        if self.crypto is None:
            if encrypt_type == "aes":
                raise ApiError(400, "encrypted message, but WECHAT_ENCODING_AES_KEY is not set")
            return outer
        if encrypt_type != "aes" or "Encrypt" not in outer:
            raise ApiError(400, "safe mode: the message must be encrypted (encrypt_type=aes)")
        if not same(msg_signature, signature(self.token, timestamp, nonce, outer["Encrypt"])):
            raise ApiError(403, "wrong msg_signature")
        try:
            plain = self.crypto.decrypt_message({"Encrypt": outer["Encrypt"]}, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException) as err:
            raise ApiError(403, f"message refused: {err.__class__.__name__}") from err
        except Exception as err:  # bad padding, bad base64: not something WeChat sent
            raise ApiError(400, f"cannot decrypt: {err.__class__.__name__}") from err
        return parse_xml(plain)

    async def receive(self, fields: dict[str, str], nonce: str, timestamp: str) -> Response:
        """One verified message → the HTTP answer: the bot's reply if ready in the passive window, else ``success``."""
        msg = await to_thread.run_sync(self.parse, fields)  # reads the numbered options
        if msg is None:
            return PlainTextResponse("success")
        deliveries = await self.relay.reply_within(msg, self.passive_timeout_s)  # the 5-second rule
        text = self.passive_text(deliveries) if deliveries else None
        if text is None:  # answered through the outbox (now or when the bot is done)
            return PlainTextResponse("success")
        return Response(self.passive_reply(fields, text, nonce, timestamp), media_type="application/xml")

    def parse(self, fields: dict[str, str]) -> ChannelMessage | None:
        """WeChat fields → ChannelMessage; None for events we only acknowledge."""
        openid = fields.get("FromUserName", "")
        if not OPENID.match(openid):
            raise ApiError(400, "FromUserName is not an openid")
        sender = sender_id_of(openid)
        msg_type = fields.get("MsgType", "")
        msg_id = fields.get("MsgId", "")
        hint = self.default_language
        if msg_type == "event":
            event = fields.get("Event", "").lower()
            if event != "subscribe":
                return None
            created = fields.get("CreateTime", "")
            if not created.isdigit():
                raise ApiError(400, "CreateTime must be a number")
            return ChannelMessage(CHANNEL, f"ev:{openid}:{created}:subscribe", sender, payload="/greet",
                                  language=service_language(hint), language_hint=hint)
        if not msg_id.isdigit():
            raise ApiError(400, "MsgId must be a number")
        if msg_type == "text" or (msg_type == "voice" and fields.get("Recognition", "").strip()):
            text = fields.get("Content", "") if msg_type == "text" else fields["Recognition"]
            if not text.strip():
                return None
            payload = self.choice(sender, text)
            return ChannelMessage(CHANNEL, msg_id, sender, text=None if payload else text, payload=payload,
                                  language_hint=hint)
        if msg_type in UNSUPPORTED_TYPES:
            return ChannelMessage(CHANNEL, msg_id, sender, language_hint=hint, supported=False)
        raise ApiError(400, f"unknown MsgType {msg_type!r}")

    def choice(self, sender_id: str, text: str) -> str | None:
        """The payload of the option whose number the customer sent, if the text is just that number."""
        number = unicodedata.normalize("NFKC", text).strip().rstrip(".")
        if not number.isdigit() or len(number) > 3:
            return None
        with self._sessions() as db:
            return db.scalar(select(ChannelButton.payload).where(
                ChannelButton.sender_id == sender_id, ChannelButton.slot == int(number)))

    def passive_reply(self, fields: dict[str, str], content: str, nonce: str, timestamp: str) -> str:
        reply = TextReply(source=fields.get("ToUserName", ""), target=fields["FromUserName"],
                          content=_cdata_safe(content)).render()
        if self.crypto is None:
            return reply
        return self.crypto.encrypt_message(reply, nonce, timestamp)

    # --- outbound: render, deliver ----------------------------------------------------------------
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
                texts.extend(split("\n\n".join(lines), MAX_CONTENT_BYTES, utf8, paragraphs=False))
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

    @staticmethod
    def passive_text(deliveries: list[Delivery]) -> str | None:
        """All replies as one passive message, or None when they do not fit in one."""
        text = "\n\n".join(d.body["text"]["content"] for d in deliveries)
        return text if deliveries and len(text.encode()) <= MAX_CONTENT_BYTES else None

    def passive_fits(self, deliveries: list[Delivery]) -> bool:
        return self.passive_text(deliveries) is not None

    async def deliver(self, delivery: Delivery) -> None:
        await self.api.deliver(delivery)

    async def close(self) -> None:
        await self.api.close()
        await self.nonces.aclose()


@router.get("/webhooks/wechat", response_class=PlainTextResponse, responses={
    **ERROR_RESPONSES, 200: {"content": {"text/plain": {}}, "description": "the echostr, echoed"}})
async def wechat_verify(
    request: Request, signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
    echostr: str | None = None,
) -> str:
    """Server URL verification: echo ``echostr`` when the signature is ours."""
    channel = channel_on(request, WeChatChannel)
    channel.check_signature(signature, timestamp, nonce)
    if echostr is None:
        raise ApiError(400, "echostr is required")
    assert timestamp is not None and nonce is not None
    await channel.check_nonce(timestamp, nonce, b"GET\n" + echostr.encode())  # its URL must not sign a POST later
    return echostr


@router.post("/webhooks/wechat", response_class=PlainTextResponse, responses={
    **ERROR_RESPONSES,
    200: {"content": {"text/plain": {}, "application/xml": {}},
          "description": "``success`` (the reply goes through the customer-service API), or the passive reply's XML"},
    403: {"model": ErrorBody, "description": "wrong signature"}, 400: {"model": ErrorBody, "description": "bad XML"}})
async def wechat_message(
    request: Request,
    signature: str | None = None, timestamp: str | None = None, nonce: str | None = None,
    encrypt_type: str | None = None, msg_signature: str | None = None,
    openid: str | None = Query(default=None),  # noqa: ARG001 - sent by WeChat; FromUserName is authoritative
) -> Response:
    channel = channel_on(request, WeChatChannel)
    channel.check_signature(signature, timestamp, nonce)
    assert timestamp is not None and nonce is not None
    body = await read_limited(request, MAX_BODY_BYTES)
    fields = channel.open(body, encrypt_type, msg_signature, timestamp, nonce)
    if not await channel.check_nonce(timestamp, nonce, b"POST\n" + body):
        log.info("WeChat request retried with the same nonce: acknowledged, not processed again")
        return PlainTextResponse("success")
    return await channel.receive(fields, nonce, timestamp)
