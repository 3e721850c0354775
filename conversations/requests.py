"""Two requests in one message: "cancel 5120648393 and also change the address on 4021558730",
"查一下订单到哪了，另外我想退货", "где мой заказ? и ещё хочу сменить пароль".

The intent classifier gives a message one intent, so the second request was silently dropped. The
gateway splits a message at the places customers join requests (``split``); when the parts are
different tasks by the NLU (``Parsed``/``plan``), the first is handled now and the rest is kept on
the conversation and handled, with a word to the customer, as soon as the first is finished.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from conversations.models import Conversation
from conversations.task_words import names_task
from storage.db import transaction

# Where a second request starts. A bare "and" joins too much ("size and colour") to split on
# unless a request verb follows it.
_VERBS_EN = (
    r"(?:can|could|would|will|pls|please|i|i'd|i'm|im|also|cancel|change|update|refund|return|reset|track|"
    r"where|when|what|how|send|check|tell|give|need|want|my|has|is|did|do|does|are|should|may)"
)
_JOINS = re.compile(
    r"(?:[.?!;]+\s+|\s*,\s*|\s+)(?:and\s+also|also|plus|and\s+then|oh\s+and|and\s+another\s+thing|btw|"
    rf"and(?=\s+{_VERBS_EN}\b))\s+"
    r"|(?<=[?!])\s+(?=\S)"
    # "1) where is … 2) i need to return …", "1.订单… 2.退货…", "①查物流 ②退款"
    r"|(?:^|\s+|(?<=[)）:：,，;；\u3400-\u9fff]))(?:[1-9][)）、]|\([1-9]\)|[1-9][.．](?=\s|[\u3400-\u9fff]))\s*"
    r"|\s*(?:（[1-9]）|[①-⑨])\s*"
    r"|[。？！；]\s*|[，,]?\s*(?:另外|还有|還有|仲有|顺便|順便|然后|然後|并且|並且|再帮我|再幫我|同时|同時)[，,：:]?\s*"
    r"|(?:[.?!;]\s+|,?\s+)(?:а\s+также|и\s+ещё|и\s+еще|ещё|еще|также|кроме\s+того|заодно|и\s+(?=(?:поменяйте|"
    r"смените|измените|отмените|верните|сбросьте|где|когда|можно|хочу|надо|нужно|сколько|скока|через|как|почему|какой|какая|"
    r"какие|что\s+(?:по|с|за|насч))))\s*",
    re.IGNORECASE,
)
MIN_PART_CHARS = 4
MIN_PART_HAN = 2
MAX_PARTS = 3
# The tasks a second request can be; questions, greetings and yes/no stay in the first part.
TASK_INTENTS = frozenset({
    "check_order_status", "track_shipment", "request_refund", "refund_status", "return_item", "cancel_order",
    "change_shipping_address", "reset_password",
})
# A help-centre question beside a task is a request of its own too ("has my refund gone through, and
# how long do bronze members have for returns?"): answered before or after the task, not dropped.
# A question is split off only when the NLU is surer of it than of a task: a remark beside a task
# ("i ordered it two weeks ago") must not become a request of its own.
QUESTION_INTENT = "ask_question"
MIN_CONFIDENCE = 0.5
MIN_QUESTION_CONFIDENCE = 0.7
_HAN = re.compile(r"[\u3400-\u9fff]")
# Two help-centre questions in one message ("可以用PayPal付款嗎 另外運費怎麼算") are two requests when
# both parts are asked as questions; "I have a question. What's the return window?" stays one.
_ASKS = re.compile(
    r"[?？]|吗|嗎|呢|怎么|怎麼|如何|多少|多久|多长|多長|几|幾|什么|什麼|啥|哪|是否|能不能|可不可以|有没有|有沒有"
    r"|^(?:how|what|what's|whats|when|where|which|who|why|can|could|do|does|is|are|will|would)\b"
    r"|(?:^|\s)(?:как|что|когда|где|сколько|почему|зачем|какой|какая|какое|какие|каков|можно|ли)(?=\s|$|[,.!])",
    re.IGNORECASE,
)


def _substantial(part: str) -> bool:
    return len(part) >= MIN_PART_CHARS or len(_HAN.findall(part)) >= MIN_PART_HAN


def split(text: str) -> list[str]:
    """The message cut where a new request may begin; one part when there is no such place."""
    parts = [p.strip(" ,.;，。") for p in _JOINS.split(text or "")]
    parts = [p for p in parts if p]
    if len(parts) < 2 or len(parts) > MAX_PARTS * 2 or not all(_substantial(p) for p in parts):
        return [text]
    return parts


@dataclass(frozen=True)
class Parsed:
    text: str
    intent: str | None
    confidence: float


@dataclass(frozen=True)
class Request:
    """One request of a message: its text, and the task the parts it is made of were read as (None
    for a help-centre question or a remark). The bot gets the task with the text (``TASK_KEY``): the
    whole request read again may lean elsewhere ("帮我看下订单…的情况 <email>" read as a bare detail)."""

    text: str
    task: str | None = None

    def for_bot(self, metadata: dict[str, Any]) -> str:
        """The text the bot gets, with the task in ``metadata`` (``TASK_KEY``) when there is one."""
        if self.task:
            metadata[TASK_KEY] = self.task
        return self.text

    def stored(self) -> dict[str, Any]:
        return {"text": self.text, "task": self.task}

    @classmethod
    def from_stored(cls, item: Any) -> Request:
        """A kept request as stored (older rows hold the text alone)."""
        if isinstance(item, dict):
            task = item.get("task")
            return cls(str(item.get("text") or ""), task if task in TASK_INTENTS else None)
        return cls(str(item))


# The metadata key that tells the bot which task a request was read as (the gateway's own key,
# never a channel's; bot/gateway_channel.py reads it).
TASK_KEY = "planned_task"


def plan(parsed: list[Parsed]) -> tuple[str, list[str]]:
    """(what to send now, the requests kept for later) from the parts of one message, parsed."""
    now, later = planned(parsed)
    return now.text, [r.text for r in later]


def planned(parsed: list[Parsed]) -> tuple[Request, list[Request]]:
    """(what to send now, the requests kept for later) from the parts of one message, parsed.

    Parts are grouped into requests: a part that is a task different from those before it starts a
    new request, and so does a help-centre question beside a task; a task or question already named
    goes with its request, and anything else (an order number, an email) with the request it
    completes (``_home``). The first request is handled now and
    needs the identity to verify (a verified customer is not asked again for the next one).
    Only parts that the NLU reads as tasks or questions with confidence are split off.
    """
    if not parsed:
        return Request(""), []
    requests: list[list[Parsed]] = [[parsed[0]]]
    kinds = [_kind(parsed[0])]
    for part in parsed[1:]:
        kind = _kind(part)
        another_question = kind == QUESTION_INTENT == kinds[-1] and _asks(part.text) and _asks(requests[-1][-1].text)
        if kind is not None and (kind not in kinds or another_question) and kinds[-1] is not None:
            requests.append([part])
            kinds.append(kind)
        elif kind is not None and kind in kinds:
            requests[kinds.index(kind)].append(part)
        else:
            home = _home(requests, part)
            requests[home].append(part)
            if kinds[home] is None:
                kinds[home] = kind
    joined = [" ".join(p.text for p in group) for group in requests[:MAX_PARTS]]
    tasks = [kind if kind in TASK_INTENTS else None for kind in kinds[:MAX_PARTS]]
    later = [Request(text, task) for text, task in zip(joined[1:], tasks[1:], strict=True)]
    return Request(_with_identity(joined[0], joined[1:]), tasks[0]), later


def _with_identity(now: str, later: list[str]) -> str:
    """The first request with the email or username the customer gave in another part ("has
    6867638488 shipped? if not please change the address. a@b.co", "…的退款到哪了 还有铜牌会员退货期限
    是多久 用户名aphoenix939"): one message is one customer, and the identity proves who asks for each
    request (an order it does not own is not shown: its check asks again)."""
    if not later or _EMAIL.search(now) or _USERNAME.search(now):
        return now
    emails = [m.group(0).rstrip(".,;:!?") for part in later for m in _EMAIL.finditer(part)]
    if emails:
        return f"{now} {emails[0]}"
    named = next((m.group(0) for part in later for m in _USERNAME.finditer(part)), None)
    return f"{now} {named}" if named else now


def _home(requests: list[list[Parsed]], part: Parsed) -> int:
    """The request a detail belongs to: an order number to the latest request that names no order
    yet; anything else (an email, a bare username, a remark) to the latest request that names an
    order but not who asks ("…been processed, and how long …? aphoenix939" is the refund's; "…and
    wheres 9926189121?? thats under asmith910@email.com" the second order's); else the latest."""
    def names(group: list[Parsed], pattern: re.Pattern[str]) -> bool:
        return any(pattern.search(p.text) for p in group)

    if _ORDER_ID.search(part.text):
        wanting = [i for i, g in enumerate(requests) if not names(g, _ORDER_ID)]
    else:
        wanting = [i for i, g in enumerate(requests)
                   if names(g, _ORDER_ID) and not names(g, _EMAIL) and not names(g, _USERNAME)]
    return wanting[-1] if wanting else len(requests) - 1


def _asks(text: str) -> bool:
    return _ASKS.search(text.strip()) is not None


def repeats(first: list[dict[str, Any]], then: list[dict[str, Any]]) -> bool:
    """Whether the answer to a later request only cites articles the first answer already gave (two
    questions of one message that the same article answers): it is not sent a second time."""
    def cited(messages: list[dict[str, Any]]) -> set[str]:
        return {str(s.get("article_id")) for m in messages for s in (m.get("sources") or [])
                if isinstance(s, dict) and s.get("article_id")}
    later = cited(then)
    return bool(later) and later <= cited(first)


def _kind(part: Parsed) -> str | None:
    """The request a part makes on its own: a task, or a help-centre question; else None. A part
    made of details only ("order 3348-917-502, email a@b.co thx", "7916676427 / aphoenix939") makes
    none, whatever the NLU leans to: it completes the request it follows."""
    if gives_only_an_id(part.text):
        return None
    if part.intent in TASK_INTENTS and part.confidence >= MIN_CONFIDENCE:
        return part.intent
    if part.intent == QUESTION_INTENT and part.confidence >= MIN_QUESTION_CONFIDENCE:
        return part.intent
    return None


# What the customer is told about a request kept for later, and when it is taken up.
NOTICES: dict[str, dict[str, str]] = {
    "en": {
        "later": "You also asked: \u201c{request}\u201d. I'll come to that as soon as this is done.",
        "now": "Now your other request: \u201c{request}\u201d.",
    },
    "zh": {"later": "您还提到：“{request}”。这件事办完后我马上处理。", "now": "接下来处理您的另一个请求：“{request}”。"},
    "ru": {
        "later": "Вы ещё спросили: «{request}». Займусь этим, как только закончим с этим.",
        "now": "Теперь ваш второй вопрос: «{request}».",
    },
}


def notice(kind: str, language: str, request: str) -> dict[str, Any]:
    return {"text": NOTICES.get(language, NOTICES["en"])[kind].format(request=request)}


class Parser(Protocol):
    async def parse(self, text: str) -> tuple[str | None, float, list[dict[str, Any]]]: ...


_ORDER_ID = re.compile(r"(?<!\d)\d{10}(?!\d)")
# A part that names an order but no task ("3348917502到哪了", "where's 4021558730"): the task the
# ranking leans to from this confidence (as the bot does, bot/actions/knowledge.py), else its status.
UNPLACED = frozenset({None, "inform", "nlu_fallback", "out_of_scope", "ask_question"})
ORDER_GUESS_MIN_CONFIDENCE = 0.1


# What may stand beside an order number in a part that only gives it ("order 7916676427", "订单号：
# 7916676427", "заказ №7916676427"): such a part is a detail of the request before it, not a request.
_ONLY_AN_ID = re.compile(
    r"^(?:(?:my|the|an?|it'?s|its|is|and|order|orders|number|no|num|id|#|e-?mail|mail|acct|account|login|user|"
    r"username|here|thx|thanks|thank you|ty|pls|plz|please|订单号?|訂單號?|单号|單號|号码|號碼|是|"
    r"邮箱|郵箱|用户名|用戶名|谢谢|謝謝|唔该|唔該|заказ\w*|номер\w*|мой|почта|мыло|логин|спасибо|спс|плз|пожалуйста|и|№"
    r"|/|-)\s*[:：.,，]?\s*)*"
    r"(?:[A-Za-z][A-Za-z0-9_.-]*\d[A-Za-z0-9_.-]*)?\s*$",  # and a bare username ("7916676427 / aphoenix939")
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A username given with its cue ("用户名aphoenix939", "логин safzal207", "username: jsmith123").
_USERNAME = re.compile(r"(?:用户名|用戶名|账号|帳號|логин|username|user name|user)\s*[:：]?\s*[A-Za-z][A-Za-z0-9_.-]{2,}",
                       re.IGNORECASE)


def gives_only_an_id(text: str) -> bool:
    """Whether a part only gives details of who asks about which order (an order number, an email, a
    username with its cue: "заказ 4471209856, логин safzal207"), not a request of its own."""
    if not (_ORDER_ID.search(text) or _EMAIL.search(text) or _USERNAME.search(text)):
        return False
    rest = _USERNAME.sub(" ", _EMAIL.sub(" ", _ORDER_ID.sub(" ", text))).strip(" ,.;:!?，。；：！？()（）")
    return _ONLY_AN_ID.match(rest) is not None


# Read-only tasks, and the confidence a write task needs to be guessed for a message that names an
# order but no task ("唔該幫我睇下張單 1357924680 到咗未": cancel at 0.10 beside status at 0.10 is no reason
# to start a cancellation; nor is an address change at 0.36 for "что там с заказом …, ещё не отправили?").
READ_TASKS = ("check_order_status", "track_shipment", "refund_status")
WRITE_GUESS_MIN_CONFIDENCE = MIN_CONFIDENCE


def lean_task(ranking: list[dict[str, Any]], text: str = "") -> str:
    """The task the NLU's ranking leans to for a message that names an order but that it could not
    place: the first task of the ranking from ``ORDER_GUESS_MIN_CONFIDENCE`` (a write task only from
    ``WRITE_GUESS_MIN_CONFIDENCE``, unless ``text`` names it: "订单…地址填错了"), else the order's
    status. Entities first: never a guess at a write over a read."""
    for c in ranking:
        name, confidence = c.get("name"), float(c.get("confidence") or 0)
        if name not in TASK_INTENTS or confidence < ORDER_GUESS_MIN_CONFIDENCE:
            continue
        if name in READ_TASKS or confidence >= WRITE_GUESS_MIN_CONFIDENCE or (text and names_task(str(name), text)):
            return str(name)
    return "check_order_status"


def read_part(text: str, intent: str | None, confidence: float, ranking: list[dict[str, Any]]) -> Parsed:
    """A part as the NLU read it; one that names an order but no task, or a task the NLU is unsure of
    (below ``MIN_CONFIDENCE``), is the task its ranking leans to (``lean_task``)."""
    unsure = intent in TASK_INTENTS and confidence < MIN_CONFIDENCE
    if (intent not in UNPLACED and not unsure) or not _ORDER_ID.search(text) or gives_only_an_id(text):
        return Parsed(text, intent, confidence)
    return Parsed(text, lean_task(ranking, text), MIN_CONFIDENCE)


async def first_request(parser: Parser, text: str) -> tuple[Request, list[Request]]:
    """(what the bot reads now, the requests kept for later) for one customer message. Only a
    message with a place to split costs NLU parses (one per part)."""
    parts = split(text)
    if len(parts) < 2:
        return Request(text), []
    parsed = [read_part(part, *await parser.parse(part)) for part in parts]
    now, later = planned(parsed)
    return (now, later) if later else (Request(text), [])


def merge_turns(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """One turn's record for two requests handled in it: the first's intent, everything that ran."""
    merged = {**then, "intent": first.get("intent"), "entities": first.get("entities")}
    merged["actions"] = [*(first.get("actions") or []), *(then.get("actions") or [])]
    return merged


def keep(sessions: sessionmaker[Session], conversation_id: int, requests: list[Request] | None) -> None:
    kept = [r.stored() for r in requests or []] or None
    with transaction(sessions) as db:
        db.execute(update(Conversation).where(Conversation.id == conversation_id).values(pending_requests=kept))
