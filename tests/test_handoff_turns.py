"""Handoff around the customer's turns (issue 13, classes 6 and 9), at service level like
tests/test_handoff_service.py: the real conversation and handoff services, Rasa actions and store on
SQLite, with only Rasa's NLU/dialogue scripted.

- zh-Hant wording hits the business rules and the frustration scorer like the Simplified one;
- a request for a person in the words (angry or calm) is granted at once;
- unintelligible messages count as failed turns whatever intent the NLU guessed;
- no minutes estimate while nobody can answer (queue closed, nobody online);
- while queued, "hello? anyone there?" gets where the customer stands, not the bot's welcome;
- a handoff notice ends the bot's reply (no form question after it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.handoff.frustration_measure import load
from bot.actions.handoff import ActionHandoffRequest
from conversations.language import to_traditional
from conversations.models import Turn
from conversations.rasa_client import RasaReply
from conversations.service import OutboundMessage, end_at_handoff
from handoff import frustration
from handoff.policy import HandoffPolicy, unintelligible
from handoff.service import QUEUE_NOTICE
from handoff.turns import RULE_HANDOFF
from tests.helpers import Step, runs, says
from tests.test_handoff_service import SATURDAY, World, make_world, texts_of

HANDOFF = "/human_handoff"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


def traditional(text: str) -> bool:
    """Chinese text with no Simplified-only character (the blind scenarios' ``script: hant``)."""
    return any("\u4e00" <= c <= "\u9fff" for c in text) and to_traditional(text) == text


def offered(result: object) -> bool:
    return any(b.get("payload") == HANDOFF for m in result.messages for b in m.buttons)  # type: ignore[attr-defined]


# --- a) zh-Hant wording: business rules ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # account takeover: Taiwan, Hong Kong (Cantonese), and Traditional spellings of the Simplified words
        ("我的帳號被盜用了 有人登入改了我的密碼還亂下訂單", "account_takeover"),
        ("我個戶口俾人盜咗 有人用我張卡喺你哋度買嘢", "account_takeover"),
        ("有人盜刷我的信用卡，這幾筆訂單都不是我下的", "account_takeover"),
        ("帳戶好像被駭客入侵了", "account_takeover"),
        ("密碼被人改了 我登不進去", "account_takeover"),
        ("唔係我落嘅單，有人用咗我個帳號", "account_takeover"),
        # legal threat
        ("再不退款我就要告你們", "legal_threat"),
        ("我已經找律師了，準備提告", "legal_threat"),
        ("我會向消基會申訴", "legal_threat"),
        ("再唔退錢我就去消委會投訴", "legal_threat"),
        ("我要去法院起訴你們", "legal_threat"),
        # chargeback
        ("我要向銀行申請拒付", "chargeback"),
        ("我會打俾銀行要求止付", "chargeback"),
        ("信用卡爭議款我已經提出了", "chargeback"),
        ("我要聯絡發卡銀行撤銷交易", "chargeback"),
    ],
)
async def test_traditional_chinese_rules_escalate_before_rasa(world: World, text: str, rule: str) -> None:
    sender = f"hant-rule-{abs(hash(text))}"
    result = await world.say(sender, text)  # an empty script: asking Rasa fails the test
    ticket = world.ticket(sender)
    assert (ticket.reason, ticket.rule, ticket.priority) == ("business_rule", rule, 0)
    assert result.state == "queued" and world.rasa.calls == []
    assert traditional(texts_of(result)), texts_of(result)  # the notices in the customer's script
    with world.handoff._sessions() as db:  # the turn says the gateway handed over and the bot ran nothing
        turn = db.scalar(select(Turn).where(Turn.message_id == world.messages(sender)[0].id))
        assert (turn.intent, turn.actions) == (None, [RULE_HANDOFF])


@pytest.mark.parametrize(
    "text",
    [
        "帳號被鎖了怎麼辦",  # locked, not taken over
        "我的账号被登出了",
        "我換了我的信箱，要怎麼更新",  # they changed it themselves
        "公告上說滿千免運",  # 告 inside 公告 / 广告
        "廣告你們說有折扣",
        "我已經向銀行付款了",
    ],
)
async def test_ordinary_words_are_not_a_business_rule(world: World, text: str) -> None:
    assert HandoffPolicy.rule_in_text(text) is None
    world.rasa.script = [says("...", "ask_question")]
    result = await world.say("s-ordinary", text)
    assert result.state == "bot" and len(world.rasa.calls) == 1


# --- a) zh-Hant wording: frustration --------------------------------------------------------------------
def test_frustration_scores_traditional_like_simplified() -> None:
    """Every message of the labelled Simplified set scores the same once converted to Traditional."""
    for _label, text in load("zh"):
        assert frustration.score(to_traditional(text)).value == frustration.score(text).value, text


@pytest.mark.parametrize(
    "text",
    [
        "你們這個破機器人根本沒用",
        "廢柴機器人 講極都唔明",
        "有冇搞錯啊 等咗成個禮拜",
        "這服務也太扯了吧",
        "氣死我了，垃圾客服",
    ],
)
async def test_angry_traditional_customer_is_offered_a_person(world: World, text: str) -> None:
    world.rasa.script = [says("...", "out_of_scope")]
    result = await world.say("s-hant-angry", text)
    offer = result.messages[-1]
    assert offer.type == "handoff" and offered(result) and traditional(offer.text + offer.buttons[0]["title"])


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("你們到底在搞什麼！我要找真人！", "zh"),
        ("你們到底在搞什麼！！！退款拖了一個月 爛透了 我要找你們主管", "zh"),
        ("你们到底在搞什么！我要找真人！", "zh"),
        ("This is ridiculous, let me talk to a real person", "en"),
        ("Это бесполезно, позовите оператора!", "ru"),
    ],
)
async def test_angry_request_for_a_person_is_granted_at_once(world: World, text: str, language: str) -> None:
    """Whatever else the message mentions (a refund here): the bot gets the person button's payload."""
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff")]
    result = await world.say("s-furious", text)
    assert world.rasa.calls[-1][1] == HANDOFF
    assert result.state == "queued" and world.ticket("s-furious").reason == "explicit_request"
    assert result.language == language


@pytest.mark.parametrize("text", ["我想跟真人客服聊聊", "да, давайте уже живого", "thanks. I'd like to speak with someone about a gift"])
async def test_a_calm_request_for_a_person_in_the_words_is_granted_like_the_button(world: World, text: str) -> None:
    """The NLU once read "да, давайте уже живого" as a goodbye: words that ask for a person are the button."""
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff")]
    result = await world.say("s-calm", text)
    assert world.rasa.calls[-1][1] == HANDOFF and world.rasa.calls[-1][2]["typed_text"] == text
    assert result.state == "queued" and world.ticket("s-calm").reason == "explicit_request"


@pytest.mark.parametrize("text", ["can someone tell me when my order ships", "are you a bot or a real human??",
                                  "wait, am I talking to a real person?", "你是真人吗"])
async def test_a_message_that_only_mentions_people_is_left_to_the_bot(world: World, text: str) -> None:
    world.rasa.script = [says("...", "bot_challenge")]
    await world.say("s-mention", text)
    assert world.rasa.calls[-1][1] == text


# --- b) unintelligible messages count as failed turns -------------------------------------------------
UNINTELLIGIBLE = {
    "en": ["???", "asdkjh", "..."],
    "zh": ["啊啊啊啊", "嗯嗯嗯嗯嗯。。。", "？？？？？"],
    "hant": ["嗯嗯嗯嗯", "ㄅㄆㄇㄈ", "。。。？？"],
    "ru": ["ыыыы", "фывапролдж", "???!!"],
    "emoji": ["😡😡", "🤔", "😤😤😤"],
}


def test_what_counts_as_unintelligible() -> None:
    for texts in UNINTELLIGIBLE.values():
        assert all(unintelligible(t) for t in texts), texts
    assert all(unintelligible(t) for t in ["zzzz qqq", "sdjfhskdjfh", "qwerty", "…", "?", "🤬 ?!"])
    readable = [
        "ok",
        "hi",
        "yes",
        "👍",
        "嗯嗯",
        "好的",
        "3348917502",
        "hmm",
        "правда",
        "report",
        "glass",
        "да",
        "where is my order",
        "我要退款",
        "a@b.co",
        "5",
        "блин",
        "ладно",
    ]
    assert not any(unintelligible(t) for t in readable), [t for t in readable if unintelligible(t)]


def confident_guess(intent: str = "greet") -> Step:
    """The NLU reads nonsense as some intent with confidence (no nlu_fallback), and the bot replies."""
    return says("Hi! How can I help?", intent, confidence=0.93)


@pytest.mark.parametrize("language", list(UNINTELLIGIBLE))
async def test_unintelligible_messages_bring_the_offer_of_a_person(world: World, language: str) -> None:
    texts = UNINTELLIGIBLE[language]
    world.rasa.script = [confident_guess() for _ in texts]
    replies = [await world.say(f"s-garble-{language}", t) for t in texts]
    turns = world.settings.handoff_failure_turns
    assert turns <= 3 and not any(offered(r) for r in replies[: turns - 1])
    assert offered(replies[turns - 1])  # at the configured turn, at the latest at the third


@pytest.mark.parametrize("language", ["en", "zh", "ru"])
async def test_with_three_failure_turns_the_offer_comes_at_the_third(tmp_path: Path, language: str) -> None:
    for world in make_world(tmp_path, handoff_failure_turns=3):
        texts = UNINTELLIGIBLE[language]
        world.rasa.script = [confident_guess("affirm") for _ in texts]
        replies = [await world.say("s-three", t) for t in texts]
        assert [offered(r) for r in replies] == [False, False, True]


async def test_small_talk_guessed_at_low_confidence_is_a_failed_turn(world: World) -> None:
    """ "blorp" read as a greeting at 0.36, then "zzzz qqq" as thanks: the NLU was guessing both times."""
    world.rasa.script = [
        says("Hi! How can I help?", "greet", confidence=0.36),
        says("You're welcome!", "thanks", confidence=0.46),
    ]
    first = await world.say("s-blorp", "blorp")
    second = await world.say("s-blorp", "zzzz qqq")
    assert not offered(first) and offered(second)


async def test_small_talk_the_nlu_is_sure_of_is_not_a_failure(world: World) -> None:
    world.rasa.script = [says("Hi!", "greet", confidence=0.98), says("You're welcome!", "thanks", confidence=0.97)]
    replies = [await world.say("s-smalltalk", "hi"), await world.say("s-smalltalk", "thanks a lot")]
    assert not any(offered(r) for r in replies)


async def test_short_replies_the_bot_understood_are_not_failures(world: World) -> None:
    world.rasa.script = [confident_guess("affirm") for _ in range(4)]
    replies = [await world.say("s-short", t) for t in ["ok", "👍", "嗯嗯", "да"]]
    assert not any(offered(r) for r in replies)


# --- c) no minutes estimate while nobody can answer ---------------------------------------------------
@pytest.mark.parametrize(
    ("language", "ask", "then", "back"),
    [
        ("en", "I need a human being right now", "what are your opening hours", "on Monday at 09:00"),
        ("zh", "转人工", "你们几点上班", "周一 09:00"),
        ("ru", "соедините с сотрудником", "когда вы работаете", "в понедельник в 09:00"),
    ],
)
async def test_closed_queue_notices_have_no_minutes_estimate(
    world: World, language: str, ask: str, then: str, back: str
) -> None:
    world.now[0] = SATURDAY
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff"), says("...", "ask_question")]
    first = await world.say("s-closed", ask)
    later = await world.say("s-closed", then)
    for said in (texts_of(first), later.messages[-1].text):
        assert back in said, said
        assert not any(word in said for word in ("minutes", "分钟", "мин.")), said


async def test_open_queue_with_nobody_online_has_no_minutes_estimate(world: World) -> None:
    world.offline("alice", "wei", "olga")
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff"), says("...", "ask_question")]
    first = await world.say("s-nobody", "person please")
    later = await world.say("s-nobody", "what sizes do you have")
    assert "busy" in texts_of(first) and "first free person" in later.messages[-1].text
    assert "minutes" not in texts_of(first) + later.messages[-1].text


# --- d) while queued: greetings and "anyone there?" -----------------------------------------------------
@pytest.mark.parametrize(
    ("ask", "ping", "expected"),
    [
        ("agent please", "hello? anyone there?", "still in the queue for a person: number 1, about"),
        ("agent please", "hi??", "still in the queue"),
        ("转人工", "你好？有人吗", "您仍在人工客服的队列中"),
        ("請幫我轉真人客服", "喂？有人在嗎？", "您仍在人工客服的隊列中"),
        ("позовите оператора", "алло, есть кто-нибудь?", "Вы всё ещё в очереди"),
    ],
)
async def test_queued_customer_saying_hello_is_told_where_they_stand(
    world: World, ask: str, ping: str, expected: str
) -> None:
    if frustration.simplified(ask) == "转人工" or "轉" in ask:  # Wednesday 11:00 in Shanghai: its queues are open
        world.now[0] = world.now[0].replace(hour=3)
        world.online("wei")
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff")]
    await world.say("s-ping", ask)
    world.now[0] = world.now[0].replace(minute=1)  # agents seen within the presence timeout
    result = await world.say("s-ping", ping)  # no script left: asking Rasa fails the test
    assert result.state == "queued" and [m.type for m in result.messages] == ["handoff"]
    assert expected in texts_of(result)
    assert world.ticket("s-ping").last_customer_at.replace(tzinfo=None) == world.now[0].replace(tzinfo=None)


async def test_queued_customer_saying_hello_out_of_hours_is_told_when_the_team_is_back(world: World) -> None:
    world.now[0] = SATURDAY
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff")]
    await world.say("s-ping-closed", "agent please")
    result = await world.say("s-ping-closed", "hello? anyone there?")
    assert "back on Monday at 09:00" in texts_of(result) and "minutes" not in texts_of(result)


async def test_queued_customer_with_a_question_still_gets_the_bot(world: World) -> None:
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff"), says("It has shipped.", "check_order_status")]
    await world.say("s-question", "agent please")
    result = await world.say("s-question", "hi, where is my order 3348917502?")
    assert "It has shipped." in texts_of(result) and len(world.rasa.calls) == 2


async def test_ok_after_a_queue_notice_is_acknowledged_but_ok_to_the_bot_goes_to_the_bot(world: World) -> None:
    world.rasa.script = [runs(ActionHandoffRequest(), "human_handoff")]
    await world.say("s-ok", "agent please")
    ack = await world.say("s-ok", "ok")
    assert [m.type for m in ack.messages] == ["handoff"] and "Thanks for waiting" in texts_of(ack)
    world.rasa.script = [says("Shall I cancel order 3348917502?", "cancel_order"), says("Cancelled.", "affirm")]
    await world.say("s-ok", "cancel my order 3348917502")
    with world.handoff._sessions() as db:  # the acknowledgement's turn: nothing ran, the bot's state unchanged
        turn = db.scalar(
            select(Turn).where(Turn.message_id == next(m.id for m in world.messages("s-ok") if m.text == "ok"))
        )
        assert (turn.intent, turn.actions, turn.slots["language"]) == (None, [QUEUE_NOTICE], "en")
    answered = await world.say("s-ok", "ok")  # a yes to the bot's own question while waiting
    assert "Cancelled." in texts_of(answered) and len(world.rasa.calls) == 3


# --- e) a handoff notice ends the bot's reply ---------------------------------------------------------
def handoff_inside_form(question: str) -> Step:
    """Rasa's rule for "get me a person" inside a form: action_handoff_request, then the form again."""
    handoff = runs(ActionHandoffRequest(), "human_handoff")

    async def step(sender: str, text: str, metadata: dict) -> RasaReply:
        reply = await handoff(sender, text, metadata)
        turn = {**reply.turn, "actions": [*reply.turn["actions"], "refund_form"], "active_loop": "refund_form"}
        return RasaReply(messages=[*reply.messages, {"text": question}], turn=turn)

    return step


@pytest.mark.parametrize(
    ("start", "ask", "question"),
    [
        ("refund for my order", "actually just get me a human please", "What's the order number?"),
        ("我要退款", "你还是帮我转人工吧", "请提供您的订单号。"),
        ("хочу вернуть деньги за заказ", "лучше соедините с человеком", "Назовите, пожалуйста, номер заказа."),
    ],
)
async def test_form_question_does_not_follow_the_handoff_notice(
    world: World, start: str, ask: str, question: str
) -> None:
    world.rasa.script = [says(question, "request_refund"), handoff_inside_form(question)]
    await world.say("s-form", start)
    result = await world.say("s-form", ask)
    assert result.state == "queued" and {m.type for m in result.messages} == {"handoff"}
    assert question not in texts_of(result)
    asked = [m for m in world.messages("s-form") if m.text == question]
    assert len(asked) == 1  # asked once, before the request for a person; not again in the transcript
    ok = await world.say("s-form", {"What's the order number?": "ok", "请提供您的订单号。": "好"}.get(question, "ок"))
    assert {m.type for m in ok.messages} == {"handoff"} and question not in texts_of(ok)  # and not on "ok"
    assert len(world.rasa.calls) == 2


def test_end_at_handoff_only_cuts_after_a_handoff_that_left_the_customer_waiting() -> None:
    notice, ask = OutboundMessage("handoff", "connecting you"), OutboundMessage("text", "What's the order number?")
    before = OutboundMessage("text", "Sure.")
    assert end_at_handoff([before, notice, ask], "queued") == [before, notice]
    assert end_at_handoff([before, notice, ask], "human") == [before, notice]
    assert end_at_handoff([notice, ask], "bot") == [notice, ask]  # no ticket (daily cap): the bot goes on
    assert end_at_handoff([before, ask], "queued") == [before, ask]  # the bot answering a waiting customer
