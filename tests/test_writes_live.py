"""Every write is stated back and done only on a clear yes; nothing is written from a change of mind.

Whole conversations through the real gateway, Rasa, action server and database. Each test takes
its own processing order (by position, from the end of the list, so tests don't share one).
"""

from __future__ import annotations

import pytest

from conversations.language import to_simplified
from store.seed import DEMO
from tests.conftest import LiveSystem, sender, texts

pytestmark = pytest.mark.rasa


def processing_order(live: LiveSystem, slot: int) -> tuple[str, str, str, str]:
    """(order id, username, email, address) of the slot-th processing order from the end."""
    rows = live.query(
        "select o.order_id, c.username, c.email, o.shipping_address from orders o join customers c "
        "on c.id = o.customer_id where o.status = 'processing' and o.order_id != :demo "
        "order by o.order_id desc limit 1 offset :n",
        demo=DEMO["processing"].order_id, n=slot,
    )
    return tuple(rows[0])  # type: ignore[return-value]


def order_field(live: LiveSystem, order_id: str, field: str) -> str:
    return live.query(f"select {field} from orders where order_id = :o", o=order_id)[0][0]


def test_an_address_is_stated_back_corrected_and_written_only_after_yes(live: LiveSystem) -> None:
    order_id, _, email, before = processing_order(live, 0)
    s = sender()
    asked = f"can you change the delivery address on {order_id}"
    stated = live.converse(s, asked, email, "14 Harbour Road, Whitby YO21 3PU")[-1]
    assert "14 Harbour Road, Whitby YO21 3PU" in texts(stated)
    assert order_field(live, order_id, "shipping_address") == before
    corrected = live.say(s, "oops no. it's 16 Harbour Road, Whitby YO21 3PU")
    assert "16 Harbour Road, Whitby YO21 3PU" in texts(corrected)
    assert order_field(live, order_id, "shipping_address") == before
    done = live.say(s, "yep")
    assert "Done" in texts(done)
    assert order_field(live, order_id, "shipping_address") == "16 Harbour Road, Whitby YO21 3PU"


def test_a_traditional_chinese_address_is_kept_whole_and_as_typed(live: LiveSystem) -> None:
    order_id, _, email, _ = processing_order(live, 1)
    typed = "台中市西屯區台灣大道三段99號8樓 郵遞區號407"
    s = sender()
    stated = live.converse(s, f"我要改訂單{order_id}的收件地址", email, f"新地址：{typed}")[-1]
    # the reply is converted to Traditional as a whole (OpenCC may write 台 as 臺): compare folded
    assert to_simplified(typed) in to_simplified(texts(stated))
    live.say(s, "對，確認")
    assert order_field(live, order_id, "shipping_address") == typed


def test_taking_it_back_mid_address_changes_nothing_and_starts_the_other_task(live: LiveSystem) -> None:
    order_id, _, email, before = processing_order(live, 2)
    s = sender()
    asked = f"need to change where {order_id} is delivered"
    switched = live.converse(s, asked, email, "never mind, don't change it, just cancel the order")[-1]
    assert "will be delivered to" not in texts(switched)
    assert order_id in texts(switched)  # the cancellation is stated back for this order
    assert order_field(live, order_id, "shipping_address") == before
    assert order_field(live, order_id, "status") == "processing"
    kept = live.say(s, "hmm no, leave it")
    assert order_field(live, order_id, "status") == "processing"
    assert "stays as it is" in texts(kept)


def test_a_refund_is_not_submitted_on_no_and_a_switch_is_not_a_reason(live: LiveSystem) -> None:
    order = DEMO["delivered_recent"]
    count = "select count(*) from refunds where order_id = :o"
    before = live.query(count, o=order.order_id)[0][0]
    switch = "wait, actually I'd rather send it back for a return"
    live.converse(sender(), f"refund for {order.order_id} please", order.username, switch)
    assert live.query(count, o=order.order_id)[0][0] == before
    reasons = live.query("select reason from return_requests where order_id = :o", o=order.order_id)
    assert all("actually" not in (r[0] or "") for r in reasons)


@pytest.mark.parametrize(("answer", "cancelled"), [
    ("да, отменяйте", True), ("нет, подождите", False), ("是的，取消吧", True), ("等一下，先别取消", False),
    ("sure thing", True), ("idk maybe? what about my coupon", False), ("可以的 麻烦了🙏", True),
])
def test_free_yes_and_no_at_a_cancellation(live: LiveSystem, answer: str, cancelled: bool) -> None:
    slot = 3 + ["да, отменяйте", "нет, подождите", "是的，取消吧", "等一下，先别取消", "sure thing",
                "idk maybe? what about my coupon", "可以的 麻烦了🙏"].index(answer)
    order_id, _, email, _ = processing_order(live, slot)
    s = sender()
    asked = live.converse(s, f"cancel order {order_id}", email)[-1]
    assert order_id in texts(asked)
    live.say(s, answer)
    assert (order_field(live, order_id, "status") == "cancelled") is cancelled


def test_no_reset_link_is_sent_on_no(live: LiveSystem) -> None:
    who = DEMO["gold_delivered_old"]
    sent = "select count(*) from outbox_emails where kind = 'password_reset' and to_address = :e"
    before = live.query(sent, e=who.email)[0][0]
    s = sender()
    stated = live.converse(s, "forgot my password", who.email)[-1]
    assert who.email in texts(stated)
    live.say(s, "no no that's my old email, hang on")
    assert live.query(sent, e=who.email)[0][0] == before
    live.converse(s, "reset my password please", who.username, "yes send it")
    assert live.query(sent, e=who.email)[0][0] == before + 1


def test_two_requests_in_one_message_are_both_handled_one_after_the_other(live: LiveSystem) -> None:
    shipped = DEMO["shipped"]
    s = sender()
    first = live.say(s, f"where is my parcel {shipped.order_id}? also i forgot my password")
    assert shipped.order_id in texts(first)  # the first request: its check asks who is asking
    assert "forgot my password" in texts(first)  # the second is acknowledged, not dropped
    both = live.say(s, shipped.username)
    assert "1Z" in texts(both) or "shipped" in texts(both)  # the parcel, then the other request
    assert "email address or username" in texts(both).lower()  # the password reset asks whose account
    turn = live.query(
        "select t.active_loop from turns t join messages m on m.id = t.message_id "
        "join conversations c on c.id = m.conversation_id where c.sender_id = :s order by t.id desc limit 1", s=s
    )[0]
    assert turn[0] == "password_reset_form"


def unrefunded_gold_order(live: LiveSystem, slot: int) -> tuple[str, str]:
    """(order id, email) of the slot-th delivered gold order without a refund, from the end."""
    rows = live.query(
        "select o.order_id, c.email from orders o join customers c on c.id = o.customer_id "
        "where o.status = 'delivered' and c.membership_level = 'gold' and o.total < 150 "
        "and not exists (select 1 from refunds r where r.order_id = o.order_id) "
        "order by o.order_id desc limit 1 offset :n", n=slot,
    )
    return tuple(rows[0])  # type: ignore[return-value]


def test_a_yes_to_the_offer_of_a_refund_starts_one_and_a_no_lets_it_lapse(live: LiveSystem) -> None:
    count = "select count(*) from refunds where order_id = :o"
    order_id, email = unrefunded_gold_order(live, 0)
    s = sender()
    offered = live.converse(s, f"did my refund for {order_id} go through?", email)[-1]
    assert "no refund" in texts(offered).lower()
    asked = live.say(s, "yes please")
    assert "reason" in texts(asked).lower()  # the refund form, straight to its own questions
    assert live.query(count, o=order_id)[0][0] == 0

    order_id, email = unrefunded_gold_order(live, 1)
    s = sender()
    declined = live.converse(s, f"refund status {order_id}", email, "no thanks")[-1]
    assert "reason" not in texts(declined).lower()
    later = live.say(s, "ok")  # a yes one message later answers no offer
    assert "reason" not in texts(later).lower()
    assert live.query(count, o=order_id)[0][0] == 0
