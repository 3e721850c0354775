"""A small multilingual frustration scorer (English, Chinese, Russian).

Why a lexicon and not a model: it runs on every customer message inside the gateway's turn, must
cost microseconds, must be readable by the support team who tunes it, and the classes of signal are
few and stable (insults, "this is useless", anger words, shouting, repeated punctuation).
Its precision and recall on a labelled set are in ``bench/RESULTS.md`` (``## Handoff (frustration
detector)``; ``python -m bench.handoff.frustration_measure``).

The score adds up signals: a strong one (an insult, "useless", "waste of time") counts 1.0, a mild
one (an anger word, SHOUTING, "!!!") 0.5. The policy offers a person at 1.0, or when two messages in
a row score at least 0.5 (``handoff.policy``).

Chinese is matched in Simplified characters: Traditional input (Taiwan, Hong Kong) is converted with
OpenCC first (``simplified``), so one word list serves both scripts; words that only Taiwan or Hong
Kong customers use (Cantonese 冇用, 激死, 好嬲; Taiwanese 很扯, 靠北) are in the lists, in Simplified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from conversations.language import to_mandarin

__all__ = ["FrustrationScore", "score", "simplified"]

STRONG = 1.0
MILD = 0.5

# Latin and Cyrillic patterns are matched on lower-cased text with word boundaries at the start
# (Russian stems: "бесполезн" matches бесполезно/бесполезный); Chinese ones as substrings.
_STRONG_EN = [
    r"stupid",
    r"idiot\w*",
    r"dumb",
    r"moron\w*",
    r"useless",
    r"pointless",
    r"worthless",
    r"garbage",
    r"trash",
    r"rubbish",
    r"crap\w*",
    r"shit\w*",
    r"bullshit",
    r"f+u+c+k\w*",
    r"f\*+k\w*",
    r"wtf",
    r"damn\w*",
    r"pathetic",
    r"joke of a",
    r"waste of (?:my )?time",
    r"(?:not|isn'?t|wasn'?t|no) (?:any )?help(?:ful)?(?: at all)?",
    r"doesn'?t help",
    r"you(?:'re| are) not helping",
    r"ridiculous",
    r"unacceptable",
    r"absurd",
    r"fed up",
    r"sick (?:and tired )?of",
    r"had enough",
    r"worst",
    r"terrible",
    r"horrible",
    r"awful",
    r"disgusting",
    r"incompetent",
    r"hopeless",
    r"are you (?:kidding|serious|deaf|even listening)",
    r"how many times",
    r"(?:for )?the (?:third|fourth|fifth|\d+(?:rd|th)) time",
    r"i already (?:told|said|gave)",
    r"shut up",
    r"screw (?:you|this)",
    r"scam\w*",
    r"nonsense",
    r"piss\w*",
    r"sucks?",
    r"hate (?:this|you)",
]
_MILD_EN = [
    r"annoy\w*",
    r"frustrat\w*",
    r"angry",
    r"mad at",
    r"upset",
    r"furious",
    r"irritat\w*",
    r"disappoint\w*",
    r"still (?:not|haven'?t|hasn'?t|no|waiting|nothing)",
    r"again\?",
    r"seriously",
    r"come on",
    r"ugh+",
    r"why (?:is|does|can'?t|won'?t) (?:it|this|nobody|no one)",
    r"nobody (?:answers|helps|cares)",
    r"(?:what|which) part of",
    r"ages",
    r"forever",
    r"unbelievable",
    r"outrageous",
    r"no one cares",
]
_STRONG_RU = [
    r"туп\w*",
    r"идиот\w*",
    r"дебил\w*",
    r"кретин\w*",
    r"дура\w*",
    r"дурацк\w*",
    r"бесполезн\w*",
    r"бестолков\w*",
    r"никчёмн\w*",
    r"никчемн\w*",
    r"хрен\w*",
    r"херн\w*",
    r"хуйн\w*",
    r"бля\w*",
    r"говн\w*",
    r"дерьм\w*",
    r"отстой\w*",
    r"ужасн\w*",
    r"кошмар\w*",
    r"безобрази\w*",
    r"издевательств\w*",
    r"издеваетесь",
    r"сколько можно",
    r"сколько раз",
    r"в который раз",
    r"надоел\w*",
    r"достал\w*",
    r"задолбал\w*",
    r"бред\w*",
    r"мошенни\w*",
    r"обман\w*",
    r"пустая трата времени",
    r"трат\w* (?:моё |мое )?время",
    r"не помога\w*",
    r"ничем не помог\w*",
    r"вы (?:что|там) (?:издеваетесь|совсем)",
    r"заткн\w*",
    r"позорищ\w*",
    r"позор\w*",
    r"отвратительн\w*",
    r"возмутительн\w*",
    r"недопустим\w*",
    r"худш\w*",
    r"невыносим\w*",
    r"я уже (?:писал|писала|говорил|говорила|сказал|сказала|давал|давала)",
]
_MILD_RU = [
    r"раздража\w*",
    r"зл\w*сь",
    r"злой",
    r"зла",
    r"бесит",
    r"беси\w*",
    r"разочарован\w*",
    r"до сих пор",
    r"опять",
    r"снова не",
    r"всё ещё не",
    r"все еще не",
    r"да ладно",
    r"серьёзно\?",
    r"серьезно\?",
    r"почему (?:никто|ничего|вы не)",
    r"никто не (?:отвеча|помога)",
    r"сколько ждать",
    r"вечность",
    r"невероятн\w*",
    r"возмущ\w*",
    r"недовол\w*",
]
_STRONG_ZH = [
    "傻",
    "白痴",
    "笨蛋",
    "蠢",
    "弱智",
    "脑残",
    "废物",
    "垃圾",
    "没用",
    "无用",
    "有什么用",
    "什么破",
    "破机器人",
    "智障",
    "妈的",
    "他妈",
    "操你",
    "滚蛋",
    "滚开",
    "坑人",
    "骗子",
    "骗人",
    "浪费时间",
    "浪费我的时间",
    "太差",
    "差劲",
    "烂",
    "受够了",
    "气死",
    "不可理喻",
    "离谱",
    "无语",
    "搞什么",
    "什么玩意",
    "说了多少遍",
    "说了几遍",
    "第三次",
    "多少次了",
    "我已经说过",
    "我都说了",
    "听不懂人话",
    "有病",
    "坑爹",
    "恶心",
    "忍无可忍",
    "太过分",
    "不像话",
    "答非所问",
    "一点用都没有",
    "根本没用",
    # Hong Kong (Cantonese) and Taiwan wording, in Simplified characters
    "冇用",
    "废柴",
    "搞乜",
    "搞咩",
    "有冇搞错",
    "有没有搞错",
    "激死",
    "离晒谱",
    "好扯",
    "很扯",
    "太扯",
    "靠北",
    "靠杯",
    "夭寿",
]
_MILD_ZH = [
    "生气",
    "好烦",
    "烦死",
    "很烦",
    "烦人",
    "郁闷",
    "失望",
    "着急",
    "急死",
    "到底",
    "怎么还",
    "还没",
    "还是没",
    "又是",
    "为什么没人",
    "没人管",
    "等了很久",
    "等了半天",
    "太慢",
    "无奈",
    "崩溃",
    "怎么回事",
    "搞笑",
    "什么情况",
    "嬲",
    "仲未",
    "仲系冇",
    "等咗好耐",
    "等好耐",
    "点解仲",
    "做咩仲",
]


def _compile(patterns: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)


_STRONG_LATIN = _compile(_STRONG_EN + _STRONG_RU)
_MILD_LATIN = _compile(_MILD_EN + _MILD_RU)
_REPEATED_PUNCT = re.compile(r"[!?！？]{2,}|[!！][?？]|[?？][!！]")
_LETTER = re.compile(r"[A-Za-zА-Яа-яЁё]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def simplified(text: str) -> str:
    """``text`` with Traditional Chinese characters as Simplified (the script the word lists of the
    frustration scorer and of the handoff rules are written in), written Cantonese in Mandarin
    words ("有冇人喺度" is "有没有人在"); other text unchanged."""
    return to_mandarin(text) if _HAN.search(text) else text


@dataclass(frozen=True)
class FrustrationScore:
    value: float
    signals: list[str] = field(default_factory=list)

    @property
    def frustrated(self) -> bool:
        return self.value >= STRONG


def _shouting(text: str) -> bool:
    """Mostly capitals over at least 8 Latin/Cyrillic letters ("WHERE IS MY ORDER")."""
    letters = _LETTER.findall(text)
    if len(letters) < 8:
        return False
    upper = sum(1 for c in letters if c.isupper())
    return upper / len(letters) >= 0.7


def _phrase(text: str, lowered: str, latin: re.Pattern[str], zh: list[str]) -> str | None:
    """The first phrase of a level found: a Latin/Cyrillic one (in ``lowered``), else a Chinese one."""
    found = latin.search(lowered)
    if found:
        return found.group(0)
    return next((w for w in zh if w in text), None)


def score(text: str) -> FrustrationScore:
    """Score one message. Pure and fast: a few compiled regexes and substring checks."""
    if not text:
        return FrustrationScore(0.0)
    signals: list[str] = []
    value = 0.0
    text = simplified(text)
    lowered = text.lower()
    for level, weight, latin, zh in (("strong", STRONG, _STRONG_LATIN, _STRONG_ZH), ("mild", MILD, _MILD_LATIN, _MILD_ZH)):
        phrase = _phrase(text, lowered, latin, zh)
        if phrase:
            signals.append(f"{level}:{phrase}")
            value += weight
    if _shouting(text):
        signals.append("shouting")
        value += MILD
    if _REPEATED_PUNCT.search(text):
        signals.append("punctuation")
        value += MILD
    return FrustrationScore(value, signals)
