"""When to hand a conversation to a person, and why: one readable policy.

Four kinds of trigger (issue 4 §1), each answered with a decision that names its reason:

========================  =================================================  ======================
trigger                   how it is seen                                     decision
========================  =================================================  ======================
explicit request          intent ``human_handoff`` (text in any language,    ``Escalate`` at once
                          or the "talk to a person" button ``/human_handoff``),
                          or a frustrated message asking for a person/manager
repeated failure          ``failure_turns`` consecutive turns the bot could  ``Offer``; escalate on yes
                          not help: NLU fallback, Rasa's fallback actions,
                          a declined KB answer, a form that failed 3 times,
                          a message without readable words ("???", "asdkjh",
                          emoji only), small talk guessed at low confidence
frustration               ``handoff.frustration`` score ≥ threshold, or two   ``Offer``; escalate on yes
                          angry messages in a row
business rules            refund above the automatic limit (the refund        ``Escalate`` with the rule
                          action), legal threat, chargeback, suspected
                          account takeover (keywords, 3 languages and both
                          Chinese scripts), a gold
                          customer asking for a person a second time
========================  =================================================  ======================

Where they run: the explicit request, the refund limit and the gold customer's repeat inside the
Rasa action ``action_handoff_request`` / ``action_submit_refund`` (the bot knows the intent and the
verified customer there); the keyword rules before the turn reaches Rasa (an account takeover must
not start a password-reset form), like the frustrated request for a person (it is sent to the bot
as the ``/human_handoff`` button, whatever else the message mentions); failure and frustration after
each turn in the gateway. Chinese words are matched in Simplified characters, on the customer's text
converted from Traditional first. While a customer waits in the queue, ``queue_ping`` and
``acknowledgement`` tell the gateway which messages are for the queue rather than the bot.
Every decision to escalate opens at most one ticket per conversation, and new tickets are capped per
sender and per client address per day (``HandoffService._ticket_capped``): the keyword rules run
before the bot, for any new sender id, so they must not be a way to flood the queues.
Everything here is pure: the state it needs (``Signals``) is passed in and updated in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from handoff import frustration
from settings import HandoffSettings, StoreSettings

_HANDOFF, _STORE = HandoffSettings(), StoreSettings()  # the defaults (settings/sections.py), no environment

__all__ = [
    "Escalate",
    "Offer",
    "PolicyConfig",
    "Signals",
    "HandoffPolicy",
    "PRIORITY_URGENT",
    "PRIORITY_HIGH",
    "PRIORITY_NORMAL",
    "PRIORITY_LOW",
]

PRIORITY_URGENT, PRIORITY_HIGH, PRIORITY_NORMAL, PRIORITY_LOW = 0, 1, 2, 3

# Reasons (what kind of trigger) and rules (which business rule) as stored on tickets.
EXPLICIT = "explicit_request"
REPEATED_FAILURE = "repeated_failure"
FRUSTRATION = "frustration"
# Forms that ask why something went wrong with the product: complaints there are answers.
COMPLAINT_FORMS = frozenset({"refund_form", "return_form"})
BUSINESS_RULE = "business_rule"

RULE_REFUND_ABOVE_LIMIT = "refund_above_limit"
RULE_LEGAL_THREAT = "legal_threat"
RULE_CHARGEBACK = "chargeback"
RULE_ACCOUNT_TAKEOVER = "account_takeover"
RULE_VIP_REPEAT = "vip_repeat_request"

FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTIONS = frozenset(
    {
        "action_default_ask_affirmation",
        "action_default_ask_rephrase",
        "action_two_stage_fallback",
        "action_default_fallback",
    }
)
KB_ACTIONS = frozenset({"action_answer_question", "action_kb_feedback"})
# Small talk the NLU picked without conviction: "blorp" read as a greeting (0.36), "zzzz qqq" as
# thanks (0.46). A real "hi" or "thanks" scores far higher; a form's yes/no is not counted here.
SMALL_TALK = frozenset({"greet", "goodbye", "thanks", "bot_challenge"})


@dataclass(frozen=True)
class Escalate:
    reason: str
    rule: str | None = None
    priority: int = PRIORITY_NORMAL
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Offer:
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PolicyConfig:
    failure_turns: int = _HANDOFF.failure_turns
    frustration_threshold: float = _HANDOFF.frustration_threshold
    offer_cooldown_turns: int = _HANDOFF.offer_cooldown_turns
    max_verification_attempts: int = _STORE.max_verification_attempts
    guess_confidence: float = 0.5  # small talk below this confidence is the NLU guessing


@dataclass
class Signals:
    """Per-conversation memory of the policy (kept by the gateway between turns, in the database for every
    replica: ``handoff.models.TurnMemory``)."""

    failure_streak: int = 0
    last_frustration: float = 0.0
    offer_pending: str | None = None  # reason of the offer waiting for yes/no
    cooldown: int = 0  # turns left before another offer may be made


# --- business rules on the customer's words ----------------------------------------------------
# Latin/Cyrillic: lower-cased, word-bounded; Chinese: patterns without word bounds, matched on the
# text converted to Simplified (``frustration.simplified``), so Traditional input from Taiwan or
# Hong Kong hits the same rules; Taiwan and Hong Kong (Cantonese) wording is listed in Simplified.
_ZH_ACCOUNT = r"(?:账号|帐号|账户|帐户|户口|邮箱|密码)(?:好像|可能|已经|已)?"
_ZH_PERSON = r"(?:人|别人|他人|陌生人|黑客|骇客)"
_RULE_PATTERNS: dict[str, tuple[list[str], list[str]]] = {
    RULE_LEGAL_THREAT: (
        [
            r"sue|suing|lawsuit|lawyer\w*|attorney\w*|legal action|take (?:you|this) to court|court|small claims",
            r"consumer protection|trading standards|ombudsman|class action|legal (?:proceedings|department)",
            r"суд\w*|засуж\w*|иск\w*|юрист\w*|адвокат\w*|прокуратур\w*|роспотребнадзор\w*|защит\w* прав потребител\w*",
        ],
        [
            "律师",
            "起诉",
            "法院",
            "法庭",
            r"(?<![广公报忠转警预通劝宣布])告(?:你|您)",
            "法律途径",
            "法律程序",
            "诉讼",
            "消协",
            "消费者协会",
            "12315",
            "打官司",
            "仲裁",
            "提告",
            "入禀",
            "存证信函",
            "消基会",
            "消保官",
            "消保会",
            "消委会",
            "消费者委员会",
            "小额钱债",
            "市场监管",
            "工商局",
            "报警",
            "报案",
        ],
    ),
    RULE_CHARGEBACK: (
        [
            r"charge ?back\w*|disput\w* (?:the|this|that|a|your) (?:charge|payment|transaction)|reverse the (?:charge|payment)",
            r"(?:file|open|raise|start)\w* a (?:dispute|claim) with (?:my|the) (?:bank|card)",
            r"(?:call|contact|tell) my (?:bank|card issuer|credit card company)|(?:bank|card) dispute",
            r"чарджбэк\w*|чарджбек\w*|оспор\w* (?:платёж|платеж|списание|операци\w*)|отозв\w* платёж|отозв\w* платеж",
            r"(?:через|в) банк\w* (?:верну|оспор\w*)|заблокир\w* (?:платёж|платеж)",
        ],
        [
            "拒付",
            "信用卡争议",
            "争议款",
            "撤销(?:付款|交易|扣款)",
            "撤回(?:付款|扣款)",
            "止付",
            "刷退",
            "(?:找|叫|联系|联络|打给|打俾|通知)(?:我的?|我嘅)?(?:信用卡)?(?:银行|发卡行|发卡银行|信用卡公司)",
            "银行(?:追回|申诉|争议|止付|拒付)",
        ],
    ),
    RULE_ACCOUNT_TAKEOVER: (
        [
            r"hack\w*|account (?:was |has been |got )?(?:compromised|stolen|taken over)",
            r"someone (?:else )?(?:changed|reset|logged|has changed|got into|accessed|is using|used)\b.*\b(?:password|email|account|login)",
            r"someone (?:else )?(?:logged in|got into|accessed)|unauthori[sz]ed (?:order|purchase|login|access|charge)",
            r"i (?:did not|didn'?t) (?:place|make|order) (?:this|that|these|those) (?:order|purchase)",
            r"взлом\w*|украли (?:мой )?(?:аккаунт|учётн\w*|учетн\w*|пароль)|кто-то (?:сменил|поменял|изменил|зашёл|зашел|вош[её]л)\w*",
            r"не я (?:делал|делала|оформлял|оформляла|заказывал|заказывала)|несанкционирован\w*",
        ],
        [
            "被盗",
            "被黑",
            "被骇",
            "被入侵",
            "盗号",
            "盗用",
            "盗刷",
            "冒用",
            "盗咗",
            "异地登",
            "异常登",
            _ZH_ACCOUNT + r"(?:被|俾|畀|让|给)" + _ZH_PERSON + r"?(?:盗|黑|骇|入侵|冒用|攻击)",
            _ZH_ACCOUNT + r"(?:被|俾|畀|让|给)" + _ZH_PERSON + r"(?:登|用|改)",
            "密码被改",
            r"有人(?:偷偷)?(?:登录|登陆|登入|登咗|改了|改咗|换了|用了|用咗|用我|盗|冒用)",
            r"(?<!我)(?:改了|改咗|换了)我(?:的|嘅|个)?(?:账号|帐号|账户|帐户|户口|邮箱|密码)",
            r"(?:不是|唔系|并非)我(?:本人)?(?:自己)?(?:下|买|订|落|付)(?:的|嘅|咗)",
        ],
    ),
}


def _compile_rule(latin: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(latin) + r")(?!\w)", re.IGNORECASE)


_RULES = {rule: (_compile_rule(latin), re.compile("|".join(han))) for rule, (latin, han) in _RULE_PATTERNS.items()}
_RULE_PRIORITY = {
    RULE_LEGAL_THREAT: PRIORITY_URGENT,
    RULE_CHARGEBACK: PRIORITY_URGENT,
    RULE_ACCOUNT_TAKEOVER: PRIORITY_URGENT,
}

# --- asking for a person (or a manager) in the words: with frustration, escalate at once --------
_PERSON_REQUEST = re.compile(
    r"(?:talk|speak|chat) (?:to|with) (?:a |an |your |the |some )?(?:real |actual |live )?"
    r"(?:human|person|agent|manager|supervisor|someone|somebody)"
    r"|(?:get|give|want|need) (?:me )?(?:a |an |your |the )?(?:real |actual |live )?(?:human|person|manager|supervisor)\b"
    r"|real (?:person|human)|human being|live agent"
    r"|(?:позов\w*|дайте|давайте|соедин\w*|переключ\w*|хочу|нужен|нужна|требую)\s+(?:(?:уже|мне|же|ну)\s+)*живо(?:го|й)\b"
    r"|(?:позов\w*|дайте|давайте|соедин\w*|переключ\w*|хочу|нужен|нужна|требую)\s+(?:(?:уже|мне|же|ну)\s+)*"
    r"(?:с\s+|на\s+)?(?:живо\w+\s+)?"
    r"(?:человек\w*|оператор\w*|менеджер\w*|руководител\w*|начальств\w*|сотрудник\w*|администратор\w*)"
    r"|(?:поговорить|связаться|общаться|пообщаться)\s+с\s+(?:живым\s+)?(?:человек|оператор|менеджер|сотрудник|специалист|консультант)\w*"
    r"|(?:找|叫|要|转|换|接|请)(?:你们|你哋|你地)?(?:的|嘅)?(?:主管|经理|领导|负责人|上司|真人|人工|客服人员|活人)"
    r"|人工客服|真人客服",
    re.IGNORECASE,
)

# --- asking whether the bot is a person (a bot challenge, not a request) -------------------------
_BOT_QUESTION = re.compile(
    r"\b(?:are|r) (?:you|u)\b|\bam i (?:talking|chatting|speaking|texting)\b|\bis (?:this|that|it) (?:a )?(?:bot|robot|real|human)"
    r"|\b(?:ты|вы|это)\s+(?:бот|робот|человек|живой)|(?:я\s+)?(?:говорю|общаюсь|переписываюсь)\s+с\s+(?:ботом|роботом|человеком)\b"
    r"|你是|是不是(?:机器人|真人)|是机器人|系咪|係咪|是真人吗|是真人嗎",
    re.IGNORECASE,
)

# --- messages the bot cannot read --------------------------------------------------------------
# Punctuation, emoji only ("???", "...", "😡😡"); one character repeated ("zzzz", "ыыыы", "啊啊啊啊");
# Chinese interjections only ("嗯嗯嗯嗯"); Zhuyin symbols (a Taiwanese keyboard's letters, "ㄅㄆㄇㄈ");
# keyboard mashing: long runs without vowels, mostly neighbouring keys of one row ("asdkjh",
# "фывапролдж"), or only home-row letters ("sdjfhskdjfh").
_WORD = re.compile(r"[^\W_]+")
_BOPOMOFO = re.compile(r"[\u3100-\u312f\u31a0-\u31bf]+")
_INTERJECTIONS = set("啊阿嗯恩哦噢喔呃额唔哎唉呀哈嘿呵嘻喂吖")
_EMOJI_MODIFIERS = re.compile(r"[\s\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")
_MEANINGFUL_SYMBOLS = set("👍👌🙏👎✅❌🆗✔✓")  # a thumbs-up answers a yes/no question
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "йцукенгшщзхъ", "фывапролджэ", "ячсмитьбю")
_NEIGHBOURS = {row[i : i + 2] for row in _KEY_ROWS for i in range(len(row) - 1)}
_NEIGHBOURS |= {pair[::-1] for pair in _NEIGHBOURS}
_VOWELS = set("aeiouyаеёиоуыэюя")
_HOME_ROW = set("asdfghjkl")


def _mashed(token: str) -> bool:
    t = token.lower()
    if any(c.isdigit() for c in t):
        return False  # an order number, a code: never nonsense
    if _BOPOMOFO.fullmatch(t) or (len(t) >= 3 and len(set(t)) == 1):
        return True
    if all("\u4e00" <= c <= "\u9fff" for c in t):
        return len(t) >= 3 and set(t) <= _INTERJECTIONS
    if not t.isalpha():
        return False
    if len(t) >= 5 and not set(t) & _VOWELS:
        return True
    if len(t) >= 6 and set(t) <= _HOME_ROW:
        return True
    pairs = [t[i : i + 2] for i in range(len(t) - 1)]
    return len(t) >= 4 and sum(p in _NEIGHBOURS for p in pairs) / len(pairs) >= 0.75


def unintelligible(text: str | None) -> bool:
    """No words the bot could read in the whole message ("???", "asdkjh", "...", "😡", "ㄅㄆㄇㄈ")."""
    if not text or not text.strip():
        return False
    words = _WORD.findall(text)
    if not words:
        rest = _EMOJI_MODIFIERS.sub("", text)
        return not set(rest) <= _MEANINGFUL_SYMBOLS
    return all(_mashed(w) for w in words)


# --- while queued: a greeting or "anyone there?", and an acknowledgement of the queue notice -------
_SEP = r"[\W_]*"
_PING_WORDS = (
    r"hi|hello|hey|hiya|helo|hallo|yo|good (?:morning|afternoon|evening)"
    r"|(?:is )?(?:any(?:one|body)|some(?:one|body)) (?:there|here|around|available|coming)|any(?:one|body)"
    r"|(?:are )?you (?:still )?there|still there|hello there|hi there|(?:i'?m |i am )?still waiting|waiting"
    r"|any (?:news|updates?)|how (?:much )?long(?:er)?(?: (?:will it take|do i (?:have to )?wait|is the wait))?"
    r"|when will (?:someone|somebody|anyone|an agent|a person|a human) (?:answer|reply|come|be here)"
    r"|where is (?:the|my) (?:agent|person|human)"
    r"|привет|здравствуйте|здрасте|добрый (?:день|вечер)|доброе утро|алло|ау|эй"
    r"|(?:есть )?кто(?:-| )?(?:нибудь|то)(?: живой)?(?: (?:тут|здесь|есть))?|есть кто(?: живой)?(?: (?:тут|здесь))?"
    r"|вы (?:тут|здесь)|(?:я )?(?:всё|все) (?:ещё|еще) жду|жду|долго (?:ещё|еще)|сколько (?:ещё |еще )?ждать"
    r"|когда (?:мне )?ответят|ну что|ну"
    r"|你好|您好|哈喽|哈啰|嗨|喂|在吗|在不在|在么|在嘛|有人吗|有人在吗|有人在么|有人在嘛|有没有人|有冇人|有人在不|人呢"
    r"|客服呢|人工呢|还要等多久|要等多久|等多久|还要多久|多久|还在吗|怎么还没人|怎么没人(?:理|回|回复)?|没人吗|请问"
    # words around them ("喂 到底有沒有人在", "hello?? anyone there guys", "ну вы где вообще")
    r"|到底|究竟|真的|还|在|啊|呀|呢|啦|吗|么|嘛|guys|folks|people|seriously|please|pls|u there"
    r"|вы где|где все|люди|вообще|сколько можно(?: ждать)?"
)
_ACK_WORDS = (
    r"ok(?:ay)?|k|thanks?|thank you|thx|ty|sure|fine|alright|all right|got it|cool|great|noted|understood"
    r"|ок|окей|хорошо|ладно|спасибо|понятно|ясно|поняла?|принято|жду"
    r"|好|好的|好吧|嗯|行|可以|谢谢|多谢|谢啦|收到|知道了|明白|了解|ok啦|唔该|麻烦了"
)
_PING = re.compile(rf"^{_SEP}(?:(?:{_PING_WORDS}){_SEP})+$", re.IGNORECASE)
_ACK = re.compile(rf"^{_SEP}(?:(?:{_ACK_WORDS}){_SEP})+$", re.IGNORECASE)
_EMOJI_ACK = re.compile(r"^[\s👍👌🙏✅🆗\ufe0f\U0001f3fb-\U0001f3ff]+$")


class HandoffPolicy:
    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    # --- before Rasa ---------------------------------------------------------------------------
    @staticmethod
    def rule_in_text(text: str | None) -> Escalate | None:
        """Legal threat, chargeback or account takeover in the customer's words → escalate at once."""
        if not text:
            return None
        text = frustration.simplified(text)
        lowered = text.lower()
        for rule, (latin, han) in _RULES.items():
            hit = latin.search(lowered) or han.search(text)
            if hit:
                return Escalate(BUSINESS_RULE, rule, _RULE_PRIORITY[rule], {"matched": hit.group(0)})
        return None

    @staticmethod
    def requests_person(text: str | None) -> bool:
        """Asks for a person in the words and is not asking whether the bot is one ("are you a bot or a
        real human??", "am I talking to a real person?", "ты бот?" are the bot's to answer)."""
        return HandoffPolicy.asks_for_person(text) and not _BOT_QUESTION.search(frustration.simplified(text or ""))

    @staticmethod
    def asks_for_person(text: str | None) -> bool:
        """The words ask for a person ("I also want to talk to someone about …", "转人工", "позовите
        оператора"), whatever the intent classifier made of the message."""
        return bool(text) and bool(_PERSON_REQUEST.search(frustration.simplified(text or "")))

    def angry_person_request(self, text: str | None) -> bool:
        """A frustrated message that asks for a person or a manager ("你們到底在搞什麼！我要找你們主管"):
        the explicit request is granted at once, whatever else the message mentions (a refund, an order)."""
        if not text:
            return False
        text = frustration.simplified(text)
        return bool(_PERSON_REQUEST.search(text)) and frustration.score(text).value >= self.config.frustration_threshold

    @staticmethod
    def queue_ping(text: str | None) -> bool:
        """Only a greeting or "anyone there?" / "你好？有人吗" / "алло, есть кто?" (a queued customer waiting)."""
        return bool(text) and len(text) <= 120 and bool(_PING.match(frustration.simplified(text)))

    @staticmethod
    def acknowledgement(text: str | None) -> bool:
        """Only "ok" / "thanks" / "好的" / "хорошо" / 👍: nothing for the bot to do."""
        if not text or len(text) > 60:
            return False
        return bool(_ACK.match(frustration.simplified(text)) or _EMOJI_ACK.match(text))

    # --- inside the Rasa actions ----------------------------------------------------------------
    @staticmethod
    def explicit_request(times_asked: int, membership: str | None) -> Escalate:
        """Asking for a person always works. A gold customer asking again is escalated as a VIP."""
        if membership == "gold" and times_asked >= 2:
            return Escalate(BUSINESS_RULE, RULE_VIP_REPEAT, PRIORITY_URGENT, {"times_asked": times_asked})
        priority = PRIORITY_HIGH if membership == "gold" else PRIORITY_NORMAL
        return Escalate(EXPLICIT, None, priority, {"times_asked": times_asked})

    @staticmethod
    def refund_above_limit(order_id: str, amount: str, limit: str) -> Escalate:
        return Escalate(
            BUSINESS_RULE,
            RULE_REFUND_ABOVE_LIMIT,
            PRIORITY_HIGH,
            {"order_id": order_id, "amount": amount, "limit": limit},
        )

    # --- after each bot turn (gateway) -----------------------------------------------------------
    def turn_failed(self, turn: dict[str, Any], text: str | None = None) -> str | None:
        """Why the bot could not help in this turn (from the gateway's turn summary and the customer's
        ``text``), or None. A message with no readable words counts whatever the NLU made of it: its
        intent can be a confident guess ("..." read as a greeting), and the bot cannot help with it."""
        if unintelligible(text):
            return "unintelligible"
        raw_intent = turn.get("intent")
        intent = raw_intent.get("name") if isinstance(raw_intent, dict) else raw_intent
        actions = set(turn.get("actions") or [])
        slots = turn.get("slots") or {}
        if intent == FALLBACK_INTENT:
            return "nlu_fallback"
        confidence = raw_intent.get("confidence") if isinstance(raw_intent, dict) else None
        if intent in SMALL_TALK and confidence is not None and float(confidence) < self.config.guess_confidence:
            return "nlu_guess"
        if actions & FALLBACK_ACTIONS:
            return "fallback_action"
        # kb_outcome keeps its value across turns: count it only on a turn that asked the KB.
        if slots.get("kb_outcome") == "declined" and actions & KB_ACTIONS:
            return "kb_declined"
        if "utter_too_many_attempts" in actions:
            return "form_failed"
        failed = slots.get("failed_attempts") or 0
        if float(failed) >= self.config.max_verification_attempts:
            return "form_failed"
        return None

    def after_turn(self, signals: Signals, turn: dict[str, Any], text: str | None) -> Offer | None:
        """Update ``signals`` with this turn and decide whether to offer a person."""
        if signals.cooldown > 0:
            signals.cooldown -= 1
        failure = self.turn_failed(turn, text)
        signals.failure_streak = signals.failure_streak + 1 if failure else 0
        scored = frustration.score(text or "")
        angry_twice = scored.value >= frustration.MILD and signals.last_frustration >= frustration.MILD
        signals.last_frustration = scored.value
        if signals.offer_pending and failure:  # the offer went unanswered and the bot failed again: repeat it
            return Offer(signals.offer_pending, {"turns": signals.failure_streak, "last": failure, "repeated_offer": True})
        if signals.offer_pending or signals.cooldown > 0:
            return None
        # a complaint about the product while giving the reason for a refund or return ("质量太差了",
        # "the zip broke on day one, rubbish") is the reason asked for, not anger at the service
        complaint_asked_for = turn.get("active_loop") in COMPLAINT_FORMS
        if (scored.value >= self.config.frustration_threshold or angry_twice) and not complaint_asked_for:
            return Offer(FRUSTRATION, {"score": scored.value, "signals": scored.signals, "repeated": angry_twice})
        if signals.failure_streak >= self.config.failure_turns:
            return Offer(REPEATED_FAILURE, {"turns": signals.failure_streak, "last": failure})
        return None

    def offered(self, signals: Signals, offer: Offer) -> None:
        signals.offer_pending = offer.reason

    def declined(self, signals: Signals) -> None:
        signals.offer_pending = None
        signals.failure_streak = 0
        signals.last_frustration = 0.0
        signals.cooldown = self.config.offer_cooldown_turns

    def accepted(self, signals: Signals) -> str | None:
        reason, signals.offer_pending = signals.offer_pending, None
        signals.failure_streak = 0
        signals.last_frustration = 0.0
        return reason
