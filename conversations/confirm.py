"""Reading a customer's answer to "shall I do this?": yes, no, or not clear.

Nothing is written to an order on a misunderstanding, so the reading is deliberately one-sided:
an answer counts as *yes* only when it holds a yes cue and no cue of refusal, hesitation or doubt.
"да, отменяйте" and "yes go ahead, cancel it" are yes (the verb is the task's own); "no wait don't",
"hmm actually keep it", "等一下" and "не надо" are no; "idk maybe?", "what happens to my payment?" and
"yes but no" are neither, and the question is asked again.

Chinese is read after folding Traditional to Simplified. A negation consumes the word it negates, so
"不可以" and "не надо" never count as the yes inside them ("可以", "надо").
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Any

from conversations.language import to_mandarin


class Answer(StrEnum):
    YES = "yes"
    NO = "no"
    UNCLEAR = "unclear"


# Buttons and the intent classifier speak first when they are sure: the Yes/No buttons send these.
YES_INTENTS = frozenset({"affirm"})
NO_INTENTS = frozenset({"deny", "stop"})
INTENT_CONFIDENCE = 0.9

_EN_NO = (
    r"\bno+\b",
    r"\bnope\b",
    r"\bnah+\b",
    r"\bnot\b",
    r"\bdon'?t\b",
    r"\bdo not\b",
    r"\bdont\b",
    r"\bwait\b",
    r"\bhold (?:on|off)\b",
    r"\bhang on\b",
    r"\bstop\b",
    r"\bnever ?mind\b",
    r"\bnvm\b",
    r"\bforget it\b",
    r"\bkeep it\b",
    r"\bchanged my mind\b",
    r"\bactually\b",
    r"\bwrong\b",
    r"\bcancel that\b",
    r"\bnegative\b",
    r"\bleave it\b",
    r"\bon second thought\b",
    r"\bwithdraw\b",
    r"\babort\b",
)
_EN_DOUBT = (
    r"\bmaybe\b",
    r"\bidk\b",
    r"\bi don'?t know\b",
    r"\bnot sure\b",
    r"\bunsure\b",
    r"\bperhaps\b",
    r"\bhmm+\b",
    r"\?",
    r"\bwhat\b",
    r"\bhow\b",
    r"\bwhy\b",
    r"\bwhich\b",
    r"\bwhere\b",
    r"\bwhen\b",
    r"\bwho\b",
    r"\bbut\b",
    r"\bif\b",
    # a yes on a condition ("yes as long as I'm not charged a fee"): not a clear yes
    r"\bas long as\b",
    r"\bonly if\b",
    r"\bprovided\b",
    r"\bunless\b",
    r"\bassuming\b",
)
_EN_YES = (
    r"\by\b",
    r"\bye[sp]+\b",
    r"\byes+\b",
    r"\byeah?\b",
    r"\byup\b",
    r"\byea\b",
    r"\bya\b",
    r"\bsure\b",
    r"\bok(?:ay)?\b",
    r"\bk\b",
    r"\bcorrect\b",
    r"\bright\b",
    r"\bconfirm(?:ed)?\b",
    r"\bgo ahead\b",
    r"\bdo it\b",
    r"\bgo for it\b",
    r"\bplease do\b",
    r"\babsolutely\b",
    r"\bdefinitely\b",
    r"\bof course\b",
    r"\bsounds good\b",
    r"\bthat'?s right\b",
    r"\bperfect\b",
    r"\bproceed\b",
    r"\bfine\b",
    r"\bagreed?\b",
    r"\baffirmative\b",
    r"\bexactly\b",
    r"\byess?ir\b",
    r"\bplease\b",
    r"\blooks good\b",
    r"\bthat'?s it\b",
    r"\bsend it\b",
)
_RU_NO = (
    r"\bнет\b",
    r"\bне\s+\w+",
    r"\bнельзя\b",
    r"\bстоп\b",
    r"\bпогод\w*",
    r"\bподожд\w*",
    r"\bпередумал\w*",
    r"\bотбой\b",
    r"\bоставь\w*",
    r"\bзабуд\w*",
    r"\bотставить\b",
    r"\bнеправильно\b",
    r"\bневерно\b",
    r"\bошиб\w*",
    r"\bхотя\b",
    r"\bвообще-то\b",
    r"\bсекунд\w*",
)
_RU_DOUBT = (
    r"\bможет\b",
    r"\bнаверное\b",
    r"\bне знаю\b",
    r"\bхз\b",
    r"\bсомнева\w*",
    r"\?",
    r"\bа что\b",
    r"\bкак\b",
    r"\bпочему\b",
    r"\bкуда\b",
    r"\bкогда\b",
    r"\bгде\b",
    r"\bсколько\b",
    r"\bкак\w+",  # какой, какая, каким...
    r"\bли\b",
    r"\bно\b",
    r"\bесли\b",
    r"\bзачем\b",
)
_RU_YES = (
    r"\bда+\b",
    r"\bага\b",
    r"\bугу\b",
    r"\bконечно\b",
    r"\bхорошо\b",
    r"\bок(?:ей)?\b",
    r"\bокей\b",
    r"\bдавай\w*",
    r"\bподтвержда\w*",
    r"\bверно\b",
    r"\bправильно\b",
    r"\bвсё так\b",
    r"\bвсе так\b",
    r"\bсоглас\w*",
    r"\bименно\b",
    r"\bделай\w*",
    r"\bвперед\b",
    r"\bразумеется\b",
    r"\bго\b",
    r"\bпойдет\b",
    r"\bлады\b",
    r"\bладно\b",
    r"\bточно\b",
    r"\bподходит\b",
    r"\bпожалуйста\b",
)
# Chinese (Simplified after folding). Negations first: 不/别/没/甭/勿 + what follows are one unit.
_ZH_NO = (
    r"不(?!错|客气|过)[要用必行对是好了想取改退]?",  # 不过 is "but" (a doubt), not a no
    r"别\S?",
    r"算了",
    # Cantonese: 唔/冇 negate ("唔使喇", "唔好", "冇需要"), 算啦 is 算了; 唔该 is "please", not a no
    r"唔(?!该)\S?",
    r"冇(?!问题)\S?",
    r"算啦",
    r"咪住",
    r"等阵",
    r"等[等一下会]",
    r"先别",
    r"暂时不",
    r"没有?",
    r"甭",
    r"勿",
    r"取消(?:操作|这个)",
    r"错了?",
    r"停",
    r"再想想",
    r"改主意",
    r"还是不",
    r"搞错",
)
_ZH_DOUBT = (
    r"吗",
    r"\?",
    r"？",
    r"呢",
    r"怎么",
    r"为什么",
    r"什么",
    # "会发到哪个邮箱啊" asks where, it does not say yes to the sending it names
    r"哪",
    r"几",
    r"多少",
    r"多久",
    r"啥",
    r"咋",
    r"谁",
    r"也许",
    r"可能",
    r"大概",
    r"不知道",
    r"但是",
    r"不过",
    r"如果",
    r"要是",
)
_ZH_YES = (
    r"是的?",
    r"对的?",
    r"好的?",
    r"好吧",
    r"可以",
    r"行",
    r"嗯+",
    r"确认",
    r"确定",
    r"没问题",
    r"就这样",
    r"同意",
    r"办吧",
    r"提交",
    r"正确",
    r"对头",
    r"麻烦了",
    r"要的?",
    r"需要",
    r"当然",
    r"继续",
    r"去吧",
    r"弄吧",
    r"搞吧",
    r"请",
    r"吧$",
    r"系呀",
    r"系啊",
    r"系",
    r"啱",
    r"得",
    r"唔该",
    r"冇问题",
)


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Said as one unit, these agree although they hold a negation.
_AGREEING = _compile(
    (
        r"\bno problem\b",
        r"\bno worries\b",
        r"\bnot a problem\b",
        r"\bwhy not\b",
        r"\bno doubt\b",
        r"без проблем",
        r"не вопрос",
        r"не против",
        r"没问题",
        r"没错",
        r"不错",
        r"当然可以",
    )
)
# The task's own verb is a yes to that task ("yes, cancel it", "да, отменяйте", "取消吧"): only there.
TASK_VERBS: dict[str, tuple[str, ...]] = {
    "cancel": (r"\bcancel\b", r"\bотмен\w*", r"取消"),
    "address": (r"\bchange\b", r"\bupdate\b", r"\bменя\w+", r"\bизмен\w*", r"\bпомен\w*", r"改"),
    "refund": (r"\brefund\b", r"\bоформ\w*", r"\bвозвра\w*", r"\bвернит\w*", r"退款", r"退吧", r"退钱"),
    "return": (r"\breturn\b", r"\bоформ\w*", r"\bвозвра\w*", r"退货", r"退吧"),
    "reset": (r"\bsend\b", r"\breset\b", r"\bотправ\w*", r"\bсброс\w*", r"\bпришли\w*", r"发", r"重置"),
}
_TASK_VERBS = {task: _compile(words) for task, words in TASK_VERBS.items()}
_EMOJI_YES = ("👍", "✅", "👌", "✔", "🙆", "🆗", "😊", "🙂")
_EMOJI_NO = ("👎", "❌", "✖", "🙅", "⛔", "🚫", "✋")


_NO = {"en": _compile(_EN_NO), "ru": _compile(_RU_NO), "zh": _compile(_ZH_NO)}
_DOUBT = {"en": _compile(_EN_DOUBT), "ru": _compile(_RU_DOUBT), "zh": _compile(_ZH_DOUBT)}
_YES = {"en": _compile(_EN_YES), "ru": _compile(_RU_YES), "zh": _compile(_ZH_YES)}
_HAN = re.compile(r"[\u3400-\u9fff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def normalise(text: str) -> str:
    """Casefolded, NFKC, ё as е, Chinese as Simplified Mandarin (``to_mandarin``: "係 冇錯" is "是 没错"):
    the form every pattern here is written for."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'").replace("ё", "е")
    return to_mandarin(text)


def _scripts(text: str) -> list[str]:
    """Which pattern sets apply: English always (customers mix "ok" into any language)."""
    langs = ["en"]
    if _HAN.search(text):
        langs.append("zh")
    if _CYRILLIC.search(text):
        langs.append("ru")
    return langs


def read(text: str, intent: str | None = None, confidence: float = 0.0, task: str | None = None) -> Answer:
    """The customer's answer to a yes/no question about a write (``task``: a key of ``TASK_VERBS``)."""
    if text.startswith("/"):  # a button payload: the intent is the answer
        if intent in YES_INTENTS:
            return Answer.YES
        return Answer.NO if intent in NO_INTENTS else Answer.UNCLEAR
    yes, no, doubt = _cues(text, task)
    if no:
        return Answer.NO if not yes or not doubt else Answer.UNCLEAR
    if yes and not doubt:
        return Answer.YES
    if not yes and not doubt and confidence >= INTENT_CONFIDENCE:
        if intent in YES_INTENTS:
            return Answer.YES
        if intent in NO_INTENTS:
            return Answer.NO
    return Answer.UNCLEAR


def _cues(text: str, task: str | None) -> tuple[bool, bool, bool]:
    """(a yes cue, a no cue, a doubt) in a typed answer."""
    norm = _AGREEING.sub(" ok ", normalise(text))
    langs = _scripts(norm)
    rest = norm
    for lang in langs:  # a negation and the word it negates are one unit: removed before looking for a yes
        rest = _NO[lang].sub(" ", rest)
    no = rest != norm or any(e in text for e in _EMOJI_NO)
    doubt = any(_DOUBT[lang].search(rest) for lang in langs)
    yes = any(_YES[lang].search(rest) for lang in langs)
    yes = yes or (task in _TASK_VERBS and _TASK_VERBS[task].search(rest) is not None)
    return yes or any(e in text for e in _EMOJI_YES), no, doubt


def conditional_yes(text: str, task: str | None = None) -> bool:
    """A yes on a condition or with a question ("yes as long as there's no fee", "ну да... а деньги
    точно вернутся? если да то отменяйте", "好呀 不過退信用卡要幾耐"): not a yes to act on, and not a no
    or another request either: the question stays open."""
    yes, _, doubt = _cues(text, task)
    return yes and doubt and not text.startswith("/")


def only_yes_or_no(text: str) -> bool:
    """Whether a message says nothing but yes or no ("没问题", "ok!", "нет"): an answer to a yes/no
    question, never the value of a detail asked for (a reason, an address)."""
    norm = _AGREEING.sub(" ok ", normalise(text))
    rest = norm
    for lang in _scripts(norm):
        rest = _YES[lang].sub(" ", _NO[lang].sub(" ", rest))
    return rest != norm and re.search(r"\w", rest) is None


_RETRACT = _compile(
    (
        r"\bnever ?mind\b",
        r"\bnvm\b",
        r"\bforget (?:it|about it)\b",
        r"\bdon'?t (?:change|bother|cancel|refund|return|send)\b",
        r"\bchanged my mind\b",
        r"\bno need\b",
        r"\bleave it\b",
        r"\bkeep it\b",
        r"\bnot anymore\b",
        r"\bscratch that\b",
        r"算了",
        r"不用了",
        r"不要了",
        r"不改了",
        r"不退了",
        r"不取消了",
        r"别改",
        r"别退",
        r"别取消",
        r"先不",
        r"改主意",
        r"\bне надо\b",
        r"\bне нужно\b",
        r"\bзабудьте\b",
        r"\bзабей\w*",
        r"\bпередумал\w*",
        r"\bотбой\b",
        r"\bне меняй\w*",
        r"\bне отменяй\w*",
        r"\bне оформляй\w*",
        r"\bоставьте как есть\b",
    )
)


def retracts(text: str) -> bool:
    """The customer takes the request back ("never mind", "算了", "не надо") instead of answering."""
    return _RETRACT.search(normalise(text)) is not None


# --- a typed answer to the bot's own yes/no buttons -------------------------------------------------
NO_PAYLOAD = "/deny"
# What the NLU makes of a hold-off that would take it out of the form ("hmm wait no … i have to check
# with my roommate first" read as a wish for a person, "哎 先唔好住 我諗下先" as out of scope).
ESCAPING_INTENTS = frozenset({"human_handoff", "out_of_scope", "nlu_fallback", "ask_question", "goodbye", "greet",
                              "thanks", "bot_challenge", None})
NO_PAYLOADS = frozenset({NO_PAYLOAD})
MAX_BUTTON_ANSWER_CHARS = 40
MAX_HOLD_OFF_CHARS = 200
_DETAIL = re.compile(r"\d|@")
# A question in the answer keeps it from being taken for a plain no ("wait, what happens to my payment?").
_QUESTION = _compile((
    r"[?？]", r"\b(?:what|how|why|which|where|when|who)\b", r"吗", r"呢", r"怎么", r"为什么", r"什么", r"哪", r"几",
    r"多少", r"多久", r"啥", r"咋", r"\bкак\w*", r"\bпочему\b", r"\bзачем\b", r"\bкуда\b", r"\bкогда\b", r"\bгде\b",
    r"\bсколько\b", r"\bли\b",
))  # fmt: skip


def _yes_no_buttons(buttons: list[dict[str, Any]] | None) -> list[str] | None:
    payloads = [str(b.get("payload") or "") for b in buttons or [] if isinstance(b, dict)]
    return payloads if len(payloads) == 2 and NO_PAYLOADS & set(payloads) else None


def holds_off(text: str, buttons: list[dict[str, Any]] | None) -> bool:
    """A typed no, hold-off or second thought to the bot's own yes/no buttons that says nothing else:
    "hmm wait no, don't change anything yet, i have to check with my roommate first", "等等 先别改 我问下
    家里人再说", "哎 先唔好住 我諗下先". Only the no counts (the intent classifier reads such words as a
    wish for a person, or as out of scope, and the form would never see them); a no with a detail
    ("no, it's 16 Harbour Road") or a question goes to the bot as typed. The caller also checks that
    the message does not ask for another task ("don't change it, just cancel the order")."""
    if _yes_no_buttons(buttons) is None or not text or len(text) > MAX_HOLD_OFF_CHARS or _DETAIL.search(text):
        return False
    if text.startswith("/") or _QUESTION.search(normalise(text)):
        return False
    return read(text) is Answer.NO


def as_button(text: str, buttons: list[dict[str, Any]] | None) -> str | None:
    """The payload of the "yes" button a typed answer means, when the bot's last message asked a
    yes/no question with two buttons (a confirmation, the offer of a person); None otherwise.

    The intent classifier reads "可以的 麻烦了🙏" or "发吧" as anything (out of scope, goodbye) and the
    form never sees the yes; this reader is the one the confirmation step uses. Only a short, clear
    yes without details counts: a no may carry a correction ("no, it's 16 Harbour Road") that the
    form must read, so it always goes to the bot as typed.
    """
    payloads = _yes_no_buttons(buttons)
    if payloads is None or not text or len(text) > MAX_BUTTON_ANSWER_CHARS:
        return None
    yes = next(p for p in payloads if p not in NO_PAYLOADS)
    if not yes.startswith("/") or _DETAIL.search(text) or read(text) is not Answer.YES:
        return None
    return yes
