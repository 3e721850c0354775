"""Human handoff at service level: the real conversation service, handoff service, Rasa actions
(rasa-sdk) and store on a real SQLite database. Only Rasa's NLU/dialogue server is replaced, by
``ScriptedRasa`` (tests/helpers.py), which answers each turn as the gateway channel does (messages +
turn summary) and, where Rasa would call one of our actions, runs that real action."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.actions.handoff import ActionHandoffRequest
from bot.actions.orders import ActionSubmitRefund
from conversations.models import KbAnswer
from conversations.service import TurnResult
from handoff import timeouts
from handoff.events import AGENTS, conversation_topic
from handoff.models import AuditEntry
from storage.db import transaction
from store.seed import DEMO
from tests.helpers import DEMO_AGENTS, WEDNESDAY, HandoffWorld, make_settings, open_world, runs, says

# A Saturday, 10:00 in London: the queues are closed (WEDNESDAY: open).
SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

World = HandoffWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


def make_world(tmp_path: Path, **settings_over: Any) -> Iterator[World]:
    """The demo agents signed in; tickets wait for a claim (auto-assign off unless a test turns it on)."""
    return open_world(make_settings(tmp_path, **settings_over), World, DEMO_AGENTS)


def texts_of(result: TurnResult) -> str:
    return "\n".join(m.text for m in result.messages)


# --- explicit request, context, routing ------------------------------------------------------------
async def test_explicit_request_files_a_complete_ticket(world: World) -> None:
    order = DEMO["shipped"]
    world.rasa.script = [
        says("What's the order number?", "check_order_status"),
        says("Thanks, you're verified. Your order has shipped.", "inform",
             slots={"order_id": order.order_id, "verified": True, "verified_username": order.username,
                    "customer_identifier": order.email},
             entities=[{"entity": "order_id", "value": order.order_id}]),
        runs(ActionHandoffRequest(), "human_handoff",
             slots={"order_id": order.order_id, "verified": True, "verified_username": order.username}),
    ]
    first = await world.say("s-explicit", "where is my order?")
    assert first.conversation_token and first.state == "bot"
    with transaction(world.handoff._sessions) as db:  # a KB answer shown earlier, with feedback
        db.add(KbAnswer(sender_id="s-explicit", query="shipping times", language="en", outcome="answered",
                        article_id="shipping-times", helpful=False, candidates=[], created_at=WEDNESDAY))
    await world.say("s-explicit", f"{order.order_id} {order.email}")
    result = await world.say("s-explicit", "I want to talk to a real person")
    assert result.state == "queued"
    assert "number 1 in the queue" in texts_of(result)
    assert all(m.type == "handoff" for m in result.messages)

    ticket = world.ticket("s-explicit")
    assert (ticket.reason, ticket.rule, ticket.queue, ticket.topic) == ("explicit_request", None, "shipping-en", "shipping")
    detail = world.handoff.ticket_detail(world.agent("admin"), ticket.id)
    said = [(m["from"], m["text"]) for m in detail["transcript"]]
    assert said[0] == ("customer", "where is my order?")
    assert ("customer", "I want to talk to a real person") in said
    assert any(who == "bot" and "queue" in text for who, text in said)  # the escalation turn itself
    assert all(m["channel"] == "rest" and m["language"] == "en" and m["created_at"] for m in detail["transcript"])
    turns = detail["context"]["turns"]
    assert [t["intent"] for t in turns] == ["check_order_status", "inform", "human_handoff"]
    assert turns[1]["confidence"] == 0.9 and turns[1]["entities"][0]["value"] == order.order_id
    assert detail["context"]["slots"]["order_id"] == order.order_id
    assert detail["context"]["order"]["status"] == "shipped"
    assert detail["context"]["kb_answers"][0]["helpful"] is False
    assert detail["customer"]["username"] == order.username and detail["customer"]["verified"] is True
    assert "Customer asked for a person" in detail["summary"] and order.order_id in detail["summary"]
    assert "I want to talk to a real person" in detail["summary"]


@pytest.mark.parametrize(("language", "intent", "queue"), [
    ("zh", "request_refund", "billing-zh"), ("ru", "track_shipment", "shipping-ru"), ("en", "reset_password", "account-en"),
    ("ru", "reset_password", "general-ru"), ("zh", "greet", "general-zh"),
])
async def test_routing_by_language_and_topic(world: World, language: str, intent: str, queue: str) -> None:
    sender = f"route-{language}-{intent}"
    world.rasa.script = [says("...", intent), runs(ActionHandoffRequest(), "human_handoff")]
    await world.say(sender, "hello", language=language)
    result = await world.say(sender, "human", language=language)
    assert world.ticket(sender).queue == queue
    assert result.language == language


async def test_gold_customer_asking_twice_is_escalated_as_vip(world: World) -> None:
    slots = {"verified": True, "verified_username": DEMO["gold_delivered_old"].username,
             "order_id": DEMO["gold_delivered_old"].order_id}  # verified on an order they own (re-checked)
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff", slots=slots),
                         runs(ActionHandoffRequest(), "human_handoff", slots=slots, history=["human_handoff"])]
    await world.say("s-gold", "agent please")
    assert world.ticket("s-gold").priority == 1  # gold: high
    again = await world.say("s-gold", "agent please!")
    ticket = world.ticket("s-gold")
    assert (ticket.rule, ticket.priority, ticket.request_count) == ("vip_repeat_request", 0, 2)
    assert "still in the queue" in texts_of(again)


# --- business rules ------------------------------------------------------------------------------------
async def test_refund_above_limit_is_escalated_with_the_order(world: World) -> None:
    order = DEMO["big_amount_delivered"]
    slots = {"order_id": order.order_id, "verified": True, "verified_username": order.username,
             "refund_method": "credit_card", "refund_reason": "broken", "confirm_write": True}  # the customer said yes
    world.rasa.script = [runs(ActionSubmitRefund(), "request_refund", slots=slots)]
    result = await world.say("s-refund", "refund please")
    ticket = world.ticket("s-refund")
    assert (ticket.reason, ticket.rule, ticket.topic, ticket.queue) == ("business_rule", "refund_above_limit", "billing",
                                                                         "billing-en")
    assert ticket.context["order"]["order_id"] == order.order_id
    assert ticket.context["order"]["refund"]["status"] == "pending_approval"
    assert ticket.context["trigger"]["order_id"] == order.order_id
    assert "above the automatic limit" in ticket.summary
    assert result.state == "queued" and order.order_id in texts_of(result)


@pytest.mark.parametrize(("text", "rule"), [
    ("I'm going to sue you and call my lawyer", "legal_threat"),
    ("我要起诉你们", "legal_threat"),
    ("Я подам на вас в суд", "legal_threat"),
    ("I'll file a chargeback with my bank", "chargeback"),
    ("if that money isnt back by friday im disputing the charge with my bank", "chargeback"),
    ("opening a dispute with my bank today", "chargeback"),
    ("我要向银行申请拒付", "chargeback"),
    ("Оспорю платёж через банк", "chargeback"),
    ("someone changed my password and email", "account_takeover"),
    ("我的账号被盗了", "account_takeover"),
    ("Мой аккаунт взломали", "account_takeover"),
])
async def test_rule_in_words_escalates_before_rasa(world: World, text: str, rule: str) -> None:
    result = await world.say("s-rule", text)  # the script is empty: asking Rasa fails the test
    ticket = world.ticket("s-rule")
    assert (ticket.reason, ticket.rule, ticket.priority) == ("business_rule", rule, 0)
    assert result.state == "queued" and result.messages and world.rasa.calls == []
    stored = world.messages("s-rule")
    assert stored[0].status == "answered" and stored[1].reply_to_id == stored[0].id  # replayable like a bot turn


# --- offers: repeated failure and frustration -------------------------------------------------------------
async def test_repeated_failure_offers_a_person_and_yes_escalates(world: World) -> None:
    world.rasa.script = [
        says("Sorry, I didn't get that.", "nlu_fallback"),
        says("Sorry, I still didn't get that.", "nlu_fallback"),
        runs(ActionHandoffRequest(), "human_handoff"),
    ]
    one = await world.say("s-fail", "blorp")
    assert all(m.type != "handoff" for m in one.messages)
    two = await world.say("s-fail", "blorp blorp")
    offer = two.messages[-1]
    assert offer.type == "handoff" and [b["payload"] for b in offer.buttons] == ["/human_handoff", "/deny"]
    yes = await world.say("s-fail", "yes")  # typed yes → /human_handoff to Rasa
    assert world.rasa.calls[-1][1] == "/human_handoff"
    assert world.ticket("s-fail").reason == "repeated_failure" and yes.state == "queued"


async def test_declined_offer_is_answered_without_rasa_and_not_repeated(world: World) -> None:
    world.rasa.script = [says("?", "nlu_fallback"), says("?", "nlu_fallback"), says("?", "nlu_fallback")]
    await world.say("s-deny", "x1")
    await world.say("s-deny", "x2")
    declined = await world.say("s-deny", payload="/deny")
    assert "keep going" in texts_of(declined) and len(world.rasa.calls) == 2
    third = await world.say("s-deny", "x3")
    assert all(m.type != "handoff" for m in third.messages)  # cool-down: no nagging


@pytest.mark.parametrize(("text", "language", "offer"), [
    ("This is useless, you stupid bot", "en", "frustrating"),
    ("你们这个破机器人一点用都没有", "zh", "不好的体验"),
    ("Это бесполезно, сколько можно!", "ru", "неудобства"),
])
async def test_frustration_offers_a_person(world: World, text: str, language: str, offer: str) -> None:
    world.rasa.script = [says("...", "out_of_scope")]
    result = await world.say(f"s-angry-{language}", text)
    assert result.messages[-1].type == "handoff" and offer in result.messages[-1].text


async def test_two_mildly_angry_messages_in_a_row_offer_a_person(world: World) -> None:
    world.rasa.script = [says("...", "track_shipment"), says("...", "track_shipment")]
    first = await world.say("s-mild", "still not delivered")
    assert all(m.type != "handoff" for m in first.messages)
    second = await world.say("s-mild", "I'm really annoyed")
    assert second.messages[-1].type == "handoff"


# --- business hours -------------------------------------------------------------------------------------------
async def test_outside_business_hours_the_customer_is_told_when_and_asked_for_email(world: World) -> None:
    world.now[0] = SATURDAY
    world.rasa.script = [says("...", "request_refund"), runs(ActionHandoffRequest(), "human_handoff"),
                         says("Anything else?", "thanks")]
    await world.say("s-weekend", "I want a refund")
    result = await world.say("s-weekend", "talk to a person")
    said = texts_of(result)
    assert "on Monday at 09:00" in said and "Europe/London" in said and "email" in said
    assert world.ticket("s-weekend").awaiting_email
    saved = await world.say("s-weekend", "it's jo@example.com")
    assert "jo@example.com" in texts_of(saved) and len(world.rasa.calls) == 2
    assert world.ticket("s-weekend").contact_email == "jo@example.com"
    meanwhile = await world.say("s-weekend", "how long does delivery take?")  # the bot keeps answering meanwhile
    assert meanwhile.state == "queued" and "Anything else?" in texts_of(meanwhile)
    note = meanwhile.messages[-1].text
    assert "in the queue" in note and "on Monday at 09:00" in note and "minutes" not in note  # nobody to count on yet


# --- the live chat -------------------------------------------------------------------------------------------
async def escalate(world: World, sender: str, language: str = "en") -> int:
    world.rasa.script.append(runs(ActionHandoffRequest(), "human_handoff"))
    await world.say(sender, "person please" if language == "en" else "人工", language=language)
    return world.ticket(sender).id


async def test_bot_is_silent_while_an_agent_owns_the_chat(world: World) -> None:
    ticket_id = await escalate(world, "s-live")
    alice = world.agent("alice")
    events = world.handoff.events.subscribe(AGENTS)
    await world.handoff.claim(alice, ticket_id)
    assert world.column("s-live") == "human"
    calls = len(world.rasa.calls)
    for text in ("hello?", "are you there", "my order is late"):
        result = await world.say("s-live", text)
        assert result.state == "human"
        assert [m for m in result.messages if m.type != "handoff"] == []  # no bot reply
    assert len(world.rasa.calls) == calls
    relayed = []
    while not events.queue.empty():
        e = events.queue.get_nowait()
        if e["type"] == "message":
            relayed.append(e["message"]["text"])
    assert relayed == ["hello?", "are you there", "my order is late"]


async def test_agent_reply_reaches_a_rest_customer_with_their_next_answer(world: World) -> None:
    ticket_id = await escalate(world, "s-rest")
    alice = world.agent("alice")
    await world.handoff.claim(alice, ticket_id)
    await world.handoff.reply(alice, ticket_id, "Hi, I'm Alice. Let me look.")
    result = await world.say("s-rest", "thanks")
    assert [(m.type, m.text) for m in result.messages] == [
        ("handoff", "Alice from our team has joined the chat."), ("agent", "Hi, I'm Alice. Let me look.")]
    again = await world.say("s-rest", "ok")
    assert again.messages == []  # delivered once
    rows = world.messages("s-rest")
    agent_row = next(m for m in rows if m.type == "agent")
    assert agent_row.data["agent"] == "Alice" and agent_row.status == "delivered"


async def test_agent_reply_reaches_a_websocket_subscriber_at_once(world: World) -> None:
    ticket_id = await escalate(world, "s-ws")
    alice = world.agent("alice")
    await world.handoff.claim(alice, ticket_id)
    sub = world.handoff.events.subscribe(conversation_topic("s-ws"))
    await world.handoff.reply(alice, ticket_id, "Live reply")
    event = await asyncio.wait_for(sub.get(), 5)
    assert event["message"]["text"] == "Live reply" and event["message"]["from"] == "agent"
    assert event["state"] == "human"
    later = await world.say("s-ws", "thanks")  # the live reply is not sent again (the join notice predates the socket)
    assert [m.text for m in later.messages] == ["Alice from our team has joined the chat."]


async def test_hand_back_resumes_the_bot_with_language_and_context(world: World) -> None:
    order = DEMO["shipped"]
    world.rasa.script = [says("...", "inform", slots={"verified": True, "verified_username": order.username})]
    await world.say("s-back", "订单", language="zh")
    ticket_id = await escalate(world, "s-back", language="zh")
    wei = world.agent("wei")
    await world.handoff.claim(wei, ticket_id)
    await world.handoff.hand_back(wei, ticket_id)
    assert world.column("s-back") == "bot" and world.ticket("s-back").status == "handed_back"
    world.rasa.script = [says("好的", "check_order_status")]
    result = await world.say("s-back", "查一下我的订单")
    assert [m.text for m in result.messages] == ["客服 王伟 已加入对话。", "现在由智能助手继续为您服务。还有什么可以帮您？", "好的"]
    assert world.rasa.calls[-1][2]["language"] == "zh" and result.state == "bot"


async def test_resolve_asks_for_a_rating_and_stores_it(world: World) -> None:
    ticket_id = await escalate(world, "s-csat")
    alice = world.agent("alice")
    await world.handoff.claim(alice, ticket_id)
    await world.handoff.resolve(alice, ticket_id)
    assert world.column("s-csat") == "closed"
    rated = await world.say("s-csat", payload="/csat_4")
    asked = rated.messages[1]  # after the join notice, delivered with this answer
    assert asked.text.startswith("Alice has closed") and [b["payload"] for b in asked.buttons][0] == "/csat_1"
    assert "comment" in rated.messages[-1].text
    done = await world.say("s-csat", "Quick and kind, thanks")
    assert "Thank you for your feedback" in texts_of(done) and done.state == "bot"
    ticket = world.ticket("s-csat")
    assert (ticket.csat_score, ticket.csat_comment, ticket.status) == (4, "Quick and kind, thanks", "resolved")
    assert world.rasa.calls[-1][1] != "Quick and kind, thanks"
    with world.handoff._sessions() as db:
        actions = [e.action for e in db.scalars(select(AuditEntry).where(AuditEntry.ticket_id == ticket.id))]
    assert actions == ["escalate", "claim", "resolve", "csat"]


async def test_notes_transfer_and_automatic_assignment(world: World) -> None:
    world.handoff.auto_assign = True
    world.offline("alice", "wei", "olga")
    ticket_id = await escalate(world, "s-transfer")  # nobody online: waits
    assert world.ticket("s-transfer").status == "queued"
    world.online("alice", "olga")
    assert await world.handoff.assign_waiting() == 1
    alice, admin = world.agent("alice"), world.agent("admin")
    assert world.ticket("s-transfer").agent_id == alice.id
    note = await world.handoff.note(alice, ticket_id, "Customer sounds upset")
    detail = world.handoff.ticket_detail(admin, ticket_id)
    assert detail["notes"][0]["text"] == "Customer sounds upset" and note["agent"] == "Alice"
    assert all("upset" not in m.text for m in world.messages("s-transfer"))  # notes never reach the customer
    await world.handoff.transfer(alice, ticket_id, queue="billing-ru")
    ticket = world.ticket("s-transfer")
    assert (ticket.queue, ticket.status, ticket.agent_id) == ("billing-ru", "assigned", world.agent("olga").id)


async def test_timeouts_requeue_a_silent_agent_and_close_idle_chats(world: World) -> None:
    ticket_id = await escalate(world, "s-timeout")
    alice = world.agent("alice")
    await world.handoff.claim(alice, ticket_id)
    world.now[0] += timedelta(minutes=1)
    await world.say("s-timeout", "hello?")
    world.now[0] += timedelta(minutes=4)
    assert [a[0] for a in await timeouts.sweep(world.handoff)] == ["nudged"]
    world.now[0] += timedelta(minutes=5)
    assert [a[0] for a in await timeouts.sweep(world.handoff)] == ["requeued"]
    ticket = world.ticket("s-timeout")
    assert (ticket.status, ticket.agent_id, world.column("s-timeout")) == ("queued", None, "queued")
    # the customer gets both notices with their next answer
    world.rasa.script = [says("Sure", "check_order_status")]
    result = await world.say("s-timeout", "where is my order?")
    assert "patience" in result.messages[0].text and "someone else" in result.messages[1].text

    other = await escalate(world, "s-idle")
    await world.handoff.claim(alice, other)
    world.now[0] += timedelta(minutes=31)
    kinds = [a[0] for a in await timeouts.sweep(world.handoff)]
    assert "idle_closed" in kinds and world.column("s-idle") == "bot"


async def test_queued_customer_who_leaves_is_abandoned_in_hours_only(world: World) -> None:
    await escalate(world, "s-gone")
    world.now[0] += timedelta(minutes=31)
    assert [a[0] for a in await timeouts.sweep(world.handoff)] == ["abandoned"]
    assert world.column("s-gone") == "bot" and world.ticket("s-gone").status == "abandoned"
