"""The push channels the gateway can run, registered once.

Adding a channel is one module (a ``channels.channel.PushChannel`` subclass with its API client
and its webhook ``router``) and one entry here. From this list ``start_channels`` builds every
configured channel, the REST channel reserves its sender-id prefix, and ``routers()`` gives the
app its webhooks.
"""

from __future__ import annotations

from fastapi import APIRouter

from channels.channel import PushChannel
from channels.telegram import TelegramChannel
from channels.wechat import WeChatChannel

__all__ = ["PUSH_CHANNELS", "routers"]

PUSH_CHANNELS: tuple[type[PushChannel], ...] = (TelegramChannel, WeChatChannel)


def routers() -> list[APIRouter]:
    """Every push channel's webhook routes (mounted whether or not it is configured: 404 then)."""
    return [channel.router for channel in PUSH_CHANNELS]
