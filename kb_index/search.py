"""Ranking over one snapshot: language-corrected dense search, BM25, their fusion, and the
per-article evidence the answerer decides on.

Dense: one FAISS search with the centred query (kb_index/language_bias.py); each chunk's score is
shifted by the query's similarity to the mean chunk of the chunk's language, which the index
applies itself through the vectors' language dimensions (kb_index/dense.py). Every hit's vector
is read back to report its plain cosine too.

Fusion: ``score = adjusted + lexical_weight · bm25 / max bm25`` (the BM25 of this query's best
chunk scores 1). The weight was chosen by measurement (bench/RESULTS.md, ## Knowledge base: issue
14) instead of reciprocal rank fusion, which lowered recall. BM25 only matches text in the query's
language, so it can only favour articles that have a version in that language; it is therefore
fused only when the query's language covers at least ``lexical_min_coverage`` of the articles
(an English question on an English help centre), and ignored for a Chinese question on a mostly
English one, where it pushed Chinese versions of wrong articles over English-only right ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import faiss
import numpy as np

from kb_index import dense, lexical
from kb_index.snapshot import Snapshot
from settings import KbSettings

_KB = KbSettings()  # the defaults, written once in settings/sections.py (no environment read here)


@dataclass(frozen=True)
class SearchParams:
    candidates: int = 50  # depth of each ranked list (per language for dense)
    lexical_weight: float = _KB.lexical_weight
    lexical_min_coverage: float = _KB.lexical_min_coverage
    search_threads: int = 1
    # The same-language excess (Snapshot.language_excess) is taken off the query's own language
    # when that language covers less than this share of the articles (a Chinese question on a
    # mostly English help centre; not an English one, whose language covers every article).
    excess_max_coverage: float = 0.9
    excess_scale: float = 1.0  # share of the measured excess taken off (bench/kb/calibrate.py)


@dataclass(frozen=True)
class Scored:
    chunk_id: int
    score: float  # the mode's ranking score
    adjusted: float | None
    cosine: float | None
    lexical: float | None  # raw BM25
    dense_rank: int | None
    lexical_rank: int | None


@dataclass
class ArticleEvidence:
    """What the index knows about one candidate article for one query."""

    article_id: str
    passage: float = -9.0  # best chunk score (language-corrected, plus the fused BM25 part)
    passage_cosine: float = -1.0  # plain cosine of that chunk
    # Relative cosines: the plain cosine minus the query's cosine to the mean chunk (mean generic
    # question) of that chunk's (question's) language; a Chinese question's plain cosines to English
    # text are all lower, these are not (the answer decision weighs both kinds).
    passage_relative: float = -1.0  # relative cosine of that chunk
    lexical: float = 0.0  # normalised BM25 of the article's best chunk (0..1)
    questions: list[tuple[float, str]] = field(default_factory=list)  # (centred query · question, source), best first
    question_cosine: float = -1.0  # best plain cosine to one of its questions
    question_relative: float = -1.0  # best relative cosine to one of its questions
    best_question: str = ""
    # For the second-stage reranker (kb_index/rerank.py): every chunk's (score, plain cosine,
    # normalised BM25 — also when BM25 is not fused —, language), best first.
    chunks: list[tuple[float, float, float, str]] = field(default_factory=list)


def _dense(
    snap: Snapshot, params: SearchParams, q: np.ndarray, qa: np.ndarray, depth: int, languages: frozenset[str] | None,
    language: str | None,
) -> dict[int, tuple[float, float]]:  # fmt: skip
    """chunk id → (adjusted, cosine) of the best ``depth`` chunks by adjusted score: one search,
    the language shifts riding in the vectors' language dimensions (kb_index/dense.py)."""
    if snap.index is None or not snap.index.ntotal:
        return {}
    shifts = snap.shifts(qa, language, params.excess_max_coverage, params.excess_scale)
    selector = snap.language_filter(languages)[0] if languages is not None else None
    query = dense.shifted_query(qa, shifts, float(snap.manifest.get("language_scale", 1.0)))
    _, ids = dense.search(snap.index, query, min(depth, snap.index.ntotal), selector)
    found = ids[0][ids[0] >= 0].astype(np.int64)
    if not len(found):
        return {}
    vecs = dense.reconstruct(snap.index, found)[:, : len(q)]
    adjusted = vecs @ qa - shifts[snap.row_langs[snap.rows_of(found)]]
    return {cid: (a, c) for cid, a, c in zip(found.tolist(), adjusted.tolist(), (vecs @ q).tolist(), strict=True)}


def exact_scores(
    snap: Snapshot, params: SearchParams, q: np.ndarray, qa: np.ndarray, chunk_ids: np.ndarray, language: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted, cosine) of given chunks, read back from the index."""
    if not len(chunk_ids) or snap.index is None:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    vecs = dense.reconstruct(snap.index, chunk_ids)[:, : len(q)]
    shifts = snap.shifts(qa, language, params.excess_max_coverage, params.excess_scale)
    shift = shifts[snap.row_langs[snap.rows_of(chunk_ids)]]
    return (vecs @ qa - shift).astype(np.float32), (vecs @ q).astype(np.float32)


def lexical_weight(snap: Snapshot, params: SearchParams, language: str | None) -> float:
    if params.lexical_weight <= 0:
        return 0.0
    return params.lexical_weight if language is None or snap.coverage(language) >= params.lexical_min_coverage else 0.0


def rank(
    snap: Snapshot, params: SearchParams, mode: str, terms: list[str], q: np.ndarray | None, qa: np.ndarray | None,
    depth: int, languages: frozenset[str] | None, language: str | None, lexical_scores: np.ndarray | None = None,
) -> list[Scored]:  # fmt: skip
    """Chunks ranked for one query in ``mode`` (hybrid, dense, lexical). ``lexical_scores``: the
    BM25 scores of every row if the caller has them already."""
    if params.search_threads > 0:
        faiss.omp_set_num_threads(params.search_threads)
    row_mask = snap.language_filter(languages)[2] if languages is not None else None  # dead rows score 0 anyway
    dense_hits = _dense(snap, params, q, qa, depth, languages, language) if mode != "lexical" and q is not None and qa is not None else {}
    lex_hits: dict[int, float] = {}
    if mode != "dense" and snap.lexical.n_live:
        scores = lexical_scores if lexical_scores is not None else snap.lexical.scores(terms)
        if scores is not None:
            rows, vals = lexical.top(scores, depth, row_mask)
            lex_hits = {int(snap.row_ids[r]): float(v) for r, v in zip(rows, vals, strict=True)}
    d_order = sorted(dense_hits, key=lambda c: (-dense_hits[c][0], c))[:depth]
    d_rank = {c: i for i, c in enumerate(d_order, start=1)}
    l_rank = {c: i for i, c in enumerate(lex_hits, start=1)}
    if mode == "lexical":
        return [Scored(c, s, None, None, s, None, l_rank[c]) for c, s in lex_hits.items()]
    if mode == "dense":
        return [Scored(c, dense_hits[c][0], *dense_hits[c], None, d_rank[c], None) for c in d_order]
    only_lex = np.array([c for c in lex_hits if c not in dense_hits], np.int64)
    adj, cos = exact_scores(snap, params, q, qa, only_lex, language)  # type: ignore[arg-type]
    known = {c: dense_hits[c] for c in d_order} | {int(c): (float(a), float(b)) for c, a, b in zip(only_lex, adj, cos, strict=True)}
    w = lexical_weight(snap, params, language)
    top_lex = max(lex_hits.values(), default=0.0) or 1.0
    fused = [
        Scored(c, a + w * lex_hits.get(c, 0.0) / top_lex, a, cs, lex_hits.get(c), d_rank.get(c), l_rank.get(c))
        for c, (a, cs) in known.items()
    ]
    return sorted(fused, key=lambda s: (-s.score, s.chunk_id))


def article_evidence(
    snap: Snapshot, params: SearchParams, terms: list[str], q: np.ndarray, qa: np.ndarray, language: str | None,
    n_articles: int, extra: Sequence[str] = (),
) -> dict[str, ArticleEvidence]:  # fmt: skip
    """Evidence for the candidate articles of one query: the best ``n_articles`` by passage and by
    question, plus ``extra`` (e.g. the articles hand-written questions point at). Every
    candidate's scores are exact (computed over all its chunks and questions), not only those of
    the chunks that happened to be in the ranked lists."""
    bm25 = snap.lexical.scores(terms) if snap.lexical.n_live else None
    ranked = rank(snap, params, "hybrid", terms, q, qa, params.candidates, None, language, bm25)
    found = snap.chunks_article([s.chunk_id for s in ranked])
    candidates: list[str] = []
    for s in ranked:
        aid = found.get(s.chunk_id)
        if aid is not None and aid not in candidates:
            candidates.append(aid)
        if len(candidates) >= n_articles:
            break
    q_hits: dict[str, float] = {}
    if snap.questions is not None and snap.questions.ntotal:
        d, ids = dense.search(snap.questions, qa.reshape(1, -1), min(params.candidates, snap.questions.ntotal))
        for qid, score in zip(ids[0], d[0], strict=True):
            if qid >= 0:
                aid = snap.question_article_of(int(qid))
                if aid is not None and aid not in q_hits:
                    q_hits[aid] = float(score)
    for aid in sorted(q_hits, key=lambda a: -q_hits[a])[:n_articles]:
        if aid not in candidates:
            candidates.append(aid)
    candidates += [a for a in dict.fromkeys(extra) if a not in candidates and a in snap.article_languages]
    return _exact_evidence(snap, params, bm25, q, qa, language, candidates)


def _exact_evidence(
    snap: Snapshot, params: SearchParams, bm25: np.ndarray | None, q: np.ndarray, qa: np.ndarray, language: str | None, articles: list[str]
) -> dict[str, ArticleEvidence]:
    out = {a: ArticleEvidence(a) for a in articles}
    owners = snap.chunk_ids_of(articles)
    ids = np.array(sorted(owners), np.int64)
    adj, cos = exact_scores(snap, params, q, qa, ids, language)
    bm = np.zeros(len(ids), np.float32)
    w = lexical_weight(snap, params, language)
    if len(ids) and bm25 is not None:
        bm = bm25[snap.rows_of(ids)] / (float(bm25.max()) or 1.0)
    base = {lang: float(q @ mu) for lang, mu in snap.centroids.items()}
    for cid, a, c, b in zip(ids.tolist(), adj.tolist(), cos.tolist(), bm.tolist(), strict=True):
        aid, lang = owners[cid]
        ev = out[aid]
        score = a + w * b
        ev.chunks.append((score, c, b, lang))
        if score > ev.passage:
            ev.passage, ev.passage_cosine, ev.passage_relative, ev.lexical = score, c, c - base.get(lang, 0.0), b
    if snap.questions is not None:
        rows = snap.question_rows_of(articles)
        if rows:
            qids = np.array([r[0] for r in rows], np.int64)
            vecs = dense.reconstruct(snap.questions, qids)
            generic = {lang: float(q @ m) for lang, m in snap.query_means.items()}
            for (_, aid, source, text, lang), s, c in zip(rows, (vecs @ qa).tolist(), (vecs @ q).tolist(), strict=True):
                ev = out[aid]
                ev.questions.append((s, source))
                if c > ev.question_cosine:
                    ev.question_cosine, ev.best_question = c, text
                ev.question_relative = max(ev.question_relative, c - generic.get(lang, 0.0))
    for ev in out.values():
        ev.questions.sort(reverse=True)
        ev.chunks.sort(reverse=True)
    return out
