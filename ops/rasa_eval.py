"""Evaluate one trained model on the held-out split, per language, and on the test stories.

Runs in the Rasa environment (Python 3.10)::

    .venv-rasa/bin/python -m ops.rasa_eval --model models/model-X.tar.gz --domain bot/domain.yml \
        --nlu-dir tests/nlu --stories tests/stories --out metrics.json

It calls the functions behind ``rasa test nlu`` (``rasa.nlu.test.run_evaluation``) once per
language file and behind ``rasa test core`` (``rasa.core.test.test``) once, with the model loaded a
single time (loading it is most of what each ``rasa test`` command costs). Standard library and Rasa
only: nothing from the app environment is importable here. Progress lines go to stdout as
``PROGRESS <fraction> <stage>``; the metrics are written to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any


def _progress(fraction: float, stage: str) -> None:
    print(f"PROGRESS {fraction:.3f} {stage}", flush=True)


def _intent_metrics(result: dict[str, Any]) -> dict[str, Any]:
    ev = result.get("intent_evaluation") or {}
    report = ev.get("report") or {}
    per_intent = {
        name: {"precision": v.get("precision"), "recall": v.get("recall"), "f1": v.get("f1-score"), "support": v.get("support")}
        for name, v in report.items()
        if isinstance(v, dict) and name not in ("micro avg", "macro avg", "weighted avg")
    }
    predictions = [
        {"text": p.get("text"), "intent": p.get("intent"), "predicted": p.get("predicted"), "confidence": p.get("confidence")}
        for p in ev.get("predictions") or []
    ]
    correct = sum(1 for p in predictions if p["intent"] == p["predicted"])
    return {
        "accuracy": (correct / len(predictions)) if predictions else None,
        "examples": len(predictions),
        "per_intent": per_intent,
        "predictions": predictions,
    }


def _failed_story_names(path: Path) -> list[str]:
    if not path.exists():
        return []
    return re.findall(r"^- story: (.+?)(?: \(.*\))?$", path.read_text(encoding="utf-8"), flags=re.M)


async def evaluate(model: str, domain: str, nlu_dir: Path, stories: Path | None) -> dict[str, Any]:
    from rasa.core.agent import Agent
    from rasa.core.test import test as core_test
    from rasa.nlu.test import run_evaluation

    _progress(0.0, "loading model")
    agent = Agent.load(model_path=model)
    files = sorted(nlu_dir.glob("*.yml"))
    steps = len(files) + (1 if stories else 0)
    out: dict[str, Any] = {"languages": {}, "stories": None}
    with tempfile.TemporaryDirectory(prefix="ops-eval-") as tmp:
        for i, path in enumerate(files):
            _progress(i / steps, f"nlu {path.stem}")
            result = await run_evaluation(
                str(path), agent.processor, output_directory=os.path.join(tmp, path.stem), successes=False,
                errors=False, disable_plotting=True, report_as_dict=True, domain_path=domain,
            )
            out["languages"][path.stem] = _intent_metrics(result)
        if stories:
            _progress(len(files) / steps, "stories")
            story_dir = Path(tmp) / "stories"
            story_dir.mkdir()
            summary = await core_test(
                str(stories), agent, out_directory=str(story_dir), fail_on_prediction_errors=False,
                disable_plotting=True, successes=False, errors=True, warnings=False,
            )
            conv = (summary.get("report") or {}).get("conversation_accuracy") or {}
            failed = _failed_story_names(story_dir / "failed_test_stories.yml")
            total = int(conv.get("total", 0))
            out["stories"] = {
                "total": total, "correct": int(conv.get("correct", total - len(failed))), "failed": failed,
                "action_accuracy": summary.get("accuracy"),
            }
    _progress(1.0, "done")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--nlu-dir", type=Path, required=True)
    parser.add_argument("--stories", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.nlu_dir.is_dir() or not any(args.nlu_dir.glob("*.yml")):
        print(f"error: no <language>.yml test files in {args.nlu_dir}", file=sys.stderr)
        return 2
    metrics = asyncio.run(evaluate(args.model, args.domain, args.nlu_dir, args.stories))
    args.out.write_text(json.dumps(metrics, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
