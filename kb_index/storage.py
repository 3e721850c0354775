"""Index versions on disk: writing a new version from the current one, reading one back.

Layout under ``data_dir``::

    CURRENT                      name of the live version (replaced atomically with os.replace)
    .lock                        writers' lock (flock): a CLI and the server may both write
    versions/v000007-1a2b3c4d/   one complete version, never modified once CURRENT named it
        manifest.json            embedder, dim, index types, counts, content hash, times
        meta.sqlite              articles, chunks (text, heading path, BM25 terms), questions
        dense.faiss              chunk vectors + language one-hot (kb_index/dense.py; chunk ids as FAISS ids)
        questions.faiss          question vectors, e5 query side (question ids as FAISS ids)
        lexical/                 BM25 segments (kb_index/lexical.py); unchanged ones hard-linked
        centroids.npz            per-language sums of chunk vectors, reference query means

A write copies the current version's SQLite file, applies the change, changes the FAISS indexes
in a copy (kb_index/dense.py), adds one BM25 segment, and commits: every file fsynced, then
CURRENT replaced. Nothing of the current version is modified, so searches and other processes
reading it are never disturbed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from kb_index import dense
from kb_index.lexical import LexicalIndex
from kb_index.models import Article, Chunk, KBError
from kb_index.snapshot import Snapshot
from storage.files import file_lock  # noqa: F401  (the KB writers' lock: kb.py and ops/kb_versions.py use it from here)

FORMAT_VERSION = 2

SCHEMA = """
CREATE TABLE articles (
    article_id TEXT NOT NULL, language TEXT NOT NULL, title TEXT NOT NULL, url TEXT NOT NULL,
    tags TEXT NOT NULL, translations TEXT NOT NULL, source_path TEXT NOT NULL,
    content_hash TEXT NOT NULL, chunk_count INTEGER NOT NULL, questions TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (article_id, language)
);
CREATE TABLE chunks (
    chunk_id INTEGER PRIMARY KEY, article_id TEXT NOT NULL, language TEXT NOT NULL,
    ord INTEGER NOT NULL, heading_path TEXT NOT NULL, text TEXT NOT NULL, terms TEXT NOT NULL
);
CREATE INDEX chunks_article ON chunks (article_id, language);
"""
QUESTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    question_id INTEGER PRIMARY KEY, article_id TEXT NOT NULL, language TEXT NOT NULL,
    source TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_article ON questions (article_id, language);
"""


class OldFormat(KBError):
    """An index written by an earlier format; ``kb_index.migrate`` converts it."""


@dataclass
class Pending:
    """What a write adds: articles with their chunks, vectors, BM25 terms and questions."""

    articles: list[Article]
    chunks: list[list[Chunk]]  # per article, same order
    vectors: np.ndarray  # one row per chunk, article order
    terms: list[list[str]] | None  # one per chunk; None: tokenised while being written (large builds)
    questions: list[list[tuple[str, str]]]  # per article: (source, text)
    question_vectors: np.ndarray  # one row per question, article order

    @classmethod
    def empty(cls, dim: int) -> Pending:
        return cls([], [], np.zeros((0, dim), np.float32), [], [], np.zeros((0, dim), np.float32))


@dataclass(frozen=True)
class WriteContext:
    data_dir: Path
    embedder_name: str
    dim: int
    dense_params: dense.DenseParams
    chunking: dict[str, int]
    article_hash: Callable[[Article], str]
    tokenize: Callable[[str], list[str]]
    query_means: Callable[[], dict[str, np.ndarray]]  # reference means (embeds a few hundred texts)
    reference: str  # fingerprint of the reference texts


# --- files ----------------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KBError(f"cannot read {path}: {exc}") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def current_version(data_dir: Path) -> str | None:
    current = Path(data_dir) / "CURRENT"
    return current.read_text(encoding="utf-8").strip() if current.exists() else None


def read_manifest(data_dir: Path) -> dict[str, Any] | None:
    """The live version's manifest, or None when ``data_dir`` holds no index yet."""
    current = Path(data_dir) / "CURRENT"
    if not current.exists():
        return None
    version = current.read_text(encoding="utf-8").strip()
    path = Path(data_dir) / "versions" / version / "manifest.json"
    if not version or not path.exists():
        raise KBError(f"{current} points at version {version!r}, which is missing: the index is damaged; rebuild it")
    return read_json(path)


def load_snapshot(data_dir: Path, version: str) -> Snapshot:
    vdir = Path(data_dir) / "versions" / version
    manifest = read_json(vdir / "manifest.json")
    if manifest.get("format") == 1:
        raise OldFormat(f"index version {version} has format 1")
    if manifest.get("format") != FORMAT_VERSION:
        raise KBError(f"index format {manifest.get('format')} in {vdir} is not supported (expected {FORMAT_VERSION}); rebuild it")
    try:
        index = faiss.read_index(str(vdir / "dense.faiss")) if (vdir / "dense.faiss").exists() else None
        questions = faiss.read_index(str(vdir / "questions.faiss")) if (vdir / "questions.faiss").exists() else None
        lexical = LexicalIndex.load(vdir / "lexical")
        centroids, means = _load_centroids(vdir / "centroids.npz")
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise KBError(f"cannot load index version {vdir}: {exc}") from None
    return Snapshot(version, manifest, index, questions, lexical, centroids, means, vdir / "meta.sqlite")


def _load_centroids(path: Path) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, np.ndarray]]:
    with np.load(path) as z:
        langs = [str(x) for x in z["languages"]]
        centroids = {lang: (z["sums"][i], int(z["counts"][i])) for i, lang in enumerate(langs)}
        means = {str(lang): z["means"][i] for i, lang in enumerate(z["mean_languages"])}
    return centroids, means


def _save_centroids(path: Path, centroids: dict[str, tuple[np.ndarray, int]], means: dict[str, np.ndarray], dim: int) -> None:
    langs = sorted(centroids)
    mlangs = sorted(means)
    np.savez(
        path,
        languages=np.array(langs, dtype=str), sums=np.stack([centroids[x][0] for x in langs]) if langs else np.zeros((0, dim), np.float64),
        counts=np.array([centroids[x][1] for x in langs], np.int64), mean_languages=np.array(mlangs, dtype=str),
        means=np.stack([means[x] for x in mlangs]) if mlangs else np.zeros((0, dim), np.float32),
    )  # fmt: skip


# --- writing ------------------------------------------------------------------------------------


def new_version_dir(data_dir: Path, base: Snapshot) -> tuple[str, Path]:
    seq = int(base.manifest.get("seq", 0)) + 1
    versions = data_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    for p in versions.iterdir():
        with contextlib.suppress(ValueError, IndexError):
            seq = max(seq, int(p.name[1:7]) + 1)
    name = f"v{seq:06d}-{uuid.uuid4().hex[:8]}"
    path = versions / name
    path.mkdir()
    return name, path


def write_version(ctx: WriteContext, base: Snapshot, p: Pending, remove_keys: list[tuple[str, str]] | None) -> tuple[Snapshot, int]:
    """A new version = ``base`` − the articles in ``remove_keys`` + ``p`` (``remove_keys`` None:
    a full build that replaces everything). Returns the committed snapshot and the number of
    chunks removed."""
    full = remove_keys is None
    version, vdir = new_version_dir(ctx.data_dir, base)
    next_chunk = int(base.manifest.get("next_chunk_id", 0))
    next_question = int(base.manifest.get("next_question_id", 0))
    chunk_ids = np.arange(next_chunk, next_chunk + len(p.vectors), dtype=np.int64)
    question_ids = np.arange(next_question, next_question + len(p.question_vectors), dtype=np.int64)
    db_path = vdir / "meta.sqlite"
    if not full and base.version is not None:
        shutil.copyfile(ctx.data_dir / "versions" / base.version / "meta.sqlite", db_path)
        db = sqlite3.connect(db_path)
    else:
        db = sqlite3.connect(db_path)
        db.executescript(SCHEMA)
    removed_chunks: list[int] = []
    removed_questions: list[int] = []
    try:
        db.executescript(QUESTIONS_SCHEMA)
        for aid, lang in remove_keys or []:
            removed_chunks += [r[0] for r in db.execute("SELECT chunk_id FROM chunks WHERE article_id=? AND language=?", (aid, lang))]
            removed_questions += [r[0] for r in db.execute("SELECT question_id FROM questions WHERE article_id=? AND language=?", (aid, lang))]
            for table in ("chunks", "questions", "articles"):
                db.execute(f"DELETE FROM {table} WHERE article_id=? AND language=?", (aid, lang))  # noqa: S608 - fixed names
        langs = [c.language for cs in p.chunks for c in cs]
        lexical = base.lexical.remove(removed_chunks) if not full else LexicalIndex()
        # The chunks' terms go straight from the SQLite insert into the new BM25 segment.
        lexical = lexical.add(chunk_ids, langs, _insert(db, ctx, p, chunk_ids, question_ids))
        db.commit()
        n_articles = db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
        n_questions = db.execute("SELECT COUNT(*) FROM questions").fetchone()[0]
    finally:
        db.close()
    removed = np.array(sorted(removed_chunks), np.int64)
    if len(lexical.languages) > dense.LANGUAGE_SLOTS:
        raise KBError(f"an index holds at most {dense.LANGUAGE_SLOTS} languages (this write would make {len(lexical.languages)})")
    code = {lang: i for i, lang in enumerate(lexical.languages)}
    scale = dense.LANGUAGE_SCALE if full or base.index is None else float(base.manifest.get("language_scale", 1.0))
    stored = dense.with_language(p.vectors, np.array([code[x] for x in langs], np.int64), scale)
    wide = ctx.dim + dense.LANGUAGE_SLOTS
    if full:
        index = dense.create(wide, stored, chunk_ids, ctx.dense_params) if len(chunk_ids) else None
        qindex = dense.create(ctx.dim, p.question_vectors, question_ids, ctx.dense_params) if len(question_ids) else None
        centroids = _add_to_centroids({}, p.vectors, langs)
    else:
        has_old = base.index is not None and len(removed)
        old_vectors = dense.reconstruct(base.index, removed)[:, : ctx.dim] if has_old else np.zeros((0, ctx.dim), np.float32)
        old_langs = [_lang_of(base, int(i)) for i in removed]
        centroids = _add_to_centroids(_add_to_centroids(base.centroid_sums, old_vectors, old_langs, sign=-1.0), p.vectors, langs)
        index = _updated(base.index, wide, ctx.dense_params, removed, stored, chunk_ids, lexical.row_ids()[lexical.row_live()])
        q_removed = np.array(sorted(removed_questions), np.int64)
        q_keep = np.setdiff1d(base.question_ids, q_removed, assume_unique=True)
        qindex = _updated(base.questions, ctx.dim, ctx.dense_params, q_removed, p.question_vectors, question_ids, np.concatenate([q_keep, question_ids]))
    means = base.query_means if base.manifest.get("reference") == ctx.reference and base.query_means else ctx.query_means()
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    manifest = {
        "format": FORMAT_VERSION, "version": version, "seq": int(base.manifest.get("seq", 0)) + 1,
        "embedder": ctx.embedder_name, "dim": ctx.dim, "index_type": dense.describe(index), "index_kind": dense.kind_of(index),
        "chunks": lexical.n_live, "articles": n_articles, "questions": n_questions, "languages": _live_languages(lexical),
        "next_chunk_id": next_chunk + len(chunk_ids), "next_question_id": next_question + len(question_ids),
        "chunking": ctx.chunking, "lexical": {"segments": len(lexical.segments), "method": "lucene BM25", "k1": 1.5, "b": 0.75},
        "reference": ctx.reference, "language_scale": scale, "content_hash": "",
        "built_at": now if full else base.manifest.get("built_at") or now, "updated_at": now,
    }  # fmt: skip
    base_dir = ctx.data_dir / "versions" / base.version if base.version else None
    snap = commit(ctx.data_dir, vdir, version, manifest, index, qindex, lexical, centroids, means, ctx.dim, base_dir)
    return snap, len(removed)


def _live_languages(lexical: LexicalIndex) -> list[str]:
    codes = np.unique(lexical.row_langs()[lexical.row_live()])
    return sorted(lexical.languages[int(c)] for c in codes)


def _lang_of(base: Snapshot, chunk_id: int) -> str:
    row = int(base.rows_of(np.array([chunk_id]))[0])
    return base.lexical.languages[int(base.row_langs[row])]


def _add_to_centroids(
    sums: dict[str, tuple[np.ndarray, int]], vectors: np.ndarray, langs: list[str], sign: float = 1.0
) -> dict[str, tuple[np.ndarray, int]]:
    out = {lang: (s.copy(), n) for lang, (s, n) in sums.items()}
    for lang in set(langs):
        rows = [i for i, x in enumerate(langs) if x == lang]
        s, n = out.get(lang, (np.zeros(vectors.shape[1], np.float64), 0))
        out[lang] = (s + sign * vectors[rows].astype(np.float64).sum(axis=0), n + int(sign) * len(rows))
    return {lang: (s, n) for lang, (s, n) in out.items() if n > 0}


def _updated(
    old: faiss.Index | None, dim: int, params: dense.DenseParams, removed: np.ndarray, vectors: np.ndarray, ids: np.ndarray, keep_after: np.ndarray
) -> faiss.Index | None:
    if not len(keep_after):
        return None
    keep = np.setdiff1d(keep_after, ids, assume_unique=True)
    return dense.updated(old, dim, removed, vectors, ids, keep, params)


def _insert(db: sqlite3.Connection, ctx: WriteContext, p: Pending, ids: np.ndarray, qids: np.ndarray) -> Iterator[list[str]]:
    """Write articles, chunks and questions, yielding each chunk's BM25 terms on the way
    (tokenised here for large builds that did not bring them): a million chunks' terms are never
    held in lists at once."""
    art_rows = [
        (a.id, a.language, a.title, a.url, json.dumps(a.tags, ensure_ascii=False), json.dumps(a.translations, ensure_ascii=False),
         a.source_path, ctx.article_hash(a), len(cs), json.dumps(a.questions, ensure_ascii=False))
        for a, cs in zip(p.articles, p.chunks, strict=True)
    ]  # fmt: skip
    db.executemany("INSERT INTO articles (article_id, language, title, url, tags, translations, source_path, content_hash, chunk_count, "
                   "questions) VALUES (?,?,?,?,?,?,?,?,?,?)", art_rows)  # fmt: skip
    q_rows = []
    j = 0
    for a, qs in zip(p.articles, p.questions, strict=True):
        for source, text in qs:
            q_rows.append((int(qids[j]), a.id, a.language, source, text))
            j += 1
    db.executemany("INSERT INTO questions VALUES (?,?,?,?,?)", q_rows)
    rows = []
    i = 0
    for a, cs in zip(p.articles, p.chunks, strict=True):
        for o, c in enumerate(cs):
            t = p.terms[i] if p.terms is not None else ctx.tokenize(c.embedding_text())
            yield t
            rows.append((int(ids[i]), a.id, a.language, o, json.dumps(c.heading_path, ensure_ascii=False), c.text, " ".join(t)))
            i += 1
            if len(rows) >= 10_000:
                db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?)", rows)
                rows.clear()
    db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?)", rows)


def commit(
    data_dir: Path, vdir: Path, version: str, manifest: dict[str, Any], index: faiss.Index | None, qindex: faiss.Index | None,
    lexical: LexicalIndex, centroids: dict[str, tuple[np.ndarray, int]], means: dict[str, np.ndarray], dim: int, base_dir: Path | None,
) -> Snapshot:  # fmt: skip
    """Finish the version directory, make it durable, point CURRENT at it."""
    with contextlib.closing(sqlite3.connect(vdir / "meta.sqlite")) as db:
        hashes = db.execute("SELECT article_id, language, content_hash FROM articles ORDER BY article_id, language").fetchall()
    h = hashlib.sha256()
    for aid, lang, ch in hashes:
        h.update(f"{aid}\0{lang}\0{ch}\n".encode())
    manifest["content_hash"] = h.hexdigest()
    if index is not None:
        faiss.write_index(index, str(vdir / "dense.faiss"))
    if qindex is not None:
        faiss.write_index(qindex, str(vdir / "questions.faiss"))
    lexical.save(vdir / "lexical", previous=base_dir / "lexical" if base_dir is not None else None)
    _save_centroids(vdir / "centroids.npz", centroids, means, dim)
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    for f in [*vdir.iterdir(), *(vdir / "lexical").iterdir()]:
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(vdir / "lexical")
    fsync_dir(vdir)
    write_atomic(data_dir / "CURRENT", version + "\n")
    return Snapshot(version, manifest, index, qindex, lexical, centroids, means, vdir / "meta.sqlite")
