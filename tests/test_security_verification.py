"""Issue 12, item 7 (identity verification) and item 1's defence in depth, tried as an attacker would.

Item 7: three failed verifications (order id + email/username) lock that order id and that sender in
the database for ``verification_lockout_min`` minutes: restarting the form, or the conversation, or
asking from another sender gives no new tries, and while locked not even the right identity is
checked. "No such order" and "that email doesn't match" are answered with the same text.

Item 1: an action trusts nothing the tracker says about who the customer is: the store confirms at
action time that the verified identity owns the order. Forged trackers ({"order_id": …, "verified":
true}) reach the actions through rasa-sdk's executor exactly as the action server would run them.

The actions run in-process on a migrated, seeded SQLite database (seeded "now", so refunds and
returns are inside their windows and a forged tracker would really change the store on old code);
the form loop Rasa would run is played by ``Chat`` below. One test goes through the REST API.
"""

from __future__ import annotations

import shutil
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bot.actions import extract, identity
from bot.actions import runtime as action_runtime
from bot.actions.handoff import facts, membership
from bot.actions.webhook import executor
from settings import ROOT, Settings
from storage.db import Base, make_engine, make_session_factory, upgrade
from store.models import Customer, Order, OrderItem, OutboxEmail, Refund, ReturnRequest, VerificationFailure
from store.seed import DEMO, seed
from store.service import SqlOrdersService
from store.verification import VerificationGuard, VerificationOutcome, locked_until
from tests.conftest import LiveSystem, texts
from tests.store_fixtures import (  # noqa: F401  (fixture_* register the fixtures used as arguments)
    StoreDb,
    fixture_postgres_store_schema,
    fixture_sqlite_store_template,
    fixture_store_db,
)

DOMAIN: dict[str, Any] = yaml.safe_load((ROOT / "bot" / "domain.yml").read_text(encoding="utf-8"))
INITIAL_SLOTS = {name: spec.get("initial_value") for name, spec in DOMAIN["slots"].items()}
SUBMIT = {
    "order_status_form": "action_order_status",
    "tracking_form": "action_track_shipment",
    "refund_status_form": "action_refund_status",
    "refund_form": "action_submit_refund",
    "return_form": "action_submit_return",
    "cancel_form": "action_cancel_order",
    "address_form": "action_change_address",
}
SHIPPED = DEMO["shipped"]  # 3348917502 / cminh730
NO_SUCH_ORDER = "4000000017"
WINDOW_MIN = 30.0
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# --- the world: a seeded database, the actions configured on it, a clock the test moves ------------


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verification_template") / "store.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    seed(make_session_factory(engine))  # seeded "now": windows are open, as in a running system
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@dataclass
class World:
    sessions: sessionmaker[Session]
    orders: SqlOrdersService
    settings: Settings
    now: list[datetime]

    def advance(self, **delta: float) -> None:
        self.now[0] += timedelta(**delta)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every store table, to prove a refused action changed nothing."""
        snap: dict[str, list[tuple[Any, ...]]] = {}
        with self.sessions() as session:
            for model in (Customer, Order, OrderItem, Refund, ReturnRequest, OutboxEmail):
                rows = session.execute(select(*model.__table__.columns)).all()
                snap[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
        return snap

    def details(self, order_id: str) -> list[str]:
        """Strings that only someone who may see the order should ever read."""
        order = self.orders.get_order(order_id)
        assert order is not None
        found = [order.shipping_address, f"{order.total:,.2f}", *(i.product_name for i in order.items)]
        return [*found, order.tracking_number] if order.tracking_number else found


@pytest.fixture
def world(seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    shutil.copyfile(seeded_template, tmp_path / "store.db")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = Settings(data_dir=tmp_path, database_url=url, max_verification_attempts=3,
                        verification_lockout_min=WINDOW_MIN)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    orders = SqlOrdersService(sessions, auto_refund_limit=settings.auto_refund_limit)
    action_runtime.configure(orders, settings, sessions=sessions)
    now = [START]
    monkeypatch.setattr(identity, "clock", lambda: now[0])
    yield World(sessions, orders, settings, now)
    engine.dispose()


# --- Rasa's part, played in the test: slots, the form loop, the responses' text --------------------


def render(message: dict[str, Any], slots: dict[str, Any]) -> str:
    """A response as Rasa's NLG would say it: the variation of the ``language`` slot, slots and the
    action's values filled in."""
    name = message.get("response") or message.get("template")
    if not name:
        return str(message.get("text") or (message.get("custom") or {}).get("text") or "")
    variations = DOMAIN["responses"][name]
    language = slots.get("language") or "en"
    chosen = next(
        (v for v in variations if any(c.get("value") == language for c in v.get("condition") or [])), variations[0]
    )
    values = {**{k: v for k, v in slots.items() if v is not None}, **{k: v for k, v in message.items() if v is not None}}
    return str(chosen["text"]).format_map(defaultdict(str, values))


async def run_action(name: str, sender: str, slots: dict[str, Any], events: list[dict[str, Any]] | None = None,
                     active_loop: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Run one action through rasa-sdk's executor, as the action server does: (events, reply text)."""
    tracker = {
        "sender_id": sender, "slots": slots, "events": events or [], "paused": False, "followup_action": None,
        "latest_message": {"text": "", "intent": {"name": "inform", "confidence": 1.0}, "entities": []},
        "active_loop": {"name": active_loop} if active_loop else {}, "latest_action_name": "action_listen",
    }
    result = await executor().run({"next_action": name, "sender_id": sender, "tracker": tracker, "domain": DOMAIN})
    assert result is not None
    dump = result.model_dump()
    return dump["events"], "\n".join(render(m, slots) for m in dump["responses"])


@dataclass
class Chat:
    """One conversation: its slots live on between forms, as in Rasa's tracker."""

    sender: str
    language: str = "en"
    slots: dict[str, Any] = field(default_factory=lambda: dict(INITIAL_SLOTS))
    form: str | None = None
    requested: str | None = None

    def __post_init__(self) -> None:
        self.slots["language"] = self.language

    async def start(self, form: str = "order_status_form", **given: Any) -> str:
        """A new request: the form starts (again), with whatever the customer's message already said."""
        self.form, self.requested = form, None
        return await self._validate(given)

    async def say(self, text: str) -> str:
        assert self.form and self.requested, "no form is asking anything"
        return await self._validate({self.requested: text})

    async def _validate(self, candidates: dict[str, Any]) -> str:
        assert self.form is not None
        form = self.form
        events_in = [{"event": "action", "name": form}] + [
            {"event": "slot", "name": k, "value": v} for k, v in candidates.items()
        ]
        self.slots.update(candidates)
        events, reply = await run_action(f"validate_{form}", self.sender, dict(self.slots), events_in, active_loop=form)
        said = [reply] if reply else []
        requested: Any = ...
        for e in events:
            if e.get("event") == "slot" and e["name"] == "requested_slot":
                requested = e["value"]
            elif e.get("event") == "slot":
                self.slots[e["name"]] = e["value"]
        if requested is ...:  # the validator left it to the form: the next empty required slot
            required = DOMAIN["forms"][form]["required_slots"]
            requested = next((s for s in required if self.slots.get(s) is None), None)
        if requested:
            self.requested = requested
            if f"utter_ask_{requested}" in DOMAIN["responses"]:
                said.append(render({"response": f"utter_ask_{requested}"}, self.slots))
        else:  # the form is over: its submit action runs
            self.form = self.requested = None
            events, reply = await run_action(SUBMIT[form], self.sender, dict(self.slots))
            said.append(reply)
            self.slots.update({e["name"]: e["value"] for e in events if e.get("event") == "slot"})
        return "\n".join(s for s in said if s)


def shows_any(reply: str, details: list[str]) -> list[str]:
    return [d for d in details if d and d in reply]


LOCKED = {"en": "too many unsuccessful attempts", "zh": "核实失败次数过多", "ru": "слишком много неудачных попыток"}


# --- item 7: the lockout ------------------------------------------------------------------------------


async def test_restarting_the_form_gives_no_fourth_guess(world: World) -> None:
    """(a) Three wrong identities, a new request, then the RIGHT identity: the order stays hidden."""
    chat = Chat("attacker-a")
    await chat.start()
    await chat.say(SHIPPED.order_id)
    for guess in ("guess1@email.com", "guess2@email.com"):
        assert "doesn't match" in await chat.say(guess)
    third = await chat.say("guess3@email.com")
    assert "3 tries" in third and chat.form is None

    # The old code reset the count here: a new request is a new form.
    fourth = await chat.start(order_id=SHIPPED.order_id, customer_identifier=SHIPPED.email)
    assert not shows_any(fourth, world.details(SHIPPED.order_id)), fourth
    assert LOCKED["en"] in fourth and "person" in fourth and f"{int(WINDOW_MIN)} minutes" in fourth
    assert chat.slots["verified"] is False and chat.form is None

    # Nor does a brand-new conversation (a new tracker) from the same sender.
    again = Chat("attacker-a")
    reply = await again.start()
    assert LOCKED["en"] in reply and "order number" not in reply  # not even asked for an order number


async def test_another_sender_finds_the_order_locked(world: World) -> None:
    """(b) The failures lock the ORDER too: a fresh sender with the right identity is refused."""
    attacker = Chat("attacker-b")
    await attacker.start(order_id=SHIPPED.order_id)
    for guess in ("a@x.com", "b@x.com", "c@x.com"):
        await attacker.say(guess)
    other = Chat("someone-else")
    await other.start()
    reply = await other.say(SHIPPED.order_id)  # refused as soon as the locked order id is named
    assert LOCKED["en"] in reply and not shows_any(reply, world.details(SHIPPED.order_id))
    reply = await Chat("third-sender").start(order_id=SHIPPED.order_id, customer_identifier=SHIPPED.username)
    assert LOCKED["en"] in reply and not shows_any(reply, world.details(SHIPPED.order_id))
    # Another order from a sender that is not locked still works: the lock is no blanket refusal.
    processing = DEMO["processing"]
    fine = await Chat("someone-else-2").start(order_id=processing.order_id, customer_identifier=processing.email)
    assert "being prepared" in fine or processing.order_id in fine
    assert LOCKED["en"] not in fine


async def test_a_locked_sender_cannot_verify_another_order(world: World) -> None:
    chat = Chat("attacker-c")
    await chat.start(order_id=NO_SUCH_ORDER)
    for guess in ("a@x.com", "b@x.com", "c@x.com"):
        await chat.say(guess)
    processing = DEMO["processing"]
    reply = await chat.start(order_id=processing.order_id, customer_identifier=processing.username)
    assert LOCKED["en"] in reply and not shows_any(reply, world.details(processing.order_id))


async def test_success_keeps_the_failures_other_senders_made(world: World) -> None:
    attacker = Chat("attacker-d")
    await attacker.start(order_id=SHIPPED.order_id)
    await attacker.say("a@x.com")
    await attacker.say("b@x.com")
    owner = Chat("owner-d")
    shown = await owner.start(order_id=SHIPPED.order_id, customer_identifier=SHIPPED.email)
    assert world.details(SHIPPED.order_id)[-1] in shown  # the owner got in: two failures do not lock
    await Chat("accomplice-d").start(order_id=SHIPPED.order_id, customer_identifier="c@x.com")  # third failure
    late = await Chat("owner-d-2").start(order_id=SHIPPED.order_id, customer_identifier=SHIPPED.email)
    assert LOCKED["en"] in late and not shows_any(late, world.details(SHIPPED.order_id))


@pytest.mark.parametrize("language", ["en", "zh", "ru"])
async def test_unknown_order_and_wrong_email_get_the_same_answer(world: World, language: str) -> None:
    """(c) No oracle for which order ids exist: the same next question and the same refusal."""
    assert world.orders.get_order(NO_SUCH_ORDER) is None
    unknown, wrong = Chat(f"probe-1-{language}", language), Chat(f"probe-2-{language}", language)
    await unknown.start()
    await wrong.start()
    asked_unknown = await unknown.say(NO_SUCH_ORDER)
    asked_wrong = await wrong.say(SHIPPED.order_id)
    assert asked_unknown.replace(NO_SUCH_ORDER, "#") == asked_wrong.replace(SHIPPED.order_id, "#")
    refused_unknown = await unknown.say(SHIPPED.email)  # a real customer's email, on an order that does not exist
    refused_wrong = await wrong.say("someone.else@email.com")
    # The refusal itself is the same text; then both are asked again for the email on "their" order.
    assert refused_unknown.splitlines()[0] == refused_wrong.splitlines()[0]
    assert refused_unknown.replace(NO_SUCH_ORDER, "#") == refused_wrong.replace(SHIPPED.order_id, "#")


async def test_a_corrected_order_number_is_not_taken_for_an_identity(world: World) -> None:
    """Unknown order ids are no longer refused up front, so a customer who notices a typo gives the
    right number while being asked for the email: that is no failed try, and the form moves on."""
    chat = Chat("typo")
    await chat.start()
    await chat.say(NO_SUCH_ORDER)
    asked = await chat.say(f"oh sorry, it's {SHIPPED.order_id}")  # no NLU entity here: the text alone
    assert "doesn't match" not in asked and f"on order {SHIPPED.order_id}" in asked
    assert chat.slots["failed_attempts"] == 0
    assert world.details(SHIPPED.order_id)[-1] in await chat.say(SHIPPED.username)
    assert extract.identifier(f"sorry, the order is {SHIPPED.order_id}") is None
    assert extract.identifier(f"{SHIPPED.order_id} {SHIPPED.username}") == SHIPPED.username


async def test_the_lock_ends_after_the_window(world: World) -> None:
    """(d) An injected clock moves past the window; nobody sleeps."""
    chat = Chat("forgetful")
    await chat.start(order_id=SHIPPED.order_id)
    for guess in ("a@x.com", "b@x.com", "c@x.com"):
        await chat.say(guess)
        world.advance(minutes=1)
    # The lock ends WINDOW_MIN after the first of the three failures (which was 3 minutes ago).
    world.advance(minutes=WINDOW_MIN - 3, seconds=-1)
    assert LOCKED["en"] in await chat.start(order_id=SHIPPED.order_id, customer_identifier=SHIPPED.email)
    world.advance(seconds=2)
    reply = await chat.start(order_id=SHIPPED.order_id, customer_identifier=SHIPPED.email)
    assert world.details(SHIPPED.order_id)[-1] in reply and chat.slots["verified"] is True


@pytest.mark.parametrize("language", ["en", "zh", "ru"])
async def test_the_lock_message_says_wait_or_ask_for_a_person(world: World, language: str) -> None:
    chat = Chat(f"locked-{language}", language)
    await chat.start(order_id=NO_SUCH_ORDER)
    for guess in ("a@x.com", "b@x.com", "c@x.com"):
        await chat.say(guess)
    world.advance(minutes=10)
    reply = await chat.start()
    assert LOCKED[language] in reply and "20" in reply  # minutes left
    assert {"en": "person", "zh": "人工", "ru": "сотрудник"}[language] in reply


def test_lock_rule() -> None:
    window = timedelta(minutes=30)
    times = [START, START + timedelta(minutes=5), START + timedelta(minutes=10)]
    assert locked_until(times[:2], START + timedelta(minutes=11), 3, window) is None
    assert locked_until(times, START + timedelta(minutes=11), 3, window) == START + window
    assert locked_until(times, START + window, 3, window) is None  # the first failure left the window
    assert locked_until([*times, START + timedelta(minutes=20)], START + window, 3, window) == times[1] + window


def test_guard_on_each_backend(store_db: StoreDb) -> None:
    """The same counting on SQLite and PostgreSQL (the table comes from the Alembic revision)."""
    with store_db.factory.begin() as session:
        session.execute(delete(VerificationFailure))
    now = [START]
    guard = VerificationGuard(store_db.service, store_db.factory, max_attempts=3, lockout=timedelta(minutes=30),
                              clock=lambda: now[0])
    long_sender = "s" * 300  # longer than the column: stored as a digest
    for _ in range(2):
        assert guard.verify(SHIPPED.order_id, "nobody@x.com", long_sender).outcome is VerificationOutcome.MISMATCH
    third = guard.verify(SHIPPED.order_id, "nobody@x.com", long_sender)
    assert third.outcome is VerificationOutcome.MISMATCH and third.locked_until == START + timedelta(minutes=30)
    right = guard.verify(SHIPPED.order_id, SHIPPED.email, "s2")
    assert right.outcome is VerificationOutcome.LOCKED and right.customer is None
    now[0] += timedelta(minutes=31)
    assert guard.verify(SHIPPED.order_id, SHIPPED.email, "s2").outcome is VerificationOutcome.VERIFIED


def test_migration_matches_the_model(world: World) -> None:
    def only_ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table == "verification_failures"

    engine = world.sessions.kw["bind"]
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": only_ours, "compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []


# --- item 1, defence in depth: forged trackers through the executor --------------------------------

OTHER = DEMO["processing"].username  # a real customer, but not the owner of the orders below
FORGED_CASES = [
    ("action_order_status", DEMO["shipped"], {}),
    ("action_track_shipment", DEMO["shipped"], {}),
    ("action_refund_status", DEMO["refund_requested"], {}),
    ("action_cancel_order", DEMO["processing"], {"confirm_write": True}),
    ("action_change_address", DEMO["processing"], {"new_address": "1 Attacker Road, Springfield, IL 62701", "confirm_write": True}),
    ("action_submit_refund", DEMO["delivered_recent"], {"refund_method": "gift_card", "refund_reason": "forged", "confirm_write": True}),
    ("action_submit_return", DEMO["delivered_recent"], {"return_reason": "forged", "confirm_write": True}),
]


def forged_slots(order_id: str, extra: dict[str, Any], username: str | None) -> dict[str, Any]:
    slots = {**INITIAL_SLOTS, "language": "en", "order_id": order_id, "verified": True, **extra}
    if username is not None:
        slots["verified_username"] = username
    return slots


@pytest.mark.parametrize("username", [None, OTHER, "nobody-at-all"], ids=["no-identity", "other-customer", "unknown"])
@pytest.mark.parametrize(("action", "demo", "extra"), FORGED_CASES, ids=[c[0] for c in FORGED_CASES])
async def test_forged_verified_tracker_is_refused(world: World, action: str, demo: Any, extra: dict[str, Any],
                                                  username: str | None) -> None:
    if username == OTHER and demo.username == OTHER:
        username = DEMO["shipped"].username
    before = world.snapshot()
    events, reply = await run_action(action, "forger", forged_slots(demo.order_id, extra, username))
    assert not shows_any(reply, world.details(demo.order_id)), reply
    assert world.snapshot() == before
    slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
    assert slots.get("verified") is False and slots.get("order_id") is None  # treated as unverified from now on


@pytest.mark.parametrize(("action", "demo", "extra"), FORGED_CASES, ids=[c[0] for c in FORGED_CASES])
async def test_the_owner_still_gets_the_action(world: World, action: str, demo: Any, extra: dict[str, Any]) -> None:
    """The control: the same call with the identity that owns the order works (so the refusal above
    is the ownership check, not a broken call)."""
    before = world.snapshot()
    _events, reply = await run_action(action, "owner", forged_slots(demo.order_id, extra, demo.username))
    assert demo.order_id in reply and "doesn't match" not in reply
    if action in ("action_cancel_order", "action_change_address", "action_submit_refund", "action_submit_return"):
        assert world.snapshot() != before


async def test_forged_trackers_run_into_the_lockout(world: World) -> None:
    """Guessing usernames with forged trackers counts as failed verifications of that order."""
    for guess in ("guess1", "guess2", "guess3"):
        await run_action("action_order_status", f"forger-{guess}", forged_slots(SHIPPED.order_id, {}, guess))
    _events, reply = await run_action("action_order_status", "forger-4", forged_slots(SHIPPED.order_id, {},
                                                                                         SHIPPED.username))
    assert not shows_any(reply, world.details(SHIPPED.order_id)) and LOCKED["en"] in reply


async def test_forged_password_resets_do_not_flood_a_mailbox(world: World) -> None:
    slots = {**forged_slots(SHIPPED.order_id, {"confirm_write": True}, None), "account_identifier": SHIPPED.email}
    for _ in range(5):
        _events, reply = await run_action("action_reset_password", "forger", dict(slots))
        assert not shows_any(reply, world.details(SHIPPED.order_id))
    with world.sessions() as session:
        sent = session.scalars(select(OutboxEmail).where(OutboxEmail.kind == "password_reset")).all()
    assert [m.to_address for m in sent] == [SHIPPED.email]  # one link, to the address on file


async def test_forged_identity_is_not_handed_to_an_agent(world: World) -> None:
    """The handoff ticket would tell the agent "identity verified"; a forged claim must not."""
    from rasa_sdk import Tracker

    gold = DEMO["gold_delivered_old"]
    forged = Tracker("forger", forged_slots(SHIPPED.order_id, {}, gold.username), {}, [], False, None, {}, None)
    assert membership(forged) is None  # no gold priority on a claim
    assert facts(forged)["slots"]["verified"] is False and facts(forged)["slots"]["verified_username"] is None
    real = Tracker("owner", forged_slots(gold.order_id, {}, gold.username), {}, [], False, None, {}, None)
    assert membership(real) == "gold" and facts(real)["slots"]["verified"] is True


# --- through the REST API -----------------------------------------------------------------------------

# Seeded orders that no other live test or scenario uses: failures here must not lock anyone else's.
LIVE_ORDER = ("9218042556", "mminh168@email.com")
LIVE_PROBE_ORDER = "6756522168"


def new_sender() -> str:
    return f"sec-{uuid.uuid4().hex[:10]}"


@pytest.mark.rasa
def test_lockout_and_one_answer_through_the_rest_api(live: LiveSystem) -> None:
    order_id, email = LIVE_ORDER
    tracking = live.query("select tracking_number from orders where order_id = :o", o=order_id)[0][0]
    attacker = new_sender()
    live.say(attacker, "where is my order?")
    live.say(attacker, order_id)
    for guess in ("a1@email.com", "a2@email.com"):
        assert "doesn't match" in texts(live.say(attacker, guess))
    assert "3 tries" in texts(live.say(attacker, "a3@email.com"))
    # A new request (the old code counted from zero again), with the RIGHT identity this time.
    fourth = texts(live.say(attacker, f"where is my order {order_id}? my email is {email}"))
    assert tracking not in fourth and LOCKED["en"] in fourth

    other = new_sender()  # another sender: the order itself is locked
    first = texts(live.say(other, f"where is my order {order_id}?"))
    assert LOCKED["en"] in first
    assert tracking not in texts(live.say(other, email))

    unknown_id = "4000000029"
    assert live.query("select count(*) from orders where order_id = :o", o=unknown_id)[0][0] == 0
    a, b = new_sender(), new_sender()
    asked_a = texts(live.say(a, f"has order {unknown_id} shipped?"))
    asked_b = texts(live.say(b, f"has order {LIVE_PROBE_ORDER} shipped?"))
    assert asked_a.replace(unknown_id, "#") == asked_b.replace(LIVE_PROBE_ORDER, "#")
    refused_a, refused_b = texts(live.say(a, "nobody.here@email.com")), texts(live.say(b, "nobody.here@email.com"))
    assert "doesn't match" in refused_a and refused_a.splitlines()[0] == refused_b.splitlines()[0]
    assert refused_a.replace(unknown_id, "#") == refused_b.replace(LIVE_PROBE_ORDER, "#")
