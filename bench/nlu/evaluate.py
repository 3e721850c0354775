"""Train a Rasa NLU config, load it with Rasa's Agent and parse messages on the live pipeline."""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.nlu.data import FALLBACK, OOS_INTENTS, Example

os.environ["RASA_TELEMETRY_ENABLED"] = "false"  # no data leaves the machine
os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")  # no graph cache: honest training times
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger(__name__)


def train(config: Path, nlu_data: Path, out_dir: Path, name: str) -> tuple[str, float, float]:
    """Trains an NLU model; returns (model path, wall-clock seconds, CPU seconds).

    The CPU time (all threads of this process, user + system) is reported beside the wall-clock
    time because the machine is shared: other jobs stretch the wall-clock time of a run, not the
    CPU time it needs (on 2 cores, an otherwise idle machine needs at least CPU / 2 of wall time).
    """
    from rasa.model_training import train_nlu

    _reset_embedding_cache()  # each training run embeds its data from scratch
    t0, c0 = time.perf_counter(), time.process_time()
    path = train_nlu(str(config), str(nlu_data), str(out_dir), fixed_model_name=name)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    if not path:
        raise RuntimeError(f"training failed for {config} on {nlu_data}")
    return path, seconds, cpu_seconds


def _reset_embedding_cache() -> None:
    try:
        from bot.components.e5_featurizer import E5_CACHE

        E5_CACHE._cache.clear()
    except ImportError:
        pass


def prewarm_embeddings(config: Path, texts: Sequence[str]) -> None:
    """Batch-embeds texts into the in-process cache the E5Featurizer reads (same vectors as
    one-by-one embedding, checked bit for bit), so parsing thousands of messages is fast."""
    import yaml

    cfg = yaml.safe_load(config.read_text()) or {}
    for comp in cfg.get("pipeline") or []:
        if str(comp.get("name", "")).endswith("E5Featurizer"):
            from bot.components.e5_featurizer import E5_CACHE

            prefixes = comp.get("prefixes", ["query", "passage"])
            # room for every benchmark text in every view (the model's own default is smaller)
            E5_CACHE.max_size = max(E5_CACHE.max_size, len(texts) * len(prefixes) + 20_000)
            for prefix in prefixes:
                E5_CACHE.embed(list(texts), prefix)


@dataclass
class Parsed:
    text: str
    gold: str
    final: str | None  # intent after the fallback gate
    top: str | None  # best real intent (ranking without nlu_fallback)
    top_conf: float
    similarity: float | None
    ranking: list[dict[str, Any]] = field(default_factory=list)
    entities: list[tuple[str, int, int, str]] = field(default_factory=list)


class LiveModel:
    """A trained model loaded with rasa's Agent; parse() goes through the whole pipeline."""

    def __init__(self, model_path: str) -> None:
        from rasa.core.agent import Agent

        try:  # rasa logs every parse at debug level unless told otherwise
            from rasa.utils.log_utils import configure_structlog

            configure_structlog(logging.WARNING)
        except ImportError:
            pass
        self.loop = asyncio.new_event_loop()
        self.agent = Agent.load(model_path)

    def parse_one(self, text: str) -> dict[str, Any]:
        return self.loop.run_until_complete(self.agent.parse_message(text))

    def parse(self, examples: Sequence[Example]) -> list[Parsed]:
        out = []
        for text, gold in examples:
            r = self.parse_one(text)
            intent = r.get("intent") or {}
            ranking = r.get("intent_ranking") or []
            real = [x for x in ranking if x.get("name") != FALLBACK]
            top = real[0] if real else (intent if intent.get("name") != FALLBACK else {})
            out.append(
                Parsed(
                    text=text,
                    gold=gold,
                    final=intent.get("name"),
                    top=top.get("name"),
                    # E5IntentClassifier gates on its regression's probability, not the ranking's
                    top_conf=float(intent.get("gate_confidence", top.get("confidence")) or 0.0),
                    similarity=intent.get("similarity"),
                    ranking=ranking,
                    entities=[
                        (e.get("entity"), e.get("start"), e.get("end"), str(e.get("value")))
                        for e in r.get("entities") or []
                    ],
                )
            )
        return out

    def latency_ms(self, texts: Sequence[str]) -> dict[str, float]:
        """Per-message parse latency (call on texts not yet embedded: cold cache)."""
        times = []
        self.parse_one("warm-up 预热 разогрев")  # one-off initialisation is not a parse cost
        for t in texts:
            t0 = time.perf_counter()
            self.parse_one(t)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        return {
            "p50": statistics.median(times),
            "p95": times[min(len(times) - 1, int(0.95 * len(times)))],
        }

    def close(self) -> None:
        self.loop.close()


def declined(p: Parsed) -> bool:
    return p.final == FALLBACK or p.final in OOS_INTENTS


def gate(p: Parsed, similarity_threshold: float, confidence_threshold: float) -> bool:
    """Re-applies E5IntentClassifier's fallback rule with other thresholds (True = declined)."""
    if p.top in OOS_INTENTS:
        return True
    sim = p.similarity if p.similarity is not None else 1.0
    return sim < similarity_threshold or p.top_conf < confidence_threshold


def metrics(in_scope: Sequence[Parsed], oos: Sequence[Parsed]) -> dict[str, float | None]:
    """Figures of one evaluation (fractions, not percent)."""
    from sklearn.metrics import f1_score

    m: dict[str, float | None] = {"n_in": len(in_scope), "n_oos": len(oos)}
    if in_scope:
        gold = [p.gold for p in in_scope]
        top = [p.top or "" for p in in_scope]
        m["accuracy"] = sum(g == t for g, t in zip(gold, top, strict=True)) / len(gold)
        m["macro_f1"] = float(f1_score(gold, top, labels=sorted(set(gold)), average="macro", zero_division=0))
        m["answered_correct"] = sum(p.final == p.gold for p in in_scope) / len(in_scope)
        m["fallback_rate"] = sum(p.final == FALLBACK for p in in_scope) / len(in_scope)
    m["oos_recall"] = sum(declined(p) for p in oos) / len(oos) if oos else None
    return m


def offline_metrics(
    in_scope: Sequence[Parsed], oos: Sequence[Parsed], sim_t: float, conf_t: float
) -> tuple[float, float]:
    """(answered-correct, OOS recall) if the thresholds were (sim_t, conf_t)."""
    ans = sum((not gate(p, sim_t, conf_t)) and p.top == p.gold for p in in_scope) / len(in_scope)
    rec = sum(gate(p, sim_t, conf_t) for p in oos) / len(oos) if oos else float("nan")
    return ans, rec


def entity_scores(
    parsed: Sequence[Parsed], gold: dict[str, list[tuple[str, int, int, str]]]
) -> dict[str, dict[str, float]]:
    """Per entity type: precision / recall / F1 over exact (type, start, end) spans, and the
    share of correct spans whose value is also right (synonyms mapped). Key "all" = micro."""
    from collections import Counter

    tp, fp, fn, val_ok = Counter(), Counter(), Counter(), Counter()
    for p in parsed:
        g = {(e, s, t): v for e, s, t, v in gold.get(p.text, [])}
        pr = {(e, s, t): v for e, s, t, v in p.entities}
        for k, v in pr.items():
            if k in g:
                tp[k[0]] += 1
                val_ok[k[0]] += v == g[k]
            else:
                fp[k[0]] += 1
        for k in g:
            if k not in pr:
                fn[k[0]] += 1
    out: dict[str, dict[str, float]] = {}
    types = sorted(set(tp) | set(fp) | set(fn))
    for name, keys in [(t, [t]) for t in types] + [("all", types)]:
        a, b, c, v = (sum(x[k] for k in keys) for x in (tp, fp, fn, val_ok))
        prec = a / (a + b) if a + b else 0.0
        rec = a / (a + c) if a + c else 0.0
        out[name] = {
            "support": a + c,
            "precision": prec,
            "recall": rec,
            "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "value_ok": v / a if a else 0.0,
        }
    return out
