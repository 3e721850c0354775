"""The two help centres of the KB benchmark and their labelled queries.

- ``clothing``: the shipped help centre (``help_centre/``, with hand-written questions in
  ``help_centre/questions/``) and ``bench/kb/queries/``. Used to tune and calibrate.
- ``electronics``: VoltMart (``bench/kb/electronics/``: articles in en/zh/ru, an FAQ export, its own
  queries), written independently and used only to measure, never to tune.

Queries share one format: ``{q, article, also?}`` per language file and ``{q, lang}`` in
``unanswerable.yml``; ``faq_en.yml`` labels FAQ questions with ``faq_row`` (0-based data row).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kb_index import Article, load_path
from kb_index.questions import load_questions

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "zh", "ru")


@dataclass(frozen=True)
class Query:
    text: str
    language: str
    articles: frozenset[str]  # correct answers; empty for unanswerable questions
    cross_lingual: bool = False  # a zh/ru question whose article exists only in English


@dataclass
class Dataset:
    name: str
    articles: list[Article]
    answerable: list[Query]
    unanswerable: list[Query]
    hand_questions: dict[str, list[str]] = field(default_factory=dict)
    hand_question_language: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # lang → article → questions

    @property
    def english_only(self) -> set[str]:
        langs: defaultdict[str, set[str]] = defaultdict(set)
        for a in self.articles:
            langs[a.id].add(a.language)
        return {a for a, ls in langs.items() if ls == {"en"}}


def _queries(folder: Path, english_only: set[str]) -> tuple[list[Query], list[Query]]:
    answerable: list[Query] = []
    for lang in LANGUAGES:
        for item in yaml.safe_load((folder / f"{lang}.yml").read_text(encoding="utf-8"))["queries"]:
            targets = frozenset([item["article"], *item.get("also", [])])
            answerable.append(Query(item["q"], lang, targets, lang != "en" and item["article"] in english_only))
    unanswerable = [
        Query(item["q"], item["lang"], frozenset())
        for item in yaml.safe_load((folder / "unanswerable.yml").read_text(encoding="utf-8"))["queries"]
    ]
    return answerable, unanswerable


def _load_articles(*folders: Path) -> list[Article]:
    articles: list[Article] = []
    for folder in folders:
        report = load_path(folder)
        if report.errors:
            raise SystemExit(f"{folder}: unreadable files: {report.errors}")
        articles += report.articles
    return articles


def _english_only(articles: list[Article]) -> set[str]:
    return Dataset("", articles, [], []).english_only


def clothing() -> Dataset:
    articles = _load_articles(*(ROOT / "help_centre" / lang for lang in LANGUAGES))
    answerable, unanswerable = _queries(ROOT / "bench" / "kb" / "queries", _english_only(articles))
    per_lang = {
        lang: {str(k): list(v) for k, v in (yaml.safe_load((ROOT / "help_centre" / "questions" / f"{lang}.yml").read_text(encoding="utf-8")) or {}).items()}
        for lang in LANGUAGES
    }
    return Dataset("clothing", articles, answerable, unanswerable, load_questions(ROOT / "help_centre" / "questions"), per_lang)


ELECTRONICS = ROOT / "bench" / "kb" / "electronics"


def electronics() -> Dataset:
    articles = _load_articles(*(ELECTRONICS / lang for lang in LANGUAGES))
    answerable, unanswerable = _queries(ELECTRONICS / "queries", _english_only(articles))
    return Dataset("electronics", articles, answerable, unanswerable)


def electronics_faq(fmt: str = "csv") -> Dataset:
    """The FAQ export uploaded alone (``faq.csv`` or ``faq.json``), with its English questions."""
    articles = _load_articles(ELECTRONICS / f"faq.{fmt}")
    first = 2 if fmt == "csv" else 1  # loader ids: faq-<row> counting the CSV header as row 1
    items = yaml.safe_load((ELECTRONICS / "queries" / "faq_en.yml").read_text(encoding="utf-8"))["queries"]
    answerable = [Query(i["q"], "en", frozenset([f"faq-{int(i['faq_row']) + first}"])) for i in items]
    _, unanswerable = _queries(ELECTRONICS / "queries", set())
    return Dataset(f"electronics FAQ ({fmt})", articles, answerable, [u for u in unanswerable if u.language == "en"])
