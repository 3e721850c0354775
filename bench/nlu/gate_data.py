"""Offline runs of the real E5IntentClassifier on cached embeddings (no Rasa graph, no entity
extractors): what bench.nlu.gate_fit and bench.nlu.crossval train and score.

The component class itself is trained and asked for its scores (``E5IntentClassifier.predict``),
on the same e5 vectors the E5Featurizer gives it (order ids and emails as placeholders), so the
figures are the live pipeline's intent figures (checked: CLINC150 seed 0, in-scope accuracy and
fallback figures equal to the live run's). Embeddings are kept on disk between runs
(bench/out/nlu/emb/<prefix>.npz): a CLINC150 run embeds ~13k texts per view once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.nlu import data as D

os.environ["RASA_TELEMETRY_ENABLED"] = "false"  # no data leaves the machine
EMB_DIR = D.ROOT / "bench" / "out" / "nlu" / "emb"
PREFIXES = ("query", "passage")
HELP_QUESTIONS = {lang: D.ROOT / "help_centre" / "questions" / f"{lang}.yml" for lang in ("en", "zh", "ru")}


# ---------------------------------------------------------------- embeddings
def load_embeddings(directory: Path = EMB_DIR) -> int:
    """Fills the E5Featurizer's in-process cache from disk; returns the number of vectors."""
    from bot.components.e5_featurizer import E5_CACHE

    E5_CACHE.max_size = 10**7
    n = 0
    for prefix in PREFIXES:
        path = directory / f"{prefix}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                for text, vec in zip(z["texts"], z["vecs"], strict=True):
                    E5_CACHE._cache[(prefix, str(text))] = vec
                    n += 1
    return n


def save_embeddings(directory: Path = EMB_DIR) -> None:
    from bot.components.e5_featurizer import E5_CACHE

    directory.mkdir(parents=True, exist_ok=True)
    for prefix in PREFIXES:
        items = [(t, v) for (p, t), v in E5_CACHE._cache.items() if p == prefix]
        if items:
            tmp = directory / f"{prefix}.tmp.npz"
            np.savez(tmp, texts=np.array([t for t, _ in items]), vecs=np.stack([v for _, v in items]))
            os.replace(tmp, directory / f"{prefix}.npz")


def embed(texts: Sequence[str], chunk: int = 1024) -> None:
    """Embeds (as the featurizer does) every text not cached yet, saving to disk as it goes."""
    from bot.components.e5_featurizer import E5_CACHE, _placeholders

    todo_all = list(dict.fromkeys(_placeholders(t) for t in texts))
    for prefix in PREFIXES:
        todo = [t for t in todo_all if (prefix, t) not in E5_CACHE._cache]
        for start in range(0, len(todo), chunk):
            E5_CACHE.embed(todo[start : start + chunk], prefix)
            save_embeddings()
            print(f"[gate_data] embedded {prefix} {min(start + chunk, len(todo))}/{len(todo)}", flush=True)


# ---------------------------------------------------------------- the component
def messages(pairs: Sequence[tuple[str, str | None]]) -> list[Any]:
    """Rasa messages with the two e5 sentence features (origins e5_query, e5_passage)."""
    from rasa.shared.nlu.training_data.features import Features
    from rasa.shared.nlu.training_data.message import Message

    from bot.components.e5_featurizer import E5_CACHE, _placeholders

    texts = [_placeholders(t) for t, _ in pairs]
    views = {p: E5_CACHE.embed(texts, p) for p in PREFIXES}
    out = []
    for k, (text, intent) in enumerate(pairs):
        m = Message(data={"text": text, **({"intent": intent} if intent else {})})
        for p in PREFIXES:
            m.add_features(Features(views[p][k].reshape(1, -1), "sentence", "text", f"e5_{p}"))
        out.append(m)
    return out


def classifier_config(config_path: Path = D.ROOT / "config.yml", **overrides: Any) -> dict[str, Any]:
    """E5IntentClassifier's config in a Rasa config file (defaults filled in)."""
    import yaml

    from bot.components.intent_classifier import E5IntentClassifier

    cfg = yaml.safe_load(config_path.read_text()) or {}
    for comp in cfg.get("pipeline") or []:
        if str(comp.get("name", "")).endswith("E5IntentClassifier"):
            own = {k: v for k, v in comp.items() if k != "name"}
            return {**E5IntentClassifier.get_default_config(), **own, **overrides}
    raise ValueError(f"{config_path}: no E5IntentClassifier in the pipeline")


def train(pairs: Sequence[tuple[str, str]], config: dict[str, Any]) -> Any:
    """A trained E5IntentClassifier (model storage in a temporary directory)."""
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from bot.components.intent_classifier import E5IntentClassifier

    storage = LocalModelStorage(Path(tempfile.mkdtemp(prefix="gate_data_")))
    clf = E5IntentClassifier(config, storage, Resource("e5_intent_classifier"))
    clf.train(TrainingData(messages(pairs)))
    return clf


@dataclass
class Scored:
    """One evaluation set scored by a trained classifier."""

    texts: list[str]
    gold: list[str]  # gold intent ("out_of_scope" for the out-of-scope sets)
    pred: np.ndarray  # best real intent (names)
    lr_top: np.ndarray
    mlp_top: np.ndarray | None
    similarity: np.ndarray
    script: np.ndarray  # han / cyrillic / latin
    category: list[str] | None = None  # out-of-scope set category

    @property
    def correct(self) -> np.ndarray:
        return self.pred == np.array(self.gold)

    def subset(self, mask: np.ndarray) -> Scored:
        idx = np.flatnonzero(mask)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return Scored(
            pick(self.texts),
            pick(self.gold),
            self.pred[idx],
            self.lr_top[idx],
            None if self.mlp_top is None else self.mlp_top[idx],
            self.similarity[idx],
            self.script[idx],
            None if self.category is None else pick(self.category),
        )


def save_scored(path: Path, sets: dict[str, Scored]) -> None:
    """Scored sets as one .npz (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    for name, s in sets.items():
        for field in ("texts", "gold", "pred", "lr_top", "mlp_top", "similarity", "script", "category"):
            value = getattr(s, field)
            if value is not None:
                arrays[f"{name}/{field}"] = np.asarray(value, dtype=np.float64 if field in ("lr_top", "mlp_top", "similarity") else str)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def load_scored(path: Path) -> dict[str, Scored]:
    out: dict[str, dict[str, Any]] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            name, field = key.split("/")
            out.setdefault(name, {})[field] = z[key]
    sets = {}
    for name, f in out.items():
        sets[name] = Scored(
            texts=[str(x) for x in f["texts"]],
            gold=[str(x) for x in f["gold"]],
            pred=f["pred"].astype(object),
            lr_top=f["lr_top"],
            mlp_top=f.get("mlp_top"),
            similarity=f["similarity"],
            script=f["script"],
            category=[str(x) for x in f["category"]] if "category" in f else None,
        )
    return sets


def score(clf: Any, pairs: Sequence[tuple[str, str]], category: list[str] | None = None) -> Scored:
    from bot.components.intent_gate import text_script

    probs, scores, keep = clf.predict(messages([(t, None) for t, _ in pairs]))
    assert len(keep) == len(pairs)
    return Scored(
        texts=[t for t, _ in pairs],
        gold=[i for _, i in pairs],
        pred=np.array(clf.labels)[probs.argmax(axis=1)],
        lr_top=scores["lr_top"],
        mlp_top=scores.get("mlp_top"),
        similarity=scores["similarity"],
        script=np.array([text_script(t) for t, _ in pairs]),
        category=category,
    )


# ---------------------------------------------------------------- the evaluation sets
def help_questions() -> dict[str, list[tuple[str, str]]]:
    """help_centre/questions/*.yml: questions the help centre answers (in scope, never declined;
    their intent is not labelled, mostly ask_question)."""
    import yaml

    out = {}
    for lang, path in HELP_QUESTIONS.items():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out[lang] = [(q, "ask_question") for qs in data.values() for q in qs or []]
    return out


def shipped_sets(train_dir: Path = D.SHIPPED_TRAIN) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """Training pairs and the evaluation sets of our own data: tests/nlu (per language), the
    out-of-scope set (per language and split) and the help-centre questions."""
    from bench.nlu import oos_set

    train_pairs = D.load_rasa_examples(train_dir)
    sets: dict[str, Any] = {f"tests_{lang}": D.load_rasa_examples(p) for lang, p in D.SHIPPED_TESTS.items()}
    for split in oos_set.SPLITS:
        for lang, items in oos_set.load_all(split).items():
            sets[f"oos_{split}_{lang}"] = items
    for lang, pairs in help_questions().items():
        sets[f"help_{lang}"] = pairs
    return train_pairs, sets


def score_sets(clf: Any, sets: dict[str, Any]) -> dict[str, Scored]:
    out = {}
    for name, items in sets.items():
        if name.startswith("oos_"):
            out[name] = score(clf, [(t, "out_of_scope") for t, _ in items], [c for _, c in items])
        else:
            out[name] = score(clf, items)
    return out
