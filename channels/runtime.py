"""Wires the push channels into the gateway: one call in ``server.py``'s lifespan.

Builds, from settings, the outbox and its worker, the relay with its inbound retry loop, and each
channel of ``channels/registry.py`` that is configured (Telegram when ``TELEGRAM_BOT_TOKEN`` is set,
WeChat when ``WECHAT_TOKEN`` is set; WeChat without an AES key only with ``WECHAT_ALLOW_PLAINTEXT``,
else its webhook answers 503 while replies already stored are still delivered). Each channel is
one object, handed to the relay (render), the outbox worker (deliver) and ``app.state.pushers``
(so that handoff can reach those customers), and put on ``app.state.<name>`` for its webhook.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from channels.channel import PushChannel
from channels.outbox import Outbox, OutboxWorker
from channels.push import ChannelPushers
from channels.ratelimit import sender_limiter
from channels.registry import PUSH_CHANNELS
from channels.relay import ChannelRelay
from conversations.service import ConversationService
from settings import Settings
from storage.coordination import RELAY_LOCKS, turn_locks_for

__all__ = ["ChannelsRuntime", "start_channels"]

log = logging.getLogger(__name__)

RELAY_LOCK_POOL = 10  # PostgreSQL connections for push-channel customers in a turn at once (per replica)


@dataclass
class ChannelsRuntime:
    outbox: Outbox
    worker: OutboxWorker
    relay: ChannelRelay
    channels: dict[str, PushChannel] = field(default_factory=dict)

    async def stop(self) -> None:
        await self.worker.stop()
        await self.relay.stop()
        for channel in self.channels.values():
            await channel.close()


def start_channels(
    app: FastAPI, settings: Settings, sessions: sessionmaker[Session], service: ConversationService,
) -> ChannelsRuntime:
    """Create and start everything; call ``await runtime.stop()`` on shutdown."""
    pushers: ChannelPushers = getattr(app.state, "pushers", None) or ChannelPushers()
    app.state.pushers = pushers
    outbox = Outbox(sessions)
    worker = OutboxWorker(outbox, sessions, retry_base_s=settings.outbox_retry_base_s,
                          retry_max_s=settings.outbox_retry_max_s, poll_s=settings.outbox_poll_s)
    limiter = sender_limiter(settings)  # per sender; in Redis, shared by the replicas, when REDIS_URL is set
    relay = ChannelRelay(sessions, service, outbox, limiter, max_text_chars=settings.channel_max_text_chars,
                         retry_s=settings.channel_inbound_retry_s,
                         # per customer across replicas on PostgreSQL (its own pool: channels/relay.py)
                         locks=turn_locks_for(settings.sqlalchemy_url, pool_size=RELAY_LOCK_POOL, namespace=RELAY_LOCKS))
    runtime = ChannelsRuntime(outbox, worker, relay)
    for kind in PUSH_CHANNELS:
        channel = kind.from_settings(settings, sessions, relay)
        setattr(app.state, kind.name, channel)  # None: its webhook answers 404
        if channel is None:
            continue
        relay.register(channel)
        worker.register(channel.name, channel)
        pushers.register(channel.name, channel)
        runtime.channels[channel.name] = channel
    app.state.channels = runtime
    worker.start()
    relay.start()
    log.info("push channels started", extra={kind.name: kind.name in runtime.channels for kind in PUSH_CHANNELS})
    return runtime
