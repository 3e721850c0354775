"""What a push channel is: one class per messaging platform, in the spirit of Rasa's
``InputChannel`` / ``OutputChannel``.

    inbound   verify (the platform's secret or signature, before the body is read)
              → parse (its payload → ``ChannelMessage``) → ``ChannelRelay.handle``
    outbound  render (``OutboundMessage``s → the platform's API calls, ``Delivery``) → outbox row
              → deliver (one API call; ``RetryLater`` / ``Rejected`` tell the outbox why not)

A channel is one module: a ``PushChannel`` subclass, its API client and its webhook router
(``channels/telegram.py``, ``channels/wechat.py``), registered once in ``channels/registry.py``.
``channels.runtime.start_channels`` builds each configured one (``from_settings``) and hands that
same object to the relay (render), the outbox worker (deliver) and ``app.state.pushers`` (push:
messages outside a turn, such as an agent's reply).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from channels.outbox import Delivery
from conversations import language as lang
from conversations.models import Conversation
from conversations.service import OutboundMessage
from settings import Settings

if TYPE_CHECKING:
    from channels.relay import ChannelRelay

__all__ = [
    "ChannelMessage", "PushChannel", "conversation_language", "render_script", "service_language",
]

SERVICE_LANGUAGES = ("en", "zh", "ru")


@dataclass(frozen=True)
class ChannelMessage:
    """What a channel parsed from one verified update, before anything is stored."""

    channel: str
    external_id: str  # the channel's own id of this delivery: Telegram update_id, WeChat MsgId
    sender_id: str  # "<channel>:<user id in that channel>": one conversation per channel identity
    text: str | None = None
    payload: str | None = None  # a button's payload (Telegram callback, WeChat numbered option)
    language: str | None = None  # an explicit choice for the service (only when the channel knows)
    language_hint: str | None = None  # e.g. Telegram's UI language: for notices, never for the NLU
    supported: bool = True  # False: a picture, voice, location… → polite "text only" notice


class PushChannel(ABC):
    """One messaging platform the gateway answers through its API (not in the request, like REST).

    Subclasses set ``name`` (the ``<name>:`` sender-id prefix and the outbox's channel), ``router``
    (their webhook routes, which find the channel on ``app.state.<name>``) and ``not_configured``.
    """

    name: ClassVar[str]
    router: ClassVar[APIRouter]
    not_configured: ClassVar[str]  # the webhook's 404 when the settings leave the channel off

    def __init__(self, relay: ChannelRelay, sessions: sessionmaker[Session], default_language: str | None = None) -> None:
        self.relay = relay
        self._sessions = sessions
        self.default_language = default_language  # notices before anything else tells the language
        self.refused: str | None = None  # set: the webhook answers 503 with this; replies still go out

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings, sessions: sessionmaker[Session], relay: ChannelRelay) -> PushChannel | None:
        """The channel as configured, or None when its settings leave it off."""

    # --- outbound -------------------------------------------------------------------------------
    @abstractmethod
    def render(self, sender_id: str, language: str, messages: list[OutboundMessage]) -> list[Delivery]:
        """Messages → the channel's API calls (runs in a worker thread; may store button choices).

        What the channel writes itself (an agent's name, WeChat's option hint) follows the
        conversation's script (``render_script``); the messages arrive already localised.
        """

    @abstractmethod
    async def deliver(self, delivery: Delivery) -> None:
        """Make one API call; raise ``RetryLater`` or ``Rejected`` when it did not go through."""

    def passive_fits(self, deliveries: list[Delivery]) -> bool:
        """True when these can be the HTTP answer to the customer's request (WeChat's passive reply)."""
        return False

    async def push(self, sender_id: str, messages: list[OutboundMessage]) -> None:
        """A message outside a turn (``ChannelPushers``): rendered and stored; the outbox delivers it."""
        await self.relay.push(self.name, sender_id, messages)

    @abstractmethod
    async def close(self) -> None:
        """Release the API client."""


def service_language(hint: str | None) -> str | None:
    """A platform's language code (``ru-RU``, ``zh_CN``…) → a language the bot speaks, or None."""
    code = (hint or "").lower()
    return next((language for language in SERVICE_LANGUAGES if code.startswith(language)), None)


def conversation_language(sessions: sessionmaker[Session], sender_id: str) -> tuple[str, str | None] | None:
    """(language, script) of the sender's conversation (script ``hans``/``hant`` for Chinese), None before it."""
    with sessions() as db:
        row = db.execute(
            select(Conversation.language, Conversation.script).where(Conversation.sender_id == sender_id)
        ).first()
    return (row.language, row.script) if row is not None else None


def render_script(
    sessions: sessionmaker[Session], sender_id: str, language: str, messages: list[OutboundMessage]
) -> str | None:
    """The Chinese script for what a channel adds: the conversation's, else the one the messages are in."""
    if language != "zh":
        return None
    known = conversation_language(sessions, sender_id)
    if known is not None and known[1]:
        return known[1]
    return lang.chinese_script("".join(m.text for m in messages))
