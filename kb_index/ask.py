"""``python -m kb_index ask``: the bot's decision for a list of questions, as JSON lines.

It builds the same :class:`~kb_index.answering.Answerer` the gateway does (the configured policy,
the index, the hand-written questions) so that ops can check a knowledge base before customers
do: which questions are answered, from which article, which get a clarifying question, which
are declined.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kb_index.answering import Answerer
from kb_index.config import answer_policy
from kb_index.kb import KnowledgeBase
from kb_index.questions import QuestionIndex, load_questions
from kb_index.text import detect_language

LANGUAGES = ("en", "zh", "ru")


class AskError(Exception):
    """Bad input to ``ask``; the message says what to fix."""


@dataclass(frozen=True)
class AskItem:
    query: str
    language: str | None


def _language(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    lang = str(value).strip().lower()
    lang = "zh" if lang.startswith("zh") else lang
    if lang not in LANGUAGES:
        raise AskError(f"{where}: unknown language {value!r}; use one of {', '.join(LANGUAGES)}")
    return lang


def read_queries(query: str | None, path: Path | None, language: str | None) -> list[AskItem]:
    """Questions from the argument or a file (see the ``--queries`` help)."""
    lang = _language(language, "--language")
    if (query is None) == (path is None):
        raise AskError("give one question as the argument or a file with --queries (not both)")
    if query is not None:
        if not query.strip():
            raise AskError("the question is empty")
        return [AskItem(query.strip(), lang)]
    assert path is not None
    try:
        raw = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AskError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AskError(f"{path}: cannot read it ({exc})") from None
    items = _parse(raw, path, lang)
    if not items:
        raise AskError(f"{path}: no questions in it")
    return items


def _parse(raw: str, path: Path, lang: str | None) -> list[AskItem]:
    suffix = path.suffix.lower()
    if suffix in (".yml", ".yaml"):
        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise AskError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        entries = data.get("queries") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise AskError(f"{path}: expected a list of questions or {{queries: [{{q, lang?}}]}}")
        out = []
        for i, e in enumerate(entries, start=1):
            text = e if isinstance(e, str) else e.get("q") or e.get("query") if isinstance(e, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise AskError(f"{path}: entry {i} has no question text (q)")
            item_lang = _language(e.get("lang") or e.get("language"), f"{path} entry {i}") if isinstance(e, dict) else None
            out.append(AskItem(text.strip(), lang or item_lang))
        return out
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AskError(f"{path} line {n}: not JSON ({exc.msg})") from None
            text = e.get("query") or e.get("q") if isinstance(e, dict) else e
            if not isinstance(text, str) or not text.strip():
                raise AskError(f"{path} line {n}: no question text (query)")
            item_lang = _language(e.get("language") or e.get("lang"), f"{path} line {n}") if isinstance(e, dict) else None
            out.append(AskItem(text.strip(), lang or item_lang))
        return out
    return [AskItem(line.strip(), lang) for line in raw.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def build_answerer(kb: KnowledgeBase, settings: Any, questions_dir: Path | None) -> Answerer:
    """The gateway's answerer: this index, the configured policy, the hand-written questions
    (their embeddings cached beside the index, in DATA_DIR/kb-questions for the default one)."""
    questions = None
    if questions_dir is not None:
        if not questions_dir.exists():
            raise AskError(f"{questions_dir}: no such questions folder (use --no-questions to go without)")
        questions = QuestionIndex(kb.embedder, cache_dir=kb.data_dir.parent / "kb-questions")
        questions.build(load_questions(questions_dir), known_articles={a.id for a in kb.articles()})
    return Answerer(kb, questions, answer_policy(settings))


def decide_all(kb: KnowledgeBase, items: list[AskItem], settings: Any, questions_dir: Path | None) -> list[dict[str, Any]]:
    answerer = build_answerer(kb, settings, questions_dir)
    rows = []
    for item in items:
        d = answerer.decide(item.query, item.language or detect_language(item.query))
        rows.append({
            "query": item.query, "outcome": d.outcome, "article_id": d.article_id,
            "candidates": [c.article_id for c in d.candidates],
            "confidence": None if d.confidence is None else round(float(d.confidence), 4),
        })  # fmt: skip
    return rows
