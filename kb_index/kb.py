"""The knowledge base: a versioned on-disk index (kb_index/storage.py) and the immutable
snapshot of its live version (kb_index/snapshot.py) that searches read.

Concurrency is read-copy-update. Searches read ``self._snap`` once and use only that object, so
they never lock and never see half an update. Writers (build/upsert/delete/sync/rollback) hold a
lock, write a new version directory from the current one, point CURRENT at it, and then replace
``self._snap`` in one assignment. An old snapshot stays usable by searches still running on it:
its FAISS and BM25 indexes are in memory and its SQLite file stays open (on Linux an open file
outlives the deletion of its folder), so old versions can be removed right away (the newest
``keep_versions`` are kept on disk for rollback and for other processes that have not reloaded).
Several processes (gateway replicas) may share one directory: kb_index/shared.py (the writers'
lock across processes and hosts, readers following the version another process made live).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kb_index import dense, language_bias, shared, storage, versions
from kb_index.config import KBConfig
from kb_index.embedders import Embedder
from kb_index.models import Article, ArticleInfo, BuildReport, Chunk, KBError, SearchHit, UpsertReport
from kb_index.prepare import article_hash, prepare, unique
from kb_index.search import ArticleEvidence, article_evidence, rank
from kb_index.snapshot import Snapshot, empty_snapshot
from kb_index.text import default_tokenizer, detect_language

log = logging.getLogger(__name__)
Mode = Literal["hybrid", "dense", "lexical"]
MODES = ("hybrid", "dense", "lexical")



class KnowledgeBase:
    """Search and maintain one index directory. Thread-safe: any number of concurrent searches,
    writes serialised (also across processes)."""

    def __init__(self, data_dir: Path, embedder: Embedder, config: KBConfig | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.embedder = embedder
        self.config = config or KBConfig()
        self._snap = empty_snapshot()
        self._wlock = threading.RLock()  # then self._xlock(): the writers of every process (kb_index/shared.py)
        self._xlock = shared.WritersLock(self.data_dir, self.config.writers_lock_url)
        self._watch = shared.CurrentWatch(self.config.auto_refresh_s)
        self._replacing = False  # opened over another embedder's index: ignored until our first write
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._qcache_lock = threading.Lock()
        self._means: dict[str, np.ndarray] | None = None

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path, embedder: Embedder, config: KBConfig | None = None, *, replace_mismatched: bool = False) -> KnowledgeBase:
        """Load the saved index (an empty KB if there is none yet). An index built by another
        embedder is refused with KBError, unless ``replace_mismatched`` (then it starts empty and
        the next ``build`` replaces the old index). An index of the previous format is converted
        (once, without re-embedding its chunks)."""
        kb = cls(data_dir, embedder, config)
        for attempt in range(3):
            try:
                manifest = storage.read_manifest(kb.data_dir)
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
            except storage.OldFormat:
                kb._migrate()
                return kb
            except KBError:
                if attempt == 2:  # another process may have swapped and removed that version: re-read
                    raise
        return kb

    def _migrate(self) -> None:
        from kb_index.migrate import migrate_v1

        with self._wlock, self._xlock():
            version = storage.current_version(self.data_dir)
            manifest = storage.read_manifest(self.data_dir) or {}
            if manifest.get("format") == 1 and version:
                log.warning("converting knowledge-base index %s to format %s", version, storage.FORMAT_VERSION)
                migrate_v1(self, version)
            self._refresh_locked()

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
        """Load the on-disk live version if another process changed it. True if it changed. A
        version of the previous format (e.g. restored from an ops archive) is converted first."""
        with self._wlock:
            try:
                return self._refresh_locked()
            except storage.OldFormat:
                self._migrate()
                return True

    def _refresh_locked(self) -> bool:
        version = storage.current_version(self.data_dir)
        if version is None or version == self._snap.version:
            return False
        try:
            manifest = storage.read_json(self.data_dir / "versions" / version / "manifest.json")
        except KBError:
            if self._replacing:
                return False
            raise
        problem = self._mismatch(manifest)
        if problem:
            if self._replacing:
                return False
            raise KBError(problem)
        snap = storage.load_snapshot(self.data_dir, version)
        for index in (snap.index, snap.questions):
            if index is not None:
                dense.set_nprobe(index, self.config.dense)
        self._snap = snap
        return True

    def _live(self) -> Snapshot:
        """The live snapshot, once it has caught up (checked at most every ``auto_refresh_s``) with
        a version another process made live; a version that cannot be loaded keeps the current one."""
        if self._watch.due():
            shared.refresh_quietly(self._wlock, self._refresh_locked, self._watch, self.data_dir)
        return self._snap

    # -- reading -------------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 5, *, mode: Mode = "hybrid", languages: Sequence[str] | None = None,
        unique_articles: bool = False, query_vector: np.ndarray | None = None, query_language: str | None = None,
    ) -> list[SearchHit]:  # fmt: skip
        """The k best chunks for ``query`` across all languages (or only ``languages``).

        hybrid: language-corrected cosine plus weighted BM25 (kb_index/search.py); dense: the
        corrected cosine only; lexical: BM25 only. ``unique_articles`` keeps the best chunk of each
        (article, language). ``query_vector`` (unit, the embedder's dim) skips embedding ``query``.
        ``query_language`` (en/zh/ru) is guessed from the script when not given.
        """
        if not isinstance(query, str) or not query.strip():
            raise KBError("the query is empty")
        if k < 1:
            raise KBError("k must be at least 1")
        if mode not in MODES:
            raise KBError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        snap = self._live()  # the one snapshot this search uses, whatever writers do meanwhile
        if snap.empty:
            return []
        langs = frozenset(lang.lower() for lang in languages) if languages else None
        if langs is not None and not snap.language_filter(langs)[2].any():
            return []
        lang = query_language or detect_language(query)
        q = qa = None
        if mode != "lexical":
            q = self._query_vector(query) if query_vector is None else self._check_vector(query_vector)
            qa = language_bias.centre_query(q, lang, snap.query_means)
            q = q.reshape(-1)
        depth = max(self.config.candidates, k * 4 if unique_articles else k)
        scored = rank(snap, self.config.search_params(), mode, default_tokenizer().tokenize(query), q, qa, depth, langs, lang)
        want = scored[: k * 4] if unique_articles else scored[:k]
        chunks = snap.chunks_by_id([s.chunk_id for s in want])
        hits: list[SearchHit] = []
        seen: set[tuple[str, str]] = set()
        for s in want:
            chunk = chunks.get(s.chunk_id)
            if chunk is None:
                continue
            key = (chunk.article_id, chunk.language)
            if unique_articles and key in seen:
                continue
            seen.add(key)
            hits.append(SearchHit(chunk, float(s.score), s.cosine, s.lexical, len(hits) + 1, s.dense_rank, s.lexical_rank, s.adjusted))
            if len(hits) == k:
                break
        return hits

    def evidence(
        self, query: str, query_vector: np.ndarray, language: str | None, *, n_articles: int = 10, extra_articles: Sequence[str] = ()
    ) -> dict[str, ArticleEvidence]:
        """Per-article evidence for the answer decision (kb_index/answering.py): the best
        ``n_articles`` by passage and by question, and ``extra_articles``."""
        snap = self._live()
        if snap.empty:
            return {}
        q = self._check_vector(query_vector).reshape(-1)
        qa = language_bias.centre_query(q, language, snap.query_means)
        terms = default_tokenizer().tokenize(query)
        return article_evidence(snap, self.config.search_params(), terms, q, qa, language, n_articles, extra_articles)

    def centre_query(self, query_vector: np.ndarray, language: str | None) -> np.ndarray:
        """The query vector minus its language's reference mean (kb_index/language_bias.py)."""
        return language_bias.centre_query(query_vector, language, self.language_means())

    def language_means(self) -> dict[str, np.ndarray]:
        """The mean generic question per language (kb_index/language_bias.py) of the live version."""
        return self._live().query_means or self._reference_means()

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

    def articles(self) -> list[ArticleInfo]:
        rows = self._live().query(
            "SELECT article_id, language, title, url, chunk_count, tags, translations, source_path FROM articles ORDER BY article_id, language"
        )
        return [ArticleInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), json.loads(r[6]), r[7]) for r in rows]

    def questions(self, article_id: str | None = None) -> list[tuple[str, str, str, str]]:
        """(article id, language, source, text) of the questions taken from the content."""
        sql, snap = "SELECT article_id, language, source, text FROM questions", self._live()
        rows = snap.query(sql + " WHERE article_id=? ORDER BY question_id", (article_id,)) if article_id else snap.query(sql)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def article_chunks(self, article_id: str, language: str) -> list[Chunk]:
        """The chunks of one article version in reading order (e.g. to show a whole answer)."""
        snap = self._live()
        ids = [r[0] for r in snap.query("SELECT chunk_id FROM chunks WHERE article_id=? AND language=? ORDER BY ord", (article_id, language))]
        by_id = snap.chunks_by_id(ids)
        return [by_id[i] for i in ids if i in by_id]

    def best_chunk(self, article_id: str, language: str, query_vector: np.ndarray) -> Chunk | None:
        """The chunk of one article version closest to the query (its opening if it has no vectors)."""
        snap = self._live()
        ids = [r[0] for r in snap.query("SELECT chunk_id FROM chunks WHERE article_id=? AND language=? ORDER BY ord", (article_id, language))]
        if not ids:
            return None
        best = ids[0]
        if snap.index is not None:
            q = self._check_vector(query_vector).reshape(-1)
            sims = dense.reconstruct(snap.index, np.array(ids, np.int64))[:, : len(q)] @ q
            best = ids[int(np.argmax(sims))]
        return snap.chunks_by_id([best]).get(best)

    def stats(self) -> dict[str, Any]:
        snap = self._live()
        m = snap.manifest
        return {
            "data_dir": str(self.data_dir), "version": snap.version, "embedder": m.get("embedder", self.embedder.name),
            "dim": m.get("dim", self.embedder.dim), "chunks": m.get("chunks", 0), "articles": m.get("articles", 0),
            "questions": m.get("questions", 0),
            "chunks_per_language": dict(snap.query("SELECT language, COUNT(*) FROM chunks GROUP BY language ORDER BY language")),
            "index_type": dense.describe(snap.index),
            "lexical": f"BM25 (lucene; jieba for zh, Snowball for en/ru), {len(snap.lexical.segments)} segment(s)",
            "content_hash": m.get("content_hash"), "built_at": m.get("built_at"), "updated_at": m.get("updated_at"),
        }  # fmt: skip

    def versions(self) -> list[dict[str, Any]]:
        """The complete index versions kept on disk, newest first (``current`` marks the live one)."""
        return versions.list_versions(self.data_dir)

    # -- writing -------------------------------------------------------------------------------

    def build(self, articles: Iterable[Article], *, progress: bool | None = None) -> BuildReport:
        """Replace the whole index with these articles (embedded afresh), then swap atomically."""
        arts = unique(articles)
        t0 = time.perf_counter()
        pending = self._prepare(arts, progress)
        with self._writing():
            snap, _ = storage.write_version(self._context(), self._snap, pending, None)
            self._snap = snap
        m = snap.manifest
        return BuildReport(m["articles"], m["chunks"], dense.describe(snap.index), m["content_hash"], time.perf_counter() - t0, snap.version or "")

    def build_precomputed(
        self, articles: Sequence[Article], chunks: Sequence[Chunk], vectors: np.ndarray, *, progress: bool = False,
        question_vectors: np.ndarray | None = None,
    ) -> BuildReport:  # fmt: skip
        """Full build from chunks whose vectors are already computed (the scale benchmark: 1M
        chunks cannot be embedded on two cores in reasonable time). ``chunks`` must be grouped by
        article in the order of ``articles``; ``vectors`` are unit rows, one per chunk.
        ``question_vectors`` (one per article, its title's) adds the titles as questions."""
        if len(chunks) != len(vectors):
            raise KBError("one vector per chunk is needed")
        if vectors.ndim != 2 or vectors.shape[1] != self.embedder.dim:
            raise KBError(f"vectors must have {self.embedder.dim} columns")
        arts = unique(articles)
        t0 = time.perf_counter()
        groups: dict[tuple[str, str], list[Chunk]] = {a.key: [] for a in arts}
        for c in chunks:
            if (c.article_id, c.language) not in groups:
                raise KBError(f"chunk of unknown article {c.article_id!r} ({c.language})")
            groups[(c.article_id, c.language)].append(c)
        if question_vectors is not None and len(question_vectors) != len(arts):
            raise KBError("one question vector per article is needed")
        qs = [[("title", a.title)] for a in arts] if question_vectors is not None else [[] for _ in arts]
        qv = question_vectors if question_vectors is not None else np.zeros((0, self.embedder.dim), np.float32)
        pending = storage.Pending(arts, [groups[a.key] for a in arts], vectors, None, qs, qv)
        with self._writing():
            snap, _ = storage.write_version(self._context(), self._snap, pending, None)
            self._snap = snap
        m = snap.manifest
        return BuildReport(m["articles"], m["chunks"], dense.describe(snap.index), m["content_hash"], time.perf_counter() - t0, snap.version or "")

    def upsert(self, articles: Iterable[Article], *, progress: bool | None = None) -> UpsertReport:
        """Add or replace articles by (id, language) without a full rebuild. Unchanged articles
        (same content and chunking) are not embedded again."""
        arts = unique(articles)
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
        snap, removed = storage.write_version(self._context(), base, pending, [a.key for a in fresh])
        self._snap = snap
        n_added = sum(len(c) for c in pending.chunks)
        return UpsertReport(added, replaced, unchanged, n_added, removed, dense.describe(snap.index), snap.version or "")

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
            snap, removed = storage.write_version(self._context(), base, storage.Pending.empty(self.embedder.dim), [(k[0], k[1]) for k in keys])
            self._snap = snap
        return removed

    def sync(self, articles: Iterable[Article], *, progress: bool | None = None) -> UpsertReport:
        """Make the index hold exactly these articles: upsert changed ones, delete the rest.
        Cheap when nothing changed (startup: only what was edited is embedded)."""
        arts = unique(articles)
        wanted = {a.key for a in arts}
        with self._writing():
            report = self._upsert_locked(arts, progress)
            stale = [(r[0], r[1]) for r in self._snap.query("SELECT article_id, language FROM articles") if (r[0], r[1]) not in wanted]
            removed = 0
            if stale:
                snap, removed = storage.write_version(self._context(), self._snap, storage.Pending.empty(self.embedder.dim), stale)
                self._snap = snap
        return UpsertReport(
            report.added, report.replaced, report.unchanged, report.chunks_added, report.chunks_removed + removed,
            dense.describe(self._snap.index), self._snap.version or "",
        )  # fmt: skip

    def rollback(self, version: str) -> dict[str, Any]:
        """Make an older version (one of ``versions()``) the live one again. Searches in flight
        finish on the snapshot they hold; the next write starts from the restored version."""
        with self._wlock, self._xlock():
            self._refresh_locked()
            previous = self._snap.version
            versions.check_rollback_target(self.data_dir, version, self.embedder.name, self.embedder.dim)
            snap = storage.load_snapshot(self.data_dir, version)  # loadable before it goes live
            versions.point_current(self.data_dir, version)
            for index in (snap.index, snap.questions):
                if index is not None:
                    dense.set_nprobe(index, self.config.dense)
            self._snap = snap
        return {"current": version, "previous": previous}

    # -- writing internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time, in this process (RLock) and across processes (flock, and on
        PostgreSQL an advisory lock); a writer first catches up with a version another process wrote."""
        with self._wlock, self._xlock():
            if not self._replacing:
                try:
                    self._refresh_locked()
                except storage.OldFormat:
                    self._migrate()
            yield
            self._replacing = False
            versions.collect_garbage(self.data_dir, self.config.keep_versions, {self._snap.version} if self._snap.version else set())

    def _context(self) -> storage.WriteContext:
        c = self.config
        return storage.WriteContext(
            self.data_dir, self.embedder.name, self.embedder.dim, c.dense, {"max_chars": c.chunk_max_chars, "overlap_chars": c.chunk_overlap_chars},
            self._article_hash, default_tokenizer().tokenize, self._reference_means, language_bias.reference_fingerprint(),
        )  # fmt: skip

    def _reference_means(self) -> dict[str, np.ndarray]:
        if self._means is None:
            self._means = language_bias.query_means(self.embedder)
        return self._means

    def _article_hash(self, a: Article) -> str:
        return article_hash(a, self.config.chunk_max_chars, self.config.chunk_overlap_chars)

    def _prepare(self, arts: list[Article], progress: bool | None) -> storage.Pending:
        return prepare(arts, self.embedder, self.config.chunk_max_chars, self.config.chunk_overlap_chars, progress)
