"""Fit the second-stage reranker (kb_index/rerank.py) on the first help centre only, and measure
it grouped by article (leave-articles-out), against the first stage alone.

    .venv/bin/python -m bench.kb.rerank_fit [--reuse] [--l2 1.0] [--features ...]

Model: conditional logit — the softmax over one question's candidate articles of ``w · x``, trained
to put the labelled article(s) first, L2-penalised, on standardised features. Training questions:
the answerable clothing queries of the calibration set-ups (bench/kb/calibrate.py) to which the
reranker applies (only labels among the candidates' questions: the set-ups without hand-written
questions, the whole help centre and 60% of it). Held out: the articles are split in ``FOLDS``
groups; each question is ranked by a model fitted without any question about its article.
Prints, per feature set and L2 strength, held-out recall@1 per set-up, first stage -> reranked.
"""

from __future__ import annotations

import argparse
import pickle
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from bench.kb.calibrate import WORK, Sample, setups
from bench.kb.datasets import clothing
from kb_index import KBConfig
from kb_index.answering import first_stage
from kb_index.decision import AnswerPolicy
from kb_index.rerank import FEATURES, applies, feature_matrix

FOLDS = 7
Group = tuple[np.ndarray, np.ndarray, Sample, bool]
CACHE = WORK / "rerank-samples.pkl"


def samples(reuse: bool) -> list[Sample]:
    if reuse and CACHE.exists():
        return pickle.loads(CACHE.read_bytes())
    out = setups(clothing(), KBConfig())
    CACHE.write_bytes(pickle.dumps(out))
    return out


def design(ss: Sequence[Sample], policy: AnswerPolicy) -> list[Group]:
    """Per answerable sample: candidate feature rows, which candidates are right, whether the
    reranker applies (kb_index/rerank.py ``applies``)."""
    out = []
    for s in ss:
        if not s.answerable or not s.evidence:
            continue
        ranked, cands = first_stage(s.evidence, policy)
        x = feature_matrix(cands, s.query.language)
        y = np.array([c.article_id in s.query.articles for c in cands])
        out.append((x, y, s, applies(cands)))
    return out


def fit(groups: Sequence[Group], cols: list[int], l2: float) -> dict[str, float]:
    """Conditional-logit weights on the raw features (standardisation folded in), fitted on the
    questions the reranker applies to."""
    usable = [(x[:, cols], y) for x, y, _, ok in groups if ok and y.any() and not y.all()]
    allx = np.vstack([x for x, _ in usable])
    mu, sd = allx.mean(axis=0), allx.std(axis=0) + 1e-9
    zs = [((x - mu) / sd, y) for x, y in usable]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = l2 * float(w @ w), 2 * l2 * w
        for z, y in zs:
            s = z @ w
            m = s.max()
            e = np.exp(s - m)
            p = e / e.sum()
            pos = p[y].sum()
            total -= float(np.log(pos + 1e-300))
            q = np.where(y, p / max(pos, 1e-300), 0.0)  # posterior over the right ones
            grad -= z.T @ (q - p)
        return total / len(zs), grad / len(zs)

    w = minimize(loss, np.zeros(len(cols)), jac=True, method="L-BFGS-B").x
    return {FEATURES[c]: float(v / s) for c, v, s in zip(cols, w, sd, strict=True)}


def top1(x: np.ndarray, y: np.ndarray, w: dict[str, float] | None, ok: bool = True) -> bool:
    if w is None or not ok:
        return bool(y[int(np.argmax(x[:, 0]))])  # first-stage score
    scores = x @ np.array([w.get(k, 0.0) for k in FEATURES])
    return bool(y[int(np.argmax(scores))])


def held_out(groups: Sequence[Group], cols: list[int], l2: float) -> dict[str, tuple[float, float]]:
    """(first stage, reranked) recall@1 per set-up (and its cross-lingual part), leave-articles-out."""
    ids = sorted({a for _, _, s, _ in groups for a in s.query.articles})
    random.Random(3).shuffle(ids)
    fold_of = {a: i % FOLDS for i, a in enumerate(ids)}
    fold = np.array([fold_of[min(s.query.articles)] for _, _, s, _ in groups])
    hits: dict[str, list[tuple[bool, bool]]] = {}
    for f in range(FOLDS):
        w = fit([g for g, k in zip(groups, fold, strict=True) if k != f], cols, l2)
        for (x, y, s, ok), k in zip(groups, fold, strict=True):
            if k != f:
                continue
            pair = (top1(x, y, None), top1(x, y, w, ok))
            hits.setdefault(s.setup, []).append(pair)
            if s.query.cross_lingual:
                hits.setdefault(s.setup + " cross", []).append(pair)
    return {k: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v]))) for k, v in sorted(hits.items())}


L2 = 1.0  # chosen by this module's comparison (bench/RESULTS.md)


def assign_held_out(ss: Sequence[Sample], policy: AnswerPolicy, l2: float = L2) -> dict[str, float]:
    """Give every sample (``Sample.rerank``) the reranker fitted without any question about its
    article (unanswerable ones: the first group's, they are never trained on); return the
    weights fitted on all questions (what ships as ``RERANK_WEIGHTS``)."""
    groups = design(ss, policy)
    cols = list(range(len(FEATURES)))
    ids = sorted({a for s in ss for a in s.query.articles})
    random.Random(3).shuffle(ids)
    fold_of = {a: i % FOLDS for i, a in enumerate(ids)}
    fold = np.array([fold_of[min(g[2].query.articles)] for g in groups])
    weights = [
        tuple(fit([g for g, k in zip(groups, fold, strict=True) if k != f], cols, l2).items()) for f in range(FOLDS)
    ]
    for s in ss:
        s.rerank = weights[fold_of[min(s.query.articles)]] if s.query.articles else weights[0]
    return fit(groups, cols, l2)


def report(name: str, r: dict[str, tuple[float, float]]) -> float:
    cells = " ".join(f"{k}={a:.3f}->{b:.3f}" for k, (a, b) in r.items())
    main = [b - a for k, (a, b) in r.items() if k in ("content", "content cross")]
    print(f"{name}: {cells}", flush=True)
    return float(np.mean(main))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="reuse the evidence collected by the last run")
    parser.add_argument("--l2", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--out", type=Path, help="write the weights fitted on all questions here (JSON)")
    args = parser.parse_args(argv)
    policy = AnswerPolicy(rerank=())
    groups = design(samples(args.reuse), policy)
    sets = {
        "all": list(range(len(FEATURES))),
        "no gaps": [i for i, k in enumerate(FEATURES) if not k.endswith("_gap")],
        "no lexical": [i for i, k in enumerate(FEATURES) if "lexical" not in k],
        "no same-language": [i for i, k in enumerate(FEATURES) if "same_language" not in k and "own_language" not in k],
    }
    for name, cols in sets.items():
        for l2 in args.l2:
            report(f"{name} l2={l2}", held_out(groups, cols, l2))
    if args.out:
        import json

        args.out.write_text(json.dumps(fit(groups, sets["all"], args.l2[0]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
