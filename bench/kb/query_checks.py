"""Checks shared by the validators of the labelled query sets (``bench/kb/queries/validate.py`` for
the help centre, ``bench/kb/electronics/validate.py`` for VoltMart): folding text for duplicate
checks, and finding a query that copies an article's title or a run of its text."""

from __future__ import annotations

import re
import unicodedata

COPY_WORDS = 6  # an English/Russian query sharing this many consecutive words with an article is a copy
COPY_CJK = 8  # same for a Chinese query, in consecutive Chinese characters
CJK = re.compile(r"[\u3400-\u9fff]")


def fold(text: str) -> str:
    """Case-, width- and punctuation-insensitive form used for duplicate and copy checks."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZ" else ch for ch in text)
    return " ".join(text.split())


def cjk_only(text: str) -> str:
    """The Chinese characters of ``text``, nothing between them."""
    return "".join(CJK.findall(text))


def copied_from(query: str, lang: str, texts: dict[tuple[str, str], tuple[str, str]]) -> str | None:
    """Name the text a query copies a title or a run of text from, if any.

    ``texts`` maps (id, language) to (title, body): article versions, or any other source such as
    an FAQ row (its question as the title, its answer as the body).
    """
    fq = fold(query)
    for (aid, alang), (title, body) in texts.items():
        if title and fold(title) in fq and (len(fold(title).split()) >= 3 or len(cjk_only(title)) >= 5):
            return f"title of {alang}/{aid}"
        if lang == "zh":
            q, b = cjk_only(query), cjk_only(body)
            if any(q[i : i + COPY_CJK] in b for i in range(len(q) - COPY_CJK + 1)):
                return f"text of {alang}/{aid}"
        else:
            words, b = fq.split(), f" {fold(body)} "
            if any(f" {' '.join(words[i : i + COPY_WORDS])} " in b for i in range(len(words) - COPY_WORDS + 1)):
                return f"text of {alang}/{aid}"
    return None
