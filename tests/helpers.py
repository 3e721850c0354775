"""The handoff at service level, shared by its tests (tests/test_handoff_service.py,
tests/test_handoff_state_machine.py and those that borrow from them): the real conversation service,
handoff service, Rasa actions and store on a fresh SQLite database, with only Rasa's NLU/dialogue
server replaced by ``ScriptedRasa``, which answers each turn as the gateway channel does (messages +
turn summary) and, where Rasa would call one of our actions, runs that real action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import handoff
from bot.actions import runtime as action_runtime
from conversations.models import Conversation, Message
from conversations.rasa_client import RasaReply
from conversations.service import ConversationService, InboundMessage, TurnResult
from handoff.models import Agent, Ticket
from handoff.service import AgentIdentity, HandoffService
from settings import Settings
from storage.db import make_engine, make_session_factory, transaction, upgrade
from store.seed import seed
from store.service import SqlOrdersService

# A Wednesday, 10:00 in London (queues open).
WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DEMO_AGENTS = ("alice", "wei", "olga")  # the demo agents (demo mode)
ALL_AGENTS = (*DEMO_AGENTS, "admin")

Step = Callable[[str, str, dict[str, Any]], Awaitable[RasaReply]]


class ScriptedRasa:
    """Stands in for the Rasa server: one scripted step per turn; asked without a step → test fails."""

    def __init__(self) -> None:
        self.script: list[Step] = []
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def send(self, sender: str, text: str, metadata: dict[str, Any], message_id: str | None = None) -> RasaReply:
        self.calls.append((sender, text, metadata))
        assert self.script, f"Rasa was asked about {text!r} but must not have been"
        return await self.script.pop(0)(sender, text, metadata)

    async def close(self) -> None:
        return None


def turn(
    intent: str | None,
    slots: dict[str, Any] | None = None,
    actions: list[str] | None = None,
    confidence: float = 0.9,
    entities: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The turn summary Rasa's gateway channel sends with its messages."""
    return {
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": intent, "confidence": confidence}],
        "entities": entities or [],
        "actions": actions or [],
        "slots": {"language": "en", **(slots or {})},
        "active_loop": None,
    }


def says(
    text: str,
    intent: str | None = "greet",
    buttons: list[dict[str, str]] | None = None,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
    **kw: Any,
) -> Step:
    """The bot answers ``text``; ``meanwhile`` runs while it is "thinking" (mid-turn)."""

    async def step(sender: str, _text: str, metadata: dict[str, Any]) -> RasaReply:
        if meanwhile is not None:
            await meanwhile()
        return RasaReply(messages=[{"text": text, "buttons": buttons}], turn=turn(intent, **kw))

    return step


def runs(
    action: Any,
    intent: str,
    slots: dict[str, Any] | None = None,
    history: list[str] | None = None,
    run: Callable[..., Any] | None = None,
) -> Step:
    """Rasa predicts ``action``: run the real rasa-sdk action with a tracker like Rasa's."""

    async def step(sender: str, text: str, metadata: dict[str, Any]) -> RasaReply:
        all_slots = {"language": metadata.get("language", "en"), **(slots or {})}
        said = [(h, h) for h in (history or [])] + [(intent, text)]
        events = [{"event": "user", "text": t, "parse_data": {"intent": {"name": i}}} for i, t in said]
        parsed = {"intent": {"name": intent, "confidence": 1.0}, "text": text, "entities": []}
        tracker = Tracker(sender, all_slots, parsed, events, False, None, None, "action_listen")
        dispatcher = CollectingDispatcher()
        if run is not None:
            await run(dispatcher, tracker)
        else:
            await action.run(dispatcher, tracker, {})
        messages = [
            {"text": m.get("text"), "custom": m.get("custom"), "buttons": m.get("buttons")} for m in dispatcher.messages
        ]
        return RasaReply(messages=messages, turn=turn(intent, slots=all_slots, actions=[action.name()]))

    return step


def latest_ticket(sessions: sessionmaker[Session], sender: str) -> Ticket:
    """The newest ticket of ``sender``'s conversation (the test fails when there is none)."""
    with sessions() as db:
        t = db.scalar(select(Ticket).where(Ticket.sender_id == sender).order_by(Ticket.id.desc()).limit(1))
        assert t is not None, f"no ticket for {sender}"
        return t


@dataclass
class HandoffWorld:
    """The services of one test, its scripted Rasa, and a clock the test moves (``now[0]``)."""

    conversations: ConversationService
    handoff: HandoffService
    rasa: ScriptedRasa
    settings: Settings
    sessions: sessionmaker[Session]
    engine: Engine
    now: list[datetime] = field(default_factory=lambda: [WEDNESDAY])

    async def say(
        self, sender: str, text: str | None = None, payload: str | None = None, language: str | None = None
    ) -> TurnResult:
        """A REST customer's message (or button ``payload``)."""
        inbound = InboundMessage(sender_id=sender, channel="rest", text=text, payload=payload, language=language)
        return await self.conversations.handle(inbound)

    def agent(self, username: str) -> AgentIdentity:
        from handoff.accounts import identity

        with self.sessions() as db:
            return identity(db.scalar(select(Agent).where(Agent.username == username)))

    def presence(self, status: str, *usernames: str) -> None:
        """Set the status of ``usernames`` (the demo agents and admin when none), seen now."""
        with transaction(self.sessions) as db:
            for a in db.scalars(select(Agent).where(Agent.username.in_(usernames or ALL_AGENTS))):
                a.status, a.last_seen_at = status, self.now[0]

    def online(self, *usernames: str) -> None:
        self.presence("online", *usernames)

    def offline(self, *usernames: str) -> None:
        self.presence("offline", *usernames)

    def ticket(self, sender: str) -> Ticket:
        return latest_ticket(self.sessions, sender)

    def column(self, sender: str) -> str:
        """The conversation's state column (bot, queued, human, closed)."""
        with self.sessions() as db:
            return db.scalar(select(Conversation.state).where(Conversation.sender_id == sender))

    def messages(self, sender: str) -> list[Message]:
        with self.sessions() as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
            return list(db.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id)))


def make_settings(tmp: Path, **over: Any) -> Settings:
    """The handoff's settings on a SQLite file in ``tmp``, demo agents on, automatic assignment off."""
    values: dict[str, Any] = dict(
        data_dir=tmp,
        database_url=f"sqlite:///{tmp / 'handoff.db'}",
        handoff_admin_password="admin-password-1",
        handoff_demo_agent_password="agent-password-1",
        handoff_secret="test-secret",
        handoff_auto_assign=False,
        demo=True,  # the demo agents alice, wei and olga exist only in demo mode
    )
    values.update(over)
    return Settings(**values)


W = TypeVar("W", bound=HandoffWorld)


def open_world(settings: Settings, world: type[W], online: tuple[str, ...]) -> Iterator[W]:
    """A migrated, seeded database and the services over it wired as server.py wires them, with the
    ``online`` agents signed in (tickets wait for a claim unless automatic assignment is on)."""
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_session_factory(engine)
    seed(sessions, auto_refund_limit=settings.auto_refund_limit)
    orders = SqlOrdersService(sessions, auto_refund_limit=settings.auto_refund_limit)
    rasa = ScriptedRasa()
    conversations = ConversationService(sessions, rasa)  # type: ignore[arg-type]
    service, _outbox = handoff.build(sessions, settings, orders=orders)
    w = world(conversations, service, rasa, settings, sessions, engine)
    service.clock = lambda: w.now[0]
    conversations.hooks = service
    action_runtime.configure(orders, settings, sessions=sessions, handoff=service)
    w.online(*online)
    try:
        yield w
    finally:
        engine.dispose()
