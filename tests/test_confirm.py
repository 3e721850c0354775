"""Reading free yes/no answers before a write, taking a request back, and addresses (bot/actions)."""

from __future__ import annotations

import pytest

from bot.actions import address
from conversations import confirm
from conversations.confirm import Answer

YES = [
    ("yes please", "cancel"), ("yeah go on then", "refund"), ("ok", "address"), ("sure, do it", "return"),
    ("yup that's right", "address"), ("absolutely 👍", "cancel"), ("y", "cancel"), ("please proceed", "refund"),
    ("cancel it", "cancel"), ("no problem, go ahead", "refund"), ("send it", "reset"), ("✅", "return"),
    ("да", "cancel"), ("да, отменяйте", "cancel"), ("Ага, оформляйте", "refund"), ("конечно", "address"),
    ("всё верно, меняйте", "address"), ("давай", "return"), ("не вопрос, отправляйте", "reset"),
    ("是的", "cancel"), ("好的，取消吧", "cancel"), ("确认", "refund"), ("对，改吧", "address"), ("没问题", "return"),
    ("可以的", "reset"), ("是的，麻煩了", "refund"), ("係呀，唔該", "cancel"), ("冇問題", "address"), ("對，確認取消", "cancel"), ("嗯嗯", "address"), ("行", "return"),
]
NO = [
    ("no", "cancel"), ("nope, leave it", "cancel"), ("wait, don't", "refund"), ("hold on a sec", "address"),
    ("actually keep it", "cancel"), ("no thanks", "reset"), ("not yet", "return"), ("❌", "refund"),
    ("don't cancel it!", "cancel"), ("that's the wrong address", "address"),
    ("нет", "cancel"), ("не надо", "refund"), ("не отменяйте", "cancel"), ("подождите", "address"),
    ("я передумал", "return"), ("нет, оставьте", "cancel"),
    ("不要", "cancel"), ("不用了", "refund"), ("先别取消", "cancel"), ("等一下", "address"), ("算了", "return"), ("我再想想", "return"),
    ("不对", "address"), ("不可以", "reset"), ("別取消了", "cancel"), ("不用了，謝謝", "reset"), ("唔使喇", "cancel"), ("唔好住", "refund"),
]
UNCLEAR = [
    ("maybe?", "cancel"), ("what happens to my points if I do", "cancel"), ("yes but what about the gift wrap?", "cancel"),
    ("hmm", "refund"), ("может быть", "cancel"), ("а как же мой купон?", "refund"), ("退款要多久？", "refund"),
    ("thanks", "cancel"), ("", "cancel"),
]


@pytest.mark.parametrize(("text", "task"), YES)
def test_free_yes_is_yes(text: str, task: str) -> None:
    assert confirm.read(text, task=task) is Answer.YES


@pytest.mark.parametrize(("text", "task"), NO)
def test_free_no_is_no(text: str, task: str) -> None:
    assert confirm.read(text, task=task) is Answer.NO


@pytest.mark.parametrize(("text", "task"), UNCLEAR)
def test_doubt_is_asked_again(text: str, task: str) -> None:
    assert confirm.read(text, task=task) is Answer.UNCLEAR


@pytest.mark.parametrize(("text", "task"), [
    ("yes as long as im not charged any cancellation fee for it", "cancel"),
    ("sure, only if the refund goes back to my card", "refund"),
    ("ну да... хотя погодите, деньги точно вернутся на карту? если да то отменяйте", "cancel"),
    ("對啊 不過我要取消的是另一張", "cancel"),
    ("好呀 不過如果退返信用卡要幾耐先到？太耐我就唔退住", "refund"),
])
def test_a_yes_on_a_condition_is_not_a_yes_nor_a_no(text: str, task: str) -> None:
    assert confirm.read(text, task=task) is Answer.UNCLEAR
    assert confirm.conditional_yes(text, task)


@pytest.mark.parametrize("text", ["yes", "不过算了", "no, but thanks", "what fee?", "/affirm"])
def test_a_plain_answer_or_question_is_not_a_conditional_yes(text: str) -> None:
    assert not confirm.conditional_yes(text, "cancel")


def test_the_task_verb_is_a_yes_only_to_its_own_task() -> None:
    assert confirm.read("cancel it", task="cancel") is Answer.YES
    assert confirm.read("cancel it", task="address") is Answer.UNCLEAR
    assert confirm.read("取消", task="refund") is Answer.UNCLEAR


def test_buttons_and_a_sure_classifier_answer() -> None:
    assert confirm.read("/affirm", "affirm", 1.0) is Answer.YES
    assert confirm.read("/deny", "deny", 1.0) is Answer.NO
    assert confirm.read("/kb_pick", "kb_pick", 1.0) is Answer.UNCLEAR
    assert confirm.read("aye", "affirm", 0.95) is Answer.YES
    assert confirm.read("aye", "affirm", 0.5) is Answer.UNCLEAR


@pytest.mark.parametrize("text", [
    "never mind, leave the address as it is", "forget it", "scratch that, I'll pick it up myself",
    "算了，不改了", "不用了", "не надо, забудьте", "я передумала",
])
def test_taking_a_request_back(text: str) -> None:
    assert confirm.retracts(text)


@pytest.mark.parametrize("text", ["22 Elm Road, Leeds LS6 2AB", "my reason is it doesn't fit", "北京市海淀区中关村大街1号"])
def test_an_answer_is_not_taking_it_back(text: str) -> None:
    assert not confirm.retracts(text)


@pytest.mark.parametrize(("typed", "expected"), [
    ("22 Elm Road, Leeds LS6 2AB", "22 Elm Road, Leeds LS6 2AB"),
    ("sorry typo. it's 24 Elm Road, Leeds LS6 2AB", "24 Elm Road, Leeds LS6 2AB"),
    ("oops no. it's 16 Harbour Road, Whitby YO21 3PU", "16 Harbour Road, Whitby YO21 3PU"),
    ("The Old Mill, 3 Lane End, Leeds LS1 1AA", "The Old Mill, 3 Lane End, Leeds LS1 1AA"),
    ("the new address is Flat 3, 9 Queen St, Edinburgh EH2 1JQ", "Flat 3, 9 Queen St, Edinburgh EH2 1JQ"),
    ("please send it to 1600 Amphitheatre Pkwy, Mountain View, CA 94043", "1600 Amphitheatre Pkwy, Mountain View, CA 94043"),
    ("收货地址改成杭州市西湖区文三路90号", "杭州市西湖区文三路90号"),
    ("新地址是台中市西屯區台灣大道三段99號8樓", "台中市西屯區台灣大道三段99號8樓"),
    ("深圳市南山区科技园南区高新南一道8号", "深圳市南山区科技园南区高新南一道8号"),
    ("новый адрес: г. Казань, ул. Баумана, д. 12, кв. 4, 420111", "г. Казань, ул. Баумана, д. 12, кв. 4, 420111"),
    ("доставьте на пр-т Мира, д. 3, Москва 129090", "пр-т Мира, д. 3, Москва 129090"),
])
def test_the_whole_address_is_kept(typed: str, expected: str) -> None:
    assert address.extract(typed) == expected


@pytest.mark.parametrize("typed", [
    "never mind, just cancel it", "London", "12", "yes", "不改了", "算了吧", "не надо ничего менять", "asdf qwer",
    # a phone number is digits but no house number or postcode
    "(415) 555-0134 thats my cell if the driver needs it", "+7 916 123-45-67 мой телефон", "call me on 020 7946 0958",
])
def test_what_is_not_an_address(typed: str) -> None:
    assert address.extract(typed) is None


def test_a_reason_with_negative_words_is_a_reason_not_taking_it_back() -> None:
    from bot.actions.change_of_mind import Turn, takes_back

    assert not takes_back(Turn("deny", 0.9, "wrong colour", "refund_reason"))
    assert not takes_back(Turn("deny", 0.8, "no good, the seam split", "return_reason"))
    assert takes_back(Turn("inform", 0.5, "never mind, forget it", "return_reason"))
    assert takes_back(Turn("deny", 0.9, "no", "new_address"))
    assert not takes_back(Turn("deny", 0.9, "no", "confirm_write"))  # read by the confirmation itself


CONFIRM = [{"title": "Yes, cancel it", "payload": "/affirm"}, {"title": "No, keep it", "payload": "/deny"}]
PERSON = [{"title": "Talk to a person", "payload": "/human_handoff"}, {"title": "No, thanks", "payload": "/deny"}]


@pytest.mark.parametrize(("text", "buttons", "payload"), [
    ("可以的 麻烦了🙏", CONFIRM, "/affirm"),
    ("发吧", [{"title": "发送链接", "payload": "/affirm"}, {"title": "先不发", "payload": "/deny"}], "/affirm"),
    ("yes please", PERSON, "/human_handoff"),
    ("да, давайте", PERSON, "/human_handoff"),
    ("no, it's 16 Harbour Road", CONFIRM, None),  # a no (with a correction) goes to the form as typed
    ("yes, ship it to 16 Harbour Road", CONFIRM, None),  # details: the form reads them
    ("нет", CONFIRM, None),
    ("yes", [{"title": "A", "payload": "/kb_pick"}, {"title": "B", "payload": "/kb_pick"}], None),  # not a yes/no
    ("yes", [], None),
])
def test_a_typed_answer_to_yes_no_buttons(text: str, buttons: list, payload: str | None) -> None:
    assert confirm.as_button(text, buttons) == payload


def test_a_chinese_correction_s_words_are_not_part_of_the_address() -> None:
    assert address.extract("不对不对 打错了 应该是 北京市海淀区中关村大街27号中关村大厦1503室 100080") == (
        "北京市海淀区中关村大街27号中关村大厦1503室 100080")
    assert address.extract("不對 打錯了 台北市信義區信義路五段7號 郵遞區號110") == "台北市信義區信義路五段7號 郵遞區號110"


@pytest.mark.parametrize(("text", "task"), [
    ("呃 会发到哪个邮箱啊", "reset"),  # names the sending, asks where: not a yes
    ("發到哪個信箱啊", "reset"),
    ("which card does the money go back to", "refund"),
    ("when would it get cancelled", "cancel"),
    ("а куда придёт письмо, отправляйте", "reset"),
    ("сколько ждать? оформляйте", "refund"),
    ("退到哪张卡 退吧", "refund"),
])
def test_a_question_about_the_write_is_not_a_yes_to_it(text: str, task: str) -> None:
    assert confirm.read(text, task=task) is not Answer.YES


@pytest.mark.parametrize(("text", "buttons", "holds"), [
    ("hmm wait no, don't change anything yet, i have to check with my roommate first", CONFIRM, True),
    ("等等 先别改 我问下家里人再说", CONFIRM, True),
    ("哎 先唔好住 我諗下先", CONFIRM, True),
    ("не, погодите, я ещё подумаю", CONFIRM, True),
    ("no thanks", PERSON, True),
    ("no, it's 16 Harbour Road", CONFIRM, False),  # a correction: the form reads it
    ("wait, what happens to my payment?", CONFIRM, False),  # a question: asked again, not a no
    ("等等 会退到哪张卡", CONFIRM, False),
    ("yes please", CONFIRM, False),
    ("no", [{"title": "A", "payload": "/kb_pick"}, {"title": "B", "payload": "/kb_pick"}], False),  # not yes/no buttons
    ("no", [], False),
    ("/deny", CONFIRM, False),  # a button press is already the answer
])
def test_a_typed_plain_no_to_yes_no_buttons(text: str, buttons: list, holds: bool) -> None:
    assert confirm.holds_off(text, buttons) is holds


@pytest.mark.parametrize(("typed", "expected"), [
    ("need to change the shipping address on order 5527443949 (acct rjohnson226@email.com) to 221 Baker Street Apt 2, "
     "Madison, WI 53703", "221 Baker Street Apt 2, Madison, WI 53703"),
    ("смените адрес заказа 1234567890 на ул. Ленина, д. 5, кв. 12, Казань 420111", "ул. Ленина, д. 5, кв. 12, Казань 420111"),
    ("please send order 1234567890 to 5 Elm St Apt 3, Boston MA 02110, my email is x@y.com", "5 Elm St Apt 3, Boston MA 02110"),
    ("ship it to 57 Water St, Brooklyn, NY 11201", "57 Water St, Brooklyn, NY 11201"),  # no order named: as before
])
def test_the_address_of_a_whole_request_in_one_message_is_the_address_alone(typed: str, expected: str) -> None:
    assert address.extract(typed) == expected
