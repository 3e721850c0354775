"""Second-stage reranking of the candidate articles of one question.

The first stage (kb_index/decision.py ``article_score``) is a fixed weighted mean of question and
passage similarities. Here a linear model over richer evidence of each candidate — its best and
second chunk, the chunk's plain and relative cosines, BM25, whether the article has a version in
the question's language, its best label (title, heading) and hand-written question, and the same
values relative to the best other candidate — re-orders the candidates. It is a conditional logit
(softmax over one question's candidates) fitted by ``python -m bench.kb.calibrate`` on the first
help centre, grouped by article (a question is never scored by weights fitted on questions about
its article); the weights are ``RERANK_WEIGHTS``. Cost: a dot product per candidate (~20).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FEATURES", "RERANK_WEIGHTS", "CandidateEvidence", "applies", "feature_matrix", "rerank_scores"]


@dataclass(frozen=True)
class CandidateEvidence:
    """What the reranker reads of one candidate (built by kb_index/answering.py)."""

    article_id: str
    score: float  # first-stage article score
    passage: float
    question: float  # mean of the best question scores (the passage when none)
    passage_cosine: float
    passage_relative: float
    question_cosine: float
    question_relative: float
    chunks: Sequence[tuple[float, float, float, str]]  # (score, cosine, normalised BM25, language), best first
    question_scores: Sequence[tuple[float, str]]  # (score, source), best first


PER_CANDIDATE = (
    "score", "passage", "passage_second", "passage_cosine", "passage_relative", "question_cosine",
    "question_relative", "label_best", "hand_best", "lexical", "same_language", "own_language_passage",
)  # fmt: skip
RELATIVE = ("score", "passage", "passage_second", "label_best", "hand_best", "passage_relative", "own_language_passage")
FEATURES = PER_CANDIDATE + tuple(f"{k}_gap" for k in RELATIVE) + ("first_stage_top",)

LABELS = frozenset({"title", "heading", "faq"})


def _row(c: CandidateEvidence, language: str) -> list[float]:
    chunks = list(c.chunks)
    second = chunks[1][0] if len(chunks) > 1 else c.passage
    labels = [s for s, src in c.question_scores if src in LABELS]
    hand = [s for s, src in c.question_scores if src not in LABELS]
    own = [ch[0] for ch in chunks if ch[3] == language]
    return [
        c.score, c.passage, (c.passage + second) / 2, c.passage_cosine, c.passage_relative, c.question_cosine, c.question_relative,
        max(labels) if labels else c.passage, max(hand) if hand else c.question, max((ch[2] for ch in chunks), default=0.0),
        1.0 if own else 0.0, max(own) if own else c.passage,
    ]  # fmt: skip


def feature_matrix(cands: Sequence[CandidateEvidence], language: str) -> np.ndarray:
    """One row per candidate: its own values, then each RELATIVE value minus the best other
    candidate's (positive: it leads), then whether the first stage ranked it first."""
    if not cands:
        return np.zeros((0, len(FEATURES)))
    own = np.array([_row(c, language) for c in cands], dtype=np.float64)
    cols = [PER_CANDIDATE.index(k) for k in RELATIVE]
    rel = own[:, cols]
    gaps = np.zeros_like(rel)
    for i in range(len(cands)):
        others = np.delete(rel, i, axis=0)
        gaps[i] = rel[i] - (others.max(axis=0) if len(others) else rel[i] - 1.0)
    first = np.zeros((len(cands), 1))
    first[int(np.argmax(own[:, 0])), 0] = 1.0
    return np.hstack([own, gaps, first])


# Fitted by ``python -m bench.kb.calibrate`` on the clothing queries (bench/RESULTS.md, ## Knowledge
# base: issue 14; conditional logit, L2 1.0 on standardised features); empty: no reranking.
RERANK_WEIGHTS: dict[str, float] = {
    "score": 4.3657,
    "passage": -11.7828,
    "passage_second": 47.5698,
    "passage_cosine": 12.634,
    "passage_relative": 54.936,
    "question_cosine": 8.8658,
    "question_relative": 28.8856,
    "label_best": -6.514,
    "hand_best": -1.4266,
    "lexical": 2.4776,
    "same_language": -1.6772,
    "own_language_passage": 23.4066,
    "score_gap": 5.4191,
    "passage_gap": -6.1776,
    "passage_second_gap": 17.153,
    "label_best_gap": -11.1877,
    "hand_best_gap": 16.1569,
    "passage_relative_gap": -29.3264,
    "own_language_passage_gap": 2.3663,
    "first_stage_top": 0.6227,
}


def applies(cands: Sequence[CandidateEvidence]) -> bool:
    """Only questions taken from the content (labels) among the candidates: no hand-written, ops
    or draft question, with which the first stage already ranks well (recall@1 0.96 with 12 per
    article and language) and the reranker, fitted on both, lowered it."""
    return bool(cands) and all(src in LABELS for c in cands for _, src in c.question_scores)


def rerank_scores(
    cands: Sequence[CandidateEvidence], language: str, weights: dict[str, float] | None = None
) -> np.ndarray | None:
    """The reranker's score of each candidate (higher first), or None: no weights, or questions
    written as customers ask among the candidates (``applies``)."""
    w = RERANK_WEIGHTS if weights is None else weights
    if not w or not applies(cands):
        return None
    x = feature_matrix(cands, language)
    return x @ np.array([w.get(k, 0.0) for k in FEATURES])
