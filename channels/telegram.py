"""Telegram: the Bot API webhook (`POST /webhooks/telegram`), rendering and delivery.

Inbound: Telegram POSTs ``Update`` JSON with the secret we gave ``setWebhook`` in
``X-Telegram-Bot-Api-Secret-Token``; anything without it is refused before the body is read.
Updates are parsed with python-telegram-bot's types (no ``Application``: the gateway owns the
flow). Private chats only: text, ``/start`` (a greeting in the user's Telegram language) and
``callback_query`` from our inline buttons; every other update is acknowledged and ignored, so
Telegram does not redeliver it. The relay de-duplicates by ``update_id``.

Outbound: ``sendMessage`` in HTML parse mode (every text escaped; links only for http(s) URLs),
buttons as an inline keyboard, texts longer than Telegram's 4,096 characters split at paragraph,
line or word boundaries. Calls go through the outbox: 429 ``retry_after`` pauses the channel for
exactly that long; 400/403 (blocked by the user, chat gone) reject the message for good; anything
else is retried.

Long polling for development: ``python -m channels telegram poll`` forwards ``getUpdates`` to
this webhook, so there is one code path for both.

A turn: ``telegram_webhook`` → ``TelegramChannel.verify`` → ``receive`` (``parse_update``, ``parse``)
→ ``ChannelRelay.handle`` → ``TelegramChannel.render`` → outbox → ``TelegramChannel.deliver``.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from anyio import to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from api_errors import ERROR_RESPONSES, ApiError, ErrorBody
from channels import notices
from channels.channel import ChannelMessage, PushChannel, render_script, service_language
from channels.models import ChannelButton
from channels.outbox import Deliverer, Delivery, Rejected, RetryLater
from channels.relay import ChannelRelay
from channels.text import size, split, utf16
from channels.webhook import channel_on, read_limited, same
from conversations.service import OutboundMessage
from settings import ChannelsSettings, Settings
from storage.db import transaction

__all__ = ["BotApi", "TelegramApiError", "TelegramChannel", "TelegramDeliverer", "router", "split_text"]

log = logging.getLogger(__name__)
_CHANNELS = ChannelsSettings()  # the defaults, written once in settings/sections.py (no environment read here)

CHANNEL = "telegram"
MAX_TEXT = 4096  # sendMessage text limit, in UTF-16 code units after entity parsing
MAX_CALLBACK_DATA = 64  # bytes
MAX_UPDATE_BYTES = 1_000_000
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HANDLED_UPDATES = ("message", "callback_query")

router = APIRouter(tags=["channels"])


# --- Bot API client --------------------------------------------------------------------------------
class TelegramApiError(Exception):
    """Telegram answered ``{"ok": false, ...}``."""

    def __init__(self, error_code: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(f"Telegram error {error_code}: {description}")
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after


class BotApi:
    """A thin Bot API client on httpx: ``call(method, params)`` → ``result``; base URL configurable."""

    def __init__(self, token: str, base_url: str = _CHANNELS.telegram_api_base,
                 timeout_s: float = _CHANNELS.api_timeout_s) -> None:
        if not token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout_s: float | None = None) -> Any:
        url = f"{self.base_url}/bot{self._token}/{method}"
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        resp = await self._http.post(url, json=params or {}, timeout=timeout)
        try:
            data = resp.json()
        except ValueError as err:
            raise TelegramApiError(resp.status_code, f"not a Bot API answer: {resp.text[:200]!r}") from err
        if not isinstance(data, dict):
            raise TelegramApiError(resp.status_code, "not a Bot API answer")
        if data.get("ok") is True:
            return data.get("result")
        parameters = data.get("parameters") or {}
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        raise TelegramApiError(
            int(data.get("error_code") or resp.status_code), str(data.get("description") or ""),
            float(retry_after) if retry_after is not None else None,
        )

    async def deliver(self, delivery: Delivery) -> None:
        """One outbox row → Bot API, with Telegram's answer as the outbox's retry/reject verdict."""
        try:
            await self.call(delivery.method, delivery.body)
        except TelegramApiError as err:
            if err.error_code == 429:
                raise RetryLater(str(err), after_s=err.retry_after or 1.0, channel_wide=True) from err
            if err.error_code in (400, 403):  # bad request for this chat, or the user blocked the bot
                raise Rejected(str(err)) from err
            raise RetryLater(str(err), channel_wide=True) from err  # 401/404/5xx: the bot or API is broken
        except httpx.HTTPError as err:
            raise RetryLater(f"Telegram unreachable: {err.__class__.__name__}", channel_wide=True) from err


def TelegramDeliverer(api: BotApi) -> Deliverer:  # noqa: N802 - the outbox's name for it
    """The outbound half without the channel (an outbox worker in tools and tests): the client itself."""
    return api


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split at the last paragraph, line or word break within ``limit`` UTF-16 code units."""
    return split(text, limit, utf16) or [""]


def _utf16_len(text: str) -> int:
    return size(text, utf16)


def _link(title: str, url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return html.escape(title or url, quote=False)
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(title or url, quote=False)}</a>'


def sender_id_of(chat_id: int) -> str:
    return f"{CHANNEL}:{chat_id}"


def chat_id_of(sender_id: str) -> int:
    channel, _, raw = sender_id.partition(":")
    if channel != CHANNEL:
        raise ValueError(f"not a Telegram sender id: {sender_id!r}")
    return int(raw)


def parse_update(body: bytes) -> Update:
    """Bytes → Update; only the parts we handle are parsed (unknown update types cannot break us)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise ApiError(400, f"body is not JSON: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise ApiError(400, "not a Telegram Update: an object with an integer update_id is required")
    wanted = {k: v for k, v in data.items() if k == "update_id" or k in HANDLED_UPDATES}
    try:
        return Update.de_json(wanted, None)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ApiError(400, f"malformed Telegram Update: {err}") from err


# --- the channel ----------------------------------------------------------------------------------
class TelegramChannel(PushChannel):
    """The Bot API webhook in, ``sendMessage`` out. Long button payloads are stored and referenced by id."""

    name = CHANNEL
    router = router
    not_configured = "the Telegram channel is not configured (TELEGRAM_BOT_TOKEN)"

    def __init__(self, api: BotApi, sessions: sessionmaker[Session], relay: ChannelRelay, webhook_secret: str) -> None:
        super().__init__(relay, sessions)
        self.api = api
        self.webhook_secret = webhook_secret

    @classmethod
    def from_settings(cls, settings: Settings, sessions: sessionmaker[Session], relay: ChannelRelay) -> TelegramChannel | None:
        token = settings.telegram_bot_token.get_secret_value()
        if not token:
            return None
        api = BotApi(token, settings.telegram_api_base, settings.channel_api_timeout_s)
        channel = cls(api, sessions, relay, settings.telegram_webhook_secret.get_secret_value())
        if not channel.webhook_secret:
            log.error("TELEGRAM_WEBHOOK_SECRET is not set: /webhooks/telegram refuses every update (403) until it is; "
                      "deliveries to Telegram still work")
        return channel

    # --- inbound: verify, parse -------------------------------------------------------------------
    def verify(self, given_secret: str) -> None:
        """The secret we gave ``setWebhook``, checked before the body is read."""
        if not self.webhook_secret:
            raise ApiError(403, "TELEGRAM_WEBHOOK_SECRET is not set: the webhook accepts nothing without it")
        if not same(given_secret, self.webhook_secret):
            raise ApiError(401, f"missing or wrong {SECRET_HEADER}")

    async def receive(self, body: bytes) -> None:
        """One verified update: parsed, then answered through the relay (or acknowledged and ignored)."""
        update = parse_update(body)
        if update.callback_query is not None:
            self.relay.spawn(self._answer_callback(update.callback_query.id))
        msg = await to_thread.run_sync(self.parse, update)  # may read a stored button payload
        if msg is None:
            log.info("telegram update ignored", extra={"update_id": update.update_id})
            return
        await self.relay.handle(msg)

    def parse(self, update: Update) -> ChannelMessage | None:
        """A handled update → ChannelMessage; None for what we acknowledge and ignore."""
        external_id = f"u{update.update_id}"
        if update.callback_query is not None:
            query = update.callback_query
            chat = query.message.chat if query.message is not None else None
            if chat is None or chat.type != "private" or not query.data:
                return None
            sender = sender_id_of(chat.id)
            payload = self.resolve_callback(sender, query.data)
            if payload is None:
                return None
            return ChannelMessage(CHANNEL, external_id, sender, payload=payload,
                                  language_hint=query.from_user.language_code if query.from_user else None)
        message = update.message
        if message is None or message.chat.type != "private":
            return None
        sender = sender_id_of(message.chat.id)
        hint = message.from_user.language_code if message.from_user else None
        if message.text is None:  # photo, sticker, voice, location…: we can only read text
            return ChannelMessage(CHANNEL, external_id, sender, language_hint=hint, supported=False)
        text = message.text
        if text.startswith("/"):
            command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""
            if command == "start":  # greet in the user's Telegram language
                return ChannelMessage(CHANNEL, external_id, sender, text=None, payload="/greet",
                                      language=service_language(hint), language_hint=hint)
            # Other commands are read as words: a typed "/affirm" must not skip the NLU.
            text = text.lstrip("/").replace("_", " ") or text
        return ChannelMessage(CHANNEL, external_id, sender, text=text, language_hint=hint)

    def resolve_callback(self, sender_id: str, data: str) -> str | None:
        """callback_data → payload; a ``~id`` reference must belong to this chat."""
        if not data.startswith("~"):
            return data
        try:
            button_id = int(data[1:])
        except ValueError:
            return None
        with self._sessions() as db:
            return db.scalar(select(ChannelButton.payload).where(
                ChannelButton.id == button_id, ChannelButton.sender_id == sender_id))

    async def _answer_callback(self, query_id: str) -> None:
        """Stop the button's spinner. Best effort: a late answer is useless, so no outbox."""
        try:
            await self.api.call("answerCallbackQuery", {"callback_query_id": query_id}, timeout_s=5.0)
        except (TelegramApiError, httpx.HTTPError) as err:
            log.warning("answerCallbackQuery failed", extra={"error": str(err)})

    # --- outbound: render, deliver ----------------------------------------------------------------
    def render(self, sender_id: str, language: str, messages: list[OutboundMessage]) -> list[Delivery]:
        chat_id = chat_id_of(sender_id)
        named = any(m.agent for m in messages)
        script = render_script(self._sessions, sender_id, language, messages) if named else None  # for the label
        deliveries: list[Delivery] = []
        for message in messages:
            deliveries.extend(self._render_one(chat_id, sender_id, message, language, script))
        return deliveries

    def _render_one(
        self, chat_id: int, sender_id: str, message: OutboundMessage, language: str, script: str | None,
    ) -> Iterator[Delivery]:
        text = message.text or ""
        prefix = label = ""
        if (named := notices.agent_label(message.agent, language, script)) is not None:  # who writes (handoff)
            who, separator = named
            label = who + separator
            prefix = f"<b>{html.escape(who, quote=False)}</b>{html.escape(separator, quote=False)}"
        sources = "\n".join(f"🔗 {_link(s.get('title', ''), s.get('url', ''))}" for s in message.sources)
        sources_len = _utf16_len(html.unescape(sources)) + 2 if sources else 0
        chunks = [html.escape(c, quote=False) for c in split_text(text, MAX_TEXT - _utf16_len(label))]
        chunks[0] = prefix + chunks[0]
        if sources:
            last_visible = _utf16_len(html.unescape(chunks[-1]))
            if last_visible + sources_len <= MAX_TEXT:
                chunks[-1] = f"{chunks[-1]}\n\n{sources}" if chunks[-1] else sources
            else:
                chunks.append(sources)
        if not any(chunks) and not message.buttons:
            return
        markup = self._keyboard(sender_id, message.buttons) if message.buttons else None
        for n, chunk in enumerate(chunks):
            body: dict[str, Any] = {"chat_id": chat_id, "text": chunk or "…", "parse_mode": "HTML"}
            if markup is not None and n == len(chunks) - 1:
                body["reply_markup"] = markup
            yield Delivery("sendMessage", body)

    def _keyboard(self, sender_id: str, buttons: list[dict[str, str]]) -> dict[str, Any]:
        rows = [[InlineKeyboardButton(b["title"] or b["payload"], callback_data=self._callback_data(sender_id, b))]
                for b in buttons]
        return InlineKeyboardMarkup(rows).to_dict()

    def _callback_data(self, sender_id: str, button: dict[str, str]) -> str:
        payload = button["payload"]
        if len(payload.encode()) <= MAX_CALLBACK_DATA and not payload.startswith("~"):
            return payload
        with transaction(self._sessions) as db:
            row = ChannelButton(sender_id=sender_id, slot=None, title=button["title"], payload=payload,
                                created_at=datetime.now(UTC))
            db.add(row)
            db.flush()
            return f"~{row.id}"

    async def deliver(self, delivery: Delivery) -> None:
        await self.api.deliver(delivery)

    async def close(self) -> None:
        await self.api.close()


class WebhookAck(BaseModel):
    ok: bool


@router.post("/webhooks/telegram", response_model=WebhookAck, responses={
    **ERROR_RESPONSES, 401: {"model": ErrorBody, "description": "missing or wrong secret token"},
    400: {"model": ErrorBody, "description": "not a Telegram Update"}})
async def telegram_webhook(request: Request) -> dict[str, bool]:
    """Bot API webhook. 200 for every authentic update, handled or ignored; Telegram retries non-2xx."""
    channel = channel_on(request, TelegramChannel)
    channel.verify(request.headers.get(SECRET_HEADER, ""))
    await channel.receive(await read_limited(request, MAX_UPDATE_BYTES))
    return {"ok": True}
