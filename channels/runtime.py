"""Wires the push channels into the gateway: one call in ``server.py``'s lifespan.

Builds, from settings, the outbox and its worker, the relay with its inbound retry loop, and each
configured channel (Telegram when ``TELEGRAM_BOT_TOKEN`` is set, WeChat when ``WECHAT_TOKEN`` is
set; WeChat without an AES key only with ``WECHAT_ALLOW_PLAINTEXT``, else its webhook answers 503
while replies already stored are still delivered); registers each channel's pusher on ``app.state.pushers`` so that handoff can reach those
customers; puts the channels on ``app.state.telegram`` / ``app.state.wechat`` for the webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from anyio import to_thread
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from wechatpy.crypto import WeChatCrypto

from channels.outbox import Delivery, Outbox, OutboxWorker
from channels.push import ChannelPushers
from channels.ratelimit import SlidingWindowLimiter
from channels.relay import ChannelRelay, Renderer
from channels.telegram import BotApi, TelegramChannel, TelegramDeliverer, TelegramRenderer
from channels.wechat import PLAINTEXT_REFUSED, WeChatApi, WeChatChannel, WeChatDeliverer, WeChatRenderer
from conversations import language as lang
from conversations.models import Conversation
from conversations.service import ConversationService, OutboundMessage
from settings import Settings

__all__ = ["ChannelsRuntime", "OutboxPusher", "start_channels"]

log = logging.getLogger(__name__)


class OutboxPusher:
    """``ChannelPushers`` pusher: render for the channel and enqueue; the outbox worker delivers.

    Returning means "accepted for delivery": the row is stored and retried until the channel takes it.
    """

    def __init__(self, channel: str, renderer: Renderer, outbox: Outbox, sessions: sessionmaker[Session]) -> None:
        self.channel = channel
        self.renderer = renderer
        self.outbox = outbox
        self._sessions = sessions

    async def push(self, sender_id: str, messages: list[OutboundMessage]) -> None:
        def render() -> list[Delivery]:
            return self.renderer.render(sender_id, self._language(sender_id, messages), messages)

        await self.outbox.enqueue(self.channel, sender_id, await to_thread.run_sync(render))

    def _language(self, sender_id: str, messages: list[OutboundMessage]) -> str:
        """The conversation's language (for texts the channel adds, e.g. WeChat's option hint)."""
        with self._sessions() as db:
            known = db.scalar(select(Conversation.language).where(Conversation.sender_id == sender_id))
        if known:
            return known
        return lang.detect(" ".join(m.text for m in messages)[:500]).language


@dataclass
class ChannelsRuntime:
    outbox: Outbox
    worker: OutboxWorker
    relay: ChannelRelay
    telegram: TelegramChannel | None = None
    wechat: WeChatChannel | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closers: list[object] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.worker.stop()
        await self.relay.stop()
        for api in self._closers:
            await api.close()  # type: ignore[attr-defined]


def start_channels(
    app: FastAPI, settings: Settings, sessions: sessionmaker[Session], service: ConversationService,
) -> ChannelsRuntime:
    """Create and start everything; call ``await runtime.stop()`` on shutdown."""
    pushers: ChannelPushers = getattr(app.state, "pushers", None) or ChannelPushers()
    app.state.pushers = pushers
    outbox = Outbox(sessions)
    worker = OutboxWorker(outbox, sessions, retry_base_s=settings.outbox_retry_base_s,
                          retry_max_s=settings.outbox_retry_max_s, poll_s=settings.outbox_poll_s)
    limiter = SlidingWindowLimiter(settings.channel_rate_limit_count, settings.channel_rate_limit_window_s)
    relay = ChannelRelay(sessions, service, outbox, limiter, max_text_chars=settings.channel_max_text_chars,
                         retry_s=settings.channel_inbound_retry_s,
                         default_languages={"wechat": settings.wechat_default_language})
    runtime = ChannelsRuntime(outbox, worker, relay)

    token = settings.telegram_bot_token.get_secret_value()
    if token:
        api = BotApi(token, settings.telegram_api_base, settings.channel_api_timeout_s)
        renderer = TelegramRenderer(sessions)
        runtime.telegram = TelegramChannel(api, renderer, relay, settings.telegram_webhook_secret.get_secret_value())
        if not runtime.telegram.webhook_secret:
            log.error("TELEGRAM_WEBHOOK_SECRET is not set: /webhooks/telegram refuses every update (403) until it is; "
                      "deliveries to Telegram still work")
        relay.register("telegram", renderer)
        worker.register("telegram", TelegramDeliverer(api))
        pushers.register("telegram", OutboxPusher("telegram", renderer, outbox, sessions))
        runtime._closers.append(api)

    app.state.wechat_refused = None  # set to the reason when WeChat is configured but refused
    wechat_token = settings.wechat_token.get_secret_value()
    if wechat_token:
        aes_key = settings.wechat_encoding_aes_key.get_secret_value()
        crypto = WeChatCrypto(wechat_token, aes_key, settings.wechat_app_id) if aes_key else None
        wx_api = WeChatApi(settings.wechat_app_id, settings.wechat_app_secret.get_secret_value(),
                           settings.wechat_api_base, settings.channel_api_timeout_s)
        wx_renderer = WeChatRenderer(sessions)
        if crypto is None and not settings.wechat_allow_plaintext:
            app.state.wechat_refused = PLAINTEXT_REFUSED
            log.error(PLAINTEXT_REFUSED + "; /webhooks/wechat answers 503 until then")
        else:
            # The clock-skew window is also how long nonces are remembered, so it cannot be off.
            runtime.wechat = WeChatChannel(
                token=wechat_token, app_id=settings.wechat_app_id, relay=relay, renderer=wx_renderer, crypto=crypto,
                passive_timeout_s=settings.wechat_passive_timeout_s,
                max_clock_skew_s=settings.wechat_max_clock_skew_s or settings.webhook_max_skew_s,
                default_language=settings.wechat_default_language, allow_plaintext=settings.wechat_allow_plaintext,
            )
            if crypto is None:
                log.warning("WeChat plaintext mode allowed (WECHAT_ALLOW_PLAINTEXT): message bodies are not signed")
        relay.register("wechat", wx_renderer)
        worker.register("wechat", WeChatDeliverer(wx_api))
        pushers.register("wechat", OutboxPusher("wechat", wx_renderer, outbox, sessions))
        runtime._closers.append(wx_api)

    app.state.telegram = runtime.telegram
    app.state.wechat = runtime.wechat
    app.state.channels = runtime
    worker.start()
    runtime._tasks.append(asyncio.create_task(relay.retry_loop(), name="channels-inbound-retry"))
    log.info("push channels started", extra={"telegram": bool(token), "wechat": bool(wechat_token)})
    return runtime
