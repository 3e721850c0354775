"""From a customer's question to what the bot says: answer, clarify, or decline.

The decision lives here (not in the Rasa action) so that the quality benchmark measures exactly
what customers get: ``bench/kb/quality.py`` calls :class:`Answerer` with the shipped policy.

Which article: the question index (``kb_index/questions.py``: questions each article answers, in
three languages) ranks articles by a classifier probability; it beat passage search by a wide
margin on our query set, above all for Chinese and Russian questions about English-only articles
(bench/RESULTS.md, ## KB quality). Articles without questions (e.g. uploaded through the admin
API) are found by the passage search (FAISS + BM25), answered only when its cosine is high.
How sure: the probability of the top article; below the threshold the bot asks which of the
closest articles is meant, or declines when none is close.
Which text: the article's chunk closest to the question, in the customer's language when that
version exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kb_index.kb import KnowledgeBase
from kb_index.models import ArticleInfo, Chunk
from kb_index.questions import QuestionIndex

__all__ = ["AnswerPolicy", "Answerer", "Candidate", "KbDecision", "Ranked", "snippet"]

Outcome = Literal["answered", "clarified", "declined"]


@dataclass(frozen=True)
class AnswerPolicy:
    """Shipped values are chosen from the table in bench/RESULTS.md (## KB quality)."""

    threshold: float = 0.30  # classifier probability of the top article at or above which the bot answers
    # ...and the query must be this close (cosine) to one of that article's questions: the classifier
    # spreads probability over the articles it knows even for a question about something else.
    min_similarity: float = 0.86
    clarify_floor: float = 0.05  # articles offered in a clarifying question need at least this
    clarify_min_similarity: float = 0.84  # ...and this cosine: no "did you mean" about unrelated articles
    passage_threshold: float = 0.88  # cosine for answering from an article that has no questions
    candidates: int = 3  # titles offered in a clarifying question
    max_chars: int = 480  # the quoted part of the chunk
    search_k: int = 12


@dataclass(frozen=True)
class Candidate:
    article_id: str
    language: str
    title: str
    url: str
    confidence: float


@dataclass(frozen=True)
class KbDecision:
    outcome: Outcome
    query: str
    language: str
    confidence: float | None
    chunk: Chunk | None = None  # the chunk quoted (answered only)
    text: str = ""  # the quoted snippet
    other_language: bool = False  # no version of the article in the customer's language
    candidates: list[Candidate] = field(default_factory=list)  # clarifying titles, or alternatives

    @property
    def article_id(self) -> str | None:
        return self.chunk.article_id if self.chunk else None


@dataclass(frozen=True)
class Ranked:
    article_id: str
    confidence: float  # classifier probability, or passage cosine for articles without questions
    by_questions: bool = True
    similarity: float = 0.0  # best cosine to one of the article's questions (or its passage)


class Answerer:
    """Stateless over a live KnowledgeBase (which swaps snapshots itself) and a QuestionIndex."""

    def __init__(self, kb: KnowledgeBase, questions: QuestionIndex | None = None, policy: AnswerPolicy | None = None):
        self.kb = kb
        self.questions = questions
        self.policy = policy or AnswerPolicy()

    def rank(self, query: str) -> list[Ranked]:
        """Articles for ``query``, most likely first (what the benchmark scores)."""
        return self._rank(query, self.kb.embedder.embed_queries([query])[0], self._versions())

    def answers(self, top: Ranked) -> bool:
        p = self.policy
        if top.by_questions:
            return top.confidence >= p.threshold and top.similarity >= p.min_similarity
        return top.confidence >= p.passage_threshold

    def decide(self, query: str, language: str) -> KbDecision:
        qvec = self.kb.embedder.embed_queries([query])[0]
        versions = self._versions()
        ranked = self._rank(query, qvec, versions)
        if not ranked:
            return KbDecision("declined", query, language, None)
        top = ranked[0]
        p = self.policy
        answered = self.answers(top)
        rest = ranked[1:] if answered else ranked
        candidates = [
            self._candidate(r, language, versions) for r in rest[: p.candidates]
            if r.confidence >= p.clarify_floor and r.similarity >= p.clarify_min_similarity
        ]
        if answered:
            return self._answer(query, qvec, language, top.article_id, top.confidence, candidates, versions)
        return KbDecision("clarified" if candidates else "declined", query, language, top.confidence, candidates=candidates)

    def decide_for_article(self, query: str, language: str, article_id: str) -> KbDecision:
        """The customer chose an article from a clarifying question: quote its chunk closest to the query."""
        versions = self._versions()
        if not any(a == article_id for a, _ in versions):
            return KbDecision("declined", query, language, None)
        query = query.strip() or article_id.replace("-", " ")  # a pick without a question: the article's gist
        qvec = self.kb.embedder.embed_queries([query])[0]
        return self._answer(query, qvec, language, article_id, None, [], versions)

    # --- ranking ---------------------------------------------------------------------------
    def _versions(self) -> dict[tuple[str, str], ArticleInfo]:
        return {(a.id, a.language): a for a in self.kb.articles()}

    def _with_questions(self) -> set[str]:
        return set(self.questions.articles) if self.questions is not None else set()

    def _rank(self, query: str, qvec: np.ndarray, versions: dict[tuple[str, str], ArticleInfo]) -> list[Ranked]:
        known = {a for a, _ in versions}
        ranked: list[Ranked] = []
        if self.questions is not None:
            ranked = [
                Ranked(s.article_id, s.probability, similarity=s.similarity)
                for s in self.questions.scores(qvec) if s.article_id in known
            ]
        covered = self._with_questions()
        # Articles the question index does not know: by passage cosine, placed among the others.
        seen: set[str] = set()
        for hit in self.kb.search(query, self.policy.search_k, mode="hybrid", query_vector=qvec):
            article = hit.chunk.article_id
            if article in covered or article in seen:
                continue
            seen.add(article)
            cosine = hit.dense_score or 0.0
            ranked.append(Ranked(article, cosine, by_questions=False, similarity=cosine))
        if not covered:
            return sorted(ranked, key=lambda r: -r.confidence)
        return self._merge(ranked, covered)

    def _merge(self, ranked: list[Ranked], covered: set[str]) -> list[Ranked]:
        """Question-ranked articles keep their order; a passage-only article goes first only when
        its cosine clears the passage threshold (otherwise it follows the question-ranked ones)."""
        by_questions = [r for r in ranked if r.article_id in covered]
        by_passage = [r for r in ranked if r.article_id not in covered]
        strong = [r for r in by_passage if r.confidence >= self.policy.passage_threshold]
        weak = [r for r in by_passage if r.confidence < self.policy.passage_threshold]
        return strong + by_questions + weak

    # --- answer text -----------------------------------------------------------------------
    def _answer(
        self, query: str, qvec: np.ndarray, language: str, article_id: str, confidence: float | None,
        alternatives: list[Candidate], versions: dict[tuple[str, str], ArticleInfo],
    ) -> KbDecision:
        version = language if (article_id, language) in versions else self._fallback_language(article_id, versions)
        chunk = self._best_chunk(query, qvec, article_id, version)
        if chunk is None:
            return KbDecision("declined", query, language, confidence)
        return KbDecision(
            "answered", query, language, confidence, chunk=chunk, text=snippet(chunk.text, self.policy.max_chars),
            other_language=chunk.language != language, candidates=alternatives,
        )

    @staticmethod
    def _fallback_language(article_id: str, versions: dict[tuple[str, str], ArticleInfo]) -> str:
        langs = sorted(lang for a, lang in versions if a == article_id)
        return "en" if "en" in langs else langs[0]

    def _best_chunk(self, query: str, qvec: np.ndarray, article_id: str, language: str) -> Chunk | None:
        for hit in self.kb.search(query, 200, mode="dense", languages=[language], query_vector=qvec):
            if hit.chunk.article_id == article_id:
                return hit.chunk
        chunks = self.kb.article_chunks(article_id, language)  # not among the closest: its opening
        return chunks[0] if chunks else None

    def _candidate(self, r: Ranked, language: str, versions: dict[tuple[str, str], ArticleInfo]) -> Candidate:
        """A clarifying button: the title in the customer's language when that version exists."""
        info = versions.get((r.article_id, language)) or versions[(r.article_id, self._fallback_language(r.article_id, versions))]
        return Candidate(info.id, info.language, info.title, info.url, r.confidence)


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+.*$", re.MULTILINE)
_MARKUP = re.compile(r"(\*\*|__|`|^\s*[-*+]\s+)", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t:|-]*-{3,}[ \t:|-]*\|?[ \t]*$", re.MULTILINE)


def _table_row(match: re.Match[str]) -> str:
    cells = [c.strip() for c in match.group(0).strip().strip("|").split("|")]
    return cells[0] + (": " + ", ".join(c for c in cells[1:] if c) if len(cells) > 1 else "")


def snippet(text: str, max_chars: int) -> str:
    """The chunk as plain text (no headings, emphasis or table pipes), cut at a sentence end
    within ``max_chars``: chat bubbles show text, not Markdown."""
    body = _TABLE_RULE.sub("", _HEADING.sub("", text))
    body = re.sub(r"^[ \t]*\|.*\|[ \t]*$", _table_row, body, flags=re.MULTILINE)
    body = _MARKUP.sub("", body)
    body = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", body)  # links: keep the words
    body = re.sub(r"\n{2,}", "\n", body).strip()
    if len(body) <= max_chars:
        return body
    cut = body[:max_chars]
    ends = [m.start() for m in _SENTENCE_END.finditer(cut) if m.start() > max_chars // 3]
    return (cut[: ends[-1]] if ends else cut.rstrip() + "…").strip()
