"""Person names in customer messages, in every script the bot serves, for ``ops.redaction``.

- Latin script: ``ops.names_en`` (spaCy's English NER, census first names and surnames, titles, cues);
- Chinese, Simplified and Traditional: ``ops.names_zh`` (surnames, jieba's dictionary, cues);
- Russian: ``ops.names_ru`` (natasha's NER and pymorphy3's name dictionary);
- cue phrases in all three ("my name is", "我叫", "меня зовут") as a net under the models.

Every finder runs on every text, whatever the conversation's language: customers mix scripts
("收件人是Tom Wang", "меня зовут John"). Precision and recall per language are measured by
``python -m bench.redaction`` (bench/RESULTS.md, "PII redaction").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ops.names_en import EnglishNames
from ops.names_ru import RussianNames
from ops.names_zh import ChineseNames

CUES = [
    re.compile(r"(?<![帮给替让请])(?:我叫|我的名字是|我的名字叫|收件人是|收货人是)[:：]?\s*([\u4e00-\u9fff]{2,4}?)(?=[，。,.!！?？\s]|$|的|想|要|在|订单)"),
    re.compile(r"(?i:меня зовут|моё имя|мое имя|это|получатель|на имя)[:]?\s+([А-ЯЁ][а-яё]+(?:\s+[А-ЯЁ][а-яё]+){0,2})"),
    re.compile(r"(?i:my name is|my name's|name is|this is|i am|i'm)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,2})"),
    # Russian first name + surname with a surname ending: "для Елена Попова", "я Кирилл Белов"
    re.compile(r"(?<![А-Яа-яЁё])([А-ЯЁ][а-яё]{2,}\s+[А-ЯЁ][а-яё]+(?:ов|ев|ёв|ин|ын|ова|ева|ёва|ина|ына|ский|ская|цкий|цкая|ко|ук|юк|ич|енко))(?![а-яё])"),
    re.compile(r"(?:my name is|my name's)\s+([a-z]+(?:\s+[a-z]+)?)(?=[,.!?]|\s+and\b|\s*$)"),
]
# A Latin first name right after a Chinese verb of asking or giving: "唔該叫Ivy打返俾我", "转告Kevin".
_HAN_CUE_LATIN = re.compile(r"(?:叫|找|问|問|转告|轉告|联系|聯絡|聯繫|搵|同|跟|和|给|給|帮|幫|请|請|通知)\s*([A-Z][a-z]+)(?![A-Za-z])")
_NOT_LATIN = re.compile(r"[\u0400-\u04ff\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # Cyrillic, Han, CJK punctuation
# Capitalised words the cues must not take ("I'm Looking for...", "this is Urgent").
NOT_NAMES = frozenset(
    str.split(
    "Looking Trying Waiting Calling Writing Asking Not Very So Still Just Really Here Sorry Happy Glad Urgent "
    "Order Refund Regarding About The A An It My Your Our Going Having Unable Able New Back Done Fine Ok Okay "
    "Hello Hi Hey Thanks Thank Please Help Support Customer Interested Annoyed Frustrated Confused"
    )
)
class PersonNames:
    """All name finders behind one call. ``models=False`` keeps only the cue phrases (no spaCy,
    jieba or natasha: nothing to load)."""

    def __init__(self, models: bool = True) -> None:
        self.models = models
        self.english = EnglishNames()
        self.chinese = ChineseNames()
        self.russian = RussianNames()

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        for pattern in CUES:
            for m in pattern.finditer(text):
                first = m.group(1).split()[0]
                if first not in NOT_NAMES and first.capitalize() not in NOT_NAMES:
                    yield m.start(1), m.end(1)
        if not self.models:
            return
        # spaCy cannot split "我叫Amy Wong" into words, and reads Russian as English: it gets the Latin
        # part with the other scripts blanked out (same offsets).
        yield from self.english.find(_NOT_LATIN.sub(" ", text))
        for m in _HAN_CUE_LATIN.finditer(text):
            if self.english.is_first_name(m.group(1)):
                yield m.start(1), m.end(1)
        yield from self.chinese.find(text)
        yield from self.russian.find(text)
