"""Check the labelled KB query set before anyone benchmarks with it.

A benchmark on a broken query set measures nothing: a label pointing at a renamed article scores as a
miss, a duplicated query counts twice, and a query copied from an article measures string matching,
not retrieval. So this script refuses the set (non-zero exit, one line per problem) when:

- a file does not parse or an entry lacks its fields;
- a label (``article`` / ``also``) is not an id in ``help_centre/catalog.yml``;
- a language has fewer than the required queries, or an English query set misses an article;
- a query appears twice (after folding case, spaces and punctuation), within or across files;
- a query repeats an article title or a run of an article's text (``COPY_WORDS`` words, or
  ``COPY_CJK`` Chinese characters, in ``bench.kb.query_checks``) from any language version found
  under ``help_centre/``.

Run from the repository root: ``.venv/bin/python -m bench.kb.queries.validate``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.kb.query_checks import copied_from, fold

ROOT = Path(__file__).resolve().parents[3]
QUERIES = Path(__file__).resolve().parent
CATALOG = ROOT / "help_centre" / "catalog.yml"
LANGS = ("en", "zh", "ru")
MIN_PER_LANG = 55
MIN_UNANSWERABLE_PER_LANG = 15


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
