"""Benchmark data: Rasa YAML test sets, CLINC150 conversion, K-shot sampling."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLINC_PATH = ROOT.parent / "shared" / "benchdata" / "clinc150" / "data_full.json"
SHIPPED_TRAIN = ROOT / "nlu_data"
SHIPPED_TESTS = {lang: ROOT / "tests" / "nlu" / f"{lang}.yml" for lang in ("en", "zh", "ru")}
OOS_INTENTS = ("out_of_scope", "oos")  # gold labels meaning "should be declined"
FALLBACK = "nlu_fallback"

Example = tuple[str, str]  # (text, intent)


def load_rasa_examples(path: Path) -> list[Example]:
    """(text, intent) pairs of a Rasa NLU file or directory (entity markup removed)."""
    from rasa.shared.nlu.training_data.loading import load_data

    td = load_data(str(path))
    return [(m.get("text"), m.get("intent")) for m in td.intent_examples]


def load_rasa_entities(path: Path) -> dict[str, list[tuple[str, int, int, str]]]:
    """text -> gold entities [(type, start, end, value)] of a Rasa NLU file."""
    from rasa.shared.nlu.training_data.loading import load_data

    out: dict[str, list[tuple[str, int, int, str]]] = {}
    for m in load_data(str(path)).intent_examples:
        out[m.get("text")] = [(e["entity"], e["start"], e["end"], str(e.get("value"))) for e in m.get("entities") or []]
    return out


def sample_k_shot(examples: Sequence[Example], k: int, seed: int) -> list[Example]:
    """K examples per intent (all if fewer), intents in sorted order, fixed seed."""
    by: dict[str, list[str]] = defaultdict(list)
    for text, intent in examples:
        by[intent].append(text)
    rng = random.Random(seed)
    out: list[Example] = []
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


def load_clinc() -> dict[str, list[Example]]:
    data = json.loads(CLINC_PATH.read_text())
    return {k: [(t, i) for t, i in v] for k, v in data.items()}


def clinc_splits(shots: int | None, seed: int) -> dict[str, list[Example]]:
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


def nlu_data_at(rev: str) -> Path:
    """nlu_data/ of a git revision, written to a temporary directory."""
    import subprocess
    import tempfile

    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "nlu_data"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    if not names:
        raise OSError(f"no nlu_data/ files at {rev}")
    out = Path(tempfile.mkdtemp(prefix="nlu_data_"))
    for name in names:
        blob = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True, capture_output=True).stdout
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(blob)
    return out / "nlu_data"


def nlu_data_or_error(rev: str) -> tuple[Path | None, str]:
    """``nlu_data_at(rev)``, or (None, the error message for the command line)."""
    import subprocess

    try:
        return nlu_data_at(rev), ""
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"error: cannot read nlu_data/ at revision {rev!r}: {e}"
