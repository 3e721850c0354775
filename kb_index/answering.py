"""From a customer's question to what the bot says: answer, clarify, or decline.

The decision lives here (not in the Rasa action) so that the quality benchmark and ``python -m
kb_index ask`` measure exactly what customers get.

Which article: every article that the passage search or a question points at is scored from its
questions (taken from the content: titles, FAQ questions, question headings, drafts; plus
hand-written and ops ones when there are) and its best passage, all compared with the
language-centred query so that a Chinese or Russian question finds an English-only article
(kb_index/language_bias.py, kb_index/decision.py). When the candidates have only labels as
questions (titles, headings, FAQ questions: a help centre uploaded without questions written as
customers ask), a second stage re-orders them from richer evidence (kb_index/rerank.py).
How sure: a probability calibrated on held-out queries from the top score, its margin over the
runner-up and how close the closest question and chunk are. At or above the threshold the bot
answers; from the clarify floor it asks which of the closest articles is meant; below, it declines.
Which text: the article's chunk closest to the question, in the customer's language when that
version exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from kb_index.decision import AnswerPolicy, Features, article_score, question_weight
from kb_index.kb import KnowledgeBase
from kb_index.models import ArticleInfo, Chunk
from kb_index.questions import QuestionIndex
from kb_index.rerank import CandidateEvidence, rerank_scores
from kb_index.text import detect_language

__all__ = ["AnswerPolicy", "Answerer", "Candidate", "KbDecision", "Ranked", "snippet"]

Outcome = Literal["answered", "clarified", "declined"]


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
    score: float  # the article score (kb_index/decision.py)
    passage: float
    question: float  # mean of its best question scores (the passage score when it has none)
    question_cosine: float
    passage_cosine: float
    question_relative: float = -1.0
    passage_relative: float = -1.0
    rerank: float = 0.0  # the second stage's score (kb_index/rerank.py); 0 without it
    reranked: bool = False  # the second stage ordered the candidates


@dataclass(frozen=True)
class Evidence:
    article_id: str
    question_scores: list[tuple[float, str]]  # (score, source), best first; source "hand": written for it
    passage: float
    question_cosine: float
    passage_cosine: float
    question_relative: float = -1.0  # relative cosines (kb_index/search.py, ArticleEvidence)
    passage_relative: float = -1.0
    chunks: tuple[tuple[float, float, float, str], ...] = ()  # (score, cosine, BM25, language), best first


def rank_evidence(evidence: list[Evidence], policy: AnswerPolicy, language: str | None = None) -> list[Ranked]:
    """Candidates by first-stage score, then, with a ``language`` and reranker weights, by the
    second stage's (kb_index/rerank.py)."""
    ranked, cands = first_stage(evidence, policy)
    second = rerank_scores(cands, language, policy.rerank_weights()) if language is not None else None
    if second is None:
        return sorted(ranked, key=lambda r: (-r.score, r.article_id))
    ranked = [replace(r, rerank=float(s), reranked=True) for r, s in zip(ranked, second, strict=True)]
    return sorted(ranked, key=lambda r: (-r.rerank, -r.score, r.article_id))


def first_stage(evidence: list[Evidence], policy: AnswerPolicy) -> tuple[list[Ranked], list[CandidateEvidence]]:
    """Each candidate's first-stage score, and what the reranker reads of it (in evidence order)."""
    ranked, cands = [], []
    for e in evidence:
        weighted = [(s, question_weight(src, policy)) for s, src in e.question_scores]
        top = [s for s, _ in weighted[: max(1, policy.question_top_k)]]
        question = sum(top) / len(top) if top else e.passage
        score = article_score(weighted, e.passage, policy)
        ranked.append(Ranked(e.article_id, score, e.passage, question,
                             e.question_cosine, e.passage_cosine, e.question_relative, e.passage_relative))  # fmt: skip
        cands.append(CandidateEvidence(e.article_id, score, e.passage, question, e.passage_cosine, e.passage_relative,
                                       e.question_cosine, e.question_relative, e.chunks, e.question_scores))  # fmt: skip
    return ranked, cands


def features_of(ranked: list[Ranked]) -> Features | None:
    """The decision inputs of the first article of ``ranked`` against the others."""
    if not ranked:
        return None
    top, rest = ranked[0], ranked[1:]
    if not rest:
        return Features(
            top.score, 1.0, top.question_cosine, top.passage_cosine, 1.0, 1.0, top.question_relative, top.passage_relative
        )  # fmt: skip
    return Features(
        top.score, top.score - max(r.score for r in rest), top.question_cosine, top.passage_cosine,
        top.passage - max(r.passage for r in rest), top.question - max(r.question for r in rest),
        top.question_relative, top.passage_relative,
    )  # fmt: skip


@dataclass(frozen=True)
class Assessment:
    """The ranking of one query and the decision inputs of its top article."""

    ranked: list[Ranked]
    features: Features | None
    probability: float


class Answerer:
    """Stateless over a live KnowledgeBase (which swaps snapshots itself) and an optional index
    of hand-written questions."""

    def __init__(self, kb: KnowledgeBase, questions: QuestionIndex | None = None, policy: AnswerPolicy | None = None):
        self.kb = kb
        self.questions = questions
        self.policy = policy or AnswerPolicy()

    def rank(self, query: str, language: str | None = None) -> list[Ranked]:
        """Articles for ``query``, most likely first (what the benchmark scores)."""
        return self.assess(query, language).ranked

    def assess(self, query: str, language: str | None = None, qvec: np.ndarray | None = None) -> Assessment:
        lang = language or detect_language(query)
        q = self.kb.embedder.embed_queries([query])[0] if qvec is None else qvec
        ranked = self._rank(query, q, lang)
        f = features_of(ranked)
        return Assessment(ranked, f, self.policy.probability(f) if f is not None else 0.0)

    def decide(self, query: str, language: str) -> KbDecision:
        q = self.kb.embedder.embed_queries([query])[0]
        a = self.assess(query, language, q)
        if not a.ranked:
            return KbDecision("declined", query, language, None)
        p = self.policy
        versions = self._versions()
        top = a.ranked[0]
        answered = a.probability >= p.threshold
        close = [r for r in a.ranked[: p.candidates + 1] if r.score >= top.score - p.clarify_margin]
        if answered:
            alternatives = [self._candidate(r, language, versions, a.probability) for r in close[1:][: p.candidates]]
            return self._answer(query, q, language, top.article_id, a.probability, alternatives, versions)
        if a.probability >= p.clarify_floor:
            candidates = [self._candidate(r, language, versions, a.probability) for r in close[: p.candidates]]
            return KbDecision("clarified", query, language, a.probability, candidates=candidates)
        return KbDecision("declined", query, language, a.probability)

    def decide_for_article(self, query: str, language: str, article_id: str) -> KbDecision:
        """The customer chose an article from a clarifying question: quote its chunk closest to the query."""
        versions = self._versions()
        if not any(a == article_id for a, _ in versions):
            return KbDecision("declined", query, language, None)
        query = query.strip() or article_id.replace("-", " ")  # a pick without a question: the article's gist
        q = self.kb.embedder.embed_queries([query])[0]
        return self._answer(query, q, language, article_id, None, [], versions)

    # --- ranking ---------------------------------------------------------------------------
    def _versions(self) -> dict[tuple[str, str], ArticleInfo]:
        return {(a.id, a.language): a for a in self.kb.articles()}

    def evidence(self, query: str, language: str, q: np.ndarray) -> list[Evidence]:
        """Each candidate article's question scores (its own and hand-written ones merged) and
        passage score: what the ranking and the decision are computed from."""
        p = self.policy
        qa = self.kb.centre_query(q, language)
        has_hand = self.questions is not None and self.questions.size
        hand = self.questions.match(q, qa, language_means=self.kb.language_means()) if has_hand else {}  # type: ignore[union-attr]
        extra = sorted(hand, key=lambda a: -hand[a].scores[0])[: p.articles_considered]
        found = self.kb.evidence(query, q, language, n_articles=p.articles_considered, extra_articles=extra)
        out = []
        for aid, ev in found.items():
            scores, q_cos, q_rel = list(ev.questions), ev.question_cosine, ev.question_relative
            if aid in hand:
                scores += [(s, "hand") for s in hand[aid].scores]
                q_cos, q_rel = max(q_cos, hand[aid].best_cosine), max(q_rel, hand[aid].best_relative)
            scores.sort(reverse=True)
            out.append(Evidence(aid, scores, ev.passage, q_cos, ev.passage_cosine, q_rel, ev.passage_relative, tuple(ev.chunks)))
        return out

    def _rank(self, query: str, q: np.ndarray, language: str) -> list[Ranked]:
        return rank_evidence(self.evidence(query, language, q), self.policy, language)

    # --- answer text -----------------------------------------------------------------------
    def _answer(
        self, query: str, q: np.ndarray, language: str, article_id: str, confidence: float | None,
        alternatives: list[Candidate], versions: dict[tuple[str, str], ArticleInfo],
    ) -> KbDecision:  # fmt: skip
        version = language if (article_id, language) in versions else self._fallback_language(article_id, versions)
        chunk = self.kb.best_chunk(article_id, version, q)
        if chunk is None:
            return KbDecision("declined", query, language, confidence)
        return KbDecision(
            "answered", query, language, confidence, chunk=chunk, text=snippet(chunk.text, self.policy.max_chars),
            other_language=chunk.language != language, candidates=alternatives,
        )  # fmt: skip

    @staticmethod
    def _fallback_language(article_id: str, versions: dict[tuple[str, str], ArticleInfo]) -> str:
        langs = sorted(lang for a, lang in versions if a == article_id)
        return "en" if "en" in langs else langs[0]

    def _candidate(self, r: Ranked, language: str, versions: dict[tuple[str, str], ArticleInfo], confidence: float) -> Candidate:
        """A clarifying button: the title in the customer's language when that version exists."""
        info = versions.get((r.article_id, language)) or versions[(r.article_id, self._fallback_language(r.article_id, versions))]
        return Candidate(info.id, info.language, info.title, info.url, confidence)


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
