"""The second-stage reranker (kb_index/rerank.py) and how the answerer uses it
(kb_index/answering.py rank_evidence): pure functions over evidence, no index."""

from __future__ import annotations

import numpy as np
import pytest

from kb_index.answering import Evidence, features_of, rank_evidence
from kb_index.decision import AnswerPolicy
from kb_index.rerank import FEATURES, RERANK_WEIGHTS, CandidateEvidence, applies, feature_matrix, rerank_scores


def _evidence(aid: str, passage: float, title: float, *, lang: str = "en", hand: float | None = None) -> Evidence:
    questions = [(title, "title")] + ([(hand, "hand")] if hand is not None else [])
    chunks = ((passage, passage + 0.5, 0.0, lang), (passage - 0.05, passage + 0.45, 0.0, lang))
    return Evidence(
        aid, sorted(questions, reverse=True), passage, title + 0.5, passage + 0.5, 0.1, passage + 0.05, chunks
    )


# The first stage puts "a" first (its title is much closer); the second stage, weighing only the
# best chunk's relative cosine here, puts "b" first (its chunk is closer).
A = _evidence("a", passage=0.10, title=0.90)
B = _evidence("b", passage=0.12, title=0.05)
PASSAGE_ONLY = (("passage_relative", 1.0),)


def test_first_stage_alone_without_reranker_weights() -> None:
    ranked = rank_evidence([A, B], AnswerPolicy(rerank=()), "en")
    assert [r.article_id for r in ranked] == ["a", "b"]
    assert not ranked[0].reranked


def test_reranker_reorders_the_candidates() -> None:
    ranked = rank_evidence([A, B], AnswerPolicy(rerank=PASSAGE_ONLY), "en")
    assert [r.article_id for r in ranked] == ["b", "a"]
    assert ranked[0].reranked and ranked[0].rerank > ranked[1].rerank
    f = features_of(ranked)
    assert f is not None and f.score == ranked[0].score
    # the first stage preferred "a": the decision sees a negative score margin
    assert f.margin == pytest.approx(ranked[0].score - ranked[1].score) and f.margin < 0


def test_reranker_stays_out_when_a_candidate_has_questions_written_as_customers_ask() -> None:
    """With hand-written (ops, draft) questions the first stage ranks well already (0.96 on the
    help centre); the reranker, fitted on both kinds, lowered it."""
    with_hand = _evidence("b", passage=0.12, title=0.05, hand=0.0)
    ranked = rank_evidence([A, with_hand], AnswerPolicy(rerank=PASSAGE_ONLY), "en")
    assert [r.article_id for r in ranked] == ["a", "b"] and not ranked[0].reranked
    no_language = rank_evidence([A, B], AnswerPolicy(rerank=PASSAGE_ONLY), None)  # no language: first stage
    assert no_language[0].article_id == "a"


def _cand(aid: str, score: float, passage: float, langs: tuple[str, ...]) -> CandidateEvidence:
    chunks = [(passage - 0.01 * i, 0.8, 0.2 * i, lang) for i, lang in enumerate(langs)]
    return CandidateEvidence(aid, score, passage, score, 0.8, 0.1, 0.7, 0.05, chunks, [(score, "title")])


def test_feature_matrix_gaps_and_own_language() -> None:
    cands = [_cand("a", 0.30, 0.20, ("en",)), _cand("b", 0.25, 0.22, ("en", "zh")), _cand("c", 0.10, 0.05, ("zh",))]
    x = feature_matrix(cands, "zh")
    assert x.shape == (3, len(FEATURES))
    col = {k: i for i, k in enumerate(FEATURES)}
    assert list(x[:, col["same_language"]]) == [0.0, 1.0, 1.0]
    assert x[0, col["score_gap"]] == pytest.approx(0.05) and x[1, col["score_gap"]] == pytest.approx(-0.05)
    assert list(x[:, col["first_stage_top"]]) == [1.0, 0.0, 0.0]
    assert x[1, col["passage_second"]] == pytest.approx((0.22 + 0.21) / 2)
    assert x[1, col["lexical"]] == pytest.approx(0.2)
    assert x[1, col["own_language_passage"]] == pytest.approx(0.21)  # its Chinese chunk, not its better English one
    assert x[0, col["own_language_passage"]] == pytest.approx(0.20)  # no Chinese version: its best chunk
    one = feature_matrix(cands[:1], "zh")
    assert one[0, col["score_gap"]] == pytest.approx(1.0)  # alone: leads by a fixed margin


def test_applies_only_to_label_questions() -> None:
    labels = _cand("a", 0.3, 0.2, ("en",))
    assert applies([labels])
    hand = CandidateEvidence("b", 0.3, 0.2, 0.3, 0.8, 0.1, 0.7, 0.05, [(0.2, 0.8, 0.0, "en")], [(0.4, "ops")])
    assert not applies([labels, hand]) and not applies([])
    assert rerank_scores([labels, hand], "en", {"score": 1.0}) is None
    assert rerank_scores([labels], "en", {}) is None


def test_shipped_weights_name_only_known_features() -> None:
    assert RERANK_WEIGHTS and set(RERANK_WEIGHTS) <= set(FEATURES)
    assert all(np.isfinite(v) for v in RERANK_WEIGHTS.values())
    assert AnswerPolicy().rerank_weights() is RERANK_WEIGHTS
