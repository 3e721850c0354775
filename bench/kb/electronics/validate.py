"""Check the VoltMart (electronics) knowledge-base set before anyone benchmarks with it.

Refuses the set (non-zero exit, one line per problem) when:

- a file does not parse, or an article / catalogue entry / FAQ row / query lacks its fields;
- the catalogue and ``en/`` disagree, a ``translated: true`` article lacks its zh or ru version
  (or an untranslated one has one), or an article's front matter disagrees with its file;
- an English article body is outside 150–450 words;
- ``faq.csv`` and ``faq.json`` hold different rows;
- a query label (``article`` / ``also``) is not in the catalogue, or a ``faq_row`` is out of range;
- a language is under its minimum, ``en.yml`` misses an article, or fewer than 40% of the zh or ru
  queries target English-only articles;
- a query appears twice (after folding case, spaces and punctuation), within or across files;
- a query repeats an article title or a run of an article's text (6 words, or 8 Chinese
  characters) from any language version, or an FAQ row's question or answer.

Run from the repository root: ``.venv/bin/python -m bench.kb.electronics.validate``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.kb.query_checks import copied_from, fold

HERE = Path(__file__).resolve().parent
QUERIES = HERE / "queries"
LANGS = ("en", "zh", "ru")
MIN_PER_LANG = 110
MIN_UNANSWERABLE_PER_LANG = 40
MIN_FAQ_QUERIES = 60
MIN_CROSS_SHARE = 0.40
MIN_WORDS, MAX_WORDS = 150, 450


def load_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path.relative_to(HERE)}: cannot read: {exc}")
        return None


def load_queries(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    data = load_yaml(path, problems)
    if not isinstance(data, dict) or not isinstance(data.get("queries"), list):
        problems.append(f"{path.name}: expected a mapping with a 'queries' list")
        return []
    good = [q for q in data["queries"] if isinstance(q, dict) and isinstance(q.get("q"), str) and q["q"].strip()]
    problems += [f"{path.name}: entry without a 'q' string: {q!r}" for q in data["queries"] if q not in good]
    return good


def load_articles(catalog: dict[str, dict[str, Any]], problems: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(id, language) → (title, body) for every article file, checking front matter and coverage."""
    texts: dict[tuple[str, str], tuple[str, str]] = {}
    for lang in LANGS:
        for path in sorted((HERE / lang).glob("*.md")):
            raw = path.read_text(encoding="utf-8")
            parts = raw.split("---", 2)
            meta = yaml.safe_load(parts[1]) if raw.startswith("---") and len(parts) == 3 else None
            if not isinstance(meta, dict):
                problems.append(f"{lang}/{path.name}: no front matter")
                continue
            body = parts[2]
            for key, want in (("id", path.stem), ("language", lang)):
                if meta.get(key) != want:
                    problems.append(f"{lang}/{path.name}: front matter {key} is {meta.get(key)!r}, want {want!r}")
            if not str(meta.get("url", "")).endswith(f"/{lang}/articles/{path.stem}"):
                problems.append(f"{lang}/{path.name}: url does not end with /{lang}/articles/{path.stem}")
            if "\n## " not in body:
                problems.append(f"{lang}/{path.name}: no '##' heading")
            entry = catalog.get(path.stem)
            if entry is None:
                problems.append(f"{lang}/{path.name}: not in catalog.yml")
            elif lang == "en":
                if meta.get("title") != entry["title"]:
                    problems.append(f"en/{path.name}: title differs from catalog.yml")
                n = len(body.split())
                if not MIN_WORDS <= n <= MAX_WORDS:
                    problems.append(f"en/{path.name}: {n} words, want {MIN_WORDS}-{MAX_WORDS}")
                want_tr = ["zh", "ru"] if entry["translated"] else []
                if sorted(meta.get("translations") or []) != sorted(want_tr):
                    problems.append(
                        f"en/{path.name}: translations {meta.get('translations')} disagree with catalog.yml"
                    )
            elif not entry["translated"]:
                problems.append(f"{lang}/{path.name}: catalog.yml marks it untranslated")
            texts[(path.stem, lang)] = (str(meta.get("title", "")), body)
    for aid, entry in catalog.items():
        langs = ("en", "zh", "ru") if entry["translated"] else ("en",)
        problems += [f"catalog.yml: {aid} has no {lang}/{aid}.md" for lang in langs if (aid, lang) not in texts]
    return texts


def load_faq(problems: list[str]) -> list[dict[str, str]]:
    with (HERE / "faq.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != ["question", "answer", "category"]:
            problems.append(f"faq.csv: header is {reader.fieldnames}, want question,answer,category")
        rows = list(reader)
    if json.loads((HERE / "faq.json").read_text(encoding="utf-8")) != rows:
        problems.append("faq.json: rows differ from faq.csv")
    for n, row in enumerate(rows):
        if not all((row.get(k) or "").strip() for k in ("question", "answer", "category")):
            problems.append(f"faq.csv: row {n} has an empty field")
    return rows


def check() -> tuple[list[str], list[str]]:
    problems: list[str] = []
    cat_data = load_yaml(HERE / "catalog.yml", problems) or {}
    catalog = {a["id"]: a for a in cat_data.get("articles", []) if isinstance(a, dict) and "id" in a}
    if not catalog:
        return problems + ["catalog.yml: no articles"], []
    for aid in catalog:
        if aid not in {p.stem for p in (HERE / "en").glob("*.md")}:
            problems.append(f"catalog.yml: {aid} has no en/{aid}.md")
    texts = load_articles(catalog, problems)
    english_only = {aid for aid, a in catalog.items() if not a["translated"]}
    faq = load_faq(problems)
    # FAQ rows count as texts too: their question as the title, their answer as the body.
    sources = texts | {(f"row {n}", "faq"): (r["question"], r["answer"]) for n, r in enumerate(faq)}

    entries: list[tuple[str, str, dict[str, Any]]] = []
    stats: list[str] = []
    for lang in LANGS:
        qs = load_queries(QUERIES / f"{lang}.yml", problems)
        entries += [(f"{lang}.yml", lang, q) for q in qs]
        for q in qs:
            labels = [q.get("article"), *q.get("also", [])]
            problems += [f"{lang}.yml: {q['q']!r}: unknown article {x!r}" for x in labels if x not in catalog]
            if len(set(labels)) != len(labels):
                problems.append(f"{lang}.yml: {q['q']!r}: 'also' repeats a label")
        cross = sum(q.get("article") in english_only for q in qs)
        covered = len({q.get("article") for q in qs} & set(catalog))
        stats.append(
            f"{lang}.yml: {len(qs)} queries, {covered}/{len(catalog)} articles, "
            f"{cross} ({100 * cross / max(1, len(qs)):.1f}%) on English-only articles"
        )
        if len(qs) < MIN_PER_LANG:
            problems.append(f"{lang}.yml: {len(qs)} queries, need {MIN_PER_LANG}")
        if lang == "en" and covered < len(catalog):
            problems.append(f"en.yml: no query for {sorted(set(catalog) - {q.get('article') for q in qs})}")
        if lang != "en" and cross < MIN_CROSS_SHARE * len(qs):
            problems.append(f"{lang}.yml: only {cross}/{len(qs)} queries on English-only articles")

    unanswerable = load_queries(QUERIES / "unanswerable.yml", problems)
    entries += [("unanswerable.yml", q.get("lang", "?"), q) for q in unanswerable]
    per_lang = Counter(q.get("lang") for q in unanswerable)
    stats.append("unanswerable.yml: " + ", ".join(f"{lang} {per_lang[lang]}" for lang in LANGS))
    for q in unanswerable:
        if q.get("lang") not in LANGS:
            problems.append(f"unanswerable.yml: {q['q']!r}: lang must be one of {LANGS}")
        if "article" in q or "also" in q:
            problems.append(f"unanswerable.yml: {q['q']!r}: an unanswerable query has no article")
    problems += [
        f"unanswerable.yml: {per_lang[lang]} {lang} queries, need {MIN_UNANSWERABLE_PER_LANG}"
        for lang in LANGS
        if per_lang[lang] < MIN_UNANSWERABLE_PER_LANG
    ]

    faq_queries = load_queries(QUERIES / "faq_en.yml", problems)
    entries += [("faq_en.yml", "en", q) for q in faq_queries]
    rows_hit = {q.get("faq_row") for q in faq_queries}
    stats.append(f"faq_en.yml: {len(faq_queries)} queries over {len(rows_hit)}/{len(faq)} FAQ rows")
    for q in faq_queries:
        if not isinstance(q.get("faq_row"), int) or not 0 <= q["faq_row"] < len(faq):
            problems.append(f"faq_en.yml: {q['q']!r}: faq_row {q.get('faq_row')!r} is not a row of faq.csv")
    if len(faq_queries) < MIN_FAQ_QUERIES:
        problems.append(f"faq_en.yml: {len(faq_queries)} queries, need {MIN_FAQ_QUERIES}")

    seen: Counter[str] = Counter()
    for name, lang, q in entries:
        seen[fold(q["q"])] += 1
        source = copied_from(q["q"], lang, sources)
        if source:
            problems.append(f"{name}: {q['q']!r}: copies the {source}")
    problems += [f"duplicate query: {q!r} ({n}×)" for q, n in seen.items() if n > 1]
    return problems, stats


def main() -> int:
    problems, stats = check()
    for line in stats:
        print(line)
    for line in problems:
        print(line, file=sys.stderr)
    print("electronics set OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
