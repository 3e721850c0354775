"""Handoff around the customer's turns through POST /api/v1/chat against the real gateway, the
trained NLU and the database (issue 13, classes 6 and 9): what tests/test_handoff_turns.py checks
with a scripted bot, here with whatever the NLU makes of the messages."""

from __future__ import annotations

import uuid

import pytest

from conversations.language import to_traditional
from store.seed import DEMO
from tests.conftest import LiveSystem, texts

pytestmark = pytest.mark.rasa

HANDOFF = "/human_handoff"


def sender() -> str:
    return f"test-handoff-{uuid.uuid4().hex[:12]}"


def offers_person(reply: dict) -> bool:
    return any(b["payload"] == HANDOFF for m in reply["messages"] for b in m.get("buttons") or [])


@pytest.mark.parametrize(
    "messages",
    [
        ["???", "asdkjh", "..."],
        ["啊啊啊啊", "嗯嗯嗯嗯嗯。。。", "？？？？？"],
        ["ыыыы", "фывапролдж", "???!!"],
        ["😡😡", "🤔", "😤😤😤"],
        ["blorp", "zzzz qqq", "asdfgh"],
    ],
    ids=["en", "zh", "ru", "emoji", "en-nonsense-words"],
)
def test_three_unintelligible_messages_bring_the_offer_of_a_person(live: LiveSystem, messages: list[str]) -> None:
    s = sender()
    replies = [live.say(s, m) for m in messages]
    assert any(offers_person(r) for r in replies), [texts(r) for r in replies]
    assert all(r["state"] == "bot" for r in replies)


@pytest.mark.parametrize(
    ("ask", "ping", "welcome"),
    [
        ("agent please", "hello? anyone there?", "assistant"),
        ("转人工", "你好？有人吗", "智能"),
        ("позовите оператора", "алло, есть кто-нибудь?", "помощник"),
    ],
)
def test_queued_customer_saying_hello_is_told_where_they_stand(
    live: LiveSystem, ask: str, ping: str, welcome: str
) -> None:
    s = sender()
    assert live.say(s, ask)["state"] == "queued"
    reply = live.say(s, ping)
    assert reply["state"] == "queued" and [m["type"] for m in reply["messages"]] == ["handoff"], texts(reply)
    assert welcome not in texts(reply)


def test_traditional_account_takeover_is_escalated_in_traditional(live: LiveSystem) -> None:
    s = sender()
    reply = live.say(s, "我的帳號被盜用了 有人登入改了我的密碼還亂下訂單")
    said = texts(reply)
    assert reply["state"] == "queued" and said == to_traditional(said)
    rule = live.query("select rule from handoff_tickets where sender_id = :s", s=s)
    assert [r[0] for r in rule] == ["account_takeover"]


def test_angry_traditional_request_for_a_manager_is_escalated(live: LiveSystem) -> None:
    s = sender()
    reply = live.say(s, "你們到底在搞什麼！！！退款拖了一個月 爛透了 我要找你們主管")
    assert reply["state"] == "queued", texts(reply)
    assert not live.query(
        "select 1 from turns t join messages m on m.id = t.message_id "
        "join conversations c on c.id = m.conversation_id "
        "where c.sender_id = :s and t.active_loop like '%refund%'",
        s=s,
    )


def test_asking_for_a_person_inside_a_form_does_not_repeat_its_question(live: LiveSystem) -> None:
    s = sender()
    order = DEMO["delivered_recent"]
    first = live.say(s, f"I want a refund for order {order.order_id}")
    asked = texts(first)
    reply = live.say(s, "actually just get me a human please")
    assert reply["state"] == "queued" and {m["type"] for m in reply["messages"]} == {"handoff"}, texts(reply)
    after = live.say(s, "ok")
    assert asked not in texts(after) and {m["type"] for m in after["messages"]} == {"handoff"}, texts(after)
