"""Check the labelled KB query set before anyone benchmarks with it.

A benchmark on a broken query set measures nothing: a label pointing at a renamed article scores as a
miss, a duplicated query counts twice, and a query copied from an article measures string matching,
not retrieval. So this script refuses the set (non-zero exit, one line per problem) when:

- a file does not parse or an entry lacks its fields;
- a label (``article`` / ``also``) is not an id in ``help_centre/catalog.yml``;
- a language has fewer than the required queries, or an English query set misses an article;
- a query appears twice (after folding case, spaces and punctuation), within or across files;
- a query repeats an article title or a run of an article's text (``MIN_WORDS`` words, or
  ``MIN_CJK`` Chinese characters) from any language version found under ``help_centre/``.

Run from the repository root: ``.venv/bin/python bench/kb/queries/validate.py``.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
QUERIES = Path(__file__).resolve().parent
CATALOG = ROOT / "help_centre" / "catalog.yml"
LANGS = ("en", "zh", "ru")
MIN_PER_LANG = 55
MIN_UNANSWERABLE_PER_LANG = 15
MIN_WORDS = 6  # an English/Russian query sharing this many consecutive words with an article is a copy
MIN_CJK = 8  # same for a Chinese query, in consecutive Chinese characters
CJK = re.compile(r"[\u3400-\u9fff]")


def fold(text: str) -> str:
    """Case-, width- and punctuation-insensitive form used for duplicate and copy checks."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("ё", "е")
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZ" else ch for ch in text)
    return " ".join(text.split())


def words(text: str) -> list[str]:
    return fold(text).split()


def cjk_only(text: str) -> str:
    return "".join(CJK.findall(text))


def load_queries(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The ``queries`` list of one file, or an empty list (with a problem) when malformed."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path.name}: cannot read: {exc}")
        return []
    if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
        problems.append(f"{path.name}: expected a mapping with a 'queries' list")
        return []
    return data["queries"]


def article_texts() -> dict[tuple[str, str], tuple[str, str]]:
    """(id, language) → (title, body) for every article version written so far."""
    texts: dict[tuple[str, str], tuple[str, str]] = {}
    for path in sorted((ROOT / "help_centre").glob("*/*.md")):
        raw = path.read_text(encoding="utf-8")
        title, body = "", raw
        if raw.startswith("---"):
            _, front, body = raw.split("---", 2)
            meta = yaml.safe_load(front) or {}
            title = str(meta.get("title", ""))
        texts[(path.stem, path.parent.name)] = (title, body)
    return texts


def copied_from(query: str, lang: str, texts: dict[tuple[str, str], tuple[str, str]]) -> str | None:
    """Name the article version a query copies a title or a run of text from, if any."""
    for (aid, alang), (title, body) in texts.items():
        if title and fold(title) in fold(query) and (len(words(title)) >= 3 or len(cjk_only(title)) >= 5):
            return f"title of {alang}/{aid}"
        if lang == "zh":
            q, b = cjk_only(query), cjk_only(body)
            if any(q[i : i + MIN_CJK] in b for i in range(len(q) - MIN_CJK + 1)):
                return f"text of {alang}/{aid}"
        else:
            q_words, b = words(query), f" {fold(body)} "
            grams = (" ".join(q_words[i : i + MIN_WORDS]) for i in range(len(q_words) - MIN_WORDS + 1))
            if any(f" {g} " in b for g in grams):
                return f"text of {alang}/{aid}"
    return None


def check() -> list[str]:
    problems: list[str] = []
    catalog = {a["id"] for a in yaml.safe_load(CATALOG.read_text(encoding="utf-8"))["articles"]}
    texts = article_texts()
    seen: Counter[str] = Counter()
    entries: list[tuple[str, str, dict[str, Any]]] = []
    for lang in LANGS:
        qs = load_queries(QUERIES / f"{lang}.yml", problems)
        entries += [(f"{lang}.yml", lang, q) for q in qs]
        if len(qs) < MIN_PER_LANG:
            problems.append(f"{lang}.yml: {len(qs)} queries, need {MIN_PER_LANG}")
        if lang == "en":
            missing = catalog - {q.get("article") for q in qs if isinstance(q, dict)}
            if missing:
                problems.append(f"en.yml: no query for {sorted(missing)}")
    unanswerable = load_queries(QUERIES / "unanswerable.yml", problems)
    entries += [("unanswerable.yml", q.get("lang", "?") if isinstance(q, dict) else "?", q) for q in unanswerable]
    per_lang = Counter(q.get("lang") for q in unanswerable if isinstance(q, dict))
    for lang in LANGS:
        if per_lang[lang] < MIN_UNANSWERABLE_PER_LANG:
            problems.append(f"unanswerable.yml: {per_lang[lang]} {lang} queries, need {MIN_UNANSWERABLE_PER_LANG}")

    for name, lang, q in entries:
        if not isinstance(q, dict) or not isinstance(q.get("q"), str) or not q["q"].strip():
            problems.append(f"{name}: entry without a 'q' string: {q!r}")
            continue
        text = q["q"]
        if name == "unanswerable.yml":
            if lang not in LANGS:
                problems.append(f"{name}: {text!r}: lang must be one of {LANGS}")
            if "article" in q or "also" in q:
                problems.append(f"{name}: {text!r}: an unanswerable query has no article")
        else:
            labels = [q.get("article"), *q.get("also", [])]
            for label in labels:
                if label not in catalog:
                    problems.append(f"{name}: {text!r}: unknown article {label!r}")
            if len(set(labels)) != len(labels):
                problems.append(f"{name}: {text!r}: 'also' repeats a label")
        seen[fold(text)] += 1
        source = copied_from(text, lang, texts)
        if source:
            problems.append(f"{name}: {text!r}: copies the {source}")
    problems += [f"duplicate query: {q!r} ({n}×)" for q, n in seen.items() if n > 1]
    return problems


def main() -> int:
    problems = check()
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print("query set OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
