"""Whole conversations through POST /api/v1/chat against the real gateway, Rasa and database."""

from __future__ import annotations

import pytest

from store.seed import DEMO
from tests.conftest import LiveSystem, sender, texts

pytestmark = pytest.mark.rasa

SHIPPED = DEMO["shipped"]  # 3348917502 / cminh730


@pytest.mark.parametrize(
    ("turns", "language", "expected"),
    [
        (["Hi, where is my order?", SHIPPED.order_id, SHIPPED.email], "en", "shipped on"),
        (["我的订单到哪了？", f"订单号 {SHIPPED.order_id}", SHIPPED.email], "zh", "已于"),
        (["我的訂單到哪了？", f"訂單號{SHIPPED.order_id}", SHIPPED.username], "zh", "發貨"),
        (["где мой заказ?", SHIPPED.order_id, SHIPPED.email], "ru", "отправлен"),
    ],
    ids=["en", "zh-hans", "zh-hant", "ru"],
)
def test_order_status_with_verification(live: LiveSystem, turns: list[str], language: str, expected: str) -> None:
    replies = live.converse(sender(), *turns)
    assert all(r["language"] == language for r in replies)
    assert SHIPPED.order_id in texts(replies[1])  # asks for the email/username on this order
    final = texts(replies[2])
    assert expected in final
    tracking = live.query("select tracking_number from orders where order_id = :o", o=SHIPPED.order_id)[0][0]
    assert tracking in final


@pytest.mark.parametrize("template", ["订单号{}帮我查下", "has my order {} shipped yet?", "хочу узнать статус заказа {}"])
def test_every_order_number_starts_the_status_check(live: LiveSystem, template: str) -> None:
    """Which order a customer names must not change what they are understood to ask: the digits
    once moved the sentence's embedding enough that some order numbers came out `inform` and
    ended in the fallback (bot/components/e5_featurizer.py, placeholders)."""
    for demo in DEMO.values():
        replies = live.converse(sender(), "hi", template.format(demo.order_id))
        assert demo.order_id in texts(replies[1]), (template, demo.order_id, texts(replies[1]))


@pytest.mark.parametrize("typed", ["{a}-{b}-{c}", "{a} {b} {c}", "{full}"])
def test_an_order_number_typed_in_groups_or_full_width_is_recognised(live: LiveSystem, typed: str) -> None:
    o = SHIPPED.order_id
    full = o.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    replies = live.converse(sender(), "where is my order?", typed.format(a=o[:4], b=o[4:7], c=o[7:], full=full))
    assert "email" in texts(replies[1]).lower() or "username" in texts(replies[1]).lower(), texts(replies[1])


def test_traditional_chinese_answered_in_traditional(live: LiveSystem) -> None:
    s = sender()
    reply = live.say(s, "我的訂單到哪了？")
    assert "訂單號" in texts(reply) and "订单号" not in texts(reply)


def test_order_details_need_verification(live: LiveSystem) -> None:
    wrong = live.converse(sender(), "what's the status of my order", SHIPPED.order_id, "someone.else@email.com")[-1]
    assert "doesn't match" in texts(wrong)
    tracking = live.query("select tracking_number from orders where order_id = :o", o=SHIPPED.order_id)[0][0]
    assert tracking not in texts(wrong)


def test_three_failed_verifications_end_politely(live: LiveSystem) -> None:
    s = sender()
    # 8312168446: an order no other test uses: three failures lock it (and this sender) for 30 min
    said = ["check my order status please", "8312168446", "nobody1@email.com", "nobody2@email.com", "nobody3@email.com"]
    last = live.converse(s, *said)[-1]
    assert "3 tries" in texts(last)
    turn = live.query(
        "select t.active_loop from turns t join messages m on m.id = t.message_id "
        "join conversations c on c.id = m.conversation_id where c.sender_id = :s order by t.id desc limit 1", s=s
    )[0]
    assert turn[0] is None  # the form is over


def test_refund_within_policy_is_recorded(live: LiveSystem) -> None:
    order = DEMO["delivered_recent"]
    s = sender()
    asked = f"I want a refund for order {order.order_id}"
    ask_method = live.converse(s, asked, order.email, "the jacket arrived torn")[-1]
    assert {b["payload"] for b in ask_method["messages"][-1]["buttons"]} >= {'/inform{"refund_method":"gift_card"}'}
    stated = live.chat(s, payload='/inform{"refund_method":"gift_card"}').json()
    assert "gift card" in texts(stated) and "the jacket arrived torn" in texts(stated)  # stated back first
    assert live.query("select count(*) from refunds where order_id = :o", o=order.order_id)[0][0] == 0
    done = live.say(s, "yes go ahead")
    assert "recorded" in texts(done) or "colleague" in texts(done)
    rows = live.query("select method, amount, reason from refunds where order_id = :o", o=order.order_id)
    total = live.query("select total from orders where order_id = :o", o=order.order_id)[0][0]
    assert len(rows) == 1
    assert rows[0][0] == "gift_card" and float(rows[0][1]) == float(total)
    assert "torn" in rows[0][2]
    assert live.query("select status from orders where order_id = :o", o=order.order_id)[0][0] == "refund_requested"


def test_refund_outside_policy_is_refused(live: LiveSystem) -> None:
    order = DEMO["delivered_old_bronze"]
    refused = live.converse(sender(), "I'd like my money back", order.order_id, order.username)[-1]
    assert "outside the 90-day refund window" in texts(refused)
    assert live.query("select count(*) from refunds where order_id = :o", o=order.order_id)[0][0] == 0


def test_refund_above_limit_needs_approval(live: LiveSystem) -> None:
    order = DEMO["big_amount_delivered"]
    s = sender()
    live.converse(s, f"refund order {order.order_id} please", order.email, "wrong colour")
    live.chat(s, payload='/inform{"refund_method":"credit_card"}')
    done = live.chat(s, payload="/affirm").json()
    assert "colleague" in texts(done)
    status = live.query("select status from refunds where order_id = :o", o=order.order_id)[0][0]
    assert status == "pending_approval"


def test_cancel_shipped_order_is_refused(live: LiveSystem) -> None:
    refused = live.converse(sender(), f"cancel my order {SHIPPED.order_id}", SHIPPED.username)[-1]
    assert "already shipped" in texts(refused)
    # where the parcel is, said with the refusal ("… has already shipped (UPS, tracking number …)")
    tracking = live.query("select tracking_number from orders where order_id = :o", o=SHIPPED.order_id)[0][0]
    assert tracking and f"tracking number {tracking}" in texts(refused)
    assert live.query("select status from orders where order_id = :o", o=SHIPPED.order_id)[0][0] == "shipped"


def test_cancel_processing_order_is_done_in_database(live: LiveSystem) -> None:
    order = DEMO["processing"]
    s = sender()
    confirm = live.converse(s, "I need to cancel an order", order.order_id, order.email)[-1]
    assert [b["payload"] for b in confirm["messages"][-1]["buttons"]] == ["/affirm", "/deny"]
    assert f"Order {order.order_id} hasn't shipped yet" in texts(confirm)
    done = live.chat(s, payload="/affirm").json()
    assert "is cancelled" in texts(done)
    assert live.query("select status from orders where order_id = :o", o=order.order_id)[0][0] == "cancelled"


def test_digression_mid_form_then_resume(live: LiveSystem) -> None:
    s = sender()
    aside = live.converse(s, "where's my package", SHIPPED.order_id, "are you a bot?")[-1]
    assert "automated assistant" in texts(aside)
    assert "email address or username" in texts(aside)  # the form asks its question again
    done = live.say(s, SHIPPED.email)
    assert "Tracking number" in texts(done) or "tracking number" in texts(done)


def test_stop_mid_form_and_come_back(live: LiveSystem) -> None:
    s = sender()
    stopped = live.converse(s, "I want to change the delivery address", DEMO["processing"].order_id, "stop")[-1]
    assert "stopped" in texts(stopped)
    back = live.say(s, "actually yes, change the shipping address please")
    assert "email address or username" in texts(back)  # the order id was kept


FALLBACK_TEXTS = ("outside what I can help with", "still can't work out what you need")  # out_of_scope, core fallback


@pytest.mark.parametrize("text", ["purple monkey dishwasher", "hmm the thing with the stuff"])
def test_unplaceable_message_never_gets_an_invented_answer(live: LiveSystem, text: str) -> None:
    s = sender()
    for _ in range(2):  # asked twice: still no guess
        reply = live.say(s, text)
        assert all(m["type"] != "kb_answer" for m in reply["messages"]), reply  # no guess from the help centre
        payloads = [b["payload"] for m in reply["messages"] for b in m["buttons"]]
        # A clarifying question or a person offered (buttons), or a plain statement of what the bot can do.
        assert payloads or any(t in texts(reply) for t in FALLBACK_TEXTS), reply


def test_turn_records_what_the_bot_understood(live: LiveSystem) -> None:
    s = sender()
    live.say(s, f"where is my order {SHIPPED.order_id}")
    row = live.query(
        "select t.intent, t.confidence, t.intent_ranking, t.entities, t.actions, t.language from turns t "
        "join conversations c on c.id = t.conversation_id where c.sender_id = :s", s=s
    )[0]
    assert row[0] in ("check_order_status", "track_shipment")
    assert 0 < row[1] <= 1
    assert '"order_id"' in row[3] and SHIPPED.order_id in row[3]
    assert "form" in row[4]
    assert row[5] == "en"


def test_language_switch_is_followed(live: LiveSystem) -> None:
    s = sender()
    assert live.say(s, "你好")["language"] == "zh"
    assert live.say(s, "ok")["language"] == "zh"  # too little to switch
    assert live.say(s, "can you help me track my parcel")["language"] == "en"


def test_address_change_of_processing_order_in_russian(live: LiveSystem) -> None:
    order_id, username = live.query(
        "select o.order_id, c.username from orders o join customers c on c.id = o.customer_id "
        "where o.status = 'processing' and o.order_id != :taken order by o.order_id limit 1",
        taken=DEMO["processing"].order_id,
    )[0]
    s = sender()
    address = "Москва, ул. Тверская, д. 7, кв. 12"
    stated = live.converse(s, "хочу изменить адрес доставки", order_id, username, address)[-1]
    assert "Москва, ул. Тверская, д. 7, кв. 12" in texts(stated)
    done = live.say(s, "да, меняйте")
    assert "Готово" in texts(done)
    stored = live.query("select shipping_address from orders where order_id = :o", o=order_id)[0][0]
    assert stored == "Москва, ул. Тверская, д. 7, кв. 12"


def test_wrong_order_id_gets_a_clear_answer_and_a_retry(live: LiveSystem) -> None:
    s = sender()
    live.say(s, "has my order shipped yet?")
    malformed = live.say(s, "it's 12345")
    assert "10 digits" in texts(malformed)
    # An unknown number is asked about like any other: whether it exists is never said (issue 12, item 7).
    unknown = live.say(s, "1234567890")
    assert "email address or username on order 1234567890" in texts(unknown)
    asked = live.say(s, f"oh sorry, it's {SHIPPED.order_id}")
    assert f"email address or username on order {SHIPPED.order_id}" in texts(asked)
    assert "shipped on" in texts(live.say(s, SHIPPED.username))


def test_a_request_naming_an_order_but_no_task_is_that_order_s_check_not_the_next_request(live: LiveSystem) -> None:
    """"look at order X, then reset my password, the email is the same for both": the order is checked
    first (the gateway tells the bot the task its part was read as; the NLU read the part as a bare
    detail and the bot started the reset), the reset comes after it."""
    s = sender()
    said = texts(live.chat(s, text=f"帮我看下订单{SHIPPED.order_id}的情况，然后密码忘了要重置一下，邮箱都是{SHIPPED.email}").json())
    # the order's status first; then, that request finished, the reset is taken up in the same answer
    assert "已于" in said and "接下来处理您的另一个请求" in said
    assert said.index("已于") < said.index("接下来处理您的另一个请求") < said.index("发送重置密码链接吗")
