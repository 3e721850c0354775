"""``python -m ops`` (ops/cli.py) against the ops API served in-process by the real services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ops import cli
from ops.models import TrainingJob
from storage.db import transaction
from tests.test_ops_api import TOKEN, embedder, env  # noqa: F401  (fixtures)
from tests.test_ops_fixtures import Chat

runner = CliRunner()


@pytest.fixture
def ops_cli(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:  # noqa: F811
    client = env["client"]
    monkeypatch.setattr(cli, "_state", {})

    def make_client(url: str, token: str) -> Any:
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    monkeypatch.setattr(cli, "make_client", make_client)
    return env


def invoke(*args: str, token: str = TOKEN) -> Any:
    cli._state.clear()
    return runner.invoke(cli.app, ["--token", token, *args])


def test_inbox_assign_export(ops_cli: dict[str, Any], tmp_path: Path) -> None:
    for i, text in enumerate(["my parcel never turned up", "the parcel never turned up at all"]):
        Chat(ops_cli["sessions"], f"c{i}").say(text, "nlu_fallback", 0.9)
    r = invoke("inbox", "--language", "en")
    assert r.exit_code == 0, r.output
    assert "2 item(s) in 1 group(s)" in r.output
    r = invoke("inbox", "--json")
    ids = [str(i["id"]) for c in json.loads(r.output)["clusters"] for i in c["items"]]
    out = tmp_path / "inbox.csv"
    assert invoke("export-inbox", "--out", str(out)).exit_code == 0
    assert "never turned up" in out.read_text(encoding="utf-8")
    r = invoke("assign", *ids, "--intent", "check_order_status")
    assert r.exit_code == 0, r.output
    assert "reviewed.yml" in r.output
    r = invoke("assign", *ids, "--intent", "check_order_status")
    assert r.exit_code == 1 and "409" in r.output


def test_errors_exit_non_zero(ops_cli: dict[str, Any]) -> None:
    r = invoke("models", token="wrong")
    assert r.exit_code == 1 and "403" in r.output
    r = invoke("inbox", "--since", "yesterday")
    assert r.exit_code == 1 and "not a date" in r.output
    r = invoke("promote", "no-such-model")
    assert r.exit_code == 1 and "404" in r.output
    r = invoke("assign", "1", "--intent", "greet", "--entities", "{not json")
    assert r.exit_code == 1 and "not valid JSON" in r.output


def test_train_jobs_and_gate_report(ops_cli: dict[str, Any]) -> None:
    r = invoke("train", "--no-wait")
    assert r.exit_code == 0 and "training job 1 queued" in r.output
    with transaction(ops_cli["sessions"]) as db:
        job = db.get_one(TrainingJob, 1)
        job.status, job.stage, job.progress, job.model_id = "refused", "done", 1.0, "model-abc"
        job.report = {"checks": [{"name": "language_accuracy", "passed": False, "detail": "zh 90.0% → 88.0%"},
                                 {"name": "test_stories", "passed": True, "detail": "all 5 test stories passed"}]}
    r = invoke("jobs")
    assert r.exit_code == 0 and "refused" in r.output
    r = invoke("job", "1")
    assert "✗ language_accuracy: zh 90.0% → 88.0%" in r.output and "✓ test_stories" in r.output


def test_analytics_and_local_redact(ops_cli: dict[str, Any], tmp_path: Path) -> None:
    Chat(ops_cli["sessions"], "a1").say("where is my order", "check_order_status", 0.9)
    r = invoke("analytics", "--group-by", "language")
    assert r.exit_code == 0 and "analytics" in r.output
    row = json.loads(invoke("analytics", "--group-by", "language", "--json").output)["rows"][0]
    assert (row["language"], row["sessions"]) == ("en", 1)
    out = tmp_path / "a.csv"
    assert invoke("analytics", "--csv", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("day,language,channel,sessions")
    r = runner.invoke(cli.app, ["redact", "my card is 4111 1111 1111 1111"])
    assert r.exit_code == 0 and r.output.strip() == "my card is [CARD]"
