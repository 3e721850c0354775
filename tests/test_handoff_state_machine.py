"""The handoff lifecycle (handoff/lifecycle.py) walked pair by pair on a real SQLite database, with
the real conversation service, handoff service, timeout sweep and Rasa action; only Rasa's server
is replaced by scripted replies (as in test_handoff_service.py).

- every (state, event) of the transition table is driven by the operation that produces it (a
  customer message, an agent action, the sweep) and must land in the table's state;
- every pair missing from the table is refused (``IllegalTransition``) and changes nothing;
- the races: an agent replies while the bot is mid-turn, the customer writes during a hand-back,
  resolve then a new message, two agents claim the same ticket;
- docs/architecture.md draws exactly this table.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

import handoff
from bot.actions import runtime as action_runtime
from bot.actions.handoff import ActionHandoffRequest
from conversations.models import Conversation, Message
from conversations.rasa_client import RasaReply
from conversations.service import ConversationService, InboundMessage, TurnResult
from handoff import lifecycle, timeouts
from handoff.errors import HandoffError
from handoff.events import AGENTS
from handoff.lifecycle import IN_PROCESS, TRANSITIONS, Column, Event, IllegalTransition, StaleState, State
from handoff.models import Agent, AuditEntry, Ticket
from handoff.policy import Escalate
from handoff.service import AgentIdentity, HandoffService
from settings import Settings
from storage.db import make_engine, make_session_factory, transaction, upgrade
from store.seed import seed
from store.service import SqlOrdersService

WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # queues open
ROOT = Path(__file__).resolve().parent.parent
AGENTS_ONLINE = ("alice", "wei", "olga", "admin")

Step = Callable[[str, str, dict[str, Any]], Awaitable[RasaReply]]


class ScriptedRasa:
    """Stands in for the Rasa server: one scripted step per turn; asked without a step → test fails."""

    def __init__(self) -> None:
        self.script: list[Step] = []
        self.calls: list[tuple[str, str]] = []

    async def send(self, sender: str, text: str, metadata: dict[str, Any], message_id: str | None = None) -> RasaReply:
        self.calls.append((sender, text))
        assert self.script, f"Rasa was asked about {text!r} but must not have been"
        return await self.script.pop(0)(sender, text, metadata)

    async def close(self) -> None:
        return None


def turn(intent: str | None, actions: list[str] | None = None) -> dict[str, Any]:
    return {"intent": {"name": intent, "confidence": 0.9}, "intent_ranking": [{"name": intent, "confidence": 0.9}],
            "entities": [], "actions": actions or [], "slots": {"language": "en"}, "active_loop": None}


def says(text: str, intent: str = "greet", buttons: list[dict[str, str]] | None = None,
         meanwhile: Callable[[], Awaitable[None]] | None = None) -> Step:
    """The bot answers ``text``; ``meanwhile`` runs while it is "thinking" (mid-turn)."""
    async def step(sender: str, _text: str, metadata: dict[str, Any]) -> RasaReply:
        if meanwhile is not None:
            await meanwhile()
        return RasaReply(messages=[{"text": text, "buttons": buttons}], turn=turn(intent))
    return step


def handoff_action() -> Step:
    """Rasa predicts ``action_handoff_request``: run the real rasa-sdk action."""
    async def step(sender: str, text: str, metadata: dict[str, Any]) -> RasaReply:
        tracker = Tracker(sender, {"language": "en"}, {"intent": {"name": "human_handoff", "confidence": 1.0},
                                                       "text": text, "entities": []},
                          [{"event": "user", "text": text, "parse_data": {"intent": {"name": "human_handoff"}}}],
                          False, None, None, "action_listen")
        dispatcher = CollectingDispatcher()
        action = ActionHandoffRequest()
        await action.run(dispatcher, tracker, {})
        return RasaReply(messages=[{"text": m.get("text"), "custom": m.get("custom")} for m in dispatcher.messages],
                         turn=turn("human_handoff", [action.name()]))
    return step


@dataclass
class World:
    conversations: ConversationService
    handoff: HandoffService
    rasa: ScriptedRasa
    sessions: sessionmaker[Session]
    engine: Any
    now: list[datetime] = field(default_factory=lambda: [WEDNESDAY])

    async def say(self, sender: str, text: str | None = None, payload: str | None = None) -> TurnResult:
        return await self.conversations.handle(InboundMessage(sender_id=sender, channel="rest", text=text,
                                                              payload=payload))

    def agent(self, username: str) -> AgentIdentity:
        from handoff.accounts import identity

        with self.sessions() as db:
            return identity(db.scalar(select(Agent).where(Agent.username == username)))

    def presence(self, status: str, *usernames: str) -> None:
        with transaction(self.sessions) as db:
            for a in db.scalars(select(Agent).where(Agent.username.in_(usernames or AGENTS_ONLINE))):
                a.status, a.last_seen_at = status, self.now[0]

    def ticket(self, sender: str) -> Ticket:
        with self.sessions() as db:
            t = db.scalar(select(Ticket).where(Ticket.sender_id == sender).order_by(Ticket.id.desc()).limit(1))
            assert t is not None, f"no ticket for {sender}"
            return t

    def column(self, sender: str) -> str:
        with self.sessions() as db:
            return db.scalar(select(Conversation.state).where(Conversation.sender_id == sender))

    def state(self, sender: str) -> State:
        """The lifecycle state as stored: the conversation's column, its latest ticket, the policy's memory."""
        with self.sessions() as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
            ticket = db.scalar(select(Ticket).where(Ticket.conversation_id == conv.id).order_by(Ticket.id.desc()).limit(1))
        sig = self.handoff._signals.get(sender)
        return lifecycle.state_of(conv.state, ticket, bool(sig and sig.offer_pending))

    def messages(self, sender: str) -> list[Message]:
        with self.sessions() as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
            return list(db.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id)))


def make_world(tmp: Path) -> Iterator[World]:
    settings = Settings(
        data_dir=tmp, database_url=f"sqlite:///{tmp / 'lifecycle.db'}", handoff_admin_password="admin-password-1",
        handoff_demo_agent_password="agent-password-1", handoff_secret="test-secret", handoff_auto_assign=False,
        demo=True,
    )
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    sessions = make_session_factory(engine)
    seed(sessions, auto_refund_limit=settings.auto_refund_limit)
    orders = SqlOrdersService(sessions, auto_refund_limit=settings.auto_refund_limit)
    rasa = ScriptedRasa()
    conversations = ConversationService(sessions, rasa)  # type: ignore[arg-type]
    service, _outbox = handoff.build(sessions, settings, orders=orders)
    w = World(conversations, service, rasa, sessions, engine)
    service.clock = lambda: w.now[0]
    conversations.hooks = service
    action_runtime.configure(orders, settings, sessions=sessions, handoff=service)
    w.presence("online")
    try:
        yield w
    finally:
        engine.dispose()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


# --- getting a conversation into each state, through the real operations ---------------------------------
async def to_bot(w: World, s: str) -> None:
    w.rasa.script.append(says("Hi! How can I help?"))
    await w.say(s, "hi")


async def to_offered(w: World, s: str) -> None:
    await to_bot(w, s)
    w.rasa.script.append(says("Sorry, I didn't get that. Talk to a person?", "nlu_fallback",
                              buttons=[{"title": "Yes", "payload": "/human_handoff"}]))
    await w.say(s, "this is useless")


async def to_queued(w: World, s: str) -> None:
    await to_bot(w, s)
    w.rasa.script.append(handoff_action())
    await w.say(s, "can i talk to a real person pls")


async def to_awaiting_email(w: World, s: str) -> None:
    w.presence("offline")  # nobody can answer soon, and a REST customer cannot be reached later
    await to_queued(w, s)


async def to_human(w: World, s: str) -> None:
    await to_queued(w, s)
    await w.handoff.claim(w.agent("alice"), w.ticket(s).id)


async def to_rating(w: World, s: str) -> None:
    await to_human(w, s)
    await w.handoff.resolve(w.agent("alice"), w.ticket(s).id)


async def to_commenting(w: World, s: str) -> None:
    await to_rating(w, s)
    await w.say(s, payload="/csat_4")


SETUP: dict[State, Callable[[World, str], Awaitable[None]]] = {
    State.BOT: to_bot, State.OFFERED: to_offered, State.QUEUED: to_queued, State.AWAITING_EMAIL: to_awaiting_email,
    State.HUMAN: to_human, State.RATING: to_rating, State.COMMENTING: to_commenting,
}


# --- each event, as the product produces it ------------------------------------------------------------
async def offer(w: World, s: str, state: State) -> None:
    w.rasa.script.append(says("Hmm, I can't help with that. Want a person?", "nlu_fallback",
                              buttons=[{"title": "Yes", "payload": "/human_handoff"}]))
    await w.say(s, "ugh nothing works")


async def decline(w: World, s: str, state: State) -> None:
    result = await w.say(s, "no thanks")
    assert result.messages[-1].type == "handoff"  # answered without the bot


async def accept(w: World, s: str, state: State) -> None:
    assert w.handoff.take_offer(s) == "repeated_failure"  # what the bot's handoff action does first


async def escalate(w: World, s: str, state: State) -> None:
    outcome = await w.handoff.escalate(s, Escalate("explicit_request"))
    assert outcome.ticket_id is not None


async def ask_email(w: World, s: str, state: State) -> None:
    w.presence("offline")
    outcome = await w.handoff.escalate(s, Escalate("explicit_request"))
    assert any("email" in m for m in outcome.messages)


async def email_given(w: World, s: str, state: State) -> None:
    result = await w.say(s, "sure its jo.smith@example.com")
    assert "jo.smith@example.com" in result.messages[-1].text
    assert w.ticket(s).contact_email == "jo.smith@example.com"


async def assign(w: World, s: str, state: State) -> None:
    ticket_id = w.ticket(s).id
    if state is State.HUMAN:
        await w.handoff.transfer(w.agent("alice"), ticket_id, to_agent="admin")
        assert w.ticket(s).agent_id == w.agent("admin").id
    else:
        await w.handoff.claim(w.agent("alice"), ticket_id)
        assert w.ticket(s).agent_id == w.agent("alice").id


async def requeue(w: World, s: str, state: State) -> None:
    await w.handoff.transfer(w.agent("admin"), w.ticket(s).id, queue="billing-en")
    assert w.ticket(s).queue == "billing-en" and w.ticket(s).agent_id is None


async def hand_back(w: World, s: str, state: State) -> None:
    await w.handoff.hand_back(w.agent("admin"), w.ticket(s).id)


async def resolve(w: World, s: str, state: State) -> None:
    await w.handoff.resolve(w.agent("admin"), w.ticket(s).id)


def swept(kind: str) -> Callable[[World, str, State], Awaitable[None]]:
    async def drive(w: World, s: str, state: State) -> None:
        w.now[0] += timedelta(minutes=31)
        assert [a[0] for a in await timeouts.sweep(w.handoff)] == [kind]
    return drive


async def rate(w: World, s: str, state: State) -> None:
    result = await w.say(s, payload="/csat_4")
    assert w.ticket(s).csat_score == 4 and "comment" in result.messages[-1].text


async def comment(w: World, s: str, state: State) -> None:
    result = await w.say(s, "quick n friendly, ty")
    assert w.ticket(s).csat_comment == "quick n friendly, ty" and result.state == "bot"


async def move_on(w: World, s: str, state: State) -> None:
    calls = len(w.rasa.calls)
    w.rasa.script.append(says("Which order?", "check_order_status"))
    if state is State.COMMENTING:
        result = await w.say(s, payload="/check_order_status")
    else:
        result = await w.say(s, "wait where is my other order??")
    assert len(w.rasa.calls) == calls + 1 and result.messages[-1].text == "Which order?"  # the bot answers it


DRIVE: dict[Event, Callable[[World, str, State], Awaitable[None]]] = {
    Event.OFFER: offer, Event.DECLINE: decline, Event.ACCEPT: accept, Event.ESCALATE: escalate,
    Event.ASK_EMAIL: ask_email, Event.EMAIL_GIVEN: email_given, Event.ASSIGN: assign, Event.REQUEUE: requeue,
    Event.HAND_BACK: hand_back, Event.RESOLVE: resolve, Event.ABANDON: swept("abandoned"),
    Event.IDLE_CLOSE: swept("idle_closed"), Event.RATE: rate, Event.COMMENT: comment, Event.MOVE_ON: move_on,
}
TICKET_AFTER = {Event.ASSIGN: "assigned", Event.REQUEUE: "queued", Event.HAND_BACK: "handed_back",
                Event.RESOLVE: "resolved", Event.ABANDON: "abandoned", Event.IDLE_CLOSE: "closed"}


@pytest.mark.parametrize(("state", "event"), list(TRANSITIONS), ids=[f"{s}-{e}" for s, e in TRANSITIONS])
async def test_each_transition_of_the_table(world: World, state: State, event: Event) -> None:
    sender = f"s-{state}-{event}"
    await SETUP[state](world, sender)
    assert world.state(sender) is state
    await DRIVE[event](world, sender, state)
    expected = TRANSITIONS[(state, event)]
    assert world.state(sender) is expected
    assert world.column(sender) == expected.column
    if event in TICKET_AFTER:
        assert world.ticket(sender).status == TICKET_AFTER[event]


ILLEGAL = [(s, e) for s in State for e in Event if (s, e) not in TRANSITIONS]


@pytest.fixture(scope="module")
async def in_every_state(tmp_path_factory: pytest.TempPathFactory) -> Any:
    gen = make_world(tmp_path_factory.mktemp("states"))
    w = next(gen)
    for state, setup in SETUP.items():
        await setup(w, f"s-{state}")
        w.presence("online")
        assert w.state(f"s-{state}") is state
    yield w
    gen.close()


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=[f"{s}-{e}" for s, e in ILLEGAL])
async def test_each_pair_missing_from_the_table_is_refused(in_every_state: World, state: State, event: Event) -> None:
    w, sender = in_every_state, f"s-{state}"
    with pytest.raises(IllegalTransition) as refused:
        lifecycle.next_state(state, event)
    assert refused.value.status == 409 and state.value in str(refused.value) and event.value in str(refused.value)
    if event in IN_PROCESS:
        return
    before = (w.column(sender), w.ticket(sender).status if state is not State.BOT and state is not State.OFFERED else None)
    with transaction(w.sessions) as db, pytest.raises(IllegalTransition):
        conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
        ticket = db.scalar(select(Ticket).where(Ticket.conversation_id == conv.id).order_by(Ticket.id.desc()).limit(1))
        sig = w.handoff._signals.get(sender)
        lifecycle.apply(db, event, conv, ticket, now=w.now[0], offer_pending=bool(sig and sig.offer_pending))
    after = (w.column(sender), w.ticket(sender).status if before[1] is not None else None)
    assert after == before and w.state(sender) is state


# --- the races ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def right_after_next_commit(w: World, coro: Callable[[], Awaitable[Any]]) -> Iterator[list[Any]]:
    """Run ``coro`` on the event loop right after the next database commit (the customer's message
    being stored), before the turn goes on: the interleaving of two requests arriving together."""
    loop = asyncio.get_running_loop()
    done: list[Any] = []

    def hook(_session: Session) -> None:
        if done:
            return
        done.append(None)
        done[0] = asyncio.run_coroutine_threadsafe(coro(), loop).result(timeout=30)

    event.listen(w.sessions, "after_commit", hook)
    try:
        yield done
    finally:
        event.remove(w.sessions, "after_commit", hook)


async def test_agent_replies_while_the_bot_is_mid_turn(world: World) -> None:
    """The customer asks the bot while waiting; before the bot answers, Alice claims and replies. The
    bot's answer to that message is kept (it was asked before she joined), the turn leaves the chat
    with Alice (``human``), nothing of the queue is appended, and from then on the bot is silent."""
    s, alice = "s-mid-turn", world.agent("alice")
    await to_queued(world, s)
    ticket_id = world.ticket(s).id

    async def agent_takes_over() -> None:
        await world.handoff.claim(alice, ticket_id)
        await world.handoff.reply(alice, ticket_id, "Hi, Alice here - checking your order now")

    world.rasa.script.append(says("Orders usually arrive in 3-5 days.", "ask_delivery_time", meanwhile=agent_takes_over))
    result = await world.say(s, "how long does delivery take")
    assert result.state == "human" and world.state(s) is State.HUMAN
    assert [m.text for m in result.messages] == ["Orders usually arrive in 3-5 days."]  # no queue position
    assert world.ticket(s).agent_id == alice.id

    calls = len(world.rasa.calls)
    events = world.handoff.events.subscribe(AGENTS)
    later = await world.say(s, "ok thx")
    assert len(world.rasa.calls) == calls and later.state == "human"  # the bot is silent now
    assert [(m.type, m.text) for m in later.messages] == [
        ("handoff", "Alice from our team has joined the chat."), ("agent", "Hi, Alice here - checking your order now")]
    relayed = events.queue.get_nowait()
    assert relayed["type"] == "message" and relayed["message"]["text"] == "ok thx"


async def test_customer_writes_during_the_hand_back(world: World) -> None:
    """Alice hands back right after the customer's message is stored (as 'human'): the message goes
    to the bot instead of being relayed to nobody."""
    s, alice = "s-hand-back", world.agent("alice")
    await to_human(world, s)
    ticket_id = world.ticket(s).id
    world.rasa.script.append(says("Sure - what's the order number?", "check_order_status"))
    with right_after_next_commit(world, lambda: world.handoff.hand_back(alice, ticket_id)) as handed:
        result = await world.say(s, "and can u check my other order too")
    assert handed and handed[0]["status"] == "handed_back"
    assert world.rasa.calls[-1] == (s, "and can u check my other order too")
    assert result.state == "bot" and result.messages[-1].text == "Sure - what's the order number?"
    assert world.state(s) is State.BOT
    inbound = [m for m in world.messages(s) if m.direction == "in"][-1]
    assert inbound.status == "answered"


async def test_resolve_then_a_new_message(world: World) -> None:
    """After resolve, a new question goes to the bot (the rating is skipped), the resolved ticket is
    not reopened and Alice's console gets nothing; asking for a person again opens a new ticket."""
    s, alice = "s-resolve", world.agent("alice")
    await to_human(world, s)
    first = world.ticket(s).id
    await world.handoff.resolve(alice, first)
    assert world.state(s) is State.RATING
    events = world.handoff.events.subscribe(AGENTS)
    world.rasa.script.append(says("Which order do you mean?", "check_order_status"))
    result = await world.say(s, "oh and where is my refund")
    assert result.state == "bot" and result.messages[-1].text == "Which order do you mean?"
    ticket = world.ticket(s)
    assert (ticket.id, ticket.status, ticket.csat_stage) == (first, "resolved", "skipped")
    assert events.queue.empty()
    world.rasa.script.append(handoff_action())
    again = await world.say(s, "human pls")
    assert again.state == "queued" and world.ticket(s).id != first


async def test_customer_writes_while_the_agent_resolves(world: World) -> None:
    """The message is stored while Alice owns the chat and she resolves before it is relayed: it is
    handled as what follows a resolve (not a rating → the bot answers), not dropped."""
    s, alice = "s-resolve-race", world.agent("alice")
    await to_human(world, s)
    ticket_id = world.ticket(s).id
    world.rasa.script.append(says("You're welcome!", "thanks"))
    with right_after_next_commit(world, lambda: world.handoff.resolve(alice, ticket_id)) as resolved:
        result = await world.say(s, "great thanks a lot")
    assert resolved and resolved[0]["status"] == "resolved"
    assert result.state == "bot" and result.messages[-1].text == "You're welcome!"
    assert world.ticket(s).csat_stage == "skipped" and world.state(s) is State.BOT


async def test_two_agents_claim_the_same_ticket(world: World) -> None:
    """Both read the ticket as waiting; both try to take it at once. One gets it, the other a 409;
    the customer hears of one agent and the audit has one claim."""
    s = "s-double-claim"
    await to_queued(world, s)
    ticket_id = world.ticket(s).id
    alice, admin = world.agent("alice"), world.agent("admin")
    both_read = threading.Barrier(2, timeout=20)

    def before_write(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if re.match(r"\s*UPDATE handoff_tickets SET status", statement):
            both_read.wait()  # each claim has read 'queued' and is about to write

    event.listen(world.engine, "before_cursor_execute", before_write)
    try:
        outcomes = await asyncio.gather(world.handoff.claim(alice, ticket_id), world.handoff.claim(admin, ticket_id),
                                        return_exceptions=True)
    finally:
        event.remove(world.engine, "before_cursor_execute", before_write)
    won = [o for o in outcomes if isinstance(o, dict)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], StaleState) and isinstance(lost[0], HandoffError) and lost[0].status == 409
    winner = alice if won[0]["agent"] == "Alice" else admin
    assert world.ticket(s).agent_id == winner.id and world.state(s) is State.HUMAN
    with world.sessions() as db:
        claims = list(db.scalars(select(AuditEntry.actor).where(AuditEntry.ticket_id == ticket_id,
                                                                AuditEntry.action == "claim")))
    assert claims == [winner.username]
    joined = [m.text for m in world.messages(s) if m.type == "handoff" and "joined" in m.text]
    assert len(joined) == 1


async def test_the_sweep_leaves_a_ticket_an_agent_just_took(world: World) -> None:
    """The sweep abandons a queued ticket whose customer left, unless an agent claimed it between the
    sweep's read and its write: then the claim stands and the sweep does nothing to it."""
    s, alice = "s-sweep-race", world.agent("alice")
    await to_queued(world, s)
    ticket_id = world.ticket(s).id
    world.now[0] += timedelta(minutes=31)
    loop = asyncio.get_running_loop()
    claimed: list[Any] = []

    def before_write(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not claimed and re.match(r"\s*UPDATE handoff_tickets SET status", statement):
            claimed.append(None)  # the sweep is about to abandon the ticket: Alice's claim commits first
            claimed[0] = asyncio.run_coroutine_threadsafe(world.handoff.claim(alice, ticket_id), loop).result(timeout=30)

    event.listen(world.engine, "before_cursor_execute", before_write)
    try:
        done = await timeouts.sweep(world.handoff)
    finally:
        event.remove(world.engine, "before_cursor_execute", before_write)
    assert claimed and claimed[0] is not None and claimed[0]["status"] == "assigned"
    assert done == [] and world.state(s) is State.HUMAN and world.ticket(s).agent_id == alice.id


async def test_one_inconsistent_row_does_not_stop_the_sweep(world: World) -> None:
    """A ticket whose conversation is not in a state the table allows its timeout from is skipped
    (and logged); the other tickets' timeouts still apply."""
    alice = world.agent("alice")
    for s in ("s-bad-row", "s-good-row"):
        await to_human(world, s)
    with transaction(world.sessions) as db:  # e.g. a row written by hand: an assigned ticket, a "bot" conversation
        db.scalar(select(Conversation).where(Conversation.sender_id == "s-bad-row")).state = "bot"
    world.now[0] += timedelta(minutes=31)
    done = await timeouts.sweep(world.handoff)
    assert [(kind, ticket) for kind, ticket, *_ in done] == [("idle_closed", world.ticket("s-good-row").id)]
    assert world.ticket("s-bad-row").status == "assigned" and world.ticket("s-bad-row").agent_id == alice.id
    assert world.state("s-good-row") is State.BOT


# --- the drawing in docs/architecture.md ---------------------------------------------------------------
def _section() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"^## Handoff lifecycle\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "docs/architecture.md has no '## Handoff lifecycle' section"
    return match.group(1)


def test_the_documented_diagram_is_the_table() -> None:
    diagram = re.search(r"```mermaid\n(.*?)```", _section(), re.S)
    assert diagram and "stateDiagram-v2" in diagram.group(1)
    edges = {(State(a), Event(e), State(b)) for a, b, e in
             re.findall(r"^\s*(\w+)\s*-->\s*(\w+)\s*:\s*(\w+)\s*$", diagram.group(1), re.M)}
    assert edges == {(s, e, t) for (s, e), t in TRANSITIONS.items()}


def test_the_documented_table_is_the_table() -> None:
    rows = re.findall(r"^\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|", _section(), re.M)
    assert rows, "no transition table rows"
    assert len(rows) == len(TRANSITIONS)
    assert {(State(a), Event(e)): State(b) for a, e, b in rows} == TRANSITIONS
    columns = dict(re.findall(r"^\|\s*`(\w+)`\s*\|\s*(bot|queued|human|closed)\s*\|", _section(), re.M))
    assert {State(k): Column(v) for k, v in columns.items()} == {s: s.column for s in State}
