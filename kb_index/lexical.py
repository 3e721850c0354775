"""BM25 over the chunks (bm25s), beside the dense index, so product names, order-status words and
codes that an embedding blurs ("XJ-4410B", "RMA") are still found.

bm25s keeps each (term, document) score precomputed in a sparse matrix, so a query costs the length
of its terms' posting lists. It has no incremental add (every score depends on corpus-wide
statistics), so each index version rebuilds the matrix from the chunks' stored terms; tokenising
(jieba above all) is the slow part and happens once per chunk, when the chunk is written.

The matrix is built here with numpy rather than by ``bm25s.BM25.index``: bm25s walks Python lists
of every token of every document, which for a million chunks means tens of millions of Python
objects and several GB; ``Builder`` keeps one int32 per token. The result is a regular
``bm25s.BM25`` (same Lucene formula, same save/load format, scores checked against bm25s in the
tests).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from pathlib import Path

import bm25s
import numpy as np
import scipy.sparse as sp

K1 = 1.5
B = 0.75


class Builder:
    """Collects documents' terms one at a time as ids, then builds the BM25 matrix at once."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self._tokens = array("i")
        self._lengths = array("i")

    def add(self, terms: Iterable[str]) -> None:
        vocab = self.vocab
        ids = [vocab.setdefault(t, len(vocab)) for t in terms if t]
        self._tokens.extend(ids)
        self._lengths.append(len(ids))

    def __len__(self) -> int:
        return len(self._lengths)

    def finish(self) -> bm25s.BM25 | None:
        n_docs = len(self._lengths)
        if n_docs == 0:
            return None
        vocab = dict(self.vocab)
        if "" not in vocab:  # bm25s convention: an empty token so that no query is entirely unknown
            vocab[""] = len(vocab)
        n_vocab = len(vocab)
        lengths = np.frombuffer(self._lengths, dtype=np.int32)
        # Term frequency per (doc, term): unique over a combined key, one sort of all tokens. The
        # keys come out sorted by document, i.e. in CSR order, so no further sort is needed.
        keys = np.repeat(np.arange(n_docs, dtype=np.int64), lengths) * n_vocab
        keys += np.frombuffer(self._tokens, dtype=np.int32)
        keys, tf = np.unique(keys, return_counts=True)
        doc_of = (keys // n_vocab).astype(np.int32)
        term_of = (keys % n_vocab).astype(np.int32)
        del keys
        df = np.bincount(term_of, minlength=n_vocab).astype(np.float64)
        idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)  # Lucene's idf, as bm25s "lucene"
        avg_len = float(lengths.mean())
        tf32 = tf.astype(np.float32)
        del tf
        if avg_len > 0:
            norm = (K1 * (1.0 - B) + (K1 * B / avg_len) * lengths.astype(np.float32))[doc_of]
        else:
            norm = np.full(len(tf32), K1, dtype=np.float32)
        # bm25s "lucene" scores idf·tf/(tf + k1·(1 − b + b·len/avg)) (no (k1+1) factor); same values.
        scores = idf[term_of] * tf32 / (tf32 + norm)
        del norm, tf32
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(doc_of, minlength=n_docs), out=indptr[1:])
        del doc_of
        matrix = sp.csr_matrix((scores, term_of, indptr), shape=(n_docs, n_vocab)).tocsc()
        del scores, term_of
        index = bm25s.BM25(k1=K1, b=B, method="lucene")
        index.scores = {"data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr, "num_docs": n_docs}
        index.vocab_dict = vocab
        index.unique_token_ids_set = set(vocab.values())
        index.nonoccurrence_array = None
        return index


def build(terms: Iterable[list[str]]) -> bm25s.BM25 | None:
    b = Builder()
    for t in terms:
        b.add(t)
    return b.finish()


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
