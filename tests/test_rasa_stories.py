"""`rasa test core` on the test stories in tests/stories with the project's trained model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.training import rasa_env, rasa_executable
from tests.conftest import ROOT

pytestmark = pytest.mark.rasa


def test_test_stories_pass(trained_model: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(rasa_executable()), "test", "core",
            "--model", str(trained_model),
            "--stories", str(ROOT / "tests" / "stories"),
            "--endpoints", str(ROOT / "bot" / "endpoints.yml"),
            "--out", str(tmp_path),
            "--fail-on-prediction-errors",
        ],
        cwd=ROOT, env=rasa_env({"ACTION_ENDPOINT_URL": "http://127.0.0.1:9/unused", "RASA_TRACKER_DB": str(tmp_path / "t.db")}),
        capture_output=True, text=True, timeout=600,
    )
    failed = (tmp_path / "failed_test_stories.yml").read_text() if (tmp_path / "failed_test_stories.yml").exists() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + failed
