"""Which language a customer writes in, and Traditional/Simplified Chinese conversion.

The script decides most cases (Han → Chinese, Cyrillic → Russian). Latin text switches the
conversation to English only when it reads as English prose: a Chinese customer who types
"ok", an email address or an order number must keep getting Chinese answers. Traditional input
is converted to Simplified for the NLU and the answers are converted back.

Order numbers are typed as customers please: "5120-648-393", "512 064 8393", full-width
"５１２０６４８３９３". ``normalise_ids`` folds them to the ten plain digits the NLU and the store know,
in the text the bot reads only (the transcript keeps what the customer typed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import opencc
from lingua import Language, LanguageDetector, LanguageDetectorBuilder

Lang = Literal["en", "zh", "ru"]
Script = Literal["hans", "hant"]
SUPPORTED: tuple[Lang, ...] = ("en", "zh", "ru")

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_IDENTIFIERS = re.compile(r"\S+@\S+|https?://\S+|\d+")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# Full-width digits (U+FF10-FF19) → ASCII; a run of digits split by single spaces, dashes, dots or
# slashes that holds exactly ORDER_ID_DIGITS digits → those digits. Other lengths (phone numbers,
# dates, amounts) are left alone.
ORDER_ID_DIGITS = 10
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_SPLIT_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?:[ \-./\u2010-\u2015][0-9]+)+(?![0-9A-Za-z])")
# Latin text shorter than this many words is too little evidence to switch languages.
MIN_LATIN_WORDS = 2
ENGLISH_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Detected:
    language: Lang
    script: Script | None  # only for Chinese


@lru_cache(maxsize=1)
def _latin_detector() -> LanguageDetector:
    # English against its closest neighbours, so that "merci beaucoup" isn't taken for English.
    return LanguageDetectorBuilder.from_languages(
        Language.ENGLISH, Language.FRENCH, Language.GERMAN, Language.SPANISH, Language.ITALIAN, Language.PORTUGUESE
    ).build()


@lru_cache(maxsize=2)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def warm_up() -> None:
    """Load lingua's models and OpenCC's tables before the first customer waits for them."""
    _latin_detector().compute_language_confidence("where is my order", Language.ENGLISH)
    to_simplified("訂單")


def normalise_ids(text: str) -> str:
    """Full-width digits to ASCII, and a ten-digit order number typed in groups joined."""
    text = text.translate(_FULLWIDTH_DIGITS)

    def join(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return digits if len(digits) == ORDER_ID_DIGITS else match.group(0)

    return _SPLIT_NUMBER.sub(join, text)


# A greeting or thanks in front of a request ("thanks. I'd like to speak with someone about my
# refund", "hi its 5120648393 wheres my order", "спасибо, а можно ещё ...", "你好，我要退货") hides
# the request from the intent classifier, which reads the whole message as "thanks"/"greet".
_PLEASANTRY = re.compile(
    r"^\s*(?:(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|thanks?(?: you)?|thx|ty|cheers|"
    r"привет|здравствуйте|добрый (?:день|вечер)|доброе утро|спасибо|благодарю)(?![\w'])"
    r"|(?:你好|您好|嗨|哈喽|谢谢(?:你|您)?|謝謝(?:你|您)?|多谢|多謝))"
    r"(?:\s*(?:there|again|so much|a lot|большое)(?![\w']))?[\s,.!;:~。，！、]*",
    re.IGNORECASE,
)
MIN_REQUEST_CHARS = 6
MIN_REQUEST_HAN = 3


def strip_pleasantry(text: str) -> str:
    """The request behind a leading greeting or thanks; the text unchanged when nothing substantial
    follows (a plain "thanks!" stays thanks)."""
    rest = text
    while (match := _PLEASANTRY.match(rest)) is not None and match.end() > 0:
        rest = rest[match.end():]
    rest = rest.strip()
    long_enough = len(rest) >= MIN_REQUEST_CHARS or len(_HAN.findall(rest)) >= MIN_REQUEST_HAN
    return rest if rest != text and long_enough else text


def to_simplified(text: str) -> str:
    return _converter("t2s").convert(text)


# Written Cantonese (Hong Kong customers type it: "條褲拉鏈壞咗 我想退錢", "係 冇錯", "有冇人喺度")
# in Mandarin words, after conversion to Simplified: what the intent classifier, the yes/no reader
# and the handoff rules are trained and written on. Only characters and words that are Cantonese
# and not Mandarin are replaced; 系 becomes 是 only as a Cantonese copula (not in 关系, 系统).
_CANTONESE_WORDS = (
    ("唔该", "谢谢"), ("唔系", "不是"), ("系咪", "是不是"), ("系唔系", "是不是"), ("有冇", "有没有"),
    ("佢哋", "他们"), ("我哋", "我们"), ("你哋", "你们"), ("乜嘢", "什么"), ("咩嘢", "什么"),
    ("点解", "为什么"), ("点样", "怎么样"), ("点算", "怎么办"), ("边度", "哪里"), ("边个", "谁"),
    ("而家", "现在"), ("啱啱", "刚刚"), ("质素", "质量"), ("喺度", "在"), ("睇下", "看看"),
)
_CANTONESE_CHARS = str.maketrans({
    "咗": "了", "冇": "没", "嘅": "的", "啲": "些", "佢": "他", "唔": "不", "喺": "在", "畀": "给",
    "俾": "给", "睇": "看", "搵": "找", "揾": "找", "咩": "什么", "乜": "什么", "嚟": "来", "攞": "拿",
    "啱": "对", "嘢": "东西", "褛": "外套", "咁": "这么",
})
_CANTONESE_COPULA = re.compile(r"(?:(?<=^)|(?<=[\s，,。.!！?？~、:：就都即仲真应该唔]))系(?![统列数])")


def to_mandarin(text: str) -> str:
    """Chinese as the bot reads it: Simplified, and written Cantonese in Mandarin words."""
    text = to_simplified(text)
    if not _HAN.search(text):
        return text
    for cantonese, mandarin in _CANTONESE_WORDS:
        text = text.replace(cantonese, mandarin)
    return _CANTONESE_COPULA.sub("是", text).translate(_CANTONESE_CHARS)


def to_traditional(text: str) -> str:
    """Traditional Chinese as Taiwan and Hong Kong write it (OpenCC s2tw: 為, 核對, 裡), not OpenCC's
    own standard forms (爲, 覈對, 裏) that no customer types."""
    return _converter("s2tw").convert(text)


def chinese_script(text: str) -> Script:
    """Traditional when converting to Simplified changes the text."""
    return "hant" if to_simplified(text) != text else "hans"


def detect(text: str, previous: Detected | None = None) -> Detected:
    """The language of ``text``; ``previous`` (the conversation's) wins when the text is ambiguous."""
    keep = previous or Detected("en", None)
    han = len(_HAN.findall(text))
    cyrillic = len(_CYRILLIC.findall(text))
    if han or cyrillic:
        if han >= cyrillic:
            script = chinese_script(text)
            if script == "hans" and previous and previous.language == "zh" and previous.script == "hant":
                script = "hant"  # most Chinese characters are the same in both scripts
            return Detected("zh", script)
        return Detected("ru", None)
    words = _LATIN_WORD.findall(_IDENTIFIERS.sub(" ", text))
    if len(words) < MIN_LATIN_WORDS:
        return keep
    confidence = _latin_detector().compute_language_confidence(" ".join(words), Language.ENGLISH)
    return Detected("en", None) if confidence >= ENGLISH_CONFIDENCE else keep
