"""Custom Rasa NLU components (bot/components), checked in the Rasa environment.

This suite runs on the application's Python 3.11 (no Rasa), so the checks run in a subprocess
under .venv-rasa: `python -m bot.components.selfcheck` trains a tiny en/zh/ru model with our
tokenizer, e5 featurizer, regex extractor and classifier, loads it back with Rasa's Agent and
reports one JSON object of named checks. About 20-40 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def selfcheck() -> dict[str, Any]:
    if not RASA_PY.exists():
        pytest.skip("the Rasa environment (.venv-rasa) is not installed: run scripts/setup_envs.sh rasa")
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
        "RASA_MAX_CACHE_SIZE": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    proc = subprocess.run(
        [str(RASA_PY), "-m", "bot.components.selfcheck"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"selfcheck printed no result (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    result["returncode"] = proc.returncode
    return result


def _check(result: dict[str, Any], name: str) -> None:
    check = result["checks"].get(name)
    assert check is not None, f"check {name} did not run: {sorted(result['checks'])}"
    assert check["ok"], f"{name} failed: {json.dumps(check['detail'], ensure_ascii=False)[:3000]}"


def test_tokenizer_offsets_on_mixed_zh_en_ru_text(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "tokenizer_offsets_mixed_zh_en_ru")


def test_tokenizer_keeps_emails_and_order_ids_whole(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "tokenizer_keeps_emails_and_order_ids")


def test_model_trains_and_loads_from_its_archive(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "train_and_load")


def test_classifier_ranks_the_right_intent_first(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "classifier_ranking")


def test_far_off_message_gets_nlu_fallback_with_best_guess_below(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "nlu_fallback_far_off_message")


def test_order_id_and_email_extracted_whole_and_once(selfcheck: dict[str, Any]) -> None:
    # RegexEntityExtractor + CRFEntityExtractor + EntityDeduplicator, as in config.yml
    _check(selfcheck, "entities_whole_and_not_duplicated")


def test_selfcheck_exit_status(selfcheck: dict[str, Any]) -> None:
    assert selfcheck["returncode"] == 0
