"""Figures, console output and the JUnit XML / JSON reports of a scenario run.

Definitions of the figures (over scenarios that ran, i.e. got a resolution):

- pass rate: scenarios whose every check passed.
- containment: the conversation stayed with the bot (resolved_by is not human).
- deflection: resolved without a person: by the bot or by the KB.
- correct resolution by bot (by KB): of the scenarios that expect ``bot`` (``kb``), those the bot
  (the KB) resolved and that passed every check.
- false containment: contained, but it should have been handed off (expected human) or some check
  failed (the bot kept the customer and answered wrongly).
- missed handoff: expected human, not handed off. Needless handoff: expected bot, kb or none,
  handed off.
- mean turns to resolution: over scenarios resolved by bot or KB, the 1-based turn where that
  happened; mean turns to handoff likewise for handed-off ones.

Per language (``summary()["languages"]``, the JUnit suites, each scenario's ``report_language`` in
the JSON): ``en``, ``zh``, ``zh-Hant``, ``ru``, each scenario under exactly one. Scenarios declare
``language: zh`` for both Chinese scripts; ``zh`` in the report is Simplified Chinese and
``zh-Hant`` Traditional, told apart by ``report_language`` (the console labels ``zh`` "zh-Hans").
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from scenarios import script
from scenarios.model import Scenario
from scenarios.runner import CheckResult, ScenarioResult, TurnResult

SHOWN_CHARS = 240
ZH_HANT = "zh-Hant"
REPORT_LANGUAGES = ("en", "zh", ZH_HANT, "ru")  # "zh": Simplified Chinese
LABELS = {"zh": "zh-Hans"}  # how the console names a report language
# How a scenario declares its Chinese script: a tag, or the name of its file or of the folder it is in.
HANT_MARKS = frozenset({"hant", "zh_hant", "zh-hant"})
HANS_MARKS = frozenset({"hans", "zh_hans", "zh-hans"})


def report_language(s: Scenario) -> str:
    """The language a scenario is reported under: its ``language``, except that a ``zh`` scenario
    is ``zh-Hant`` when it is declared Traditional (tag ``hant``, or a folder or file named
    ``zh_hant``) or, declared neither way, when the customer's text has more Traditional-only than
    Simplified-only characters."""
    if s.language != "zh":
        return s.language
    tags = {t.lower() for t in s.tags}
    names = {s.where.path.parent.name.lower(), s.where.path.stem.lower()}
    for marks in (tags, names):
        if marks & HANT_MARKS:
            return ZH_HANT
        if marks & HANS_MARKS:
            return "zh"
    typed = "\n".join(t.user for t in s.turns if t.user)
    traditional, simplified = script.offending(typed, "hans"), script.offending(typed, "hant")
    return ZH_HANT if len(traditional) > len(simplified) else "zh"


def _by_language(results: Sequence[ScenarioResult]) -> dict[str, list[ScenarioResult]]:
    """Results per report language: REPORT_LANGUAGES first, any other after them; none empty."""
    groups: dict[str, list[ScenarioResult]] = {lang: [] for lang in REPORT_LANGUAGES}
    for r in results:
        groups.setdefault(report_language(r.scenario), []).append(r)
    return {lang: group for lang, group in groups.items() if group}


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _mean(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def figures(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """The summary figures of a set of results (see the module docstring)."""
    ran = [r for r in results if r.resolution is not None]
    actual = [r.resolution.resolved_by for r in ran if r.resolution]
    expected_of = [(r, r.scenario.outcome.resolved_by, r.resolution.resolved_by) for r in ran if r.resolution]
    contained = [r for r, _, a in expected_of if a != "human"]
    by_bot = [r for r, e, _ in expected_of if e == "bot"]
    by_kb = [r for r, e, _ in expected_of if e == "kb"]
    return {
        "scenarios": len(results),
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed and r.error is None for r in results),
        "errors": sum(r.error is not None for r in results),
        "pass_rate": _rate(sum(r.passed for r in results), len(results)),
        "resolved_by": {k: actual.count(k) for k in ("bot", "kb", "human", "none")},
        "containment": _rate(len(contained), len(ran)),
        "deflection": _rate(sum(a in ("bot", "kb") for a in actual), len(ran)),
        "bot_resolution": {
            "expected": len(by_bot),
            "correct": sum(r.passed and r.resolution.resolved_by == "bot" for r in by_bot if r.resolution),
        },
        "kb_resolution": {
            "expected": len(by_kb),
            "correct": sum(r.passed and r.resolution.resolved_by == "kb" for r in by_kb if r.resolution),
        },
        "false_containment": sum(e == "human" or not r.passed for r, e, a in expected_of if a != "human"),
        "missed_handoffs": sum(e == "human" and a != "human" for _, e, a in expected_of),
        "needless_handoffs": sum(e in ("bot", "kb", "none") and a == "human" for _, e, a in expected_of),
        "mean_turns_to_resolution": _mean(
            [
                r.resolution.at_turn
                for r in ran
                if r.resolution and r.resolution.at_turn and r.resolution.resolved_by in ("bot", "kb")
            ]
        ),
        "mean_turns_to_handoff": _mean(
            [
                r.resolution.at_turn
                for r in ran
                if r.resolution and r.resolution.at_turn and r.resolution.resolved_by == "human"
            ]
        ),
    }


def summary(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    languages = {lang: figures(group) for lang, group in _by_language(results).items()}
    return {**figures(results), "languages": languages}


# --- console ------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ⏎ ")
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def result_line(r: ScenarioResult) -> str:
    s = r.scenario
    mark = "[green]PASS[/]" if r.passed else ("[red]ERROR[/]" if r.error else "[red]FAIL[/]")
    got = r.resolution.resolved_by if r.resolution else "-"
    return (
        f"{mark} {report_language(s)} {escape(s.name)} [dim]({escape(str(s.where))}, {len(r.turns)} turns, "
        f"resolved_by {got})[/]"
    )


def failure_details(r: ScenarioResult) -> list[str]:
    """The first failing turn as expected vs got, and what the bot understood there."""
    if r.error:
        return [f"  error: {escape(r.error)}"]
    turn, failed = r.first_failure()
    lines: list[str] = []
    if turn is not None:
        lines.append(f"  turn {turn.index} ({escape(str(turn.turn.where))}): {escape(_short(turn.turn.said))}")
        lines += [_check_line(c) for c in failed]
        lines.append(f"    bot understood: {escape(_understood(turn))}")
        if turn.observation.state is not None:
            lines.append(f"    state: {turn.observation.state}, language: {turn.observation.language}")
    else:
        lines += [_check_line(c) for c in failed]
    lines.append(f"  sender_id: {r.sender_id}")
    return lines


def _understood(turn: TurnResult) -> str:
    u = turn.observation.understood
    return u.brief() if u else "nothing recorded"


def _check_line(c: CheckResult) -> str:
    return f"    [red]✗[/] {c.key} (line {c.where.line}): expected {escape(_short(c.expected))}, got {escape(_short(c.got))}"


def print_summary(console: Console, results: Sequence[ScenarioResult]) -> dict[str, Any]:
    data = summary(results)
    console.print()
    console.rule("Conversation scenarios")
    console.print(_figures_line("all", data))
    for lang, f in data["languages"].items():
        console.print(_figures_line(LABELS.get(lang, lang), f))
    console.print(
        f"resolved by bot {data['resolved_by']['bot']}, KB {data['resolved_by']['kb']}, "
        f"human {data['resolved_by']['human']}, none {data['resolved_by']['none']} · "
        f"correct by bot {data['bot_resolution']['correct']}/{data['bot_resolution']['expected']}, "
        f"by KB {data['kb_resolution']['correct']}/{data['kb_resolution']['expected']}"
    )
    console.print(
        f"false containment {data['false_containment']} · missed handoffs {data['missed_handoffs']} · "
        f"needless handoffs {data['needless_handoffs']} · mean turns to resolution "
        f"{data['mean_turns_to_resolution']} (to handoff {data['mean_turns_to_handoff']})"
    )
    return data


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _figures_line(label: str, f: dict[str, Any]) -> str:
    return (
        f"{label:>7}: {f['passed']}/{f['scenarios']} passed ({_pct(f['pass_rate'])}), "
        f"{f['errors']} errors · containment {_pct(f['containment'])} · deflection {_pct(f['deflection'])}"
    )


# --- files --------------------------------------------------------------------------------------


def write_json(path: Path, results: Sequence[ScenarioResult], meta: dict[str, Any]) -> None:
    scenarios = [{**r.as_dict(), "report_language": report_language(r.scenario)} for r in results]
    doc = {**meta, "summary": summary(results), "scenarios": scenarios}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


def _rel(path: Path) -> str:
    """Paths in reports relative to the working directory when they are under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _transcript(r: ScenarioResult) -> str:
    lines = [f"sender_id: {r.sender_id}"]
    for t in r.turns:
        who = f"agent {t.turn.agent}" if t.turn.agent else "customer"
        said = t.turn.text if t.turn.agent else (t.sent.get("text") or t.sent.get("payload") or t.turn.said)
        lines.append(f"[{t.index}] {who}: {said or ''}".rstrip())
        for m in t.observation.messages:
            speaker = "agent" if m.get("type") == "agent" else "bot"
            lines.append(f"    {speaker} ({m.get('type')}): {m.get('text')}")
        if t.observation.understood:
            lines.append(f"    understood: {t.observation.understood.brief()}")
    if r.resolution:
        lines.append(f"resolved_by: {r.resolution.resolved_by} ({r.resolution.evidence})")
    return "\n".join(lines)


def _failure_text(r: ScenarioResult) -> tuple[str, str]:
    turn, failed = r.first_failure()
    head = f"turn {turn.index}" if turn else "outcome"
    message = f"{head}: " + "; ".join(f"{c.key}: expected {_short(c.expected)}, got {_short(c.got)}" for c in failed)
    body = [message]
    if turn is not None:
        body.append(f"at {turn.turn.where}; customer: {turn.turn.said}")
        body.append(f"bot understood: {_understood(turn)}")
    return message, "\n".join(body)


def write_junit(path: Path, results: Sequence[ScenarioResult]) -> None:
    root = ET.Element("testsuites", name="conversation-scenarios")
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for lang, group in sorted(_by_language(results).items()):
        suite = ET.SubElement(root, "testsuite", name=f"scenarios.{lang}")
        counts = {
            "tests": len(group),
            "failures": sum(not r.passed and r.error is None for r in group),
            "errors": sum(r.error is not None for r in group),
            "time": sum(r.duration_s for r in group),
        }
        for k, v in counts.items():
            suite.set(k, f"{v:.3f}" if k == "time" else str(v))
            totals[k] += v
        for r in group:
            s = r.scenario
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_rel(s.where.path),
                name=s.name,
                file=_rel(s.where.path),
                line=str(s.where.line),
                time=f"{r.duration_s:.3f}",
            )
            if r.error:
                ET.SubElement(case, "error", message=r.error, type="ScenarioError").text = r.error
            elif not r.passed:
                message, body = _failure_text(r)
                ET.SubElement(case, "failure", message=message, type="ScenarioFailure").text = body
            ET.SubElement(case, "system-out").text = _transcript(r)
    for k, v in totals.items():
        root.set(k, f"{v:.3f}" if k == "time" else str(v))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
