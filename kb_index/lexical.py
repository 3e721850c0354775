"""BM25 over the chunks (bm25s), beside the dense index, so product names, order-status words and
codes that an embedding blurs ("XJ-4410B", "RMA") are still found.

bm25s precomputes each (term, document) score in a sparse matrix, so a query costs the length of
its terms' posting lists. It has no incremental add (every document's score depends on corpus-wide
statistics), so each index version rebuilds it from the chunks' stored terms: tokenising (jieba
above all) is the slow part and is done once per chunk, when the chunk is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

K1 = 1.5
B = 0.75


def build(terms: Sequence[list[str]], *, progress: bool = False) -> bm25s.BM25 | None:
    if not terms:
        return None
    # Every document gets at least the empty token so that bm25s sees no zero-length corpus.
    docs = [t if t else [""] for t in terms]
    index = bm25s.BM25(k1=K1, b=B, method="lucene")
    index.index(docs, show_progress=progress)
    return index


def save(index: bm25s.BM25 | None, directory: Path) -> None:
    if index is not None:
        index.save(str(directory), show_progress=False)


def load(directory: Path) -> bm25s.BM25 | None:
    if not (directory / "params.index.json").exists():
        return None
    return bm25s.BM25.load(str(directory), mmap=False, show_progress=False)


def scores(index: bm25s.BM25, query_terms: list[str]) -> np.ndarray | None:
    """BM25 score of every document (row order), or None when no query term is in the vocabulary."""
    ids = index.get_tokens_ids([t for t in query_terms if t])
    if not ids:
        return None
    return index.get_scores_from_ids(ids)


def top(scores_: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the k best documents with a positive score (optionally only where
    ``mask`` is true), best first."""
    if mask is not None:
        scores_ = np.where(mask, scores_, 0.0)
    k = min(k, len(scores_))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores_, k - 1)[:k]
    part = part[scores_[part] > 0]
    order = part[np.argsort(-scores_[part], kind="stable")]
    return order.astype(np.int64), scores_[order].astype(np.float32)
