"""Two requests in one message are split where customers join them (conversations/requests.py)."""

from __future__ import annotations

import pytest

from conversations.requests import Parsed, Request, plan, planned, read_part, repeats, split


@pytest.mark.parametrize(("typed", "parts"), [
    ("cancel 4021558730 and also change the address on 4021558731",
     ["cancel 4021558730", "change the address on 4021558731"]),
    ("where's my order? also i forgot my password", ["where's my order", "i forgot my password"]),
    ("帮我查下物流，另外我还想退货", ["帮我查下物流", "我还想退货"]),
    ("где посылка? и ещё хочу поменять адрес", ["где посылка", "хочу поменять адрес"]),
    ("refund for 4021558730 please. btw can you reset my password", ["refund for 4021558730 please", "can you reset my password"]),
    # a question joined by "и" in Russian
    ("что с возвратом денег по 7916676427 и сколько дней на возврат у бронзового уровня?",
     ["что с возвратом денег по 7916676427", "сколько дней на возврат у бронзового уровня?"]),
    ("деньги за 9727979857 верните. и через скока дней придут?", ["деньги за 9727979857 верните", "через скока дней придут?"]),
    # numbered requests
    ("two things 1) where is 4021558730 2) cancel 4021558731", ["two things", "where is 4021558730", "cancel 4021558731"]),
    ("1. 4021558730到哪了 2. 帮我取消4021558731", ["4021558730到哪了", "帮我取消4021558731"]),
    ("1.訂單4021558730到哪了 2.我想退貨", ["訂單4021558730到哪了", "我想退貨"]),
    ("①查物流 ②退款要多久", ["查物流", "退款要多久"]),
    ("（1）查订单（2）退款", ["查订单", "退款"]),
])
def test_a_message_is_cut_where_a_second_request_starts(typed: str, parts: list[str]) -> None:
    assert split(typed) == parts


@pytest.mark.parametrize("typed", [
    "the size and colour are both wrong", "I want to return it and get my money back", "cancel my order please",
    "退货", "ok", "верните деньги и побыстрее", "the 2.5 kg one weighs 1.5 times more",
])
def test_one_request_is_not_cut(typed: str) -> None:
    assert split(typed) == [typed]


@pytest.mark.parametrize(("parts", "now", "later"), [
    pytest.param([
        Parsed("cancel 4021558730", "cancel_order", 0.9),
        Parsed("it's for my sister", "inform", 0.7),
        Parsed("change the address on 4021558731", "change_shipping_address", 0.8),
    ], "cancel 4021558730 it's for my sister", ["change the address on 4021558731"], id="details-stay-with-their-task"),
    # the email or username given for one request proves who asks for the first request too
    pytest.param([
        Parsed("has 6867638488 shipped yet?", "track_shipment", 0.73),
        Parsed("if not please change the address. rminh547@email.com", "change_shipping_address", 0.8),
    ], "has 6867638488 shipped yet? rminh547@email.com", ["if not please change the address. rminh547@email.com"],
        id="email-proves-the-first-too"),
    pytest.param([
        Parsed("问两个事 7916676427的退款到哪了", "refund_status", 0.99),
        Parsed("铜牌会员退货期限是多久 用户名aphoenix939", "ask_question", 0.9),
    ], "问两个事 7916676427的退款到哪了 用户名aphoenix939", ["铜牌会员退货期限是多久 用户名aphoenix939"],
        id="username-proves-the-first-too"),
])
def test_different_tasks_become_separate_requests_with_their_details(
    parts: list[Parsed], now: str, later: list[str]
) -> None:
    planned_now, planned_later = plan(parts)
    assert planned_now == now
    assert planned_later == later


def test_unsure_or_repeated_tasks_are_not_split_off() -> None:
    assert plan([Parsed("where is it", "track_shipment", 0.9), Parsed("it's 4021558730", "inform", 0.9)]) == (
        "where is it it's 4021558730", [])
    assert plan([Parsed("cancel it", "cancel_order", 0.9), Parsed("maybe refund", "request_refund", 0.3)])[1] == []
    assert plan([Parsed("cancel A", "cancel_order", 0.9), Parsed("cancel B", "cancel_order", 0.9)])[1] == []
    assert plan([Parsed("thanks", "thanks", 0.9), Parsed("track 4021558730", "track_shipment", 0.9)]) == (
        "thanks track 4021558730", [])


def test_a_part_that_names_an_order_but_no_task_is_that_order_s_task() -> None:
    ranking = [{"name": "inform", "confidence": 0.8}, {"name": "track_shipment", "confidence": 0.15}]
    assert read_part("4021558730到哪了", "inform", 0.8, ranking) == Parsed("4021558730到哪了", "track_shipment", 0.5)
    assert read_part("is 4021558730 on its way", "inform", 0.9, []).intent == "check_order_status"
    assert read_part("my email is a@b.co", "inform", 0.9, ranking) == Parsed("my email is a@b.co", "inform", 0.9)


def test_a_help_centre_question_beside_a_task_is_a_request_of_its_own() -> None:
    assert plan([
        Parsed("has my refund for 7916676427 been processed", "refund_status", 0.9),
        Parsed("how long do bronze members have for returns? aphoenix939", "ask_question", 0.85),
    ]) == ("has my refund for 7916676427 been processed", ["how long do bronze members have for returns? aphoenix939"])
    # the question first: answered first, the task after
    assert plan([Parsed("do you ship to canada", "ask_question", 0.9), Parsed("cancel 4021558730", "cancel_order", 0.9)]) == (
        "do you ship to canada", ["cancel 4021558730"])
    # an unsure question stays with the task; two questions are one request
    assert plan([Parsed("where is 4021558730", "track_shipment", 0.9), Parsed("ordered it ages ago", "ask_question", 0.6)])[1] == []
    assert plan([Parsed("do you ship to canada", "ask_question", 0.9), Parsed("and to mexico", "ask_question", 0.9)])[1] == []


@pytest.mark.parametrize("typed", ["order 7916676427", "заказ №7916676427", "订单号：7916676427", "it's 4021558730"])
def test_a_part_that_only_gives_the_order_number_is_a_detail_of_the_request_before_it(typed: str) -> None:
    part = read_part(typed, "inform", 0.9, [{"name": "inform", "confidence": 0.9}])
    assert part.intent == "inform"
    assert plan([Parsed("any news on my refund?", "refund_status", 1.0), part]) == (f"any news on my refund? {typed}", [])


def test_the_email_given_for_one_order_proves_who_asks_for_the_first_request_too() -> None:
    now, _ = plan([Parsed("cancel 4021558730", "cancel_order", 0.9),
                   Parsed("change the address on 4021558731, a@b.co", "change_shipping_address", 0.9)])
    assert now == "cancel 4021558730 a@b.co"



def test_two_questions_asked_as_questions_are_two_requests() -> None:
    assert plan([Parsed("請問付款可以用PayPal嗎 還是只能刷卡", "ask_question", 0.95), Parsed("運費怎麼算", "ask_question", 0.9)]) == (
        "請問付款可以用PayPal嗎 還是只能刷卡", ["運費怎麼算"])
    assert plan([Parsed("можно оплатить через paypal?", "ask_question", 0.9),
                 Parsed("сколько стоит экспресс доставка", "ask_question", 0.9)])[1] == ["сколько стоит экспресс доставка"]
    # an opening that is not itself a question stays with the question it opens
    assert plan([Parsed("hi I have a question", "ask_question", 0.8),
                 Parsed("how long do i have to return something?", "ask_question", 0.9)])[1] == []


def test_a_part_that_only_says_who_asks_about_which_order_is_a_detail() -> None:
    part = read_part("заказ 4471209856, логин safzal207", "inform", 0.9, [{"name": "refund_status", "confidence": 0.4}])
    assert part.intent == "inform"
    now, later = plan([Parsed("мне вернули деньги за ботинки?", "refund_status", 0.9), part,
                       Parsed("сколько вообще идут деньги на карту?", "ask_question", 0.9)])
    assert now == "мне вернули деньги за ботинки? заказ 4471209856, логин safzal207"
    assert later == ["сколько вообще идут деньги на карту?"]
    assert read_part("order 4471209856, cancel it", "inform", 0.9, []).intent == "check_order_status"


def test_a_later_answer_citing_only_articles_already_given_repeats_it() -> None:
    paypal = {"type": "kb_answer", "text": "PayPal: …", "sources": [{"article_id": "payment-methods"}]}
    shipping = {"type": "kb_answer", "text": "Standard shipping …", "sources": [{"article_id": "shipping-costs"}]}
    assert repeats([paypal], [{**paypal, "text": "other passage"}])
    assert not repeats([paypal], [shipping])
    assert not repeats([paypal], [{"text": "Which order?"}])  # no article: a task's reply, never dropped


def test_details_after_the_second_request_belong_to_it() -> None:
    now, later = plan([Parsed("pls cancel order 9929624906 (email wchen212@email.com)", "cancel_order", 0.99),
                       Parsed("wheres my other one 9926189121??", "check_order_status", 0.9),
                       Parsed("thats under asmith910@email.com", "inform", 0.9)])
    assert now == "pls cancel order 9929624906 (email wchen212@email.com)"
    assert later == ["wheres my other one 9926189121?? thats under asmith910@email.com"]


def test_a_bare_username_at_the_end_completes_the_request_that_names_an_order() -> None:
    now, later = plan([Parsed("hi two things: has my refund for 7916676427 been processed", "refund_status", 0.99),
                       Parsed("how long do bronze members have for returns?", "ask_question", 0.9),
                       Parsed("aphoenix939", "inform", 0.9)])
    assert now == "hi two things: has my refund for 7916676427 been processed aphoenix939"
    assert later == ["how long do bronze members have for returns?"]


def test_each_request_carries_the_task_its_parts_were_read_as() -> None:
    now, later = planned([Parsed("帮我看下订单7367089080的情况", "check_order_status", 0.5),
                          Parsed("密码忘了要重置一下，邮箱都是a@b.co", "reset_password", 0.9),
                          Parsed("退货期限是几天", "ask_question", 0.95)])
    assert now == Request("帮我看下订单7367089080的情况 a@b.co", "check_order_status")
    assert later == [Request("密码忘了要重置一下，邮箱都是a@b.co", "reset_password"), Request("退货期限是几天", None)]


def test_a_kept_request_is_read_back_as_stored_and_an_unknown_task_is_dropped() -> None:
    assert Request.from_stored(Request("cancel 4021558730", "cancel_order").stored()) == Request("cancel 4021558730", "cancel_order")
    assert Request.from_stored("cancel 4021558730") == Request("cancel 4021558730")  # kept before tasks were
    assert Request.from_stored({"text": "hi", "task": "action_cancel_order"}) == Request("hi")


@pytest.mark.parametrize("details", [
    "order 3348917502, email cminh730@email.com thx", "7916676427 / aphoenix939", "почта dsmith237@email.com",
    "订单 3348917502 邮箱 cminh730@email.com 谢谢",
])
def test_a_part_of_details_only_is_never_a_request_of_its_own_whatever_the_nlu_leans_to(details: str) -> None:
    # "hey where's my stuff?? order 3348-917-502, email … thx": the NLU reads the details as a status request
    now, later = plan([Parsed("hey where's my stuff", "track_shipment", 0.84), Parsed(details, "check_order_status", 0.9)])
    assert (now, later) == (f"hey where's my stuff {details}", [])


def test_a_message_naming_an_order_but_no_task_never_guesses_a_write_over_a_read() -> None:
    from conversations.requests import lean_task

    cancel_by_a_hair = [{"name": "inform", "confidence": 0.64}, {"name": "cancel_order", "confidence": 0.101},
                        {"name": "check_order_status", "confidence": 0.100}]
    assert lean_task(cancel_by_a_hair) == "check_order_status"
    assert lean_task([{"name": "inform", "confidence": 0.4}, {"name": "cancel_order", "confidence": 0.55}]) == "cancel_order"
    # a task the NLU is unsure of, beside an order number: the read its ranking leans to
    unsure = [{"name": "change_shipping_address", "confidence": 0.36}, {"name": "inform", "confidence": 0.24},
              {"name": "check_order_status", "confidence": 0.12}]
    assert read_part("что там с заказом 5176054323, ещё не отправили?", "change_shipping_address", 0.36, unsure).intent == (
        "check_order_status")
    assert lean_task([{"name": "inform", "confidence": 0.9}]) == "check_order_status"
    assert read_part("唔該幫我睇下張單 1357924680 到咗未", "inform", 0.64, cancel_by_a_hair).intent == "check_order_status"
    # a write task the message names is the one it leans to, however unsure the NLU
    named = [{"name": "inform", "confidence": 0.74}, {"name": "change_shipping_address", "confidence": 0.25}]
    assert read_part("订单7791751987地址填错了 用户名jsilva396", "inform", 0.74, named).intent == "change_shipping_address"
    refund = [{"name": "inform", "confidence": 0.55}, {"name": "request_refund", "confidence": 0.45}]
    assert read_part("退款 5989328485 ssilva500@email.com", "inform", 0.55, refund).intent == "request_refund"


def test_a_question_joined_by_and_is_a_second_request() -> None:
    assert split("whats the status of 5120648393 (jwu477) and do you guys even ship to canada") == [
        "whats the status of 5120648393 (jwu477)", "do you guys even ship to canada"]
