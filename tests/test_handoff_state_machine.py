"""The handoff lifecycle (handoff/lifecycle.py) walked pair by pair on a real SQLite database, with
the real conversation service, handoff service, timeout sweep and Rasa action; only Rasa's server
is replaced by scripted replies (tests/helpers.py, as in test_handoff_service.py).

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
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.actions.handoff import ActionHandoffRequest
from conversations.models import Conversation
from conversations.service import TurnResult
from handoff import lifecycle, timeouts
from handoff.errors import HandoffError
from handoff.events import AGENTS
from handoff.lifecycle import IN_PROCESS, TRANSITIONS, Column, Event, IllegalTransition, StaleState, State
from handoff.models import AuditEntry, Ticket
from handoff.policy import Escalate
from handoff.service import AgentIdentity
from storage.db import transaction
from tests.helpers import ALL_AGENTS, HandoffWorld, Step, make_settings, open_world, runs, says

ROOT = Path(__file__).resolve().parent.parent


class World(HandoffWorld):
    """The handoff world of tests/helpers.py, which here also reads the lifecycle state."""

    def state(self, sender: str) -> State:
        """The lifecycle state as stored: the conversation's column, its latest ticket, the policy's memory (all in the database)."""
        with self.sessions() as db:
            conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
            ticket = db.scalar(select(Ticket).where(Ticket.conversation_id == conv.id).order_by(Ticket.id.desc()).limit(1))
        return lifecycle.state_of(conv.state, ticket, self.handoff.pending_offer(sender) is not None)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(make_settings(tmp_path), World, ALL_AGENTS)


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
    w.rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))
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
    gen = open_world(make_settings(tmp_path_factory.mktemp("states")), World, ALL_AGENTS)
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
        offered = w.handoff.pending_offer(sender) is not None
        lifecycle.apply(db, event, conv, ticket, now=w.now[0], offer_pending=offered)
    after = (w.column(sender), w.ticket(sender).status if before[1] is not None else None)
    assert after == before and w.state(sender) is state


# --- the races ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def listening(target: Any, name: str, hook: Callable[..., Any]) -> Iterator[None]:
    """``hook`` on ``target``'s SQLAlchemy event ``name`` for the length of the block."""
    event.listen(target, name, hook)
    try:
        yield
    finally:
        event.remove(target, name, hook)


@contextlib.contextmanager
def before_ticket_status_write(w: World, hook: Callable[[], None]) -> Iterator[None]:
    """``hook`` runs (in the writing thread) right before each write of a ticket's status."""

    def before_write(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if re.match(r"\s*UPDATE handoff_tickets SET status", statement):
            hook()

    with listening(w.engine, "before_cursor_execute", before_write):
        yield


def run_once(coro: Callable[[], Awaitable[Any]], done: list[Any]) -> Callable[..., None]:
    """A hook that, the first time it is called, runs ``coro`` to its end on this event loop (from the
    thread that calls it) and puts its result in ``done``."""
    loop = asyncio.get_running_loop()

    def hook(*_args: Any) -> None:
        if not done:
            done.append(None)
            done[0] = asyncio.run_coroutine_threadsafe(coro(), loop).result(timeout=30)

    return hook


async def alice_acts_as_the_customer_writes(
    w: World, s: str, act: Callable[[AgentIdentity, int], Awaitable[Any]], bot_says: Step, text: str
) -> tuple[TurnResult, Any]:
    """Alice owns the chat; the customer writes ``text`` (the bot would answer ``bot_says``) and Alice's
    ``act`` on the ticket runs right after the next database commit (the message being stored), before
    the turn goes on: two requests arriving together. The customer's answer and what ``act`` returned."""
    alice = w.agent("alice")
    await to_human(w, s)
    ticket_id = w.ticket(s).id
    w.rasa.script.append(bot_says)
    done: list[Any] = []
    with listening(w.sessions, "after_commit", run_once(lambda: act(alice, ticket_id), done)):
        result = await w.say(s, text)
    assert done
    return result, done[0]


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
    s, asks = "s-hand-back", says("Sure - what's the order number?", "check_order_status")
    result, handed = await alice_acts_as_the_customer_writes(
        world, s, world.handoff.hand_back, asks, "and can u check my other order too"
    )
    assert handed["status"] == "handed_back"
    assert world.rasa.calls[-1][:2] == (s, "and can u check my other order too")
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
    world.rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))
    again = await world.say(s, "human pls")
    assert again.state == "queued" and world.ticket(s).id != first


async def test_customer_writes_while_the_agent_resolves(world: World) -> None:
    """The message is stored while Alice owns the chat and she resolves before it is relayed: it is
    handled as what follows a resolve (not a rating → the bot answers), not dropped."""
    s, thanks = "s-resolve-race", says("You're welcome!", "thanks")
    result, resolved = await alice_acts_as_the_customer_writes(
        world, s, world.handoff.resolve, thanks, "great thanks a lot"
    )
    assert resolved["status"] == "resolved"
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
    with before_ticket_status_write(world, both_read.wait):  # each claim has read 'queued' and is about to write
        outcomes = await asyncio.gather(world.handoff.claim(alice, ticket_id), world.handoff.claim(admin, ticket_id),
                                        return_exceptions=True)
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
    claimed: list[Any] = []
    # the sweep is about to abandon the ticket: Alice's claim commits first
    with before_ticket_status_write(world, run_once(lambda: world.handoff.claim(alice, ticket_id), claimed)):
        done = await timeouts.sweep(world.handoff)
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
