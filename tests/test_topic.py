"""A task the NLU read, or a help-centre problem that only sounds like one (conversations/topic.py),
against the real help centre index and embedder; and a "no" to the offer of a person followed by a
request (handoff/turns.py)."""

from __future__ import annotations

import pytest

from conversations import topic
from handoff.turns import request_after_no
from kb_index.answering import Answerer
from tests.test_kb_answering import answerer  # noqa: F401  (the module's fixture: the real help centre)


@pytest.mark.parametrize(("text", "language", "intent", "article"), [
    # the words of a task, a problem the help centre answers
    ("tracking says delivered but there's no package at my door", "en", "track_shipment", "missing-package"),
    ("物流显示已签收，可是我根本没收到", "zh", "track_shipment", "missing-package"),
    # the task itself: no article instead
    ("where is my parcel", "en", "track_shipment", None),
    ("how do i track my order", "en", "track_shipment", None),
    ("cancel my order", "en", "cancel_order", None),
])
def test_a_problem_the_help_centre_answers_is_told_from_the_task_whose_words_it_has(
    answerer: Answerer, text: str, language: str, intent: str, article: str | None  # noqa: F811
) -> None:
    assert topic.problem_article(answerer, text, language, intent) == article


@pytest.mark.parametrize(("text", "intent", "asks"), [
    ("I want my money back, the zip broke", "request_refund", True),
    ("можно вернуть эти джинсы?", "return_item", True),
    ("我要退货", "return_item", True),
    ("tracking says delivered but nothing came", "track_shipment", False),  # no request word
    ("我想把账户里绑定的邮箱换成新的", "change_shipping_address", False),  # a request, not of an address
    # the customer's own case named: a question about it is the task
    ("did you ever pay back my refund", "refund_status", True),
    ("мне вернули деньги за ботинки?", "refund_status", True),
    ("我的快递到哪了", "track_shipment", True),
    ("my order hasn't arrived yet", "check_order_status", True),
    ("tracking says delivered but there's no package at my door", "track_shipment", False),  # "my door"
])
def test_a_task_asked_for_in_words_is_never_sent_to_the_help_centre(text: str, intent: str, asks: bool) -> None:
    assert topic.asks_for_task(intent, text) is asks


@pytest.mark.parametrize(("text", "rest"), [
    ("no thanks, track 3348917502 for me, cminh730", "track 3348917502 for me, cminh730"),
    ("нет, спасибо. где мой заказ 3348917502", "где мой заказ 3348917502"),
    ("不用了，帮我查一下订单3348917502", "帮我查一下订单3348917502"),
    ("no thanks", None),
    ("nope, fine", None),  # too short to be a request
])
def test_a_no_to_the_offer_of_a_person_then_a_request(text: str, rest: str | None) -> None:
    assert request_after_no(text) == rest


class _NLU:
    """Rasa's /model/parse for these tests: the intent is given (a third-party-free stand-in for the
    classifier, whose own accuracy is measured in bench/nlu)."""

    def __init__(self, intent: str) -> None:
        self.intent = intent
        self.calls = 0

    async def parse(self, text: str) -> tuple[str | None, float, list[dict[str, object]]]:
        self.calls += 1
        return self.intent, 0.99, []


@pytest.mark.anyio
@pytest.mark.parametrize(("text", "intent", "routed"), [
    ("помогите отследить посылку с озона, трек 80085312345678", "track_shipment", topic.OUT_OF_SCOPE),
    ("帮我查下拼多多买的东西到哪了", "track_shipment", topic.OUT_OF_SCOPE),
    ("my amazon package never showed up can u check it", "out_of_scope", topic.OUT_OF_SCOPE),
    ("is it cheaper than on amazon?", "ask_question", None),  # a question about us
    ("where is my parcel", "track_shipment", None),
    ("where is 4021558730 from amazon", "track_shipment", None),  # an order number of ours: acted on
])
async def test_a_task_about_another_shop_s_order_is_out_of_scope(text: str, intent: str, routed: str | None) -> None:
    assert await topic.route(_NLU(intent), None, text, "en") == routed


@pytest.mark.anyio
async def test_an_acknowledgement_costs_no_second_parse(answerer: Answerer) -> None:  # noqa: F811
    nlu = _NLU("greet")
    for short in ("ok thanks!", "好的", "да, спасибо"):
        assert await topic.route(nlu, lambda: answerer, short, "en") is None
    assert nlu.calls == 0
    nlu = _NLU("track_shipment")
    assert await topic.route(nlu, lambda: answerer, "tracking says delivered but there's no package at my door", "en") \
        == topic.QUESTION
    assert nlu.calls == 1


@pytest.mark.parametrize(("intent", "text", "not_it"), [
    ("reset_password", "пароль я помню, но код подтверждения из смс не приходит и войти не могу 😡", True),
    ("reset_password", "密碼沒忘記喔 是那個兩步驟驗證的簡訊碼一直收不到欸 怎麼辦", True),
    ("reset_password", "my password is fine, the 2 step code never arrives", True),
    ("reset_password", "i forgot my password", False),
    ("reset_password", "не помню пароль", False),
    ("reset_password", "忘记密码了 登不上去", False),
    ("reset_password", "我唔記得密碼 想重設 用戶名rivanov511", False),  # 唔記得: does not remember
    ("return_item", "these jeans are too tight, can i swap them for a 34 instead of sending them back?", True),
    ("return_item", "牛仔裤买小了 能换大一码的吗 不想退 就想换", True),
    ("return_item", "хочу поменять на другой размер", True),
    ("return_item", "i want to return these jeans", False),
    ("request_refund", "我上個禮拜退咗貨 啲錢要幾耐先會退返落張卡㗎", True),  # how long, no order
    ("refund_status", "скажите сколько вообще идёт возврат денег", True),
    ("refund_status", "how long will my refund take", False),  # their own refund: its status
    ("request_refund", "i want a refund", False),
    ("cancel_order", "how long does it take to cancel", False),  # not a task that takes time
])
def test_a_task_the_customer_says_they_do_not_want_or_asks_how_long_goes_to_the_help_centre(
    intent: str, text: str, not_it: bool
) -> None:
    assert topic.not_the_task(intent, text) is not_it
