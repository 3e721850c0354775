"""The shipped conversation scenarios (tests/scenarios) against the live system, and the runner's
command line end to end against it: exit status, per-turn understanding, JUnit XML and JSON."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from scenarios import report
from scenarios.agent import AdminCredentials
from scenarios.cli import DEFAULT_PATHS, main, run_scenarios
from scenarios.loader import load_paths
from tests import conftest
from tests.conftest import LiveSystem

pytestmark = pytest.mark.rasa



def database_url(live: LiveSystem) -> str:
    return f"sqlite:///{live.data_dir / 'supportbot.db'}"


def admin() -> AdminCredentials:
    """The live system's handoff administrator (tests/conftest.py sets the password)."""
    return AdminCredentials("admin", os.environ.get("HANDOFF_ADMIN_PASSWORD") or conftest.HANDOFF_ADMIN_PASSWORD)


def test_shipped_suite_passes(live: LiveSystem, tmp_path: Path) -> None:
    scenarios = load_paths(DEFAULT_PATHS)
    console = Console(file=open(tmp_path / "run.txt", "w", encoding="utf-8"), soft_wrap=True)  # noqa: SIM115
    results = run_scenarios(scenarios, live.url, database_url(live), concurrency=4, console=console, admin=admin())
    report.print_summary(console, results)
    console.file.close()
    report.write_json(tmp_path / "scenarios.json", results, {"url": live.url})
    failed = [r for r in results if not r.passed]
    details = "\n".join(line for r in failed for line in [report.result_line(r), *report.failure_details(r)])
    # Every scenario of the shipped suite passes (issue 13; bench/RESULTS.md, third round: 176/176).
    assert not failed, f"{len(failed)} of {len(results)} scenarios failed (report: {tmp_path}):\n{details}"


PASSING = """
- name: a greeting button
  language: en
  turns:
    - payload: /greet
      expect: {intent: greet, state: bot, language: en}
  outcome: {resolved_by: none}
"""

FAILING = """
- name: expects the wrong intent on purpose
  language: en
  turns:
    - payload: /greet
      expect: {intent: goodbye}
  outcome: {resolved_by: none}
"""


def test_cli_exit_status_and_reports(live: LiveSystem, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
    good.write_text(PASSING, encoding="utf-8")
    bad.write_text(FAILING, encoding="utf-8")
    target = ["--url", live.url, "--database-url", database_url(live)]

    assert main(["test-conversations", str(good), *target]) == 0

    junit, js = tmp_path / "r.xml", tmp_path / "r.json"
    assert main(["test-conversations", str(good), str(bad), *target, "--junit", str(junit), "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert f"turn 1 ({bad}:5): [payload] /greet" in out
    assert "expected [\"goodbye\"], got greet (1.00)" in out

    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    failure = root.find(".//testcase[@name='expects the wrong intent on purpose']/failure")
    assert failure is not None and "intent: expected" in failure.get("message", "")
    doc = json.loads(js.read_text(encoding="utf-8"))
    assert doc["summary"]["passed"] == 1 and doc["summary"]["failed"] == 1
    wrong = next(s for s in doc["scenarios"] if not s["passed"])
    assert wrong["turns"][0]["observed"]["understood"]["intent"] == "greet"
    assert wrong["sender_id"].startswith("scn-")
