"""Person names in Russian text, for ``ops.redaction``.

Two offline sources, both pip packages with their data inside:
- ``natasha``'s news NER (slovnet + navec, bundled in the wheel) tags ``PER`` spans in written text
  ("Марина Лебедева", "отдайте Марине"); it relies on capitals and misses names typed in lower case;
- ``pymorphy3``'s dictionary knows first names, surnames and patronymics in every case (``Name``,
  ``Surn``, ``Patr``: "Сергею", "Ивановой", "Петровичу"), whatever the capitals.

A word is a name when natasha says so, or when it is capitalised inside a sentence and the dictionary
reads it as a name, or when the dictionary's best reading of a lower-case word is a first name or
patronymic ("ольга"), or when a cue comes before it ("зовут", "получатель", "муж"). Neighbouring name
words and initials ("Иванов И. И.") join into one span. Capitalised words after street, city and
metro words ("ул. Ленина", "на улице Гагарина", "г. Королёв") and words natasha calls places or
organisations are not names; lower-case words that are also ordinary words ("вера", "роман", "лев")
need a cue.
"""

from __future__ import annotations

import re
import threading
from typing import Any


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NAME_TAGS = frozenset({"Name", "Surn", "Patr"})
# Words before a name ("меня зовут ольга", "получатель Смирнова", "муж Андрей").
CUES = _words(
    """зовут звать имя имени фамилия фамилии фио отчество получатель получателя получателю получательница
    получит заберёт заберет получать забирать забрать отправитель отправителя заказчик заказчица покупатель
    муж мужа мужу жена жены жене сын сына сыну дочь дочери дочка дочке мама маме мамы мать матери папа папе
    папы отец отца брат брата брату сестра сестры сестре бабушка бабушке дедушка дедушке подруга подруге
    подруги друг другу друга коллега коллеге коллеги сосед соседу соседка соседке тёща теща свекровь зять
    невестка племянник племяннице племянница внук внучка внуку внучке парень парню девушка девушке курьер
    курьеру курьера менеджер менеджеру менеджера оператор оператору оператора сотрудник сотруднику
    сотрудница сотруднице директор директору господин госпожа г-н г-жа гражданин гражданка"""
)
# Weaker cues: the word after them must look like a name by itself too ("это Марина", not "это роман").
WEAK_CUES = _words("это я для от передайте позвоните звоните спросите попросите пусть")
# Capitalised words after these are streets, towns, stations, named institutions: not people.
PLACE_WORDS = _words(
    """ул улица улице улицу улицы проспект проспекте проспекта пр пр-т просп переулок переулке пер бульвар
    бульваре б-р шоссе площадь площади пл набережная набережной наб метро станция станции ст м город городе
    города г посёлок поселок пос село селе деревня деревне д район районе р-н область области обл край
    имени им тц трц магазин магазине пвз пункт"""
)
# Lower-case words whose best reading is a name but which are ordinary words too often to mask unasked.
LOWER_COMMON = _words(
    """вера веры вере веру надежда надежды надежде надежду любовь любви роман романа роману лев льва мир мира
    слава славы марта марте мая май август августа роза розы лилия лилии ника лада лады майя зоя дина
    влад нина ник"""
)
# Capitalised words right after a product are its brand or character: "сумка Гуччи", "игрушка Лев",
# "пижама Маша и Медведь", "шоколад Алёнка", "шарф Зенит".
_PRODUCT_RUN = re.compile(
    r"(?i:\b(?:шарф|шарфа|шарфик|игрушка|игрушку|игрушки|шоколад|шоколада|шоколадка|шоколадку|конфеты|конфет|пижама|"
    r"пижаму|пижамы|сумка|сумку|сумки|кукла|куклу|куклы|торт|духи|крем|шампунь|кроссовки|кроссовок|кеды|футболка|"
    r"футболку|футболки|кофта|кофту|куртка|куртку|платье|часы|телефон|смартфон|наушники|набор|конструктор|журнал|"
    r"книга|книгу|книги|мультфильм|сериал|фильм|бренд|бренда|фирма|фирмы|фирму|марка|марки|марку|модель|модели|"
    r"серия|серии|коллекция|коллекции|рюкзак|ранец|костюм|постельное|пылесос|кофемашина|чайник|вино|водка|пиво|сок)"
    r")\s+[«\"]?([А-ЯЁ][а-яё-]*(?:\s+(?:и\s+)?[А-ЯЁ][а-яё-]*)*)"
)
# Said right after a first name that is also a word: "Роман из доставки", "Вера это я".
_RIGHT_CUE = re.compile(
    r"\s*,?\s*(?:это я|из (?:доставки|поддержки|магазина|службы|чата|отдела|банка|курьерской|вашей|вашего|вашего)|"
    r"сказал|сказала|обещал|обещала|звонил|звонила|написал|написала|не берёт|не берет|привёз|привез|привезла|"
    r"оформил|оформила|заказал|заказала|ответил|ответила)\b"
)
_GRAMMAR = frozenset({"PREP", "CONJ", "PRCL", "NPRO", "INTJ", "ADVB", "PRED"})
_INITIALS = re.compile(r"\s*[А-ЯЁ]\.(?:\s*[А-ЯЁ]\.)?")
_CYR = re.compile(r"[А-Яа-яЁё]")
_WORD = re.compile(r"[А-Яа-яЁё]+(?:-[А-Яа-яЁё]+)?")
_SENTENCE_END = re.compile(r"[.!?…:;\n]\s*$|^[\s*•–—-]*$")


class RussianNames:
    """Finds person names in Russian text. Thread-safe; natasha and pymorphy3 load on first use
    (about 1 s, 100 MB)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ner_lock = threading.Lock()
        self._models: tuple[Any, Any, Any] | None = None
        self._blas: Any = None

    def _load(self) -> tuple[Any, Any, Any]:
        with self._lock:
            if self._models is None:
                import pymorphy3
                from natasha import NewsEmbedding, NewsNERTagger, Segmenter
                from threadpoolctl import ThreadpoolController

                self._models = (Segmenter(), NewsNERTagger(NewsEmbedding()), pymorphy3.MorphAnalyzer())
                self._blas = ThreadpoolController()  # sees numpy's OpenBLAS, loaded by now
            return self._models

    def _tag(self, text: str) -> Any:
        """natasha's segmentation and NER. Its matrices are tiny: OpenBLAS's threads only cost here
        (20x slower on a busy 2-core machine), so BLAS runs on one thread for the call; the lock keeps
        two calls from restoring each other's thread count."""
        from natasha import Doc

        segmenter, ner, _ = self._load()
        doc = Doc(text)
        with self._ner_lock, self._blas.limit(limits=1, user_api="blas"):
            doc.segment(segmenter)
            doc.tag_ner(ner)
        return doc

    def find(self, text: str) -> list[tuple[int, int]]:
        if not _CYR.search(text):
            return []
        doc = self._tag(text)
        morph = self._load()[2]
        other = [(sp.start, sp.stop) for sp in doc.spans if sp.type in ("LOC", "ORG")]
        spans = [(sp.start, sp.stop) for sp in doc.spans if sp.type == "PER" and _CYR.search(sp.text)]
        spans = [sp for sp in spans if not _after_place_word(text, sp[0]) and not _common_word_span(text, sp, morph)]
        words = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
        marked = [self._is_name(text, words, i, other, spans, morph) for i in range(len(words))]
        # A surname or patronymic in lower case next to a first name: "ольга смирнова".
        for i, (_, _, word) in enumerate(words):
            if (not marked[i] and word.lower() not in LOWER_COMMON and _adjacent(text, words, marked, i)
                    and morph.parse(word)[0].tag.POS not in _GRAMMAR and _tags(morph, word) & {"Surn", "Patr"}):
                marked[i] = True
        for i, (start, end, _) in enumerate(words):
            if marked[i]:
                m = _INITIALS.match(text, end)
                spans.append((start, m.end() if m and not text[end:end + 1].isalpha() else end))
        products = [m.span(1) for m in _PRODUCT_RUN.finditer(text)]
        spans = [sp for sp in spans if not any(a <= sp[0] < b for a, b in products)]
        return _merge(spans, text)

    def _is_name(self, text: str, words: list[tuple[int, int, str]], i: int, other: list[tuple[int, int]],
                 per: list[tuple[int, int]], morph: Any) -> bool:
        start, end, word = words[i]
        if len(word) < 2 or _after_place_word(text, start):
            return False
        if any(a <= start < b for a, b in per):
            return True
        parses = morph.parse(word)
        name_parses = [p for p in parses if p.tag.grammemes & NAME_TAGS]
        before = words[i - 1][2].lower() if i > 0 and _same_clause(text, words[i - 1][1], start) else ""
        capital = word[0].isupper() and not word.isupper()
        best = parses[0]
        known = morph.word_is_known(word)
        if before in CUES and (capital or (known and name_parses and best.tag.POS not in _GRAMMAR)):
            return True
        if not name_parses:
            return False
        if before in WEAK_CUES and (capital or best.tag.grammemes & NAME_TAGS):
            return True
        if any(a <= start < b for a, b in other):
            return False
        if capital and _RIGHT_CUE.match(text, end):
            return True  # "Роман из доставки не берёт трубку"
        if capital:
            if not _sentence_initial(text, start):
                geo = sum(p.score for p in parses if {"Geox", "Orgn"} & p.tag.grammemes)
                return geo <= sum(p.score for p in name_parses)
            return bool(best.tag.grammemes & NAME_TAGS) and best.score >= 0.5
        if word.islower() and word not in LOWER_COMMON and known:
            return bool(best.tag.grammemes & {"Name", "Patr"}) and best.score >= 0.5
        return False


def _common_word_span(text: str, span: tuple[int, int], morph: Any) -> bool:
    """natasha calls a capitalised first word a person now and then ("Ассистент работает...",
    "Закажите размер..."): a one-word span at the start of a sentence that the dictionary knows
    only as something else is no name."""
    word = text[span[0]:span[1]]
    if not re.fullmatch(r"[А-Яа-яЁё]+(?:-[А-Яа-яЁё]+)*", word) or not _sentence_initial(text, span[0]):
        return False
    parts = word.split("-")
    return all(morph.word_is_known(p) and not any(q.tag.grammemes & NAME_TAGS for q in morph.parse(p)) for p in parts)


def _tags(morph: Any, word: str) -> set[str]:
    return {g for p in morph.parse(word) for g in p.tag.grammemes & NAME_TAGS}


def _adjacent(text: str, words: list[tuple[int, int, str]], marked: list[bool], i: int) -> bool:
    """Next to a name word, with only spaces between ("ольга смирнова", not "Захаров, по")."""
    before = i > 0 and marked[i - 1] and not text[words[i - 1][1]:words[i][0]].strip()
    after = i + 1 < len(words) and marked[i + 1] and not text[words[i][1]:words[i + 1][0]].strip()
    return bool(before or after)


def _sentence_initial(text: str, start: int) -> bool:
    return bool(_SENTENCE_END.search(text[:start]))


def _same_clause(text: str, a: int, b: int) -> bool:
    return not re.search(r"[.!?;\n]", text[a:b])


def _after_place_word(text: str, start: int) -> bool:
    m = re.search(r"([А-Яа-яЁё-]+)\.?\s*$", text[:start])
    return bool(m) and m.group(1).lower() in PLACE_WORDS


def _merge(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Overlapping spans, and spans separated only by spaces, become one."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and (start <= out[-1][1] or not text[out[-1][1]:start].strip()):
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
