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


def test_e5_and_jieba_loaded_when_the_model_loads_not_on_first_message(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "models_loaded_when_the_model_loads")


def test_embedding_cache_is_bounded_and_evicts_least_recently_used(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "embedding_cache_bounded_lru")


def test_out_of_scope_is_answered_as_itself_not_sent_to_fallback(selfcheck: dict[str, Any]) -> None:
    # config.yml: no_fallback_intents: [out_of_scope]; other intents still fall back
    _check(selfcheck, "no_fallback_intents_answered_as_themselves")


def test_username_regex_from_shared_yml_extracts_whole_usernames_once(selfcheck: dict[str, Any]) -> None:
    # en / zh (no space before the username) / ru, and never the local part of an email
    _check(selfcheck, "username_regex_whole_and_once")


def test_refund_method_and_reason_kept_only_for_the_intents_that_carry_them(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "entity_intent_gate")


def test_reason_clauses_split_with_offsets_into_the_original_text(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "reason_clause_split")


def test_reason_extractor_finds_the_reason_clause_only_for_reason_intents(selfcheck: dict[str, Any]) -> None:
    _check(selfcheck, "reason_clause_extracted")


def test_selfcheck_exit_status(selfcheck: dict[str, Any]) -> None:
    assert selfcheck["returncode"] == 0


# ---------------------------------------------------------------- nlu_data/shared.yml patterns
# Plain Python checks of the shipped patterns (RegexEntityExtractor runs them with re.IGNORECASE).
REFUND_METHOD_NOT_BY_REGEX = {"my card", "the card", "by check", "by cheque", "check", "credit to my account"}
REFUND_METHOD_NOT_BY_REGEX |= {"add value", "信用卡退款", "退到信用卡", "礼品卡退款", "充值到账户", "账户充值"}


def _shared() -> list[dict[str, Any]]:
    import yaml

    return yaml.safe_load((ROOT / "nlu_data" / "shared.yml").read_text(encoding="utf-8"))["nlu"]


def _patterns(name: str) -> list[str]:
    (block,) = [item for item in _shared() if item.get("regex") == name]
    return [line.strip()[2:] for line in block["examples"].splitlines() if line.strip()]


def _matches(name: str, text: str) -> list[str]:
    import re

    return [m.group() for p in _patterns(name) for m in re.finditer(p, text, re.IGNORECASE)]


def test_refund_method_regex_matches_every_synonym_surface_form_whole() -> None:
    forms = [
        line.strip()[2:]
        for item in _shared()
        if "synonym" in item
        for line in item["examples"].splitlines()
        if line.strip()
    ]
    missed = [f for f in forms if f not in REFUND_METHOD_NOT_BY_REGEX and _matches("refund_method", f"x {f} x") != [f]]
    assert not missed, f"refund_method regex does not match these synonyms whole: {missed}"


def test_refund_method_regex_leaves_verbs_and_longer_words_alone() -> None:
    assert _matches("refund_method", "can you check my refund") == []
    assert _matches("refund_method", "the cardigan is too small") == []
    assert _matches("refund_method", "please refund it to my gift card") == ["gift card"]
    assert _matches("refund_method", "退成礼品卡就可以") == ["礼品卡"]
    assert _matches("refund_method", "верните на кредитную карту") == ["на кредитную карту"]


def test_username_regex_matches_store_usernames_not_emails_or_numbers() -> None:
    assert _matches("username", "my username is jwu477.") == ["jwu477"]
    assert _matches("username", "我的账号hchen509密码忘了") == ["hchen509"]
    assert _matches("username", "cminh730@email.com") == []
    assert _matches("username", "order 3348917502 for abc12345") == []
