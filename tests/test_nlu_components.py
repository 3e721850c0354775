"""Custom Rasa NLU components (bot/components), checked in the Rasa environment.

This suite runs on the application's Python 3.11 (no Rasa), so the checks run in a subprocess
under .venv-rasa: `python -m bot.components.selfcheck` trains a tiny en/zh/ru model with our
tokenizer, e5 featurizer, regex extractor and classifier, loads it back with Rasa's Agent and
reports one JSON object of named checks. About 20-40 s on 2 cores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_in_rasa

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def selfcheck() -> dict[str, Any]:
    proc = run_in_rasa(["-m", "bot.components.selfcheck"])
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


# ---------------------------------------------------------------- out-of-scope gate (issue 13)
# bot/components/intent_gate.py is plain numpy: checked here directly, on this Python.
def test_gate_config_is_validated_with_a_clear_reason() -> None:
    from bot.components.intent_gate import InScopeGate

    assert InScopeGate.from_config({}) is None
    assert InScopeGate.from_config(None) is None
    for bad, reason in [
        ({"weights": {"lr_logit": 1.0, "loudness": 2.0}, "bias": 0.0}, "unknown features ['loudness']"),
        ({"weights": {"lr_logit": "high"}, "bias": 0.0}, "must be numbers"),
        ({"weights": {}, "bias": 1.0}, "'weights' must map"),
        ({"weights": {"lr_logit": 1.0}, "bias": 0.0, "threshold": 0.5}, "expected"),
        ({"weights": {"lr_logit": float("nan")}, "bias": 0.0}, "finite"),
    ]:
        with pytest.raises(ValueError, match=re.escape(reason)):
            InScopeGate.from_config(bad)


def test_gate_score_is_bias_plus_weighted_features_and_threshold_shifts_it() -> None:
    import numpy as np

    from bot.components.intent_gate import InScopeGate, at_threshold

    gate = InScopeGate.from_config({"weights": {"lr_logit": 2.0, "similarity": 10.0}, "bias": -9.0})
    feats = {"lr_logit": np.array([0.0, 1.0]), "similarity": np.array([0.9, 0.8]), "mlp_logit": np.zeros(2)}
    assert np.allclose(gate.score(feats), [0.0, 1.0])  # -9 + 0 + 9 = 0 (answered), -9 + 2 + 8 = 1
    assert np.allclose(at_threshold(gate, 0.5).score(feats), [-0.5, 0.5])
    with pytest.raises(KeyError, match="similarity"):
        gate.score({"lr_logit": np.zeros(1)})


def test_gate_features_are_finite_for_certain_and_impossible_probabilities() -> None:
    import numpy as np

    from bot.components.intent_gate import gate_features

    f = gate_features(np.array([1.0, 0.0, 0.5]), None, np.array([0.9, 0.8, 0.7]))
    assert np.isfinite(f["lr_logit"]).all() and f["lr_logit"][0] > 10 > -10 > f["lr_logit"][1]
    assert f["lr_logit"][2] == pytest.approx(0.0)
    assert (f["mlp_logit"] == 0).all()  # no MLPs: the feature is neutral


def test_decline_reason_similarity_first_then_gate_else_confidence() -> None:
    from bot.components.intent_gate import decline_reason

    assert decline_reason(0.80, 0.84, gate_score=5.0, lr_top=0.99, confidence_threshold=0.3) == "similarity"
    assert decline_reason(0.95, 0.84, gate_score=-0.1, lr_top=0.99, confidence_threshold=0.3) == "gate"
    # with a gate, the regression's probability alone does not decline
    assert decline_reason(0.95, 0.84, gate_score=0.1, lr_top=0.05, confidence_threshold=0.3) is None
    assert decline_reason(0.95, 0.84, gate_score=None, lr_top=0.05, confidence_threshold=0.3) == "confidence"
    assert decline_reason(0.95, 0.84, gate_score=None, lr_top=0.50, confidence_threshold=0.3) is None


def test_fit_gate_learns_that_higher_scores_mean_in_scope() -> None:
    import numpy as np

    from bot.components.intent_gate import FEATURES, fit_gate

    rng = np.random.default_rng(0)

    def sample(shift: float, n: int) -> dict:
        return {name: rng.normal(shift, 1.0, n) for name in FEATURES}

    gate = fit_gate(sample(2.0, 300), sample(-2.0, 300))
    assert all(w > 0 for _, w in gate.weights)
    test_in, test_out = sample(2.0, 200), sample(-2.0, 200)
    assert (gate.score(test_in) >= 0).mean() > 0.9 and (gate.score(test_out) < 0).mean() > 0.9
    with pytest.raises(ValueError, match="both positive and negative"):
        fit_gate(sample(2.0, 10), {name: np.zeros(0) for name in FEATURES})


def test_script_of_a_message() -> None:
    from bot.components.intent_gate import text_script

    assert [text_script(t) for t in ["where is my order", "我的訂單", "где заказ", "订单 order 3348917502", "🙂 123"]] == [
        "latin",
        "han",
        "cyrillic",
        "han",
        "latin",
    ]


def test_shipped_config_gate_is_valid_and_monotone() -> None:
    import yaml

    from bot.components.intent_gate import FEATURES, InScopeGate

    cfg = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    (clf,) = [c for c in cfg["pipeline"] if c["name"].endswith("E5IntentClassifier")]
    gate = InScopeGate.from_config(clf.get("gate"))
    assert gate is not None, "config.yml: the E5IntentClassifier has no out-of-scope gate"
    weights = dict(gate.weights)
    assert set(weights) == set(FEATURES)
    # more probable, more similar: never less in scope
    assert all(w > 0 for w in weights.values()), weights
    assert set(clf.get("similarity_thresholds") or {}) <= {"han", "cyrillic", "latin"}


def _training_and_test_texts() -> list[str]:
    import yaml

    texts = []
    for path in sorted((ROOT / "nlu_data").rglob("*.yml")) + sorted((ROOT / "tests" / "nlu").glob("*.yml")):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu") or []:
            for line in (item.get("examples") or "").splitlines():
                text = line.strip()[2:]
                text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
                texts.append(re.sub(r"\[([^\]]+)\]\{[^}]*\}", r"\1", text))
    return texts


def test_out_of_scope_set_has_dev_and_test_per_language_and_no_training_or_test_sentence() -> None:
    from bench.nlu import oos_set

    assert oos_set.problems(shipped_texts=_training_and_test_texts()) == []
    for lang in oos_set.LANGUAGES:
        for split in oos_set.SPLITS:
            items = oos_set.load(lang, split)
            assert {c for _, c in items} == set(oos_set.CATEGORIES), (lang, split)


def test_out_of_scope_set_problems_are_reported(tmp_path: Path) -> None:
    from bench.nlu import oos_set

    (tmp_path / "en.yml").write_text("dev:\n  chit_chat: [hello there]\n  weather: [will it rain]\ntest: {}\n", encoding="utf-8")
    errors = " | ".join(oos_set.problems(tmp_path, shipped_texts=["Hello there!"]))
    assert "unknown categories ['weather']" in errors
    assert "zh.yml" in errors  # missing files are reported, not skipped
    (tmp_path / "en.yml").write_text("dev:\n  chit_chat: [hello there]\ntest: {}\n", encoding="utf-8")
    errors = " | ".join(oos_set.problems(tmp_path, shipped_texts=["Hello there!"]))
    assert "en/dev: 1 messages, at least 60 needed" in errors
    assert "'hello there' (en/dev/chit_chat) is also in nlu_data/ or tests/nlu/" in errors


# The classifier with a gate, in the Rasa environment: a hand-made two-intent model (no training),
# real E5IntentClassifier.process on messages carrying e5-shaped features.
_GATE_IN_RASA = r"""
import json, numpy as np
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from bot.components.intent_classifier import E5IntentClassifier

config = {**E5IntentClassifier.get_default_config(), "mlp_ensemble": 0,
          "gate": {"weights": {"lr_logit": 1.0, "mlp_logit": 0.0, "similarity": 20.0}, "bias": -20.5}}
rng = np.random.default_rng(0)
unit = lambda v: (v / np.linalg.norm(v)).astype(np.float32)
t0 = unit(rng.normal(size=384))
t1 = unit(t0 + 0.48 * unit(rng.normal(size=384)))  # two close training examples (cosine ~0.9)
train = np.stack([t0, t1])
model = {"coef": np.hstack([train, train]) * 8, "intercept": np.zeros(2, np.float32), "sim_vectors": train,
         "sim_labels": np.array([0, 1], np.int32), "mean_0": np.zeros(384, np.float32), "mean_1": np.zeros(384, np.float32)}
clf = E5IntentClassifier(config, None, None, model=model, labels=["greet", "thanks"])
def message(vec):
    m = Message(data={"text": "x"})
    for origin in ("e5_query", "e5_passage"):
        m.add_features(Features(vec.reshape(1, -1).astype(np.float32), "sentence", "text", origin))
    return m
near = t0                       # a training example itself: sure and similar, answered
middle = unit(t0 + t1)          # similar to both (~0.97) but a coin toss between them: the gate declines
far = unit(rng.normal(size=384))  # similar to nothing
msgs = [message(v) for v in (near, middle, far)]
clf.process(msgs)
out = {k: m.get("intent") for k, m in zip(("near", "middle", "far"), msgs)}
try:
    E5IntentClassifier({**config, "gate": {"weights": {"volume": 1.0}, "bias": 0}}, None, None)
    out["bad_config"] = "accepted"
except ValueError as e:
    out["bad_config"] = str(e)
print(json.dumps(out))
"""


def test_classifier_applies_the_gate_and_reports_its_score() -> None:
    proc = run_in_rasa(["-c", _GATE_IN_RASA])
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stderr[-3000:]
    out = json.loads(lines[-1])
    near, middle, far = out["near"], out["middle"], out["far"]
    assert near["name"] == "greet" and near["gate_score"] >= 0 and "fallback_reason" not in near
    assert middle["name"] == "nlu_fallback" and middle["fallback_reason"] == "gate" and middle["gate_score"] < 0
    assert middle["similarity"] >= 0.84  # declined by the gate, not by the similarity threshold
    assert far["name"] == "nlu_fallback" and far["fallback_reason"] == "similarity"
    assert "unknown features ['volume']" in out["bad_config"]
