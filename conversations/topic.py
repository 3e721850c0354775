"""A task the NLU read, or a problem the help centre answers that only sounds like one.

"tracking says delivered but there's nothing at my door" has the words of tracking, "списали деньги два
раза" those of a refund, "что даёт золотой статус?" those of an order status, "退款一般几天能到账"
those of a refund status: the intent classifier reads the task, and a form asks for an order number
the customer never meant to give. So before a typed message with no order number starts a task, the
help centre is asked too, and it answers instead when all of these hold:

* the message does not ask for the task in words: a request word *and* the task's subject ("I want
  my money back", "можно вернуть?", "我要退货"), or the customer's own case ("did you ever pay back my
  refund", "мне вернули деньги?", "我的快递到哪了") start the task whatever the help centre says;
* the help centre's calibrated decision answers it, surely (``MIN_PROBABILITY``), with an article
  that is not about the task itself and that beats the best of the task's own articles by ``MARGIN``. The task's own articles are those the help centre finds for the task's
  name ("tracking a parcel", "查询物流"): found by search, so this holds for any help centre.

Then the bot gets the message as a question (``QUESTION``, the text in the metadata's ``kb_query``)
and no form starts. A task about an order from another shop ("помогите отследить посылку
с озона", "拼多多买的东西到哪了") is out of scope (``OUT_OF_SCOPE``): no form asks for an order number
of ours, and no article of ours answers it. ``TOPICS``/``names_task`` (the task's subject in words) and ``REQUEST_WORDS``
are shared with the change-of-mind guard of the forms (bot/actions/change_of_mind.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from anyio import to_thread

from conversations import confirm
from conversations.labels import INTENT, label
from conversations.requests import TASK_INTENTS, TASK_KEY
from conversations.task_words import TOPICS, names_task

QUESTION = "/ask_question"
OUT_OF_SCOPE = "/out_of_scope"
# Other shops and marketplaces customers mention by name (en, ru, zh markets).
OTHER_SHOP = re.compile(
    r"\b(?:amazon|ebay|aliexpress|ali express|temu|shein|etsy|walmart|zalando|asos|shopee|ozon|wildberries|avito|"
    r"lamoda)\b|озон\w*|вайлдберр\w*|валдберр\w*|wb\b|яндекс[ .-]?маркет\w*|авито|ламод\w*|алиэкспресс\w*|"
    r"拼多多|淘宝|天猫|京东|闲鱼|唯品会|抖音商城|虾皮|蝦皮|露天拍卖|momo购物",
    re.IGNORECASE,
)
QUERY_KEY = "kb_query"  # the metadata key of the question's text (the gateway's own, never a channel's)
# The help centre must be surer than for answering a plain question (its decision's threshold), and
# the article must beat the task's own by this much of article score (kb_index/decision.py; the
# scores of the top articles lie within ~0.1 of each other).
MIN_PROBABILITY = 0.85
MARGIN = 0.01
TASK_ARTICLES = 1  # how many of the articles found for the task's name count as the task's own
_ORDER_ID = re.compile(r"(?<!\d)\d{10}(?!\d)")
# Too short to be a task (an acknowledgement, a yes/no, a greeting): no second parse is spent on it.
# A task the NLU reads in words that do not name it ("我想把账户里绑定的邮箱换成新的", read as an address
# change) is exactly what this module is for, so anything longer is parsed.
_ACKNOWLEDGEMENT = re.compile(r"^(?![\s\S]*[\u3400-\u9fff])\W*(?:\w+\W*){0,2}$|^\W*[\u3400-\u9fff]{0,4}\W*$")
# What the NLU may make of a message about another shop's order that is out of scope for us: a task,
# or already out of scope (which the help centre would otherwise search: "my amazon package never came").
OTHER_SHOP_INTENTS = frozenset({*TASK_INTENTS, "out_of_scope", "nlu_fallback"})

# Words that ask for something to be done ("can you refund it instead?", "можете отменить?", "帮我").
REQUEST_WORDS = re.compile(
    r"\b(?:can|could|would|will) you\b|\b(?:can|could|may) i\b|\bi(?:'d| would)? (?:want|like|need)\b|\bplease\b|"
    r"\binstead\b|\bactually\b|можете|можно|хочу|надо|нужно|давайте|лучше|帮我|我要|我想|可以帮|能帮|能不能|改成|换成",
    re.IGNORECASE,
)


# The customer's own order, refund, parcel… ("did you ever pay back my refund", "мне вернули деньги?",
# "我的快递到哪了"): a question about their own case is the task, whatever article is close to it.
OWN_CASE = re.compile(
    r"\b(?:my|our)\s+(?:\w+\s+)?(?:orders?|refunds?|money|parcels?|packages?|deliver(?:y|ies)|shipments?|returns?|"
    r"password|account|address)\b"
    r"|(?:\bмой|\bмоя|\bмо[её]|\bмои|\bмоих|\bмоего|\bмоей|\bмне)\s+(?:\w+\s+)?(?:заказ|возврат|деньг|посылк|доставк|парол|адрес)"
    r"|我的(?:订单|退款|包裹|快递|钱|密码|地址|货)",
    re.IGNORECASE,
)


# The customer says the task is not what they want ("I remember my password, the code never comes",
# "пароль я помню", "密碼沒忘記", "can I swap them instead of sending them back", "不想退 就想换"): a
# question for the help centre (two-step codes, exchanges), whatever the task's words in it.
NOT_THE_TASK = {
    "reset_password": re.compile(
        r"\b(?:remember|know|have|got)\s+(?:my\s+|the\s+)?password|\bpassword\s+(?:is|was|'s)\s+(?:fine|ok|okay|correct|right)"
        r"|\b(?:didn'?t|did not|haven'?t|have not|never)\s+forg[eo]t|\bnot\s+(?:the|my|a)\s+password"
        r"|парол\w*\s+(?:я\s+)?(?:помню|знаю|правильн\w*|верн\w*|в порядке)|(?<!не )(?:помню|знаю)\s+(?:свой\s+|мой\s+)?парол"
        r"|не\s+забыл\w*|дело\s+не\s+в\s+парол"
        r"|密码(?:我)?(?:没|没有|沒|沒有)忘|(?:没|没有)忘(?:记)?密码|密码(?:是)?(?:对|正确)的?|(?<![不没沒])记得密码|不是密码",
        re.IGNORECASE,
    ),
    "return_item": re.compile(
        r"\b(?:swap|exchange)\b|\binstead of (?:sending|returning|a return|a refund)|\b(?:don'?t|do not) want (?:to return|a refund|my money)"
        r"|обмен\w*|поменять на (?:друг|размер|больш|меньш)|не хочу (?:возвра\w*|деньги)"
        r"|不想退|不要退|不退(?:货|款)?|换货|换(?:个|一个|一件|一条|大|小|码|尺码|颜色)",
        re.IGNORECASE,
    ),
}
NOT_THE_TASK["request_refund"] = NOT_THE_TASK["return_item"]
# How long something takes ("how long does a refund take", "啲錢要幾耐先會退返", "сколько идёт возврат"),
# asked with no order number: the help centre's timing answer, not a refund or its status.
HOW_LONG = re.compile(
    r"\bhow\s+(?:long|many\s+days)|\bwhen\s+(?:will|would|do|does)\s+(?:i|we)\s+(?:get|see|receive)"
    r"|сколько\s+(?:\w+\s+)?(?:времени|дней|ждать|идет|идут|занимает|обычно)|как\s+долго|через\s+сколько"
    r"|多久|多长时间|几天|几个工作日|要几耐|几耐|几时先",
    re.IGNORECASE,
)
TIMED_TASKS = frozenset({"request_refund", "refund_status", "return_item"})


def not_the_task(intent: str, text: str) -> bool:
    """The customer says ``intent``'s task is not what they want, or asks how long it takes (module
    docstring): the help centre answers, no form starts."""
    norm = confirm.normalise(text)
    words = NOT_THE_TASK.get(intent)
    if words is not None and words.search(norm):
        return True
    return intent in TIMED_TASKS and HOW_LONG.search(norm) is not None and OWN_CASE.search(norm) is None


def asks_for_task(intent: str, text: str) -> bool:
    """The task is asked for in words: a request word and the task's subject, or the customer's own
    order, refund or parcel named."""
    norm = confirm.normalise(text)
    if OWN_CASE.search(norm) is not None:
        return True
    return REQUEST_WORDS.search(norm) is not None and intent in TOPICS and names_task(intent, text)


class Parser(Protocol):
    async def parse(self, text: str) -> tuple[str | None, float, list[dict[str, Any]]]: ...


class Answerer(Protocol):  # kb_index.answering.Answerer
    policy: Any

    def assess(self, query: str, language: str | None = None) -> Any: ...

    def rank(self, query: str, language: str | None = None) -> list[Any]: ...


def task_articles(answerer: Answerer, intent: str, language: str) -> set[str]:
    """The help centre's articles about the task itself: the best for its name, in English and in
    the customer's language."""
    found: set[str] = set()
    for lang in dict.fromkeys(("en", language)):
        found |= {r.article_id for r in answerer.rank(label(INTENT, intent, lang), lang)[:TASK_ARTICLES]}
    return found


def problem_article(answerer: Answerer, text: str, language: str, intent: str) -> str | None:
    """The article that answers ``text`` instead of the task ``intent``, or None (module docstring)."""
    assessed = answerer.assess(text, language)
    if not assessed.ranked or assessed.probability < max(MIN_PROBABILITY, answerer.policy.threshold):
        return None
    own = task_articles(answerer, intent, language)
    top = assessed.ranked[0]
    if top.article_id in own:
        return None
    own_best = max((r.score for r in assessed.ranked if r.article_id in own), default=0.0)
    return top.article_id if top.score - own_best >= MARGIN else None


async def route(
    parser: Parser, knowledge: Callable[[], Answerer | None] | None, text: str, language: str
) -> str | None:
    """What the bot gets instead of the typed ``text`` (no form open): ``QUESTION``, ``OUT_OF_SCOPE``,
    or None for the text itself."""
    if not text or text.startswith("/") or _ORDER_ID.search(text):
        return None
    norm = confirm.normalise(text)
    other_shop = OTHER_SHOP.search(norm) is not None
    answerer = knowledge() if knowledge is not None else None
    if not other_shop and (answerer is None or _ACKNOWLEDGEMENT.match(norm)):
        return None  # "ok", "thanks!", "好的", "спасибо": no second NLU parse on this turn
    intent, _, _ = await parser.parse(text)
    if other_shop and intent in OTHER_SHOP_INTENTS:  # a question may compare ("cheaper than on ozon?"): asked on
        return OUT_OF_SCOPE
    if answerer is not None and intent in TASK_INTENTS and not_the_task(intent, text):
        return QUESTION
    if answerer is None or intent not in TASK_INTENTS or asks_for_task(intent, text):
        return None
    article = await to_thread.run_sync(problem_article, answerer, text, language, intent)
    return QUESTION if article is not None else None


async def routed(parser: Parser, knowledge: Callable[[], Answerer | None] | None, text: str, typed: str,
                 language: str, metadata: dict[str, Any]) -> str:
    """What the bot gets for a request with no form open: the text itself, or ``QUESTION`` /
    ``OUT_OF_SCOPE`` with the metadata that goes with them (``typed`` is the text as typed)."""
    routed_to = await route(parser, knowledge, text, language)
    if routed_to is None:
        return text
    metadata["typed_text"] = typed
    metadata.pop(TASK_KEY, None)  # a question (or out of scope), not the task its words sound like
    if routed_to == QUESTION:  # the help centre searches the text, not the payload
        metadata[QUERY_KEY] = text
    return routed_to
