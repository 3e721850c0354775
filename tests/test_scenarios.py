"""The conversation-scenario harness without a live system: the loader (and its error reports),
every check passing and failing on purpose, the outcome rules, the figures and the report files.
The runs against the real system are in tests/test_scenarios_live.py."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from scenarios import report
from scenarios.checks import CHECKS, payload_offered, same_value
from scenarios.cli import DEFAULT_PATHS, main
from scenarios.loader import LoadError, load_paths, load_text
from scenarios.model import Check, Location, Scenario, Turn
from scenarios.observed import Observation, Understood
from scenarios.outcome import resolve
from scenarios.runner import CheckResult, ScenarioResult, TurnResult, find_button, substitute

HERE = Path("suite.yml")


def load(src: str) -> tuple[list[Scenario], list[str]]:
    scenarios, errors = load_text(textwrap.dedent(src), HERE)
    return scenarios, [str(e) for e in errors]


def one_error(src: str) -> str:
    scenarios, errors = load(src)
    assert not scenarios and len(errors) == 1, errors
    return errors[0]


# --- the shipped suite ------------------------------------------------------------------------


def test_shipped_suite_loads_and_is_big_enough() -> None:
    scenarios = load_paths(DEFAULT_PATHS)
    per_language = Counter(s.language for s in scenarios)
    assert len(scenarios) >= 120
    assert all(per_language[lang] >= 40 for lang in ("en", "zh", "ru")), per_language
    assert all(s.outcome.resolved_by for s in scenarios), "every shipped scenario states its expected outcome"


# --- loading ----------------------------------------------------------------------------------


def test_the_issue_example_loads() -> None:
    scenarios, errors = load("""
        - name: order status, verified, Simplified Chinese
          language: zh            # en | zh | ru; optional, else detected
          channel: rest
          turns:
            - user: 我的订单到哪了？
              expect: {intent: check_order_status}
            - user: "订单号 3348917502"
              expect: {text_contains_any: ["邮箱", "email"]}
            - user: cminh730@email.com
              expect: {type: text, text_contains_any: ["已发货", "shipped"], slots: {verified: true}}
          outcome: {resolved_by: bot}      # bot | kb | human | none
    """)
    assert errors == []
    (s,) = scenarios
    assert (s.name, s.language, s.language_given, s.channel, s.outcome.resolved_by) == (
        "order status, verified, Simplified Chinese", "zh", True, "rest", "bot")
    assert [t.user for t in s.turns] == ["我的订单到哪了？", "订单号 3348917502", "cminh730@email.com"]
    assert s.turns[0].checks == (Check("intent", ("check_order_status",), Location(HERE, 7)),)
    assert {c.key: c.expected for c in s.turns[2].checks} == {
        "type": ("text",), "text_contains_any": ("已发货", "shipped"), "slots": {"verified": True}}
    assert s.where.line == 2 and s.turns[1].where.line == 8


def test_agent_turns_load() -> None:
    (s,), errors = load("""
        - name: person
          turns:
            - user: a human please
            - agent: reply
              text: Hi, I'm Sam
              expect: {type: agent, state: human}
            - agent: resolve
    """)
    assert errors == [] and s.has_agent
    assert [(t.agent, t.text) for t in s.turns] == [(None, None), ("reply", "Hi, I'm Sam"), ("resolve", None)]
    assert s.turns[1].said == "[agent reply] Hi, I'm Sam"


def test_customer_words_are_kept_as_written() -> None:
    (s,), _ = load("""
        - name: literal
          turns:
            - user: yes
            - user: 3348917502
            - user: 0042
            - payload: /affirm
    """)
    assert [t.user for t in s.turns[:3]] == ["yes", "3348917502", "0042"]
    assert s.turns[3].payload == "/affirm"


@pytest.mark.parametrize(("texts", "language"), [
    (["我的訂單到哪了？", "cminh730@email.com"], "zh"),
    (["где мой заказ", "3348917502"], "ru"),
    (["where is my order", "订单"], "en"),  # mostly English
    (["hello", "привет", "где мой заказ"], "ru"),  # the majority
    (["hi", "你好"], "en"),  # a tie: the first message
])
def test_language_is_detected_from_the_customers_text(texts: list[str], language: str) -> None:
    turns = "\n".join(f"    - user: {t}" for t in texts)
    (s,), errors = load(f"- name: x\n  turns:\n{turns}\n")
    assert errors == [] and s.language == language and not s.language_given


@pytest.mark.parametrize(("src", "expected"), [
    ("- name: a\n  turns: [{user: hi}]\n  langauge: en\n", "suite.yml:3: scenario: unknown key 'langauge'"),
    ("- name: a\n  turns:\n    - user: hi\n      expct: {intent: greet}\n", "suite.yml:4: turn: unknown key 'expct'"),
    ("- name: a\n  turns:\n    - user: hi\n      expect: {intnet: greet}\n", "suite.yml:4: expect: unknown key 'intnet'"),
    ("- name: a\n  turns: [{user: hi}]\n  name: b\n", "suite.yml:3: scenario: duplicate key 'name' (first at line 1)"),
    ("- name: a\n", "suite.yml:1: scenario 'a' has no turns"),
    ("- turns: [{user: hi}]\n", "suite.yml:1: scenario without a name"),
    ("- name: a\n  turns: []\n", "suite.yml:2: turns must be a non-empty list"),
    ("- name: a\n  turns:\n    - {user: hi, payload: /greet}\n", "suite.yml:3: a turn has exactly one of"),
    ("- name: a\n  turns:\n    - expect: {intent: greet}\n", "suite.yml:3: a turn has exactly one of"),
    ("- name: a\n  turns:\n    - user: ''\n", "suite.yml:3: user must be a non-empty string"),
    ("- name: a\n  language: de\n  turns: [{user: hi}]\n", "suite.yml:2: language must be one of en, zh, ru"),
    ("- name: a\n  channel: fax\n  turns: [{user: hi}]\n", "suite.yml:2: channel 'fax' has no driver"),
    ("- name: a\n  turns: [{user: hi}]\n  outcome: {resolved_by: robot}\n", "suite.yml:3: resolved_by must be one of"),
    ("- name: a\n  turns: [{user: hi}]\n  outcome: {resolved_by: bot, handoff_reason: x}\n",
     "suite.yml:3: handoff_reason needs resolved_by: human"),
    ("- name: a\n  turns:\n    - user: hi\n      expect:\n        text_matches: '(unclosed'\n",
     "suite.yml:5: text_matches: not a valid regular expression"),
    ("- name: a\n  turns:\n    - user: hi\n      expect: {type: kb}\n", "suite.yml:4: type: unknown value 'kb'"),
    ("- name: a\n  turns:\n    - user: hi\n      expect: {state: waiting}\n", "suite.yml:4: state: unknown value 'waiting'"),
    ("- name: a\n  turns:\n    - user: hi\n      expect: {slots: [verified]}\n", "suite.yml:4: slots must be a non-empty mapping"),
    ("- name: a\n  turns:\n    - user: hi\n      expect: {entities: 5}\n", "suite.yml:4: entities must be a list"),
    ("- name: a\n  turns:\n    - user: hi\n      expect: {text_contains_any: []}\n", "suite.yml:4: text_contains_any must be"),
    ("- name: a\n  uses: {o: teleported}\n  turns: [{user: hi}]\n", "suite.yml:2: uses: unknown order pool 'teleported'"),
    ("- name: a\n  turns:\n    - user: cancel ${o.order_id}\n", "suite.yml:3: placeholder ${o.order_id}: 'o' is not declared"),
    ("- name: a\n  uses: {o: processing}\n  turns:\n    - user: cancel ${o.pin}\n",
     "suite.yml:4: placeholder ${o.pin}: unknown field 'pin'"),
    ("- name: a\n  uses: {o: processing}\n  turns: [{user: hi}]\n  store: {p: {status: cancelled}}\n",
     "suite.yml:4: store: 'p' is not an order declared in 'uses'"),
    ("- name: a\n  uses: {o: processing}\n  turns: [{user: hi}]\n  store:\n    o: {colour: red}\n",
     "suite.yml:5: store.o: unknown key 'colour'"),
    ("- name: a\n  tags: fast\n  turns: [{user: hi}]\n", "suite.yml:2: tags must be a list of strings"),
    ("- name: a\n  turns:\n    - agent: dance\n", "suite.yml:3: agent: unknown action 'dance'"),
    ("- name: a\n  turns:\n    - agent: reply\n", "suite.yml:3: 'text' goes with 'agent: reply'"),
    ("- name: a\n  turns:\n    - {agent: claim, text: hi}\n", "suite.yml:3: 'text' goes with 'agent: reply'"),
    ("- name: a\n  turns:\n    - {user: hi, text: hi}\n", "suite.yml:3: 'text' goes with 'agent: reply'"),
    ("- name: a\n  turns:\n    - {user: hi, agent: claim}\n", "suite.yml:3: a turn has exactly one of"),
    ("name: a\nturns: []\n", "suite.yml:1: a scenario file is a list of scenarios"),
    ("", "suite.yml:1: empty file"),
    ("- name: a\n  turns: [{user: hi}\n", "suite.yml:3: not valid YAML"),
    ("- name: a\n\tturns: []\n", "suite.yml:2: not valid YAML"),
])
def test_malformed_scenarios_are_errors_with_file_and_line(src: str, expected: str) -> None:
    assert one_error(src).startswith(expected)


def test_every_problem_of_a_file_is_reported_and_good_scenarios_still_load() -> None:
    scenarios, errors = load("""
        - name: fine
          turns: [{user: hi}]
        - name: two problems
          turns:
            - user: hi
              expect: {intent: greet, colour: blue}
          outcome: {resolved_by: maybe}
    """)
    assert [s.name for s in scenarios] == ["fine"]
    assert [e.split(": ", 1)[0] for e in errors] == ["suite.yml:7", "suite.yml:8"]


def test_load_paths_reports_all_files_duplicates_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("- name: same\n  turns: [{user: hi}]\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("- name: same\n  turns: [{user: hi}]\n- name: x\n  bogus: 1\n  turns: [{user: a}]\n",
                                              encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a scenario", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_paths([tmp_path, tmp_path / "missing.yml"])
    messages = [str(e) for e in caught.value.errors]
    assert f"{tmp_path / 'missing.yml'}:1: no such file or folder" in messages
    assert any(m.startswith(f"{tmp_path / 'sub' / 'b.yaml'}:4: scenario: unknown key 'bogus'") for m in messages)
    assert any(m.startswith(f"{tmp_path / 'sub' / 'b.yaml'}:1: duplicate scenario name 'same' (first at {tmp_path / 'a.yml'}:1)")
               for m in messages)


# --- checks -------------------------------------------------------------------------------------


def obs(**kw: Any) -> Observation:
    messages = kw.pop("messages", [{"type": "text", "text": "Your order 3348917502 shipped on 2 Jan.", "buttons": [
        {"title": "Yes", "payload": "/affirm"}, {"title": "That helped", "payload": '/kb_feedback{"kb_helpful":"yes","kb_answer_id":"7"}'},
    ], "sources": []}])
    understood = kw.pop("understood", Understood(
        intent="check_order_status", confidence=0.93,
        entities=[{"entity": "order_id", "value": "3348917502"}, {"entity": "email", "value": "A@B.com"}],
        slots={"verified": True, "failed_attempts": 0.0, "order_id": "3348917502", "refund_method": None},
        actions=["order_status_form", "action_order_status"], active_loop=None,
    ))
    return Observation(status=200, state=kw.pop("state", "bot"), language=kw.pop("language", "en"),
                       messages=messages, understood=understood, **kw)


def check(key: str, value: Any, o: Observation | None = None) -> bool:
    spec = CHECKS[key]
    return spec.evaluate(spec.parse(value), o or obs()).ok


@pytest.mark.parametrize(("key", "passing", "failing"), [
    ("intent", "check_order_status", "track_shipment"),
    ("intent", ["track_shipment", "check_order_status"], ["greet"]),
    ("entities", ["order_id", "email"], ["username"]),
    ("entities", {"order_id": 3348917502, "email": "a@b.com"}, {"order_id": "1111111111"}),
    ("entities", {"order_id": None}, {"username": None}),
    ("slots", {"verified": True, "failed_attempts": 0, "refund_method": None}, {"verified": False}),
    ("slots", {"order_id": "3348917502"}, {"refund_method": "gift_card"}),
    ("type", "text", "kb_answer"),
    ("type", ["handoff", "text"], ["handoff", "agent"]),
    ("not_type", "kb_answer", "text"),
    ("state", "bot", "queued"),
    ("state", ["queued", "bot"], ["human", "closed"]),
    ("text_contains_any", ["nope", "SHIPPED ON"], ["delivered", "cancelled"]),
    ("text_contains_any", "3348917502", "tracking"),
    ("text_not_contains", ["tracking", "1Z"], ["Shipped"]),
    ("text_matches", r"shipped on \d+ \w+", r"^shipped"),
    ("buttons", ["/affirm", "/kb_feedback*"], ["/affirm", "/deny"]),
    ("language", "en", "zh"),
    ("actions", ["action_order_status"], ["action_cancel_order"]),
    ("active_loop", None, "order_status_form"),
    ("active_loop", ["tracking_form", None], ["tracking_form", "order_status_form"]),
])
def test_each_check_passes_and_fails_on_purpose(key: str, passing: Any, failing: Any) -> None:
    assert check(key, passing)
    assert not check(key, failing)


def test_source_check_reads_sources_or_the_kb_record() -> None:
    answer = {"type": "kb_answer", "text": "Express takes 2-3 days.", "buttons": [],
              "sources": [{"title": "Shipping times", "url": "/help/shipping-times", "article_id": "shipping-times"}]}
    assert check("source", "shipping-times", obs(messages=[answer]))
    assert not check("source", "refund-policy", obs(messages=[answer]))
    bare = {**answer, "sources": [{"title": "Shipping times", "url": "/help/shipping-times"}]}
    from_kb = obs(messages=[bare], kb_rows=[{"id": 3, "outcome": "answered", "article_id": "shipping-times"}])
    assert check("source", ["refund-policy", "shipping-times"], from_kb)
    clarified = obs(messages=[bare], kb_rows=[{"id": 3, "outcome": "clarified", "article_id": "shipping-times"}])
    assert not check("source", "shipping-times", clarified)


def test_understanding_checks_fail_when_nothing_was_recorded() -> None:
    blind = obs(understood=None)
    for key, value in (("intent", "greet"), ("entities", ["order_id"]), ("slots", {"verified": True}),
                       ("actions", ["x"]), ("active_loop", None)):
        verdict = CHECKS[key].evaluate(CHECKS[key].parse(value), blind)
        assert not verdict.ok and "nothing recorded" in verdict.got


def test_value_comparison_is_loose_only_where_it_is_safe() -> None:
    assert same_value(True, True) and not same_value(True, "true") and not same_value(1, True)
    assert same_value(3, 3.0) and same_value("ABC@x.com", "abc@x.com ") and same_value(None, None)
    assert not same_value(None, "") and not same_value(0, None)
    assert payload_offered("/kb_pick*", ['/kb_pick{"kb_article":"x"}']) and not payload_offered("/kb_pick", ['/kb_pick{}'])


def test_click_finds_buttons_by_title_payload_or_prefix() -> None:
    o = obs()
    assert find_button("yes", o) == "/affirm"
    assert find_button("/affirm", o) == "/affirm"
    assert find_button("/kb_feedback*", o) == '/kb_feedback{"kb_helpful":"yes","kb_answer_id":"7"}'
    assert find_button("No", o) is None and find_button("yes", None) is None


def test_placeholders_are_substituted_and_escaped_in_regexes() -> None:
    b = {"o": {"order_id": "5120648393", "email": "j.wu@email.com"}}
    assert substitute("cancel ${o.order_id} for ${o.email}", b) == "cancel 5120648393 for j.wu@email.com"
    assert substitute(("${o.email}", "x"), b) == ("j.wu@email.com", "x")
    assert substitute({"order_id": "${o.order_id}"}, b) == {"order_id": "5120648393"}
    assert substitute("to ${o.email}", b, escape=True) == r"to j\.wu@email\.com"


# --- outcome rules -----------------------------------------------------------------------------


def turn(actions: list[str] = (), verified: bool | None = None, state: str = "bot", types: tuple[str, ...] = ("text",),
         answer_id: int | None = None) -> Observation:
    buttons = [{"title": "no", "payload": f'/kb_feedback{{"kb_helpful":"no","kb_answer_id":"{answer_id}"}}'}] if answer_id else []
    return Observation(status=200, state=state, messages=[{"type": t, "text": "", "buttons": buttons} for t in types],
                       understood=Understood(intent="x", confidence=1.0, actions=list(actions), slots={"verified": verified}))


def test_task_action_after_verification_is_resolved_by_bot() -> None:
    r = resolve([turn(["order_status_form"]), turn(["order_status_form", "action_order_status"], verified=True)], [], [])
    assert (r.resolved_by, r.at_turn) == ("bot", 2)


def test_task_action_after_failed_verification_is_not_a_resolution() -> None:
    assert resolve([turn(["action_cancel_order"], verified=False)], [], []).resolved_by == "none"
    assert resolve([turn(["action_reset_password"])], [], []).resolved_by == "bot"  # needs no verification


def test_kb_answer_counts_unless_marked_unhelpful() -> None:
    answered = [turn(types=("kb_answer",), answer_id=4)]
    assert resolve(answered, [{"id": 4, "helpful": None}], []).resolved_by == "kb"
    assert resolve(answered, [{"id": 4, "helpful": True}], []).resolved_by == "kb"
    assert resolve(answered, [{"id": 4, "helpful": False}], []).resolved_by == "none"
    spaced = Observation(status=200, state="bot", messages=[{"type": "kb_answer", "text": "", "buttons": [
        {"title": "Не то, что нужно", "payload": '/kb_feedback{"kb_helpful": "no", "kb_answer_id": "22"}'}]}])
    assert spaced.kb_answer_ids() == [22]
    assert resolve([spaced], [{"id": 22, "helpful": False}], []).resolved_by == "none"


def test_handoff_wins_and_reports_reasons() -> None:
    turns = [turn(["action_order_status"], verified=True), turn(state="queued", types=("handoff",))]
    r = resolve(turns, [], [{"id": 1, "reason": "explicit_request", "rule": None}])
    assert (r.resolved_by, r.at_turn, r.handoff_reasons) == ("human", 2, ["explicit_request"])
    only_ticket = resolve([turn()], [], [{"id": 2, "reason": "business_rule", "rule": "refund_above_limit"}])
    assert (only_ticket.resolved_by, only_ticket.handoff_reasons) == ("human", ["business_rule", "refund_above_limit"])
    assert resolve([turn(types=("agent",))], [], None).resolved_by == "human"


def test_an_offer_of_a_person_is_not_a_handoff() -> None:
    offered = [turn(["action_order_status"], verified=True, types=("text", "handoff"))]
    assert resolve(offered, [], []).resolved_by == "bot"


# --- figures and reports -----------------------------------------------------------------------


def result(name: str, language: str, expected: str, actual: str, passed: bool = True, at: int = 2,
           error: str | None = None) -> ScenarioResult:
    from scenarios.model import Outcome
    from scenarios.outcome import Resolution

    where = Location(Path(f"tests/scenarios/{language}.yml"), 10)
    t = Turn(where=Location(where.path, 12), user="where is my order")
    scenario = Scenario(name=name, where=where, language=language, language_given=True, channel="rest", turns=(t,),
                        outcome=Outcome(resolved_by=expected, where=where))
    o = obs()
    checks = [CheckResult("intent", ("check_order_status",), "greet (0.40)", passed, t.where)]
    r = ScenarioResult(scenario=scenario, sender_id=f"scn-{name}", turns=[TurnResult(1, t, {"text": t.user}, o, checks)],
                       error=error, duration_s=0.5)
    if error is None:
        r.resolution = Resolution(actual, at if actual != "none" else None)
        r.outcome_checks = [CheckResult("resolved_by", expected, actual, expected == actual, where)]
    return r


RESULTS = [
    result("bot ok", "en", "bot", "bot", at=3),
    result("bot wrong answer", "en", "bot", "bot", passed=False, at=2),
    result("kb ok", "zh", "kb", "kb", at=1),
    result("missed handoff", "zh", "human", "none"),
    result("needless handoff", "ru", "bot", "human", at=2),
    result("handoff ok", "ru", "human", "human", at=4),
    result("crashed", "ru", "bot", "bot", error="PoolExhausted: no unreserved order left"),
]


def test_figures_follow_their_definitions() -> None:
    f = report.summary(RESULTS)
    assert (f["scenarios"], f["passed"], f["failed"], f["errors"]) == (7, 3, 3, 1)
    assert f["resolved_by"] == {"bot": 2, "kb": 1, "human": 2, "none": 1}
    assert f["containment"] == round(4 / 6, 4) and f["deflection"] == 0.5
    assert f["bot_resolution"] == {"expected": 3, "correct": 1} and f["kb_resolution"] == {"expected": 1, "correct": 1}
    assert f["false_containment"] == 2  # the wrong answer and the missed handoff
    assert (f["missed_handoffs"], f["needless_handoffs"]) == (1, 1)
    assert f["mean_turns_to_resolution"] == 2.0 and f["mean_turns_to_handoff"] == 3.0
    assert f["languages"]["ru"]["scenarios"] == 3 and f["languages"]["zh"]["pass_rate"] == 0.5


def test_junit_and_json_reports(tmp_path: Path) -> None:
    report.write_junit(tmp_path / "r.xml", RESULTS)
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("7", "3", "1")
    assert [s.get("name") for s in root] == ["scenarios.en", "scenarios.ru", "scenarios.zh"]
    case = root.find(".//testcase[@name='bot wrong answer']")
    assert case is not None and case.get("file") == "tests/scenarios/en.yml" and case.get("line") == "10"
    failure = case.find("failure")
    assert failure is not None and "turn 1: intent: expected" in failure.get("message", "")
    assert "bot understood: intent=check_order_status 0.93" in (failure.text or "")
    assert root.find(".//testcase[@name='crashed']/error") is not None
    assert root.find(".//testcase[@name='bot ok']/failure") is None

    report.write_json(tmp_path / "r.json", RESULTS, {"url": "http://x"})
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["url"] == "http://x" and doc["summary"]["passed"] == 3
    wrong = next(s for s in doc["scenarios"] if s["name"] == "bot wrong answer")
    assert wrong["passed"] is False and wrong["turns"][0]["checks"][0] == {
        "key": "intent", "expected": ["check_order_status"], "got": "greet (0.40)", "ok": False, "line": 12}
    assert wrong["turns"][0]["observed"]["understood"]["intent"] == "check_order_status"


def test_console_failure_shows_expected_got_and_understanding() -> None:
    lines = report.failure_details(RESULTS[1])
    assert lines[0].startswith("  turn 1 (tests/scenarios/en.yml:12): where is my order")
    assert "intent (line 12): expected" in lines[1] and "got greet (0.40)" in lines[1]
    assert "bot understood: intent=check_order_status 0.93" in lines[2]


# --- the command line (what needs no live system) ------------------------------------------------


def test_cli_exits_2_and_names_file_and_line_for_malformed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("- name: a\n  turns:\n    - user: hi\n      expect: {intnet: greet}\n", encoding="utf-8")
    assert main(["test-conversations", str(bad), "--url", "http://127.0.0.1:9"]) == 2
    assert f"{bad}:4: expect: unknown key 'intnet'" in capsys.readouterr().out.replace("\n", "")


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yml"
    good.write_text("- name: a\n  language: en\n  turns: [{user: hi}]\n", encoding="utf-8")
    assert main(["test-conversations", str(good), "--language", "de", "--url", "http://127.0.0.1:9"]) == 2
    assert main(["test-conversations", str(good), "--language", "zh", "--url", "http://127.0.0.1:9"]) == 2
    assert main(["test-conversations", str(good), "--concurrency", "0"]) == 2
    assert main(["test-conversations", str(tmp_path / "nope.yml")]) == 2
    assert main(["test-conversations", str(good), "--url", "http://127.0.0.1:9",
                 "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"]) == 2
    out = capsys.readouterr().out
    assert "no scenario matches" in out and "has no 'turns' table" in out
