"""BM25 over the chunks, beside the dense index, so product names, order-status words and codes
that an embedding blurs ("XJ-4410B", "RMA") are still found.

Incremental, in segments (the way Lucene does it): a write adds one small segment with the new
chunks' term frequencies and marks the removed chunks dead in the older segments; nothing already
written is rebuilt or rewritten (a new index version hard-links the unchanged segment files).
BM25 needs corpus-wide statistics (document count, document frequency of each term, average
length); they are kept exact for the live chunks (``df`` is updated on every add and delete), and
the scores are computed at query time from the stored term frequencies, so a score is the same
whether a chunk came in through a full build or the hundredth upsert. When dead rows or segments
pile up (``compact_*``), the segments are merged into one from the stored frequencies (no
re-tokenising).

Scores are Lucene's BM25 as bm25s computes it (``method="lucene"``: idf = ln(1 + (N − df + .5) /
(df + .5)), tf part tf / (tf + k1·(1 − b + b·len/avg)) without the (k1 + 1) factor); the tests
check them against bm25s's own indexing. A query term that occurs twice counts twice, as in bm25s.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

K1 = 1.5
B = 0.75
COMPACT_MAX_SEGMENTS = 12
COMPACT_DEAD_SHARE = 0.3


@dataclass
class Segment:
    """Rows of chunks added together; immutable on disk except for ``live``."""

    name: str
    ids: np.ndarray  # int64 chunk id per row
    langs: np.ndarray  # uint8 language code per row (codes of LexicalIndex.languages)
    lengths: np.ndarray  # int32 number of terms per row
    tf: sp.csc_matrix  # rows × terms known when the segment was written; term frequencies
    live: np.ndarray  # bool per row

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass
class LexicalIndex:
    """The BM25 side of one index version. ``add``/``remove`` return a new object and leave this
    one untouched (searches in flight keep using it); only new segments are new arrays."""

    vocab: dict[str, int] = field(default_factory=dict)
    terms: list[str] = field(default_factory=list)  # id → term, in order of first appearance
    df: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    languages: list[str] = field(default_factory=list)  # append-only: codes never change
    segments: list[Segment] = field(default_factory=list)
    n_live: int = 0
    total_len: int = 0

    # --- reading ------------------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return sum(s.size for s in self.segments)

    def row_ids(self) -> np.ndarray:
        return np.concatenate([s.ids for s in self.segments]) if self.segments else np.zeros(0, np.int64)

    def row_langs(self) -> np.ndarray:
        return np.concatenate([s.langs for s in self.segments]) if self.segments else np.zeros(0, np.uint8)

    def row_live(self) -> np.ndarray:
        return np.concatenate([s.live for s in self.segments]) if self.segments else np.zeros(0, bool)

    def term_ids(self, terms: Iterable[str]) -> list[int]:
        return [self.vocab[t] for t in terms if t in self.vocab]

    def scores(self, query_terms: Sequence[str]) -> np.ndarray | None:
        """BM25 score of every row (dead rows score 0), or None when no query term is known."""
        ids = self.term_ids(query_terms)
        if not ids or self.n_live == 0:
            return None
        n = float(self.n_live)
        avg = self.total_len / n if n else 0.0
        out = np.zeros(self.n_rows, dtype=np.float32)
        counts: dict[int, int] = {}
        for t in ids:
            counts[t] = counts.get(t, 0) + 1
        offset = 0
        for seg in self.segments:
            norm = None
            for t, times in counts.items():
                if t >= seg.tf.shape[1]:
                    continue
                lo, hi = seg.tf.indptr[t], seg.tf.indptr[t + 1]
                if lo == hi:
                    continue
                if norm is None:
                    norm = (K1 * (1.0 - B) + (K1 * B / avg) * seg.lengths).astype(np.float32) if avg > 0 else np.full(seg.size, K1, np.float32)
                rows = seg.tf.indices[lo:hi]
                tf = seg.tf.data[lo:hi].astype(np.float32)
                df = float(self.df[t])
                idf = np.float32(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
                out[offset + rows] += times * idf * tf / (tf + norm[rows])
            if not seg.live.all():
                out[offset : offset + seg.size][~seg.live] = 0.0
            offset += seg.size
        return out

    # --- writing (copy-on-write) --------------------------------------------------------------

    def add(self, ids: np.ndarray, langs: Sequence[str], docs: Iterable[Sequence[str]]) -> LexicalIndex:
        """A new index with one more segment holding these chunks (ids in row order)."""
        vocab, terms = dict(self.vocab), list(self.terms)
        languages = list(self.languages)
        lang_code = {lang: i for i, lang in enumerate(languages)}
        tokens, lengths = array("i"), array("i")
        for doc in docs:
            n = 0
            for t in doc:
                if not t:
                    continue
                i = vocab.get(t)
                if i is None:
                    i = vocab[t] = len(terms)
                    terms.append(t)
                tokens.append(i)
                n += 1
            lengths.append(n)
        codes = np.empty(len(langs), np.uint8)
        for i, lang in enumerate(langs):
            if lang not in lang_code:
                lang_code[lang] = len(languages)
                languages.append(lang)
            codes[i] = lang_code[lang]
        if len(lengths) != len(ids) or len(codes) != len(ids):
            raise ValueError("one language and one term list per chunk id are needed")
        if not len(ids):
            return self
        tf = _tf_matrix(np.frombuffer(tokens, np.int32), np.frombuffer(lengths, np.int32), len(vocab))
        seg = Segment(f"s{uuid.uuid4().hex[:10]}", np.asarray(ids, np.int64).copy(), codes, np.frombuffer(lengths, np.int32).copy(), tf,
                      np.ones(len(ids), bool))  # fmt: skip
        df = np.zeros(len(vocab), np.int64)
        df[: len(self.df)] = self.df
        df[: tf.shape[1]] += np.diff(tf.indptr)
        new = LexicalIndex(vocab, terms, df, languages, [*self.segments, seg], self.n_live + seg.size, self.total_len + int(seg.lengths.sum()))
        return new if len(new.segments) <= COMPACT_MAX_SEGMENTS else new.compacted()

    def remove(self, chunk_ids: Iterable[int]) -> LexicalIndex:
        """A new index in which these chunks are dead (their segments' ``live`` copied)."""
        dead = np.asarray(sorted(set(int(i) for i in chunk_ids)), np.int64)
        if not len(dead) or not self.segments:
            return self
        df = self.df.copy()
        segments, n_live, total = [], self.n_live, self.total_len
        for seg in self.segments:
            hit = np.isin(seg.ids, dead) & seg.live
            if not hit.any():
                segments.append(seg)
                continue
            rows = np.flatnonzero(hit)
            sub = seg.tf[rows, :].tocsr()
            np.subtract.at(df, sub.indices, 1)
            live = seg.live.copy()
            live[rows] = False
            n_live -= len(rows)
            total -= int(seg.lengths[rows].sum())
            segments.append(Segment(seg.name, seg.ids, seg.langs, seg.lengths, seg.tf, live))
        new = LexicalIndex(self.vocab, self.terms, df, self.languages, segments, n_live, total)
        rows_all = max(1, new.n_rows)
        return new.compacted() if (rows_all - n_live) / rows_all > COMPACT_DEAD_SHARE else new

    def compacted(self) -> LexicalIndex:
        """All live rows in one segment (frequencies reused; terms no longer used are kept)."""
        live_parts = [(seg, np.flatnonzero(seg.live)) for seg in self.segments]
        n_terms = len(self.vocab)
        mats = [_widen(seg.tf[rows, :], n_terms) for seg, rows in live_parts]
        tf = sp.vstack(mats, format="csc") if mats else sp.csc_matrix((0, n_terms), dtype=np.int32)
        tf.sort_indices()
        seg = Segment(
            f"s{uuid.uuid4().hex[:10]}",
            np.concatenate([s.ids[r] for s, r in live_parts]) if live_parts else np.zeros(0, np.int64),
            np.concatenate([s.langs[r] for s, r in live_parts]) if live_parts else np.zeros(0, np.uint8),
            np.concatenate([s.lengths[r] for s, r in live_parts]) if live_parts else np.zeros(0, np.int32),
            tf.astype(np.int32),
            np.ones(tf.shape[0], bool),
        )
        return LexicalIndex(self.vocab, self.terms, self.df, self.languages, [seg] if seg.size else [], self.n_live, self.total_len)

    # --- files --------------------------------------------------------------------------------

    def save(self, directory: Path, previous: Path | None = None) -> None:
        """Write into ``directory``; segment files that ``previous`` (the base version's folder)
        already holds are hard-linked, not written again."""
        directory.mkdir(parents=True, exist_ok=True)
        state = {
            "k1": K1, "b": B, "languages": self.languages, "n_live": self.n_live, "total_len": self.total_len,
            "segments": [s.name for s in self.segments], "terms": len(self.terms),
        }  # fmt: skip
        for seg in self.segments:
            name = f"{seg.name}.npz"
            if previous is not None and (previous / name).exists():
                _link_or_copy(previous / name, directory / name)
            else:
                np.savez(directory / name, ids=seg.ids, langs=seg.langs, lengths=seg.lengths, data=seg.tf.data.astype(np.int32),
                         indices=seg.tf.indices, indptr=seg.tf.indptr, n_terms=np.int64(seg.tf.shape[1]))  # fmt: skip
            np.save(directory / f"{seg.name}.live.npy", seg.live)
        np.save(directory / "df.npy", self.df)
        _save_terms(directory, self.terms, previous)
        (directory / "state.json").write_text(json.dumps(state), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
        terms = _load_terms(directory, int(state["terms"]))
        segments = []
        for name in state["segments"]:
            with np.load(directory / f"{name}.npz") as z:
                n_rows, n_terms = len(z["ids"]), int(z["n_terms"])
                tf = sp.csc_matrix((z["data"], z["indices"], z["indptr"]), shape=(n_rows, n_terms))
                segments.append(Segment(name, z["ids"], z["langs"], z["lengths"], tf, np.load(directory / f"{name}.live.npy")))
        return cls({t: i for i, t in enumerate(terms)}, terms, np.load(directory / "df.npy"), list(state["languages"]), segments,
                   int(state["n_live"]), int(state["total_len"]))  # fmt: skip


def _tf_matrix(tokens: np.ndarray, lengths: np.ndarray, n_terms: int) -> sp.csc_matrix:
    n_docs = len(lengths)
    if n_docs == 0 or n_terms == 0:
        return sp.csc_matrix((n_docs, n_terms), dtype=np.int32)
    rows = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    keys, tf = np.unique(rows * n_terms + tokens.astype(np.int64), return_counts=True)
    m = sp.csr_matrix((tf.astype(np.int32), (keys // n_terms, keys % n_terms)), shape=(n_docs, n_terms)).tocsc()
    m.sort_indices()
    return m


def _widen(m: sp.spmatrix, n_terms: int) -> sp.csr_matrix:
    m = m.tocsr()
    return sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], n_terms))


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _save_terms(directory: Path, terms: list[str], previous: Path | None) -> None:
    """The vocabulary as newline-separated chunks: the base's files are linked, only the terms
    added since are written (a million-term vocabulary is not rewritten on every upsert)."""
    done = 0
    parts: list[tuple[str, int]] = []
    if previous is not None and (previous / "terms.json").exists():
        for name, count in json.loads((previous / "terms.json").read_text(encoding="utf-8")):
            if done + count > len(terms):
                break
            _link_or_copy(previous / name, directory / name)
            parts.append((name, count))
            done += count
    if done < len(terms):
        name = f"terms-{uuid.uuid4().hex[:10]}.txt"
        (directory / name).write_text("\n".join(terms[done:]), encoding="utf-8")
        parts.append((name, len(terms) - done))
    (directory / "terms.json").write_text(json.dumps(parts), encoding="utf-8")


def _load_terms(directory: Path, expected: int) -> list[str]:
    terms: list[str] = []
    for name, count in json.loads((directory / "terms.json").read_text(encoding="utf-8")):
        part = (directory / name).read_text(encoding="utf-8").split("\n") if count else []
        if len(part) != count:
            raise ValueError(f"{directory / name}: {len(part)} terms, expected {count}")
        terms.extend(part)
    if len(terms) != expected:
        raise ValueError(f"{directory}: {len(terms)} terms, expected {expected}")
    return terms


def top(scores_: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the k best documents with a positive score (optionally only where
    ``mask`` is true), best first."""
    rows = np.flatnonzero(scores_ > 0)  # usually far fewer than all rows: rank only those
    if mask is not None:
        rows = rows[mask[rows]]
    if k <= 0 or not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    vals = scores_[rows]
    if len(rows) > k:
        part = np.argpartition(-vals, k - 1)[:k]
        rows, vals = rows[part], vals[part]
    order = np.argsort(-vals, kind="stable")
    return rows[order].astype(np.int64), vals[order].astype(np.float32)
