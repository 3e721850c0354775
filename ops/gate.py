"""The regression gate: may this candidate model replace the one customers talk to?

Three checks, all on the same held-out split and test stories (``ops.rasa_eval`` output):
1. ``language_accuracy``: no language's intent accuracy drops by more than ``margin`` points;
2. ``test_stories``: no test story fails;
3. ``strong_intents``: no intent whose F1 (all languages pooled) was ≥ ``strong_f1`` falls below
   ``floor_f1``.
With no baseline (the first model), checks 1 and 3 pass and say so; check 2 always applies.
Pure functions: the decisions are unit-tested on synthetic reports.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from settings import OpsSettings

_OPS = OpsSettings()  # the defaults, written once in settings/sections.py (no environment read here)


@dataclass(frozen=True)
class GatePolicy:
    margin_points: float = _OPS.gate_accuracy_margin
    strong_f1: float = _OPS.gate_strong_f1
    floor_f1: float = _OPS.gate_floor_f1


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    problems: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GateReport:
    passed: bool
    checks: list[Check]

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return "all checks passed"
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.passed)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed, "summary": self.summary(),
                "checks": [asdict(c) for c in self.checks]}


def pooled_f1(metrics: dict[str, Any]) -> dict[str, float]:
    """Per-intent F1 over the predictions of every language together (labels with support > 0)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for lang in (metrics.get("languages") or {}).values():
        for p in lang.get("predictions") or []:
            gold, pred = p.get("intent"), p.get("predicted")
            if gold == pred:
                tp[gold] += 1
            else:
                fn[gold] += 1
                fp[pred] += 1
    out: dict[str, float] = {}
    for label in set(tp) | set(fn):
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        out[label] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return out


def accuracies(metrics: dict[str, Any]) -> dict[str, float | None]:
    return {lang: m.get("accuracy") for lang, m in (metrics.get("languages") or {}).items()}


def decide(candidate: dict[str, Any], baseline: dict[str, Any] | None, policy: GatePolicy | None = None) -> GateReport:
    policy = policy or GatePolicy()
    checks = [
        _accuracy_check(candidate, baseline, policy),
        _stories_check(candidate),
        _intent_check(candidate, baseline, policy),
    ]
    return GateReport(passed=all(c.passed for c in checks), checks=checks)


def _accuracy_check(candidate: dict[str, Any], baseline: dict[str, Any] | None, policy: GatePolicy) -> Check:
    name = "language_accuracy"
    cand = accuracies(candidate)
    if not cand or any(v is None for v in cand.values()):
        return Check(name, False, "the candidate has no accuracy for some language (empty test file?)")
    if baseline is None:
        shown = ", ".join(f"{k} {v * 100:.1f}%" for k, v in sorted(cand.items()))  # type: ignore[operator]
        return Check(name, True, f"no baseline to compare with (first model): {shown}")
    problems = []
    for lang, base in sorted(accuracies(baseline).items()):
        now = cand.get(lang)
        if base is None:
            continue
        if now is None:
            problems.append({"language": lang, "baseline": base, "candidate": None, "drop_points": None})
            continue
        drop = (base - now) * 100
        if drop > policy.margin_points + 1e-9:
            problems.append({"language": lang, "baseline": base, "candidate": now, "drop_points": round(drop, 2)})
    if problems:
        text = ", ".join(
            f"{p['language']} {p['baseline'] * 100:.1f}% → "
            + ("missing" if p["candidate"] is None else f"{p['candidate'] * 100:.1f}% (−{p['drop_points']:.1f} points)")
            for p in problems
        )
        return Check(name, False, f"accuracy dropped more than {policy.margin_points:g} point(s): {text}", problems)
    return Check(name, True, f"no language dropped more than {policy.margin_points:g} point(s)")


def _stories_check(candidate: dict[str, Any]) -> Check:
    name = "test_stories"
    stories = candidate.get("stories")
    if stories is None:
        return Check(name, False, "the test stories were not run")
    failed = list(stories.get("failed") or [])
    wrong = max(len(failed), int(stories.get("total", 0)) - int(stories.get("correct", 0)))
    if wrong:
        named = ", ".join(failed) if failed else f"{wrong} story(ies)"
        return Check(name, False, f"{wrong} of {stories.get('total')} test stories failed: {named}",
                     [{"story": s} for s in failed])
    return Check(name, True, f"all {stories.get('total', 0)} test stories passed")


def _intent_check(candidate: dict[str, Any], baseline: dict[str, Any] | None, policy: GatePolicy) -> Check:
    name = "strong_intents"
    if baseline is None:
        return Check(name, True, "no baseline to compare with (first model)")
    before, after = pooled_f1(baseline), pooled_f1(candidate)
    strong = {k: v for k, v in before.items() if v >= policy.strong_f1}
    problems = [
        {"intent": k, "baseline_f1": round(v, 4), "candidate_f1": round(after.get(k, 0.0), 4)}
        for k, v in sorted(strong.items())
        if after.get(k, 0.0) < policy.floor_f1
    ]
    if problems:
        text = ", ".join(f"{p['intent']} {p['baseline_f1'] * 100:.1f}% → {p['candidate_f1'] * 100:.1f}%" for p in problems)
        return Check(name, False, f"intent(s) with F1 ≥ {policy.strong_f1 * 100:g}% fell below {policy.floor_f1 * 100:g}%: {text}", problems)
    return Check(name, True, f"all {len(strong)} intent(s) with F1 ≥ {policy.strong_f1 * 100:g}% stayed ≥ {policy.floor_f1 * 100:g}%")
