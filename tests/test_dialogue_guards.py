"""What a message means in the middle of a dialogue: a switch of task, a question on the side, the
answer to the bot's own offer, and a complaint that is the reason asked for (bot/actions, handoff)."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.change_of_mind import CONFIRM_SLOT, Turn, asks_a_question, guard, other_task, states_the_reason
from bot.actions.offer import HANDOFF_ACTION, pending_offer
from bot.actions.write_forms import reason_given, stated_reason
from handoff.policy import HandoffPolicy, Offer, Signals


def turn(text: str, intent: str, confidence: float) -> Turn:
    return Turn(intent=intent, confidence=confidence, text=text, requested="customer_identifier")


@pytest.mark.parametrize(("text", "intent", "confidence", "form"), [
    ("wait, actually do a return instead", "return_item", 0.7, "return_form"),
    ("never mind, just cancel the order", "cancel_order", 0.65, "cancel_form"),
    ("не буду я вам email давать, зачем он вам", "refund_status", 0.74, None),  # no refund named: no switch
    ("idk", "refund_status", 0.95, "refund_status_form"),  # the NLU is sure: trusted
    ("лучше отмените его", "cancel_order", 0.5, None),  # unsure
    ("算了 地址不用改了 直接幫我取消訂單好了", "cancel_order", 0.54, "cancel_form"),  # taken back, the other named
])
def test_a_switch_of_task_needs_the_nlu_sure_and_the_task_named(text: str, intent: str, confidence: float,
                                                                  form: str | None) -> None:
    assert other_task(turn(text, intent, confidence), "order_status_form") == form


@pytest.mark.parametrize(("text", "intent", "ranking", "own", "form"), [
    # the NLU reads the old task, but the message takes it back and names another one
    ("а хотя нет, адрес менять не надо, лучше отмените заказ совсем", "change_shipping_address",
     ("change_shipping_address", "cancel_order", "check_order_status"), "address_form", "cancel_form"),
    ("算了还是退货吧 鞋子尺码小了一号", "return_item", ("return_item", "request_refund", "inform"), "refund_form",
     "return_form"),
    # not taken back: a reason that mentions another task's word is a reason
    ("the zip broke so i want to return it", "return_item", ("return_item", "request_refund"), "refund_form", None),
    # taken back, but no other task named: no switch (the form ends on its own rule)
    ("nah forget it", "deny", ("deny", "cancel_order"), "address_form", None),
    # the order's status is never switched to from words alone ("order" names every task's order)
    ("never mind the order", "stop", ("stop", "check_order_status"), "refund_form", None),
])
def test_a_task_taken_back_and_another_named_switches_whatever_the_top_intent(
    text: str, intent: str, ranking: tuple[str, ...], own: str, form: str | None
) -> None:
    t = Turn(intent=intent, confidence=0.34 if intent == "return_item" else 0.99, text=text,
             requested="refund_reason", ranking=ranking)
    assert other_task(t, own) == form


@pytest.mark.parametrize(("text", "question"), [
    ("кстати, через сколько приходят деньги при возврате?", True),
    ("对了，退款一般多久能到账？", True),
    ("btw how long do refunds usually take", True),
    ("can you refund it instead?", False),  # a request phrased as a question
    ("how long does a refund on 3348917502 take?", False),  # about an order: a task
    ("wait, actually do a return instead", False),
])
def test_a_general_question_on_the_side_is_told_from_a_request(text: str, question: bool) -> None:
    assert asks_a_question(text) is question


def tracker(events: list[dict]) -> Tracker:
    return Tracker("s", {}, events[-1] if events else {}, events, False, None, {}, None)


def test_an_offer_is_open_for_the_next_message_only() -> None:
    offered = [{"event": "user", "text": "status"}, {"event": "slot", "name": "offered_task", "value": "refund_form"}]
    assert pending_offer(tracker([*offered, {"event": "user", "text": "yes"}])) == "refund_form"
    lapsed = [*offered, {"event": "user", "text": "no"}, {"event": "bot", "text": "ok"}, {"event": "user", "text": "ok"}]
    assert pending_offer(tracker(lapsed)) is None
    # only forms and a person can be offered, whatever the slot holds
    forged = [{"event": "slot", "name": "offered_task", "value": "action_cancel_order"}, {"event": "user", "text": "y"}]
    assert pending_offer(tracker(forged)) is None


def test_a_talk_to_a_person_button_is_an_offer_a_typed_yes_accepts() -> None:
    person = {"event": "bot", "text": "No article. Talk to a person?",
              "data": {"buttons": [{"title": "Talk to a person", "payload": "/human_handoff"}]}}
    assert pending_offer(tracker([{"event": "user", "text": "zzz"}, person, {"event": "user", "text": "yes please"}])) == HANDOFF_ACTION
    other = {"event": "bot", "text": "Which?", "data": {"buttons": [{"title": "A", "payload": "/kb_pick"}]}}
    assert pending_offer(tracker([{"event": "user", "text": "zzz"}, other, {"event": "user", "text": "yes"}])) is None


def test_a_complaint_given_as_the_reason_for_a_refund_is_not_frustration() -> None:
    policy = HandoffPolicy()
    in_refund = {"intent": {"name": "inform", "confidence": 1.0}, "actions": ["refund_form"], "active_loop": "refund_form"}
    assert policy.after_turn(Signals(), in_refund, "质量太差了") is None
    outside = {"intent": {"name": "inform", "confidence": 1.0}, "actions": [], "active_loop": None}
    offer = policy.after_turn(Signals(), outside, "你们这什么破客服，一点用都没有！")
    assert offer is not None and offer.reason == "frustration"


@pytest.mark.parametrize(("text", "asks"), [
    ("thanks. I also want to talk to someone about a gift for my mum", True),
    ("好的谢谢 不过我还是想跟人工客服说一下送货时间的事", True),
    ("хочу поговорить с оператором", True),
    ("how do I contact support by email", False),
    ("can someone tell me when my order ships", False),
])
def test_a_person_asked_for_in_the_words(text: str, asks: bool) -> None:
    assert HandoffPolicy.asks_for_person(text) is asks


def test_an_unanswered_offer_of_a_person_is_repeated_when_the_bot_fails_again() -> None:
    policy, signals = HandoffPolicy(), Signals()
    failed = {"intent": {"name": "nlu_fallback", "confidence": 0.3}, "actions": ["action_answer_question"]}
    policy.offered(signals, Offer("repeated_failure"))
    policy.after_turn(signals, failed, "blorp")
    again = policy.after_turn(signals, {"intent": {"name": "thanks", "confidence": 0.49}, "actions": []}, "zzzz qqq")
    assert again is not None and again.reason == "repeated_failure"
    fine = {"intent": {"name": "check_order_status", "confidence": 0.95}, "actions": ["order_status_form"]}
    assert policy.after_turn(signals, fine, "where is my order") is None  # no failure: the offer stands, not repeated


@pytest.mark.parametrize(("text", "ping"), [
    ("喂 到底有沒有人在", True),
    ("有冇人喺度呀", True),  # Cantonese
    ("hello?? anyone there guys", True),
    ("ну вы где вообще", True),
    ("我要退款 在吗", False),  # a request: the bot keeps helping while they wait
    ("where is my order", False),
])
def test_a_queued_customer_asking_whether_anyone_is_there_is_told_the_queue(text: str, ping: bool) -> None:
    assert HandoffPolicy.queue_ping(text) is ping


def test_a_first_message_that_takes_something_back_is_the_request_itself() -> None:
    # the form has asked nothing yet: "changed my mind" is why they want a refund
    first = Turn(intent="request_refund", confidence=0.99, text="can I get a refund on 9368958290? changed my mind",
                 requested=None, ranking=("request_refund", "refund_status"))
    assert other_task(first, "refund_form") is None
    # a refund and its status share their words: taking one back does not start the other
    later = Turn(intent="request_refund", confidence=0.99, text="forget the refund", requested="refund_reason",
                 ranking=("request_refund", "refund_status"))
    assert other_task(later, "refund_form") is None


@pytest.mark.parametrize(("typed", "reason"), [
    ("没问题", None),  # "why?" — "no problem": an answer to a yes/no question, not a reason
    ("ok!", None),
    ("нет", None),
    ("yes the size is wrong", "yes the size is wrong"),
    ("没问题 就是不喜欢", "没问题 就是不喜欢"),
    ("не подошёл размер", "не подошёл размер"),
])
def test_a_bare_yes_or_no_is_never_taken_as_the_reason_asked_for(typed: str, reason: str | None) -> None:
    asked = Tracker("s", {"requested_slot": "return_reason"}, {"text": typed, "intent": {"name": "inform"}},
                    [{"event": "user", "text": typed}], False, None, {}, None)
    assert reason_given(asked, "return_reason", typed) == reason


@pytest.mark.parametrize(("typed", "reason"), [
    ("джинсы порвались по шву после первой носки", True),  # a statement: the reason asked for
    ("the zip broke after two days", True),
    ("do you sell these in a bigger size?", False),  # a question on the side: the help centre answers it
    ("退货要自己付运费吗", False),
])
def test_a_statement_read_as_a_question_is_the_reason_asked_for(typed: str, reason: bool) -> None:
    asked = Tracker("s", {"requested_slot": "return_reason"}, {"text": typed, "intent": {"name": "ask_question"}},
                    [{"event": "user", "text": typed}], False, None, {"name": "return_form"}, None)
    assert states_the_reason(asked) is reason
    assert stated_reason(asked, "return_reason") == ({"return_reason": typed} if reason else {})
    idle = Tracker("s", {}, {"text": typed, "intent": {"name": "ask_question"}}, [], False, None, {}, None)
    assert not states_the_reason(idle)


@pytest.mark.parametrize(("typed", "intent", "ends"), [
    # a yes with a condition and a question that the NLU reads as another task: the confirmation stays open
    ("ну да... хотя погодите, деньги точно вернутся на карту? если да то отменяйте", "refund_status", False),
    # taken back and another task asked for: the form ends and the other task starts
    ("no wait, check where my refund is instead", "refund_status", True),
])
def test_a_conditional_yes_at_the_confirmation_never_switches_task(typed: str, intent: str, ends: bool) -> None:
    events = [{"event": "action", "name": "action_listen"}, {"event": "user", "text": typed},
              {"event": "action", "name": "cancel_form"}]
    asked = Tracker("s", {"requested_slot": CONFIRM_SLOT, "order_id": "4021558730"},
                    {"text": typed, "intent": {"name": intent, "confidence": 0.97},
                     "intent_ranking": [{"name": intent, "confidence": 0.97}]},
                    events, False, None, {"name": "cancel_form"}, "action_listen")
    dispatcher = CollectingDispatcher()
    ended = guard(asked, dispatcher, "cancel_form")
    assert (ended is not None) is ends
