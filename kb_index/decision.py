"""How sure the bot is that the top article answers the question: a calibrated probability from
similarities and margins, independent of how many articles and questions there are.

Article score (what ranks the articles)::

    score = (Σ wᵢ·qᵢ over the article's best ``question_top_k`` questions + passage_weight · passage)
            / (Σ wᵢ + passage_weight)

question score = centred query · question vector (titles, FAQ questions, question headings,
hand-written and ops questions; e5 query side), weighted wᵢ = 1 for questions written the way
customers ask (hand-written, ops, drafts) and ``label_weight`` for labels (titles, headings, FAQ
question column); passage score = language-corrected cosine of its
best chunk plus the fused BM25 part (kb_index/search.py). An article with one question (its
title) and one with fifty are scored on the same scale (a weighted mean of similarities); the
passage weighs more when there are few questions, which is when they say least.

Confidence (whether to answer)::

    p = sigmoid(b + w1·score₁ + w2·(score₁ − score₂) + w3·question cosine₁ + w4·passage cosine₁
                + w5·passage margin₁ + w6·question margin₁ + w7·question relative₁ + w8·passage relative₁)

score₁/score₂: the top article (the second stage's first when it re-ordered them,
kb_index/rerank.py; then the margins may be negative) and the best other one; the cosines are the plain cosines of the top article's
closest question and chunk (how close in absolute terms, which separates unanswerable questions);
the relative ones are those minus the query's cosine to the mean chunk (mean generic question) of
that chunk's (question's) language: a Chinese question's plain cosines to English text are all
lower, which alone made the bot answer few cross-lingual questions; the part margins say whether the passages and the questions agree on the top article.
No softmax over the articles: adding articles changes p only through the margin to the runner-up.
The weights are fitted by logistic regression on held-out queries of the first help centre, in
several set-ups (no hand-written questions, 1, 3 and 12 per article and language, 60% of the
articles) by ``python -m bench.kb.calibrate``; the figures are in bench/RESULTS.md (## Knowledge
base: issue 14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from settings import KbSettings

_KB = KbSettings()  # the defaults, written once in settings/sections.py (no environment read here)

__all__ = ["AnswerPolicy", "Features", "article_score", "question_weight"]


@dataclass(frozen=True)
class AnswerPolicy:
    """Ranking weights and the calibrated decision; defaults from ``python -m bench.kb.calibrate``."""

    question_top_k: int = 5
    passage_weight: float = 2.0
    # Weight of a question taken from the content's labels (title, heading, FAQ question column)
    # against one written as a customer asks (hand-written, ops inbox, a draft's question).
    label_weight: float = 0.1
    # Logistic model of P(the top article is right): intercept, then the Features weights.
    bias: float = -22.45
    w_score: float = 8.46
    w_margin: float = 8.61
    w_question_cosine: float = 13.77
    w_passage_cosine: float = 10.47
    w_passage_margin: float = 11.96
    w_question_margin: float = 10.46
    w_question_relative: float = 7.36
    w_passage_relative: float = 14.66
    # Second-stage reranker (kb_index/rerank.py): None → its fitted RERANK_WEIGHTS; () → none.
    # The model above decides about whichever article it puts first.
    rerank: tuple[tuple[str, float], ...] | None = None
    threshold: float = _KB.answer_threshold  # answer at or above this probability (kb.answer_threshold)
    clarify_floor: float = _KB.clarify_floor  # below threshold, ask which article from this probability, else decline
    clarify_margin: float = _KB.clarify_margin  # articles offered: score within this of the top article's
    candidates: int = 3  # titles offered in a clarifying question
    max_chars: int = 480  # the quoted part of the chunk
    articles_considered: int = 10  # candidate articles per way of finding them (passage, question)

    def probability(self, f: Features) -> float:
        return logistic({k: getattr(self, k) for k in ("bias", *MODEL_WEIGHTS)}, f)

    def rerank_weights(self) -> dict[str, float]:
        if self.rerank is None:
            from kb_index.rerank import RERANK_WEIGHTS

            return RERANK_WEIGHTS
        return dict(self.rerank)

    def with_model(self, weights: dict[str, float]) -> AnswerPolicy:
        from dataclasses import replace

        return replace(self, **weights)


@dataclass(frozen=True)
class Features:
    score: float  # top article's score
    margin: float  # top score − second article's score (1.0 when there is no second article)
    question_cosine: float  # plain cosine of the query to the top article's closest question
    passage_cosine: float  # plain cosine of the query to the top article's best chunk
    passage_margin: float = 0.0  # its passage score − the best other article's (negative: another's passage is closer)
    question_margin: float = 0.0  # its question part − the best other article's
    question_relative: float = 0.0  # the closest question's relative cosine (kb_index/search.py)
    passage_relative: float = 0.0  # the best chunk's relative cosine

    def as_row(self) -> list[float]:
        """The values weighed by MODEL_WEIGHTS, in order."""
        return [self.score, self.margin, self.question_cosine, self.passage_cosine, self.passage_margin, self.question_margin,
                self.question_relative, self.passage_relative]  # fmt: skip


MODEL_WEIGHTS = ("w_score", "w_margin", "w_question_cosine", "w_passage_cosine", "w_passage_margin", "w_question_margin",
                 "w_question_relative", "w_passage_relative")  # fmt: skip


def logistic(weights: dict[str, float], f: Features) -> float:
    """sigmoid(bias + Σ weight · feature) over MODEL_WEIGHTS (a missing weight is 0)."""
    z = weights.get("bias", 0.0) + sum(weights.get(k, 0.0) * v for k, v in zip(MODEL_WEIGHTS, f.as_row(), strict=True))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


LABEL_SOURCES = frozenset({"title", "heading", "faq"})


def question_weight(source: str, policy: AnswerPolicy) -> float:
    return policy.label_weight if source in LABEL_SOURCES else 1.0


def article_score(questions: list[tuple[float, float]], passage: float, policy: AnswerPolicy) -> float:
    """Weighted mean of the article's best ``question_top_k`` questions ((score, weight), best
    first) and its passage score, which weighs ``passage_weight``: with only labels (a title)
    the passage decides more, with several questions written as customers ask, they do."""
    top = questions[: max(1, policy.question_top_k)]
    total = sum(w for _, w in top) + policy.passage_weight
    return (sum(s * w for s, w in top) + policy.passage_weight * passage) / total
