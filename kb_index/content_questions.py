"""Questions an article answers, taken from the article itself.

A team that uploads its help centre writes no questions, but its content already holds some: an
FAQ table's question column (the loader keeps it in ``Article.questions``), ``questions:`` in a
Markdown file's front matter, the title, headings phrased as questions ("Do I need to send it
back?", "退货运费谁出？", "Сколько ждать возврата?"), and, for an article published from a KB draft
(``ops/drafts.py``), the customer's question it was written for. They are indexed on e5's query
side beside the chunks (``KnowledgeBase``), where a customer's question meets them as a question
rather than as prose; hand-written questions (``help_centre/questions``) and questions from the
ops inbox (``ops/kb_questions.py``) are added to them by the answerer.
"""

from __future__ import annotations

import re

from kb_index.chunking import _sections
from kb_index.models import Article

__all__ = ["content_questions", "is_question"]

MAX_CHARS = 300


def is_question(text: str) -> bool:
    """A heading phrased as a question: it ends with a question mark. (Headings that only start
    with a question word, "How to cancel", "What counts", are section names; as questions they
    lowered recall@1 on the first help centre, bench/RESULTS.md ## Knowledge base: issue 14.)"""
    return text.strip().endswith(("?", "？"))


def content_questions(article: Article) -> list[tuple[str, str]]:
    """``(source, question)`` pairs, unique by text: ``faq`` (the article's own questions),
    ``title``, ``heading`` (headings that are questions, prefixed with the title), ``draft`` (the customer question of an
    article published from a KB draft)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(source: str, text: str) -> None:
        t = " ".join(text.split())[:MAX_CHARS]
        key = t.lower().rstrip("?？. ")
        if t and key not in seen:
            seen.add(key)
            out.append((source, t))

    for q in article.questions:
        add("faq", q)
    add("title", article.title)
    for path, _ in _sections(article.text):
        if path and is_question(path[-1]) and path[-1].strip() != article.title.strip():
            add("heading", f"{article.title}: {path[-1]}")  # the title gives "Still not working?" its subject
    if "from-handoff" in article.tags:
        first = _draft_question(article)
        if first:
            add("draft", first)
    return out


def _draft_question(article: Article) -> str:
    """``ops/drafts.py`` publishes ``# title``, the customer's question, then the agent's answer."""
    body = re.sub(r"^\s*#\s+.*\n", "", article.text, count=1).strip()
    first = re.split(r"\n\s*\n", body, maxsplit=1)[0].strip()
    return first if first and first != body and len(first) <= MAX_CHARS else ""
