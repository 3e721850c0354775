"""A new delivery address out of what the customer typed, whole, in their own script.

Customers wrap the address in words ("oh wait sorry, it's 57 Water St, Brooklyn, NY 11201", "新地址：
台北市信義區信義路五段7號 郵遞區號110", "доставьте на ул. Ленина, д. 5, кв. 12, Казань 420111"). The
entity extractor cuts such an address into pieces (a Traditional-Chinese address lost its street), so
at the address step the address is the message minus its lead-in, and it must look like an address
of its region: a house number or postcode and a street or place word (Chinese addresses have no
commas: 省/市/区/路/号 mark their parts).
"""

from __future__ import annotations

import re
import unicodedata

from store import policies

_LEAD_IN = re.compile(
    r"^(?:"
    r"(?:oh|ok|okay|so|um+|uh+|hi|hey|hello|thanks|thank you|sorry|oops|whoops|my bad|my mistake|typo|yes|yeah|no|"
    r"wait|actually|please|pls|plz)\b[\s,.!:-]*"
    r"|(?:(?:my|the)\s+)?(?:new\s+|correct\s+|right\s+)?(?:delivery\s+|shipping\s+)?address(?:\s+is)?\b[\s:：-]*"
    r"|(?:it'?s|it is|its|that'?s|should be|make it|change it to|change to|update it to|send it to|ship it to|"
    r"deliver it to|send to|ship to|deliver to|to)\b[\s:：-]*"
    r"|(?:новый\s+|правильный\s+)?адрес(?:\s+доставки)?(?:\s+такой)?\s*[:：-]?\s*"
    r"|(?:да|нет|ой|извините|простите|вот|пожалуйста|это)\b[\s,.!:-]*"
    r"|(?:доставьте|отправьте|пришлите|поменяйте|смените|измените|перенаправьте)(?:\s+(?:его|заказ|посылку))?\s+на\b\s*"
    r"|на\s+адрес\b\s*[:：-]?\s*"
    r")",
    re.IGNORECASE,
)
_ZH_LEAD_IN = re.compile(
    r"^.*?(?:新的?收货地址|新的?收件地址|新的?地址|收货地址|地址|改成|改为|改到|换成|寄到|送到|发到|寄往|送往|"
    r"應該是|应该是|正確的是|正确的是|更正為|更正为|改為|換成|寄往|送到|應該係|应该系|改做|寄去|送去)"
    r"(?:是|为|為)?[\s:：,，]*"
)
# Words of a correction in front of a Chinese address ("不对不对 打错了 北京市…"), in both scripts.
_ZH_FILLER = re.compile(
    r"^(?:不对|不對|不是|打错了|打錯了|写错了|寫錯了|错了|錯了|抱歉|不好意思|对不起|對不起|哦|噢|喔|等等|等一下|"
    r"唔好意思|唔係|打錯咗|打错咗|打錯|打错|寫錯咗|係|"
    r"sorry|oops|更正|改一下|是)+[\s,，。.!！:：]*",
    re.IGNORECASE,
)
_ZH_PARTS = re.compile(r"[省市区縣县镇鎮乡鄉村路街道巷弄号號楼樓室栋棟段里]")
_HAN = re.compile(r"[\u3400-\u9fff]")
_DIGIT = re.compile(r"\d")
# Sentence ends: "!?;" and a full stop after a word of four or more letters ("number. it's"), not
# after an abbreviation ("ул.", "д.", "St.", "Ave.").
_SENTENCE = re.compile(r"(?<=[!?。！？;；])\s*|(?<=[^\W\d_]{4}\.)\s+")
_LATIN_STREET = re.compile(
    r"\b(?:st|street|ave|avenue|rd|road|blvd|lane|ln|dr|drive|way|ct|court|pl|place|apt|suite|unit|floor|"
    r"hwy|pkwy|terrace|sq|square|row|close|crescent|po box|[a-z]{3,})\b",
    re.IGNORECASE,
)
_RU_STREET = re.compile(
    r"(?:ул\.?|улица|пр-?т|проспект|пер\.?|переулок|д\.|дом|кв\.?|шоссе|бульвар|наб|пл\.|г\.|[а-я]{3,})", re.IGNORECASE
)


# What a customer says right before the corrected address ("ой, дом не 15, правильно так: г. Казань…",
# "no not 14, it's actually 16 Harbour Road…"): the address is what follows the last such words.
_CORRECTED = re.compile(
    r"(?:правильно(?:\s+так)?|верно(?:\s+так)?|должно быть|на самом деле|вот так|вот правильный|"
    r"should be|it'?s actually|actually it'?s|the right one is|correct one is|correct address is|i meant|it'?s)"
    r"\s*[:：—-]?\s+",
    re.IGNORECASE,
)


def _after_correction(text: str) -> str:
    cuts = [m.end() for m in _CORRECTED.finditer(text)]
    for cut in reversed(cuts):
        if looks_like_address(_strip_lead_in(text[cut:])):
            return text[cut:]
    return text


# A whole request in one message ("change the shipping address on order 5527443949 (acct a@b.co) to 221
# Baker Street…", "смените адрес заказа 1234567890 на ул. Ленина, д. 5…"): the address is what follows
# the last "to"/"на"/":" after which no order number or email comes.
_REQUEST_DETAIL = re.compile(r"(?<!\d)\d{10}(?!\d)|\S+@\S+")
_TRAILING = re.compile(
    r"[\s,.;(]*(?:(?:and|my|the|email|e-mail|acct|account|order|username|is|thanks|thx|ty|pls|please|"
    r"почта|мыло|email|логин|заказ|спасибо)\b[\s,.;:(]*)*$",
    re.IGNORECASE,
)
_ADDRESS_AFTER = re.compile(r"\b(?:to|into|на)\b\s*[:：]?\s*|[:：]\s*|->\s*|→\s*", re.IGNORECASE)


def _after_request(text: str) -> str:
    if not _REQUEST_DETAIL.search(text):
        return text
    for m in reversed(list(_ADDRESS_AFTER.finditer(text))):
        rest = text[m.end() :]
        detail = _REQUEST_DETAIL.search(rest)
        if detail:  # "… to 12 Main St, Springfield, IL 62701 thanks a@b.co": the address ends before it
            rest = _TRAILING.sub("", rest[: detail.start()])
        if rest and looks_like_address(_strip_lead_in(rest)):
            return rest
    return text


def _strip_lead_in(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _LEAD_IN.sub("", text).strip(" ,.;:-—")
    return text


# A phone number ("(415) 555-0134", "+7 916 123-45-67", "9123 4567"): digits, but no house number or postcode.
_PHONE = re.compile(r"(?<![\w-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)|\d{2,5})(?:[\s.-]\d{2,4}){1,3}(?![\w-])")


def looks_like_address(text: str) -> bool:
    """A house number/postcode and a street or place word, by script."""
    if not policies.check_address(text).allowed:
        return False
    if _HAN.search(text):
        return len(_ZH_PARTS.findall(text)) >= 2 and (_DIGIT.search(text) is not None or len(text) >= 8)
    if _DIGIT.search(_PHONE.sub(" ", text)) is None:
        return False
    return (_RU_STREET.search(text) or _LATIN_STREET.search(text)) is not None


def extract(text: str) -> str | None:
    """The address in ``text``, or None when no part of it looks like one."""
    text = unicodedata.normalize("NFC", text or "").strip()
    if not text:
        return None
    if _HAN.search(text):
        candidate = text
        for _ in range(3):  # "收货地址改成…": each lead-in in turn
            candidate = _ZH_LEAD_IN.sub("", candidate, count=1).strip(" ,，。:：") or candidate
        for _ in range(4):  # "不对不对 打错了 …"
            candidate = _ZH_FILLER.sub("", candidate, count=1).strip(" ,，。:：") or candidate
        return candidate if looks_like_address(candidate) else None
    # The address starts in the first sentence with a digit in it.
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    with_digits = [i for i, s in enumerate(sentences) if _DIGIT.search(s)]
    if not with_digits:
        return None
    candidate = _strip_lead_in(_after_request(_after_correction(" ".join(sentences[with_digits[0] :]).strip())))
    return candidate if looks_like_address(candidate) else None
