"""The conversation-scenario harness without a live system: the loader (and its error reports),
every check passing and failing on purpose, the outcome rules, the figures and the report files.
The runs against the real system are in tests/test_scenarios_live.py."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from scenarios import conversation, effects, report
from scenarios.checks import CHECKS, payload_offered, same_value
from scenarios.cli import DEFAULT_PATHS, main
from scenarios.database import SystemDatabase
from scenarios.loader import LoadError, load_paths, load_text
from scenarios.model import Check, Location, Scenario, Turn
from scenarios.observed import Observation, Understood
from scenarios.outcome import resolve
from scenarios.runner import CheckResult, Runner, ScenarioResult, Target, TurnResult, find_button, substitute

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
        "order status, verified, Simplified Chinese",
        "zh",
        True,
        "rest",
        "bot",
    )
    assert [t.user for t in s.turns] == ["我的订单到哪了？", "订单号 3348917502", "cminh730@email.com"]
    assert s.turns[0].checks == (Check("intent", ("check_order_status",), Location(HERE, 7)),)
    assert {c.key: c.expected for c in s.turns[2].checks} == {
        "type": ("text",),
        "text_contains_any": ("已发货", "shipped"),
        "slots": {"verified": True},
    }
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


@pytest.mark.parametrize(
    ("texts", "language"),
    [
        (["我的訂單到哪了？", "cminh730@email.com"], "zh"),
        (["где мой заказ", "3348917502"], "ru"),
        (["where is my order", "订单"], "en"),  # mostly English
        (["hello", "привет", "где мой заказ"], "ru"),  # the majority
        (["hi", "你好"], "en"),  # a tie: the first message
    ],
)
def test_language_is_detected_from_the_customers_text(texts: list[str], language: str) -> None:
    turns = "\n".join(f"    - user: {t}" for t in texts)
    (s,), errors = load(f"- name: x\n  turns:\n{turns}\n")
    assert errors == [] and s.language == language and not s.language_given


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("- name: a\n  turns: [{user: hi}]\n  langauge: en\n", "suite.yml:3: scenario: unknown key 'langauge'"),
        (
            "- name: a\n  turns:\n    - user: hi\n      expct: {intent: greet}\n",
            "suite.yml:4: turn: unknown key 'expct'",
        ),
        (
            "- name: a\n  turns:\n    - user: hi\n      expect: {intnet: greet}\n",
            "suite.yml:4: expect: unknown key 'intnet'",
        ),
        (
            "- name: a\n  turns: [{user: hi}]\n  name: b\n",
            "suite.yml:3: scenario: duplicate key 'name' (first at line 1)",
        ),
        ("- name: a\n", "suite.yml:1: scenario 'a' has no turns"),
        ("- turns: [{user: hi}]\n", "suite.yml:1: scenario without a name"),
        ("- name: a\n  turns: []\n", "suite.yml:2: turns must be a non-empty list"),
        ("- name: a\n  turns:\n    - {user: hi, payload: /greet}\n", "suite.yml:3: a turn has exactly one of"),
        ("- name: a\n  turns:\n    - expect: {intent: greet}\n", "suite.yml:3: a turn has exactly one of"),
        ("- name: a\n  turns:\n    - user: ''\n", "suite.yml:3: user must be a non-empty string"),
        ("- name: a\n  language: de\n  turns: [{user: hi}]\n", "suite.yml:2: language must be one of en, zh, ru"),
        ("- name: a\n  channel: fax\n  turns: [{user: hi}]\n", "suite.yml:2: channel 'fax' has no driver"),
        (
            "- name: a\n  turns: [{user: hi}]\n  outcome: {resolved_by: robot}\n",
            "suite.yml:3: resolved_by must be one of",
        ),
        (
            "- name: a\n  turns: [{user: hi}]\n  outcome: {resolved_by: bot, handoff_reason: x}\n",
            "suite.yml:3: handoff_reason needs resolved_by: human",
        ),
        (
            "- name: a\n  turns:\n    - user: hi\n      expect:\n        text_matches: '(unclosed'\n",
            "suite.yml:5: text_matches: not a valid regular expression",
        ),
        ("- name: a\n  turns:\n    - user: hi\n      expect: {type: kb}\n", "suite.yml:4: type: unknown value 'kb'"),
        (
            "- name: a\n  turns:\n    - user: hi\n      expect: {state: waiting}\n",
            "suite.yml:4: state: unknown value 'waiting'",
        ),
        (
            "- name: a\n  turns:\n    - user: hi\n      expect: {slots: [verified]}\n",
            "suite.yml:4: slots must be a non-empty mapping",
        ),
        ("- name: a\n  turns:\n    - user: hi\n      expect: {entities: 5}\n", "suite.yml:4: entities must be a list"),
        (
            "- name: a\n  turns:\n    - user: hi\n      expect: {text_contains_any: []}\n",
            "suite.yml:4: text_contains_any must be",
        ),
        (
            "- name: a\n  uses: {o: teleported}\n  turns: [{user: hi}]\n",
            "suite.yml:2: uses: unknown order pool 'teleported'",
        ),
        (
            "- name: a\n  turns:\n    - user: cancel ${o.order_id}\n",
            "suite.yml:3: placeholder ${o.order_id}: 'o' is not declared",
        ),
        (
            "- name: a\n  uses: {o: processing}\n  turns:\n    - user: cancel ${o.pin}\n",
            "suite.yml:4: placeholder ${o.pin}: unknown field 'pin'",
        ),
        (
            "- name: a\n  uses: {o: processing}\n  turns: [{user: hi}]\n  store: {p: {status: cancelled}}\n",
            "suite.yml:4: store: 'p' is not an order declared in 'uses'",
        ),
        (
            "- name: a\n  uses: {o: processing}\n  turns: [{user: hi}]\n  store:\n    o: {colour: red}\n",
            "suite.yml:5: store.o: unknown key 'colour'",
        ),
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
    ],
)
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
    (tmp_path / "sub" / "b.yaml").write_text(
        "- name: same\n  turns: [{user: hi}]\n- name: x\n  bogus: 1\n  turns: [{user: a}]\n", encoding="utf-8"
    )
    (tmp_path / "notes.txt").write_text("not a scenario", encoding="utf-8")
    with pytest.raises(LoadError) as caught:
        load_paths([tmp_path, tmp_path / "missing.yml"])
    messages = [str(e) for e in caught.value.errors]
    assert f"{tmp_path / 'missing.yml'}:1: no such file or folder" in messages
    assert any(m.startswith(f"{tmp_path / 'sub' / 'b.yaml'}:4: scenario: unknown key 'bogus'") for m in messages)
    assert any(
        m.startswith(
            f"{tmp_path / 'sub' / 'b.yaml'}:1: duplicate scenario name 'same' (first at {tmp_path / 'a.yml'}:1)"
        )
        for m in messages
    )


# --- checks -------------------------------------------------------------------------------------


def obs(**kw: Any) -> Observation:
    messages = kw.pop(
        "messages",
        [
            {
                "type": "text",
                "text": "Your order 3348917502 shipped on 2 Jan.",
                "buttons": [
                    {"title": "Yes", "payload": "/affirm"},
                    {"title": "That helped", "payload": '/kb_feedback{"kb_helpful":"yes","kb_answer_id":"7"}'},
                ],
                "sources": [],
            }
        ],
    )
    understood = kw.pop(
        "understood",
        Understood(
            intent="check_order_status",
            confidence=0.93,
            entities=[{"entity": "order_id", "value": "3348917502"}, {"entity": "email", "value": "A@B.com"}],
            slots={"verified": True, "failed_attempts": 0.0, "order_id": "3348917502", "refund_method": None},
            actions=["order_status_form", "action_order_status"],
            active_loop=None,
        ),
    )
    return Observation(
        status=200,
        state=kw.pop("state", "bot"),
        language=kw.pop("language", "en"),
        messages=messages,
        understood=understood,
        **kw,
    )


def check(key: str, value: Any, o: Observation | None = None) -> bool:
    spec = CHECKS[key]
    return spec.evaluate(spec.parse(value), o or obs()).ok


@pytest.mark.parametrize(
    ("key", "passing", "failing"),
    [
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
    ],
)
def test_each_check_passes_and_fails_on_purpose(key: str, passing: Any, failing: Any) -> None:
    assert check(key, passing)
    assert not check(key, failing)


def test_source_check_reads_sources_or_the_kb_record() -> None:
    answer = {
        "type": "kb_answer",
        "text": "Express takes 2-3 days.",
        "buttons": [],
        "sources": [{"title": "Shipping times", "url": "/help/shipping-times", "article_id": "shipping-times"}],
    }
    assert check("source", "shipping-times", obs(messages=[answer]))
    assert not check("source", "refund-policy", obs(messages=[answer]))
    bare = {**answer, "sources": [{"title": "Shipping times", "url": "/help/shipping-times"}]}
    from_kb = obs(messages=[bare], kb_rows=[{"id": 3, "outcome": "answered", "article_id": "shipping-times"}])
    assert check("source", ["refund-policy", "shipping-times"], from_kb)
    clarified = obs(messages=[bare], kb_rows=[{"id": 3, "outcome": "clarified", "article_id": "shipping-times"}])
    assert not check("source", "shipping-times", clarified)


def test_understanding_checks_fail_when_nothing_was_recorded() -> None:
    blind = obs(understood=None)
    for key, value in (
        ("intent", "greet"),
        ("entities", ["order_id"]),
        ("slots", {"verified": True}),
        ("actions", ["action_cancel_order"]),
        ("active_loop", None),
    ):
        verdict = CHECKS[key].evaluate(CHECKS[key].parse(value), blind)
        assert not verdict.ok and "nothing recorded" in verdict.got


def test_value_comparison_is_loose_only_where_it_is_safe() -> None:
    assert same_value(True, True) and not same_value(True, "true") and not same_value(1, True)
    assert same_value(3, 3.0) and same_value("ABC@x.com", "abc@x.com ") and same_value(None, None)
    assert not same_value(None, "") and not same_value(0, None)
    assert payload_offered("/kb_pick*", ['/kb_pick{"kb_article":"x"}']) and not payload_offered(
        "/kb_pick", ["/kb_pick{}"]
    )


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


def turn(
    actions: list[str] = (),
    verified: bool | None = None,
    state: str = "bot",
    types: tuple[str, ...] = ("text",),
    answer_id: int | None = None,
) -> Observation:
    buttons = (
        [{"title": "no", "payload": f'/kb_feedback{{"kb_helpful":"no","kb_answer_id":"{answer_id}"}}'}]
        if answer_id
        else []
    )
    return Observation(
        status=200,
        state=state,
        messages=[{"type": t, "text": "", "buttons": buttons} for t in types],
        understood=Understood(intent="x", confidence=1.0, actions=list(actions), slots={"verified": verified}),
    )


def test_task_action_after_verification_is_resolved_by_bot() -> None:
    r = resolve(
        [turn(["order_status_form"]), turn(["order_status_form", "action_order_status"], verified=True)], [], []
    )
    assert (r.resolved_by, r.at_turn) == ("bot", 2)


def test_task_action_after_failed_verification_is_not_a_resolution() -> None:
    assert resolve([turn(["action_cancel_order"], verified=False)], [], []).resolved_by == "none"
    assert resolve([turn(["action_reset_password"])], [], []).resolved_by == "bot"  # needs no verification


def test_kb_answer_counts_unless_marked_unhelpful() -> None:
    answered = [turn(types=("kb_answer",), answer_id=4)]
    assert resolve(answered, [{"id": 4, "helpful": None}], []).resolved_by == "kb"
    assert resolve(answered, [{"id": 4, "helpful": True}], []).resolved_by == "kb"
    assert resolve(answered, [{"id": 4, "helpful": False}], []).resolved_by == "none"
    spaced = Observation(
        status=200,
        state="bot",
        messages=[
            {
                "type": "kb_answer",
                "text": "",
                "buttons": [
                    {"title": "Не то, что нужно", "payload": '/kb_feedback{"kb_helpful": "no", "kb_answer_id": "22"}'}
                ],
            }
        ],
    )
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


def result(
    name: str,
    language: str,
    expected: str,
    actual: str,
    passed: bool = True,
    at: int = 2,
    error: str | None = None,
    user: str = "where is my order",
    tags: tuple[str, ...] = (),
    path: str | None = None,
) -> ScenarioResult:
    from scenarios.model import Outcome
    from scenarios.outcome import Resolution

    where = Location(Path(path or f"tests/scenarios/{language}.yml"), 10)
    t = Turn(where=Location(where.path, 12), user=user)
    scenario = Scenario(
        name=name,
        where=where,
        language=language,
        language_given=True,
        channel="rest",
        turns=(t,),
        outcome=Outcome(resolved_by=expected, where=where),
        tags=tags,
    )
    o = obs()
    checks = [CheckResult("intent", ("check_order_status",), "greet (0.40)", passed, t.where)]
    r = ScenarioResult(
        scenario=scenario,
        sender_id=f"scn-{name}",
        turns=[TurnResult(1, t, {"text": t.user}, o, checks)],
        error=error,
        duration_s=0.5,
    )
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
        "key": "intent",
        "expected": ["check_order_status"],
        "got": "greet (0.40)",
        "ok": False,
        "line": 12,
    }
    assert wrong["turns"][0]["observed"]["understood"]["intent"] == "check_order_status"


def test_console_failure_shows_expected_got_and_understanding() -> None:
    lines = report.failure_details(RESULTS[1])
    assert lines[0].startswith("  turn 1 (tests/scenarios/en.yml:12): where is my order")
    assert "intent (line 12): expected" in lines[1] and "got greet (0.40)" in lines[1]
    assert "bot understood: intent=check_order_status 0.93" in lines[2]


# --- Traditional Chinese is reported on its own --------------------------------------------------


def _zh(user: str, tags: tuple[str, ...] = (), path: str = "tests/scenarios/zh/orders.yml") -> Scenario:
    return result("s", "zh", "bot", "bot", user=user, tags=tags, path=path).scenario


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (_zh("我的订单到哪了"), "zh"),
        (_zh("我的訂單到哪了"), "zh-Hant"),  # not declared: the customer's text decides
        (_zh("你好 3348917502"), "zh"),  # no character of either script only
        (_zh("我的订单到哪了", tags=("hant",)), "zh-Hant"),  # declared by a tag
        (_zh("我的订单到哪了", path="tests/scenarios_blind/holdout/zh_hant/kb.yml"), "zh-Hant"),  # by its folder
        (_zh("我的訂單到哪了", path="tests/scenarios_blind/zh_hans/kb.yml"), "zh"),
        (_zh("我的訂單到哪了", tags=("hans",), path="tests/scenarios_blind/zh_hant/kb.yml"), "zh"),  # the tag first
        (result("s", "en", "bot", "bot", user="我的訂單", tags=("hant",)).scenario, "en"),
        (result("s", "ru", "bot", "bot", path="tests/scenarios_blind/zh_hant/x.yml").scenario, "ru"),
    ],
)
def test_report_language_is_declared_or_read_from_the_text(scenario: Scenario, expected: str) -> None:
    assert report.report_language(scenario) == expected


def test_scenario_files_report_traditional_chinese_as_zh_hant() -> None:
    blind = Path("tests/scenarios_blind")
    for folder, expected in (("zh_hant", "zh-Hant"), ("zh_hans", "zh")):
        found = load_paths([blind / folder])
        assert len(found) >= 30 and {report.report_language(s) for s in found} == {expected}
    shipped = [s for s in load_paths(DEFAULT_PATHS) if s.language == "zh"]
    traditional = {s.name for s in shipped if report.report_language(s) == "zh-Hant"}
    assert len(traditional) >= 5 and traditional == {s.name for s in shipped if s.name.startswith("繁體")}


HANT_RESULTS = [
    *RESULTS,
    result("hant ok", "zh", "bot", "bot", user="我的訂單到哪了", at=2),
    result("hant failed", "zh", "bot", "bot", passed=False, tags=("hant",)),
    result("hant handoff", "zh", "human", "human", path="tests/scenarios_blind/zh_hant/handoff.yml", at=3),
]


def test_figures_per_language_count_zh_hant_apart(tmp_path: Path) -> None:
    f = report.summary(HANT_RESULTS)
    assert list(f["languages"]) == ["en", "zh", "zh-Hant", "ru"]
    assert sum(v["scenarios"] for v in f["languages"].values()) == f["scenarios"] == 10
    zh, hant = f["languages"]["zh"], f["languages"]["zh-Hant"]
    assert (zh["scenarios"], zh["passed"], zh["pass_rate"]) == (2, 1, 0.5)  # as before: only the Simplified ones
    assert (hant["scenarios"], hant["passed"], hant["failed"], hant["pass_rate"]) == (3, 2, 1, round(2 / 3, 4))
    assert hant["resolved_by"] == {"bot": 2, "kb": 0, "human": 1, "none": 0} and hant["mean_turns_to_handoff"] == 3.0
    assert report.summary(RESULTS)["languages"].keys() == {"en", "zh", "ru"}  # no empty zh-Hant entry

    report.write_json(tmp_path / "r.json", HANT_RESULTS, {})
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["summary"]["languages"]["zh-Hant"]["passed"] == 2
    langs = {s["name"]: (s["language"], s["report_language"]) for s in doc["scenarios"]}
    assert langs["hant ok"] == ("zh", "zh-Hant") and langs["kb ok"] == ("zh", "zh") and langs["bot ok"] == ("en", "en")

    report.write_junit(tmp_path / "r.xml", HANT_RESULTS)
    suites = {s.get("name"): s for s in ET.parse(tmp_path / "r.xml").getroot()}
    assert list(suites) == ["scenarios.en", "scenarios.ru", "scenarios.zh", "scenarios.zh-Hant"]
    assert (suites["scenarios.zh-Hant"].get("tests"), suites["scenarios.zh-Hant"].get("failures")) == ("3", "1")
    assert suites["scenarios.zh"].get("tests") == "2"


def test_console_summary_has_a_zh_hant_line() -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    report.print_summary(console, HANT_RESULTS)
    text = console.export_text()
    assert "zh-Hans: 1/2 passed (50.0%)" in text and "zh-Hant: 2/3 passed (66.7%)" in text
    assert "zh-Hant" in report.result_line(HANT_RESULTS[-1]) and " zh " in report.result_line(RESULTS[2])


# --- the command line (what needs no live system) ------------------------------------------------


def test_cli_exits_2_and_names_file_and_line_for_malformed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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
    assert (
        main(
            [
                "test-conversations",
                str(good),
                "--url",
                "http://127.0.0.1:9",
                "--database-url",
                f"sqlite:///{tmp_path / 'empty.db'}",
            ]
        )
        == 2
    )
    out = capsys.readouterr().out
    assert "no scenario matches" in out and "has no 'turns' table" in out


# --- the keys of issue 13 (tests/scenarios_blind/SPEC.md) ---------------------------------------


NEW_KEYS = """
- name: every new key
  uses: {o: processing}
  turns:
    - user: cancel ${o.order_id}
      expect:
        not_actions: action_cancel_order
        script: hant
        button_titles: [是, 不用]
    - user: yes
      expect: {actions: [action_cancel_order]}
  eventually: {actions: action_cancel_order, text_contains_any: "${o.order_id}"}
  never:
    type: kb_answer
    actions: [action_change_address, action_submit_refund]
  ticket: {queue: "*-zh", priority: [high, urgent], reason: business_rule, rule: suspected account takeover}
  side_effects: {password_reset_email: false, rating_stored: true}
  store:
    o: {status: cancelled, refund_amount: "${o.total}", refund_reason: null, return_reason: 洞,
        other_orders_unchanged: true}
"""


def test_the_new_keys_load() -> None:
    (s,), errors = load(NEW_KEYS)
    assert errors == []
    first = {c.key: c.expected for c in s.turns[0].checks}
    assert first == {"not_actions": ("action_cancel_order",), "script": "hant", "button_titles": ("是", "不用")}
    conv = {c.key: c for c in s.conversation}
    assert [(c.key, c.expected) for c in conv["eventually"].expected] == [
        ("actions", ("action_cancel_order",)),
        ("text_contains_any", ("${o.order_id}",)),
    ]
    assert conv["eventually"].where.line == 12 and conv["never"].expected[1].where.line == 15
    assert conv["ticket"].expected == {
        "queue": ("*-zh",),
        "priority": ("high", "urgent"),
        "reason": ("business_rule",),
        "rule": ("suspected account takeover",),
    }
    assert (conv["side_effects.password_reset_email"].expected, conv["side_effects.rating_stored"].expected) == (
        False,
        True,
    )
    assert {sc.field: sc.expected for sc in s.store} == {
        "status": "cancelled",
        "refund_amount": "${o.total}",
        "refund_reason": None,
        "return_reason": "洞",
        "other_orders_unchanged": True,
    }


def _in_turn(expect: str) -> str:
    return f"- name: a\n  turns:\n    - user: hi\n      expect:\n        {expect}\n"


def _in_scenario(key: str) -> str:
    return f"- name: a\n  uses: {{o: refundable}}\n  turns: [{{user: hi}}]\n  {key}\n"


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        (_in_turn("not_actions: action_cancel_ordr"), "suite.yml:5: not_actions: unknown action 'action_cancel_ordr'"),
        (_in_turn("not_actions: []"), "suite.yml:5: not_actions must be a non-empty string or a list"),
        (_in_turn("actions: [action_submit_refunds]"), "suite.yml:5: actions: unknown action 'action_submit_refunds'"),
        (_in_turn("script: traditional"), "suite.yml:5: script must be one of hant, hans"),
        (_in_turn("script: [hant]"), "suite.yml:5: script must be one of hant, hans"),
        (_in_turn("button_titles: 5"), "suite.yml:5: button_titles must be a non-empty string or a list"),
        (_in_turn("button_titles: ['']"), "suite.yml:5: button_titles must be a non-empty string or a list"),
        (_in_scenario("eventually: {}"), "suite.yml:4: eventually must be a non-empty mapping of per-turn checks"),
        (_in_scenario("eventually: [intent]"), "suite.yml:4: eventually must be a non-empty mapping"),
        (_in_scenario("eventually:\n    intnet: greet"), "suite.yml:5: eventually: unknown key 'intnet'"),
        (_in_scenario("eventually:\n    type: kb"), "suite.yml:5: eventually: type: unknown value 'kb'"),
        (
            _in_scenario("never:\n    text_matches: '(x'"),
            "suite.yml:5: never: text_matches: not a valid regular expression",
        ),
        (
            _in_scenario("never:\n    not_actions: action_nope"),
            "suite.yml:5: never: not_actions: unknown action 'action_nope'",
        ),
        (
            _in_scenario("never: {text_contains_any: '${p.email}'}"),
            "suite.yml:4: placeholder ${p.email}: 'p' is not declared",
        ),
        (_in_scenario("ticket: {}"), "suite.yml:4: ticket must name at least one of queue, priority, reason, rule"),
        (_in_scenario("ticket:\n    queue: billing-en\n    team: x"), "suite.yml:6: ticket: unknown key 'team'"),
        (_in_scenario("ticket: {priority: medium}"), "suite.yml:4: ticket.priority: unknown priority 'medium'"),
        (_in_scenario("ticket: {queue: 5}"), "suite.yml:4: ticket.queue must be a non-empty string or a list"),
        (_in_scenario("ticket: {rule: []}"), "suite.yml:4: ticket.rule must be a non-empty string or a list"),
        (_in_scenario("ticket: explicit_request"), "suite.yml:4: ticket must be a mapping"),
        (
            _in_scenario("side_effects: {password_reset_email: 'yes'}"),
            "suite.yml:4: side_effects.password_reset_email must be true or false",
        ),
        (_in_scenario("side_effects:\n    email_sent: true"), "suite.yml:5: side_effects: unknown key 'email_sent'"),
        (_in_scenario("side_effects: {}"), "suite.yml:4: side_effects must name at least one of"),
        (
            _in_scenario("store:\n    o: {refund_amount: lots}"),
            "suite.yml:5: store.o.refund_amount: refund_amount must be an amount",
        ),
        (
            _in_scenario("store:\n    o: {refund_amount: true}"),
            "suite.yml:5: store.o.refund_amount: refund_amount must be an amount",
        ),
        (
            _in_scenario("store:\n    o: {refund_reason: ''}"),
            "suite.yml:5: store.o.refund_reason: refund_reason must be a non-empty text",
        ),
        (
            _in_scenario("store:\n    o: {return_reason: 5}"),
            "suite.yml:5: store.o.return_reason: return_reason must be a non-empty text",
        ),
        (
            _in_scenario("store:\n    o: {other_orders_unchanged: false}"),
            "suite.yml:5: store.o.other_orders_unchanged: other_orders_unchanged can only be true",
        ),
        (
            _in_scenario("store:\n    o: {refund_amount: '${o.pin}'}"),
            "suite.yml:5: placeholder ${o.pin}: unknown field 'pin'",
        ),
    ],
)
def test_new_keys_reject_bad_values_with_file_and_line(src: str, expected: str) -> None:
    assert one_error(src).startswith(expected)


def test_new_keys_accept_their_documented_forms() -> None:
    _, errors = load(
        _in_scenario(
            "store:\n    o: {refund_amount: 117, refund_reason: colour, return_reason: null}\n"
            "  never: {slots: {verified: false}, script: hans, buttons: ['/human_handoff']}\n"
            "  ticket: {queue: billing-en}\n  side_effects: {rating_stored: false}"
        )
    )
    assert errors == []
    for amount in ("'117.00'", "'$117'", "'¥ 1,117.50'", "null", "'${o.total}'"):
        assert load(_in_scenario(f"store:\n    o: {{refund_amount: {amount}}}"))[1] == []


ZH = [
    {
        "type": "text",
        "text": "您的訂單已取消。",
        "buttons": [{"title": "聯絡客服", "payload": "/human_handoff"}],
        "sources": [],
    }
]


def zh(
    text: str, titles: tuple[str, ...] = (), sources: tuple[str, ...] = (), typed: tuple[str, ...] = ()
) -> Observation:
    messages = [
        {
            "type": "text",
            "text": text,
            "buttons": [{"title": t, "payload": "/x"} for t in titles],
            "sources": [{"title": s, "url": "/help/x"} for s in sources],
        }
    ]
    return obs(messages=messages, customer_texts=list(typed))


@pytest.mark.parametrize(
    ("key", "passing", "failing"),
    [
        (
            "not_actions",
            ["action_cancel_order", "action_submit_refund"],
            ["action_submit_refund", "action_order_status"],
        ),
        ("not_actions", "action_change_address", "order_status_form"),
        ("button_titles", ["YES", "helped"], ["yes", "No"]),
        ("button_titles", "That", "Cancel"),
    ],
)
def test_new_turn_checks_pass_and_fail_on_purpose(key: str, passing: Any, failing: Any) -> None:
    assert check(key, passing)
    assert not check(key, failing)


def test_not_actions_needs_a_record_except_after_an_agent() -> None:
    spec = CHECKS["not_actions"]
    assert (
        spec.evaluate(("action_cancel_order",), obs(understood=None)).got
        == "nothing recorded for this message in the conversation store"
    )
    assert not spec.evaluate(("action_cancel_order",), obs(understood=None)).ok
    assert spec.evaluate(("action_cancel_order",), obs(understood=None, by_agent=True)).ok


def test_button_titles_are_nfc_and_need_buttons() -> None:
    decomposed = obs(messages=[{"type": "text", "text": "", "buttons": [{"title": "Cafe\u0301", "payload": "/a"}]}])
    assert check("button_titles", "café", decomposed)
    assert not check("button_titles", "yes", obs(messages=[{"type": "text", "text": "yes", "buttons": []}]))
    quick = obs(messages=[{"type": "text", "text": "", "quick_replies": [{"title": "Track it", "payload": "/t"}]}])
    assert check("button_titles", "track", quick)


@pytest.mark.parametrize(
    ("o", "hant", "hans"),
    [
        (zh("您的訂單已取消。"), True, False),
        (zh("您的订单已取消。"), False, True),
        (zh("您好"), True, True),  # common to both scripts
        (zh("Your order 3348917502"), False, False),  # no Chinese at all
        (zh(""), False, False),
        (zh("客服已加入对话"), False, True),
        (zh("您的訂單", titles=("联系客服",)), False, False),  # a Simplified button title
        (zh("您的訂單", sources=("退款政策",)), True, False),  # a KB source title counts
        (zh("您的訂單", sources=("退货政策",)), False, False),
        (
            zh("已改為：台北市信义区松仁路", typed=("台北市信义区松仁路",)),
            True,
            False,
        ),  # the customer's own words echoed
        (
            zh("台北市信义区松仁路", typed=("台北市信义区松仁路",)),
            False,
            False,
        ),  # only an echo: no Chinese of the bot's
        (zh("我們的台灣團隊為您服務"), True, False),  # Taiwan forms (台, 為) are Traditional
        (zh("皇后大道的訂單"), True, False),
        (zh("後來的訂單"), True, False),
        (zh("后来的訂單"), False, False),
    ],
)
def test_script_check(o: Observation, hant: bool, hans: bool) -> None:
    assert CHECKS["script"].evaluate("hant", o).ok is hant
    assert CHECKS["script"].evaluate("hans", o).ok is hans


def test_script_reports_offending_characters() -> None:
    assert CHECKS["script"].evaluate("hant", zh("您的订单已发货")).got == ["订", "单", "发", "货"]
    assert CHECKS["script"].evaluate("hant", zh("Order shipped")).got == "no Chinese text"


# --- eventually / never -------------------------------------------------------------------------


def _checks(src: str) -> tuple[Check, ...]:
    (s,), errors = load(_in_scenario(src))
    assert errors == [], errors
    return s.conversation[0].expected


def seen(
    text: str = "",
    actions: tuple[str, ...] = (),
    types: tuple[str, ...] = ("text",),
    recorded: bool = True,
    state: str = "bot",
    loop: str | None = None,
    payloads: tuple[str, ...] = (),
    **kw: Any,
) -> Observation:
    understood = (
        Understood(intent="x", confidence=1.0, actions=list(actions), active_loop=loop, slots={"verified": True})
        if recorded
        else None
    )
    messages = [{"type": t, "text": text, "buttons": [{"title": p, "payload": p} for p in payloads]} for t in types]
    return Observation(status=200, state=state, messages=messages, understood=understood, **kw)


def test_eventually_needs_one_turn_where_all_hold() -> None:
    checks = _checks("eventually: {actions: action_cancel_order, text_contains_any: cancelled}")
    together = [seen("hi"), seen("Order cancelled", actions=("action_cancel_order",))]
    apart = [seen("cancelled"), seen("done", actions=("action_cancel_order",))]
    assert conversation.eventually(checks, together) == effects.Verdict(True, "held at turn 2")
    verdict = conversation.eventually(checks, apart)
    assert not verdict.ok and "never held" in str(verdict.got) and "done" in str(verdict.got)


def test_eventually_skips_turns_without_a_record() -> None:
    checks = _checks("eventually: {actions: action_cancel_order}")
    assert not conversation.eventually(checks, [seen(recorded=False)]).ok
    assert conversation.eventually(checks, [seen(recorded=False), seen(actions=("action_cancel_order",))]).ok
    text_only = _checks("eventually: {text_contains_any: sorry}")
    assert conversation.eventually(text_only, [seen("sorry", recorded=False)]).ok
    assert conversation.eventually(
        _checks("eventually: {not_actions: action_cancel_order}"),
        [seen(actions=("action_cancel_order",)), seen(recorded=False, by_agent=True)],
    ).ok


def test_never_is_element_wise() -> None:
    checks = _checks("never: {actions: [action_cancel_order, action_change_address]}")
    assert conversation.never(checks, [seen(actions=("action_order_status",))]).ok
    verdict = conversation.never(checks, [seen(), seen(actions=("action_change_address",))])
    assert not verdict.ok and verdict.got.startswith("turn 2: actions: action_change_address")
    assert not conversation.never(_checks("never: {type: [kb_answer, agent]}"), [seen(types=("text", "kb_answer"))]).ok
    assert not conversation.never(
        _checks("never: {text_contains_any: [nope, Weather]}"), [seen("the weather is fine")]
    ).ok
    assert conversation.never(_checks("never: {text_contains_any: [nope, rain]}"), [seen("the weather is fine")]).ok
    assert not conversation.never(_checks("never: {active_loop: [address_form]}"), [seen(loop="address_form")]).ok
    assert not conversation.never(
        _checks("never: {buttons: ['/human_handoff']}"), [seen(payloads=("/human_handoff",))]
    ).ok
    assert not conversation.never(_checks(r"never: {text_matches: '\d{10}'}"), [seen("order 1234567890")]).ok
    assert not conversation.never(_checks("never: {slots: {verified: true, order_id: x}}"), [seen()]).ok
    assert not conversation.never(_checks("never: {state: [queued]}"), [seen(), seen(state="queued")]).ok


def test_never_script_catches_a_leak_but_not_common_characters() -> None:
    checks = _checks("never: {script: hans}")
    assert conversation.never(checks, [zh("您好"), zh("您的訂單"), zh("OK")]).ok
    verdict = conversation.never(checks, [zh("您的訂單"), zh("客服已加入对话")])
    assert not verdict.ok and verdict.got.startswith("turn 2: script: hans") and "对" in verdict.got


def test_never_skips_and_counts_turns_without_a_record() -> None:
    checks = _checks("never: {actions: action_cancel_order, text_contains_any: cancelled}")
    verdict = conversation.never(checks, [seen("ok", recorded=False), seen("fine")])
    assert verdict.ok and "1 of them without a record" in verdict.got
    assert not conversation.never(checks, [seen("cancelled", recorded=False)]).ok  # text needs no record


# --- ticket, side effects, store -----------------------------------------------------------------


TICKET = {
    "id": 1,
    "queue": "account-zh",
    "priority": 0,
    "reason": "business_rule",
    "rule": "account_takeover",
    "csat_score": None,
}


@pytest.mark.parametrize(
    ("expected", "ok"),
    [
        ({"queue": ("*-zh",)}, True),
        ({"queue": ("billing-zh", "ACCOUNT-ZH")}, True),
        ({"queue": ("*-en",)}, False),
        ({"priority": ("high", "urgent")}, True),
        ({"priority": ("high",)}, False),
        ({"reason": ("Business_Rule",)}, True),
        ({"reason": ("explicit_request",)}, False),
        ({"reason": ("suspected account takeover",)}, True),  # the rule's name given as the reason
        ({"reason": ("refund_above_limit",)}, False),
        ({"rule": ("suspected account takeover",)}, True),
        ({"rule": ("suspected_account_takeover",)}, True),
        ({"rule": ("legal_threat", "chargeback")}, False),
        ({"queue": ("*-zh",), "rule": ("chargeback",)}, False),  # all fields on one ticket
    ],
)
def test_ticket_fields(expected: dict[str, tuple[str, ...]], ok: bool) -> None:
    assert effects.ticket_verdict(expected, [TICKET]).ok is ok


def test_ticket_needs_a_ticket_and_a_rule() -> None:
    assert effects.ticket_verdict({"queue": ("*",)}, []).got == "no handoff ticket"
    assert not effects.ticket_verdict({"queue": ("*",)}, None).ok
    explicit = {**TICKET, "reason": "explicit_request", "rule": None}
    assert not effects.ticket_verdict({"rule": ("explicit_request",)}, [explicit]).ok
    assert effects.ticket_verdict({"reason": ("explicit_request",)}, [explicit, TICKET]).ok
    assert effects.ticket_verdict({"priority": ("urgent",)}, [TICKET]).got[0]["priority"] == "urgent"


def test_side_effect_helpers() -> None:
    assert effects.rating_stored([{**TICKET, "csat_score": 4}]) and not effects.rating_stored([TICKET])
    assert not effects.rating_stored([{**TICKET, "csat_score": 0}]) and not effects.rating_stored(None)
    found = effects.identifiers(
        ["reset pls, my email is JWu477@email.com.", "用户名 jwu477 谢谢"], [{"customer_identifier": "kp_9"}]
    )
    assert {"jwu477@email.com", "jwu477", "kp_9"} <= found


@pytest.mark.parametrize(
    ("field", "expected", "facts", "ok"),
    [
        ("refund_amount", "117.00", {"refund_amount": Decimal("117")}, True),
        ("refund_amount", 117, {"refund_amount": Decimal("117.00")}, True),
        ("refund_amount", "$117", {"refund_amount": Decimal("117.00")}, True),
        ("refund_amount", "117.01", {"refund_amount": Decimal("117.00")}, False),
        ("refund_amount", None, {"refund_amount": None}, True),
        ("refund_amount", None, {"refund_amount": Decimal("5")}, False),
        ("refund_amount", "5", {"refund_amount": None}, False),
        ("refund_reason", "COLOUR", {"refund_reason": "wrong colour, sorry"}, True),
        ("refund_reason", "colour", {"refund_reason": "wait, actually do a return instead"}, False),
        ("refund_reason", None, {"refund_reason": None}, True),
        ("refund_reason", "x", {"refund_reason": None}, False),
        ("return_reason", "пятн", {"return_reason": "Пятно на рукаве"}, True),
        ("return_reason", "洞", {"return_reason": "有个洞"}, True),
        ("return_reason", None, {"return_reason": "stain"}, False),
        ("status", "cancelled", {"status": "Cancelled"}, True),
    ],
)
def test_store_fields(field: str, expected: Any, facts: dict[str, Any], ok: bool) -> None:
    assert effects.store_verdict(field, expected, facts).ok is ok


def test_other_orders_unchanged_helpers() -> None:
    before = {"111": {"status": "processing", "shipping_address": "a", "refunds": [], "returns": []}}
    assert effects.other_orders_verdict(before, before, [("action_cancel_order", ["999"])], ["999"]).ok
    moved = {"111": {**before["111"], "shipping_address": "b"}}
    verdict = effects.other_orders_verdict(before, moved, [], ["999"])
    assert not verdict.ok and verdict.got == ["111: shipping_address"]
    foreign = effects.other_orders_verdict(
        before, before, [("action_cancel_order", ["111"]), ("action_order_status", ["5"])], ["999"]
    )
    assert not foreign.ok and foreign.got == ["action_cancel_order on 111"]
    assert effects.order_ids_in(
        {
            "events": [{"event": "slot", "name": "order_id", "value": "111"}],
            "responses": [{"response": "utter_order_cancelled", "order_id": "222"}],
        }
    ) == ["111", "222"]


# --- the new whole-conversation checks against a real (temporary, seeded) database ----------------

CONCLUDED = """
- name: cancel, with everything checked
  uses: {o: processing}
  turns:
    - user: cancel ${o.order_id}, I'm ${o.username}
      expect: {not_actions: action_change_address}
  eventually: {actions: action_cancel_order, text_contains_any: "${o.order_id}"}
  never: {actions: [action_change_address, action_submit_refund]}
  ticket: {queue: "billing-*", priority: [high, urgent], reason: business_rule, rule: refund above limit}
  side_effects: {password_reset_email: true, rating_stored: true}
  store:
    o: {status: cancelled, refund_amount: null, return_reason: null, other_orders_unchanged: true}
"""


def _seeded(tmp_path: Path) -> tuple[str, Any]:
    from storage.db import make_engine, make_session_factory, upgrade
    from store.seed import seed

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    seed(sessions, auto_refund_limit=Decimal("150.00"))
    return url, sessions


def _conversation_happened(sessions: Any, sender: str, o: dict[str, str], demo_address: str | None = None) -> None:
    """What the system would have written for CONCLUDED: the order cancelled, a rated ticket, a
    reset email, the action's run record; optionally a DEMO order re-addressed behind our back."""
    from datetime import UTC, datetime, timedelta

    from bot.actions.runs import ActionRun
    from conversations.models import Conversation, Message
    from handoff.models import Ticket
    from storage.db import transaction
    from store.models import Order, OutboxEmail
    from store.seed import DEMO

    now = datetime.now(UTC)
    with transaction(sessions) as db:
        conv = Conversation(
            sender_id=sender, channel="rest", language="en", state="bot", created_at=now, updated_at=now
        )
        db.add(conv)
        db.flush()
        db.add(
            Message(
                conversation_id=conv.id,
                direction="in",
                text="cancel",
                language="en",
                channel="rest",
                created_at=now - timedelta(seconds=5),
            )
        )
        db.add(
            Ticket(
                conversation_id=conv.id,
                sender_id=sender,
                channel="rest",
                language="en",
                status="resolved",
                reason="business_rule",
                rule="refund_above_limit",
                priority=1,
                topic="billing",
                queue="billing-en",
                summary="",
                context={},
                customer={},
                awaiting_email=False,
                request_count=1,
                created_at=now,
                queued_at=now,
                csat_score=5,
            )
        )
        db.add(OutboxEmail(to_address=o["email"], subject="Reset", body="", kind="password_reset", created_at=now))
        db.add(
            ActionRun(
                key=sender,
                sender_id=sender,
                action="action_cancel_order",
                created_at=now,
                result={"responses": [{"response": "utter_order_cancelled", "order_id": o["order_id"]}]},
            )
        )
        db.get(Order, o["order_id"]).status = "cancelled"
        if demo_address:
            db.get(Order, next(iter(DEMO.values())).order_id).shipping_address = demo_address


def _conclude(url: str, sessions: Any, demo_address: str | None = None) -> ScenarioResult:
    import asyncio

    (s,), errors = load(CONCLUDED)
    assert errors == []
    database = SystemDatabase(url)
    runner = Runner(Target(url="http://unused", database=database))
    bindings = runner._reserve(s)
    assert isinstance(bindings, dict)
    o = bindings["o"]
    sender = f"scn-test-{o['order_id']}"
    before = asyncio.run(runner._snapshot(s, bindings))
    assert before and o["order_id"] not in before
    _conversation_happened(sessions, sender, o, demo_address)
    said = substitute(s.turns[0].user, bindings)
    seen_turn = Observation(
        status=200,
        state="bot",
        customer_texts=[said],
        messages=[{"type": "text", "text": f"Order {o['order_id']} is cancelled.", "buttons": []}],
        understood=Understood(
            intent="cancel_order",
            confidence=0.9,
            actions=["cancel_form", "action_cancel_order"],
            slots={"verified": True, "order_id": o["order_id"]},
        ),
    )
    result = ScenarioResult(
        scenario=s,
        sender_id=sender,
        bindings=bindings,
        turns=[TurnResult(1, s.turns[0], {"text": said}, seen_turn, [])],
    )
    asyncio.run(runner._conclude(s, sender, bindings, result, before))
    database.close()
    return result


def test_conversation_and_store_checks_read_the_systems_database(tmp_path: Path) -> None:
    url, sessions = _seeded(tmp_path)
    good = _conclude(url, sessions)
    checks = {c.key: c for c in [*good.conversation_checks, *good.store_checks]}
    assert all(c.ok for c in checks.values()), {k: c.got for k, c in checks.items() if not c.ok}
    assert set(checks) == {
        "eventually",
        "never",
        "ticket",
        "side_effects.password_reset_email",
        "side_effects.rating_stored",
        "store.o.status",
        "store.o.refund_amount",
        "store.o.return_reason",
        "store.o.other_orders_unchanged",
    }
    assert good.passed and good.as_dict()["conversation_checks"][0]["key"] == "eventually"

    bad = _conclude(url, sessions, demo_address="1 Elsewhere Rd")  # another reserved order, a DEMO order changed
    failed = {c.key: c.got for c in [*bad.conversation_checks, *bad.store_checks] if not c.ok}
    assert list(failed) == ["store.o.other_orders_unchanged"]
    assert any("shipping_address" in g for g in failed["store.o.other_orders_unchanged"])
    assert not bad.passed and bad.first_failure()[0] is None


def test_system_database_new_reads(tmp_path: Path) -> None:
    url, sessions = _seeded(tmp_path)
    database = SystemDatabase(url)
    (o,) = database.reserve(["refundable"], Decimal("150.00"))
    assert database.order_facts(o["order_id"])["refund_amount"] is None
    assert database.tickets("nobody") == [] and database.write_runs("nobody") == []
    assert database.first_message_at("nobody") is None
    assert database.password_reset_emails({o["username"]}, None) == []
    watched = database.watched_orders([o["order_id"]])
    assert o["order_id"] not in watched and len(watched) >= 5
    _conversation_happened(sessions, "scn-x", o)
    assert database.password_reset_emails({o["username"]}, database.first_message_at("scn-x")) == [o["email"]]
    assert database.write_runs("scn-x") == [("action_cancel_order", [o["order_id"]])]
    (ticket,) = database.tickets("scn-x")
    assert (ticket["priority"], ticket["csat_score"]) == (1, 5)
    database.close()


# --- order pools: the seeded store holds enough for every scenario file -------------------------

POOL_HEADROOM = 0.5  # unreserved orders left in a pool after a whole run, as a share of what it used


def _pool_uses() -> list[tuple[str, ...]]:
    """The pools of every scenario with ``uses``, in file order: the shipped suite and the whole
    blind set (its holdout too; only the ``uses`` of each scenario is read)."""
    from scenarios.loader import discover

    files, errors = discover([Path("tests/scenarios"), Path("tests/scenarios_blind")])
    assert not errors and len(files) >= 40
    uses = []
    for f in files:
        for item in yaml.safe_load(f.read_text(encoding="utf-8")) or []:
            if isinstance(item, dict) and item.get("uses"):
                uses.append(tuple(item["uses"].values()))
    return uses


def test_every_pool_the_scenario_files_use_exists() -> None:
    from scenarios.pools import POOLS

    used = Counter(pool for pools in _pool_uses() for pool in pools)
    assert sum(used.values()) >= 100 and used["processing"] >= 50, used
    assert set(used) <= set(POOLS), set(used) - set(POOLS)


def test_a_fresh_store_fills_every_pool_for_all_scenarios_with_headroom(tmp_path: Path) -> None:
    import contextlib
    import math

    from sqlalchemy import select

    from scenarios.database import PoolExhausted
    from store.models import Customer

    url, sessions = _seeded(tmp_path)
    database = SystemDatabase(url)
    uses = _pool_uses()
    demand = Counter(pool for pools in uses for pool in pools)
    taken: dict[str, list[dict[str, str]]] = {pool: [] for pool in demand}
    try:
        for pools in uses:  # as the runner does: one distinct order per use, all before the first turn
            for pool, order in zip(pools, database.reserve(pools, Decimal("150.00")), strict=True):
                taken[pool].append(order)
        for pool, n in demand.items():
            for _ in range(math.ceil(n * POOL_HEADROOM)):
                taken[pool] += database.reserve([pool], Decimal("150.00"))
    except PoolExhausted as err:
        pytest.fail(f"{err} (the scenario files use {dict(demand)}; raise store.seed_pools.POOL_ORDERS)")
    ids = [o["order_id"] for orders in taken.values() for o in orders]
    assert len(ids) == len(set(ids)) == sum(math.ceil(n * (1 + POOL_HEADROOM)) for n in demand.values())

    def rest(pool: str) -> list[dict[str, str]]:
        left = []
        with contextlib.suppress(PoolExhausted):
            while True:
                left += database.reserve([pool], Decimal("150.00"))
        return left

    with sessions() as db:
        level = {username: m for username, m in db.execute(select(Customer.username, Customer.membership_level))}
    for pool, levels in (
        ("refundable", {"guest", "bronze", "silver", "gold"}),
        ("outside_refund_window", {"guest", "bronze", "silver"}),
    ):
        whole = taken[pool] + rest(pool)  # the refund pools span the membership levels (their windows differ)
        assert {level[o["username"]] for o in whole} == levels, pool
    database.close()
