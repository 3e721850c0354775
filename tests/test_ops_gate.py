"""The regression gate's decisions on synthetic metric reports (ops/gate.py)."""

from __future__ import annotations

from typing import Any

from ops.gate import GatePolicy, decide, pooled_f1


def report(acc: dict[str, tuple[int, int]], stories_failed: list[str] | None = None,
           confusions: dict[str, list[tuple[str, str]]] | None = None) -> dict[str, Any]:
    """``acc``: language → (correct, total) predictions, all of intent ``a`` unless ``confusions``
    lists extra (gold, predicted) pairs for that language."""
    languages = {}
    for lang, (correct, total) in acc.items():
        preds = [{"intent": "a", "predicted": "a"} for _ in range(correct)]
        preds += [{"intent": "a", "predicted": "b"} for _ in range(total - correct)]
        for gold, pred in (confusions or {}).get(lang, []):
            preds.append({"intent": gold, "predicted": pred})
        right = sum(p["intent"] == p["predicted"] for p in preds)
        languages[lang] = {"accuracy": right / len(preds), "predictions": preds}
    failed = stories_failed or []
    return {"languages": languages, "stories": {"total": 5, "correct": 5 - len(failed), "failed": failed}}


BASE = report({"en": (95, 100), "zh": (90, 100), "ru": (92, 100)})


def test_equal_or_better_passes() -> None:
    result = decide(report({"en": (96, 100), "zh": (90, 100), "ru": (92, 100)}), BASE)
    assert result.passed and result.failed == []


def test_a_drop_of_exactly_the_margin_passes_and_more_fails_naming_the_language() -> None:
    assert decide(report({"en": (94, 100), "zh": (90, 100), "ru": (92, 100)}), BASE).passed  # −1.0 point
    result = decide(report({"en": (95, 100), "zh": (88, 100), "ru": (92, 100)}), BASE)  # zh −2 points
    assert not result.passed
    assert result.failed == ["language_accuracy"]
    assert "zh 90.0% → 88.0%" in result.summary()


def test_margin_is_configurable() -> None:
    cand = report({"en": (95, 100), "zh": (88, 100), "ru": (92, 100)})
    assert decide(cand, BASE, GatePolicy(margin_points=2.5)).passed


def test_a_failing_story_refuses_and_names_it() -> None:
    result = decide(report({"en": (95, 100), "zh": (90, 100), "ru": (92, 100)}, ["refund, Russian"]), BASE)
    assert not result.passed and result.failed == ["test_stories"]
    assert "refund, Russian" in result.summary()


def test_stories_not_run_refuses() -> None:
    cand = report({"en": (95, 100), "zh": (90, 100), "ru": (92, 100)})
    cand["stories"] = None
    assert decide(cand, BASE).failed == ["test_stories"]


def test_a_strong_intent_falling_below_the_floor_refuses() -> None:
    # Intent "c" is perfect in the baseline (F1 1.0) and mostly lost in the candidate, while the
    # languages' accuracy stays within the margin thanks to the many "a" examples.
    base = report({"en": (95, 100)}, confusions={"en": [("c", "c")] * 10})
    cand = report({"en": (95, 100)}, confusions={"en": [("c", "c")] * 6 + [("c", "a")] * 4})
    assert pooled_f1(base)["c"] == 1.0
    result = decide(cand, base, GatePolicy(margin_points=5.0))
    assert result.failed == ["strong_intents"]
    assert "c 100.0% →" in result.summary()


def test_a_weak_intent_may_drop() -> None:
    # "c" had F1 < 90% before: its drop is the accuracy check's business, not this one's.
    base = report({"en": (95, 100)}, confusions={"en": [("c", "c")] * 5 + [("c", "a")] * 5})
    cand = report({"en": (95, 100)}, confusions={"en": [("c", "c")] * 2 + [("c", "a")] * 8})
    result = decide(cand, base, GatePolicy(margin_points=5.0))
    assert "strong_intents" not in result.failed


def test_first_model_has_no_baseline() -> None:
    result = decide(BASE, None)
    assert result.passed
    assert "no baseline" in result.checks[0].detail


def test_a_language_missing_from_the_candidate_refuses() -> None:
    result = decide(report({"en": (95, 100), "zh": (90, 100)}), BASE)
    assert result.failed == ["language_accuracy"] and "ru" in result.summary()


def test_report_as_dict_lists_every_check() -> None:
    d = decide(report({"en": (80, 100), "zh": (90, 100), "ru": (92, 100)}, ["s1"]), BASE).as_dict()
    assert d["passed"] is False
    assert d["failed"] == ["language_accuracy", "test_stories"]
    assert [c["name"] for c in d["checks"]] == ["language_accuracy", "test_stories", "strong_intents"]
