"""Language guessing by script and the BM25 tokenizer (jieba for Chinese, Snowball for Russian and
English).

One tokenizer is used for documents and queries alike, whatever language they are declared in:
it looks at the script of each run of characters, so a Russian article that names an English
product, or an English question quoting a Chinese term, still meets the same tokens on both sides.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

import jieba
import Stemmer

jieba.setLogLevel(logging.WARNING)

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CYR = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")

# Runs of one script. Latin words may carry digits and inner separators so that product codes
# ("XJ-4410B", "v2.1", "SKU_778") stay one token.
_TOKEN_RE = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)"
    r"|(?P<cyr>[\u0400-\u04ff]+(?:[-'][\u0400-\u04ff]+)*)"
    r"|(?P<lat>[A-Za-z0-9\u00c0-\u024f]+(?:[-_./'][A-Za-z0-9\u00c0-\u024f]+)*)"
)
_SEPARATORS = re.compile(r"[-_./']")

EN_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your", "yours"]
)
RU_STOP = frozenset(
    ["а", "без", "бы", "был", "была", "были", "было", "быть", "в", "вам", "вас", "весь", "во", "вот", "все", "всё", "вы", "где", "да", "для", "до", "его", "ее", "её", "если", "есть", "еще", "ещё", "же", "за", "и", "из", "или", "им", "их", "к", "как", "ко", "когда", "кто", "ли", "либо", "мне", "мной", "мой", "моя", "мы", "на", "над", "не", "него", "нет", "ни", "но", "ну", "о", "об", "от", "по", "под", "при", "с", "со", "так", "также", "то", "тоже", "у", "уже", "хочу", "чем", "что", "чтобы", "эта", "эти", "это", "я"]
)
ZH_STOP = frozenset(["的", "了", "吗", "呢", "吧", "啊", "我", "你", "您", "他", "她", "它", "们", "我们", "你们", "是", "在", "有", "和", "与", "就", "都", "也", "还", "把", "被", "请", "请问", "怎么", "如何", "什么", "一个", "这", "那", "哪"])


def detect_language(text: str, default: str = "en") -> str:
    """Guess en/zh/ru from the script: enough for our three languages, and deterministic (a
    statistical detector would guess on a two-word FAQ answer). Latin text gets ``default``."""
    han = len(_HAN.findall(text))
    cyr = len(_CYR.findall(text))
    lat = len(_LATIN.findall(text))
    if han == 0 and cyr == 0:
        return default
    # A Han character carries about as much as a short word; weight it up against letters.
    scores = {"zh": han * 3, "ru": cyr, "en": lat}
    return max(scores, key=lambda k: scores[k])


class Tokenizer:
    """Turns text into BM25 terms. Thread-safe (stemmers are per thread; jieba and OpenCC are
    guarded because their first use initialises shared state)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._jieba_lock = threading.Lock()
        self._t2s = None
        self._t2s_lock = threading.Lock()

    def _stemmers(self) -> tuple[Stemmer.Stemmer, Stemmer.Stemmer]:
        st = getattr(self._local, "stemmers", None)
        if st is None:
            st = (Stemmer.Stemmer("english"), Stemmer.Stemmer("russian"))
            self._local.stemmers = st
        return st

    def _to_simplified(self, text: str) -> str:
        """Traditional → Simplified, so 訂單 in a question finds 订单 in an article."""
        if self._t2s is None:
            with self._t2s_lock:
                if self._t2s is None:
                    import opencc

                    self._t2s = opencc.OpenCC("t2s")
        return self._t2s.convert(text)

    def _han_terms(self, run: str) -> list[str]:
        run = self._to_simplified(run)
        with self._jieba_lock:
            words = jieba.lcut_for_search(run)
        return [w for w in words if w.strip() and w not in ZH_STOP]

    def tokenize(self, text: str) -> list[str]:
        en, ru = self._stemmers()
        out: list[str] = []
        for m in _TOKEN_RE.finditer(text):
            kind = m.lastgroup
            tok = m.group(0)
            if kind == "han":
                out.extend(self._han_terms(tok))
            elif kind == "cyr":
                low = tok.lower().replace("ё", "е")
                for w in _SEPARATORS.split(low):
                    if w and w not in RU_STOP:
                        out.append(ru.stemWord(w))
            else:
                low = tok.lower()
                parts = [p for p in _SEPARATORS.split(low) if p]
                if len(parts) > 1:
                    # A code like "xj-4410b": the joined form matches "XJ4410B", the parts match
                    # "XJ 4410B"; words with apostrophes ("don't") just keep their parts.
                    if any(ch.isdigit() for ch in low):
                        out.append("".join(parts))
                    out.extend(
                        en.stemWord(p) if p.isalpha() else p for p in parts if p not in EN_STOP and len(p) > 1 or p.isdigit()
                    )
                elif low not in EN_STOP:
                    out.append(en.stemWord(low) if low.isalpha() else low)
        return out


@lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    return Tokenizer()
