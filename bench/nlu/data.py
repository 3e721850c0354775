"""Benchmark data: Rasa YAML test sets, CLINC150 conversion, K-shot sampling."""
from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
CLINC_PATH = ROOT.parent / "shared" / "benchdata" / "clinc150" / "data_full.json"
SHIPPED_TRAIN = ROOT / "nlu_data"
SHIPPED_TESTS = {lang: ROOT / "tests" / "nlu" / f"{lang}.yml" for lang in ("en", "zh", "ru")}
OOS_INTENTS = ("out_of_scope", "oos")  # gold labels meaning "should be declined"
FALLBACK = "nlu_fallback"

Example = Tuple[str, str]  # (text, intent)


def load_rasa_examples(path: Path) -> List[Example]:
    """(text, intent) pairs of a Rasa NLU file or directory (entity markup removed)."""
    from rasa.shared.nlu.training_data.loading import load_data

    td = load_data(str(path))
    return [(m.get("text"), m.get("intent")) for m in td.intent_examples]


def sample_k_shot(examples: Sequence[Example], k: int, seed: int) -> List[Example]:
    """K examples per intent (all if fewer), intents in sorted order, fixed seed."""
    by: Dict[str, List[str]] = defaultdict(list)
    for text, intent in examples:
        by[intent].append(text)
    rng = random.Random(seed)
    out: List[Example] = []
    for intent in sorted(by):
        texts = by[intent]
        chosen = texts if len(texts) <= k else rng.sample(texts, k)
        out.extend((t, intent) for t in chosen)
    return out


def write_rasa_yaml(examples: Sequence[Example], path: Path) -> Path:
    """Writes (text, intent) pairs as a Rasa 3.1 NLU file (Rasa's own writer escapes)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    td = TrainingData([Message(data={"text": t, "intent": i}) for t, i in examples])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RasaYAMLWriter().dumps(td), encoding="utf-8")
    return path


def load_clinc() -> Dict[str, List[Example]]:
    data = json.loads(CLINC_PATH.read_text())
    return {k: [(t, i) for t, i in v] for k, v in data.items()}


def clinc_splits(shots: Optional[int], seed: int) -> Dict[str, List[Example]]:
    """train (K-shot or full), val/test in-scope, and the out-of-scope sets.

    Out-of-scope data is never trained on: oos_val + oos_train (200 queries) serve as the
    validation OOS set for picking thresholds, oos_test (1,000) is the OOS test set.
    """
    d = load_clinc()
    train = d["train"] if not shots else sample_k_shot(d["train"], shots, seed)
    return {
        "train": train,
        "val": d["val"],
        "val_oos": d["oos_val"] + d["oos_train"],
        "test": d["test"],
        "test_oos": d["oos_test"],
    }
