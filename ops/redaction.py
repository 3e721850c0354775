"""Personal data redaction for everything ops writes out: training data, exports, KB drafts.

Patterns find emails, phone numbers, card numbers (Luhn-checked), street addresses and order ids in
English, Chinese and Russian text; ``ops.names`` finds person names in Latin script (spaCy's English
NER, census name lists), Chinese, Simplified and Traditional (surnames, jieba's dictionary, cues) and
Russian (natasha's NER, pymorphy3's name dictionary). Precision and recall per type and language are
measured on ``bench/redaction/`` (``python -m bench.redaction``; figures in bench/RESULTS.md "PII
redaction"). Names are masked when in doubt: a brand that looks like a name costs less than a leak.

Two styles:
- ``mask``: ``[EMAIL]``, ``[PHONE]``... for exports and anything a person reads;
- ``surrogate``: a fake value of the same shape (digits replaced deterministically, ``user…@example.com``,
  a fixed sample address or name per language), for training data, so an annotated entity such as
  ``[1234567890](order_id)`` still teaches the NLU what an order id looks like.

Why regexes for most types: emails, phones, cards and order ids are formats, not meanings, and a
pattern is auditable; only names need models and dictionaries.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ops.names import PersonNames

PII_TYPES = ("email", "phone", "card", "address", "order_id", "person")
Style = Literal["mask", "surrogate"]

# Higher wins when two detectors claim overlapping text (an email's digits are not a phone).
_PRIORITY = {"email": 6, "card": 5, "order_id": 4, "phone": 3, "address": 2, "person": 1}

_A = r"(?<![A-Za-z0-9])"  # ASCII-only boundaries: "电话13812345678" has no \b before the digits
_Z = r"(?![A-Za-z0-9])"
_D0 = r"(?<![0-9])"
_D1 = r"(?![0-9])"

EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}" + _Z)
CARD = re.compile(r"(?<![0-9+])(?<!\+ )\d(?:[ -]?\d){12,18}" + _D1)  # "+86 138…" is a phone
ORDER_ID = re.compile(_D0 + r"\d{10}" + _D1)
_SEP = r"[ .-]?"
PHONE_PATTERNS = [
    # +1 555 123 4567, +44 20 7946 0958, +86 138 1234 5678, +7 (912) 345-67-89
    re.compile(r"(?<![A-Za-z0-9+])\+\d{1,3}" + _SEP + r"(?:\(\d{1,4}\)|\d{1,4})(?:" + _SEP + r"\d{2,4}){2,4}" + _D1),
    # (555) 123-4567, (010) 1234 5678
    re.compile(r"\(\d{2,4}\)" + _SEP + r"\d{3,4}[ .-]?\d{3,4}" + _D1),
    # 555-123-4567, 555.123.4567, 555 123 4567
    re.compile(_A + r"\d{3}[ .-]\d{3}[ .-]\d{4}" + _D1),
    # Chinese mobiles: 13812345678, 138 1234 5678, 138-1234-5678
    re.compile(_D0 + r"1[3-9]\d[ -]?\d{4}[ -]?\d{4}" + _D1),
    # Taiwan mobiles written in groups: 0988-123-456, 0912 345 678 (ten bare digits stay an order id)
    re.compile(_D0 + r"09\d{2}(?:[ -]\d{3}[ -]?|[ -]?\d{3}[ -])\d{3}" + _D1),
    # Chinese landlines: 010-12345678, 0755-1234567
    re.compile(_D0 + r"0\d{2,3}-\d{7,8}" + _D1),
    # Russian numbers: 89123456789, 8 912 345 67 89, 8 (495) 123-45-67, 8 800 555 35 35
    re.compile(_D0 + r"[78][ -]?\(?\d{3}\)?[ -]?\d{3}[ -]?\d{2}[ -]?\d{2}" + _D1),
]
# Digits that are a phone number only when the words before say so ("call me at 2079460958").
PHONE_CUED = re.compile(_D0 + r"\d{2,4}(?:[ .-]?\d{2,4}){1,4}" + _D1)
PHONE_CUE = re.compile(
    r"(?i:phone|call|tel\b|telephone|mobile|cell|whatsapp|text me|sms|电话|手机|手機|电話|電話|联系方式|聯繫方式|聯絡方式|致电|致電|打给|打給|号码|號碼|"
    r"телефон|тел\.|позвоните|звоните|перезвоните|мобильн|сотов|номер\s+телефона)"
)
ORDER_CUE = re.compile(r"(?i:order|订单号码|訂單號碼|订单|訂單|单号|單號|заказ)")  # 订单号码: 号码 alone is a phone cue

_EN_STREET = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|"
    r"circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|loop|row|crescent|close)"
    r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
)
ADDRESS_PATTERNS = [
    # 42 Elm Street, Apt 3B, Springfield, IL 62704
    re.compile(
        r"(?i)" + _A + r"\d{1,6}[A-Za-z]?\s+(?:[A-Za-z0-9'.-]+\s+){1,4}?" + _EN_STREET + r"\.?" + _Z
        + r"(?:,?\s*(?:apt|apartment|suite|ste|unit|#|flat|floor|fl)\.?\s*#?[A-Za-z0-9-]+)?"
        + r"(?:,\s*[A-Za-z][A-Za-z.'-]*(?:\s[A-Z][A-Za-z.'-]*){0,2}(?:,?\s*[A-Z]{2})?(?:,?\s*\d{5}(?:-\d{4})?)?" + _Z + r")?"
    ),
    # PO Box 1234
    re.compile(r"(?i)" + _A + r"p\.?\s?o\.?\s+box\s+\d{1,6}" + _Z),
    # 北京市朝阳区建国路88号3号楼502室, 广州天河路123号
    re.compile(
        r"(?:[\u4e00-\u9fff]{2,6}(?:省|自治区))?(?:[\u4e00-\u9fff]{2,6}市)?(?:[\u4e00-\u9fff]{1,6}(?:区|區|县|縣|镇|鎮))?"
        r"[\u4e00-\u9fff0-9]{1,10}(?:路|街|大道|大街|道|巷|弄|胡同)(?:[一二三四五六七八九十0-9]+段)?[0-9一二三四五六七八九十]+(?:号|號)"
        r"(?:[0-9A-Za-z一二三四五六七八九十\-]{0,8}(?:号楼|號樓|栋|棟|幢|座|单元|單元|楼|樓|层|層|室|房))*"
    ),
    # г. Москва, ул. Ленина, д. 5, кв. 12 ; Невский проспект, дом 10
    re.compile(
        r"(?:(?:г\.|город)\s*[А-ЯЁ][А-ЯЁа-яё-]+,?\s*)?"
        r"(?:(?:ул\.|улица|пр-т|просп\.|проспект|пер\.|переулок|б-р|бульвар|ш\.|шоссе|наб\.|набережная|пл\.|площадь)\s*"
        r"[А-ЯЁа-яё0-9][А-ЯЁа-яё0-9 .-]{1,30}?|[А-ЯЁ][А-ЯЁа-яё-]+\s+(?:улица|проспект|переулок|бульвар|шоссе|набережная))"
        r",?\s*(?:д\.|дом)\s*\d+[А-Яа-яA-Za-z]?(?:/\d+)?"
        r"(?:,?\s*(?:к\.|корп\.?|корпус|стр\.|строение)\s*\d+)?(?:,?\s*(?:кв\.|квартира|офис|оф\.)\s*\d+)?"
    ),
]
_ZH_ADDRESS_CUE = re.compile(r"地址[是为為:：]?|住在|住址[是为:：]?|寄到|送到|改到|改成|发到|發到|寄往|送往|寄去|搬到|在|到")

@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str
    text: str


@dataclass(frozen=True)
class Redaction:
    """The redacted text and, for every replaced span, where it was and where its stand-in is."""

    original: str
    text: str
    spans: list[Span]  # offsets in ``original``
    new_spans: list[tuple[int, int]] = field(default_factory=list)  # offsets in ``text``, same order

    @property
    def types(self) -> list[str]:
        return sorted({s.type for s in self.spans})

    def map_span(self, start: int, end: int) -> tuple[int, int]:
        """Where an (start, end) range of the original text lies in the redacted text. A range that
        touches a replaced span grows to cover that span's whole stand-in."""
        return self._map(start, end)

    def _map(self, start: int, end: int) -> tuple[int, int]:
        shift = 0
        new_start: int | None = None
        new_end: int | None = None
        for span, (ns, ne) in zip(self.spans, self.new_spans, strict=True):
            if new_start is None:
                if start < span.start:
                    new_start = start + shift
                elif start < span.end:
                    new_start = ns
            if new_end is None:
                if end <= span.start:
                    new_end = end + shift
                elif end <= span.end:
                    new_end = ne
            shift = ne - span.end
        if new_start is None:
            new_start = start + shift
        if new_end is None:
            new_end = end + shift
        return new_start, max(new_start, new_end)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Redactor:
    """Finds and replaces personal data. Thread-safe; the name models (spaCy, jieba, natasha) load
    on first use of names (about 3 s). ``names=False`` finds names only after cue phrases."""

    CACHE_SIZE = 256  # the inbox redacts each message twice (surrogates, then masks)

    def __init__(self, names: bool = True) -> None:
        self.names = names
        self.people = PersonNames(models=names)
        self._cache: OrderedDict[str, tuple[Span, ...]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- finding ---------------------------------------------------------------------------------
    def find(self, text: str, language: str | None = None) -> list[Span]:
        """Non-overlapping PII spans, in text order. ``language`` is a hint only: every pattern runs
        on every text, since customers mix scripts ("我的邮箱是 a@b.com")."""
        with self._cache_lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return list(self._cache[text])
        candidates = [
            *self._emails(text), *self._cards(text), *self._order_ids(text), *self._phones(text),
            *self._addresses(text), *self._people(text),
        ]  # fmt: skip
        spans = _resolve(candidates)
        with self._cache_lock:
            self._cache[text] = tuple(spans)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return spans

    def _emails(self, text: str) -> Iterable[Span]:
        for m in EMAIL.finditer(text):
            yield Span(m.start(), m.end(), "email", m.group())

    def _cards(self, text: str) -> Iterable[Span]:
        for m in CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_ok(digits) and not _looks_like_two_numbers(m.group()):
                yield Span(m.start(), m.end(), "card", m.group())

    def _order_ids(self, text: str) -> Iterable[Span]:
        for m in ORDER_ID.finditer(text):
            if _phone_cued(text, m.start()) and not _order_cued(text, m.start()):
                yield Span(m.start(), m.end(), "phone", m.group())
            else:
                yield Span(m.start(), m.end(), "order_id", m.group())

    def _phones(self, text: str) -> Iterable[Span]:
        for pattern in PHONE_PATTERNS:
            for m in pattern.finditer(text):
                digits = re.sub(r"\D", "", m.group())
                if 7 <= len(digits) <= 15:
                    yield Span(m.start(), m.end(), "phone", m.group())
        for m in PHONE_CUED.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 7 <= len(digits) <= 15 and _phone_cued(text, m.start()) and not _order_cued(text, m.start()):
                yield Span(m.start(), m.end(), "phone", m.group())

    def _addresses(self, text: str) -> Iterable[Span]:
        for pattern in ADDRESS_PATTERNS:
            for m in pattern.finditer(text):
                s, e = m.start(), m.end()
                cues = list(_ZH_ADDRESS_CUE.finditer(text, s, e))
                if cues:  # "地址是北京市…": the pattern's city part swallowed the words before it
                    s = cues[-1].end()
                chunk = text[s:e].rstrip(" ,.")
                if chunk:
                    yield Span(s, s + len(chunk), "address", chunk)

    def _people(self, text: str) -> Iterable[Span]:
        for start, end in self.people.find(text):
            yield Span(start, end, "person", text[start:end])

    # -- replacing -------------------------------------------------------------------------------
    def redact(self, text: str, language: str | None = None, style: Style = "mask") -> Redaction:
        spans = self.find(text, language)
        out: list[str] = []
        new_spans: list[tuple[int, int]] = []
        pos = 0
        length = 0
        for span in spans:
            out.append(text[pos:span.start])
            length += span.start - pos
            stand_in = mask(span.type) if style == "mask" else surrogate(span, language)
            new_spans.append((length, length + len(stand_in)))
            out.append(stand_in)
            length += len(stand_in)
            pos = span.end
        out.append(text[pos:])
        return Redaction(original=text, text="".join(out), spans=spans, new_spans=new_spans)

    def redact_text(self, text: str, language: str | None = None, style: Style = "mask") -> str:
        return self.redact(text, language, style).text


def mask(pii_type: str) -> str:
    return f"[{pii_type.upper()}]"


_SAMPLE_ADDRESS = {"en": "1 Example Street, Springfield", "zh": "示例路1号", "zh-Hant": "示例路1號", "ru": "ул. Примерная, д. 1"}
_SAMPLE_PERSON = {"en": "Alex Doe", "zh": "张三", "zh-Hant": "張三", "ru": "Иван Петров"}
_TRADITIONAL = re.compile(r"(?i)^zh[-_](?:hant|tw|hk|mo)")


def surrogate(span: Span, language: str | None) -> str:
    """A fake value of the same shape, the same for the same input (reviewable, stable diffs)."""
    seed = hashlib.sha256(f"{span.type}\0{span.text}".encode()).hexdigest()
    lang = _script_language(span.text) or (language if language in _SAMPLE_ADDRESS else "en")
    if lang == "zh" and language and _TRADITIONAL.match(language):
        lang = "zh-Hant"  # a Traditional-script customer's training example keeps its script
    if span.type == "email":
        return f"user{seed[:6]}@example.com"
    if span.type == "address":
        return _SAMPLE_ADDRESS[lang]
    if span.type == "person":
        return _SAMPLE_PERSON[lang]
    # Digits: same separators and length; the first digit kept (a Chinese mobile still starts with 1).
    stream = (int(seed[i % len(seed)], 16) % 10 for i in range(10_000))
    chars = []
    first = True
    for ch in span.text:
        if ch.isdigit():
            chars.append(ch if first else str(next(stream)))
            first = False
        else:
            chars.append(ch)
    return "".join(chars)


def _script_language(text: str) -> str | None:
    if re.search(r"[\u4e00-\u9fff]", text):
        return "zh"
    if re.search(r"[А-Яа-яЁё]", text):
        return "ru"
    if re.search(r"[A-Za-z]", text):
        return "en"
    return None


def _resolve(candidates: list[Span]) -> list[Span]:
    """Keep the best of overlapping candidates: higher priority, then longer."""
    ranked = sorted(candidates, key=lambda s: (-_PRIORITY[s.type], -(s.end - s.start), s.start))
    kept: list[Span] = []
    for span in ranked:
        if span.end <= span.start:
            continue
        if any(span.start < k.end and k.start < span.end for k in kept):
            continue
        kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _phone_cued(text: str, start: int) -> bool:
    return bool(PHONE_CUE.search(text[max(0, start - 30):start]))


def _order_cued(text: str, start: int) -> bool:
    window = text[max(0, start - 30):start]
    order = [m.end() for m in ORDER_CUE.finditer(window)]
    phone = [m.end() for m in PHONE_CUE.finditer(window)]
    return bool(order) and (not phone or max(order) >= max(phone))


def _looks_like_two_numbers(raw: str) -> bool:
    """"3348917502 1234" is an order id and something else, not a card: cards group evenly."""
    groups = re.split(r"[ -]", raw)
    return len(groups) == 2 and any(len(g) == 10 for g in groups)


_default: Redactor | None = None


def default_redactor() -> Redactor:
    global _default
    if _default is None:
        _default = Redactor()
    return _default


def redact(text: str, language: str | None = None, style: Style = "mask") -> str:
    """Shortcut for the process-wide redactor."""
    return default_redactor().redact_text(text, language, style)
