"""Messages that reach a customer outside a request/response turn (an agent's reply, a queue update).

The REST channel can only answer the request in hand, so every channel that can reach a customer
later (widget websocket, Telegram, WeChat customer-service API) registers a pusher here under its
channel name. Handoff code calls :func:`ChannelPushers.push` and does not care which channel it is.
"""

from __future__ import annotations

import logging
from typing import Protocol

from conversations.service import OutboundMessage

__all__ = ["ChannelPushers", "Pusher", "PushFailed"]

log = logging.getLogger(__name__)


class PushFailed(Exception):
    """The channel could not deliver now; the caller keeps the message stored and may retry."""


class Pusher(Protocol):
    async def push(self, sender_id: str, messages: list[OutboundMessage]) -> None:
        """Deliver ``messages`` to the customer known to this channel as ``sender_id``."""


class ChannelPushers:
    """Channel name → pusher. One instance lives on ``app.state.pushers``."""

    def __init__(self) -> None:
        self._pushers: dict[str, Pusher] = {}

    def register(self, channel: str, pusher: Pusher) -> None:
        self._pushers[channel] = pusher

    def can_reach(self, channel: str) -> bool:
        """False for channels (plain REST) where the customer only sees answers to their own requests."""
        return channel in self._pushers

    async def push(self, channel: str, sender_id: str, messages: list[OutboundMessage]) -> bool:
        """True when delivered; False when the channel cannot push (the customer reads it on next poll)."""
        pusher = self._pushers.get(channel)
        if pusher is None:
            return False
        await pusher.push(sender_id, messages)
        return True
