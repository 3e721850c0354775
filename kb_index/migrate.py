"""Converting an index of format 1 (one BM25 matrix rebuilt on every write, no questions, no
language centroids) to the current format, once, when it is opened.

Nothing is embedded again except the questions taken from titles and headings (short texts, a
few per article): the chunk vectors (read back from the old FAISS index and stored again with
their language dimensions), texts and BM25 terms come from the old version. The old
version stays on disk untouched (it is the previous version), so the conversion can be undone by
pointing CURRENT back at it with an older release.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faiss
import numpy as np

from kb_index import dense, language_bias, storage
from kb_index.content_questions import is_question
from kb_index.lexical import LexicalIndex
from kb_index.snapshot import Snapshot

if TYPE_CHECKING:
    from kb_index.kb import KnowledgeBase


def migrate_v1(kb: KnowledgeBase, version: str) -> None:
    """Write a format-2 version from format-1 ``version`` and make it live (caller holds the lock)."""
    data_dir = kb.data_dir
    old = data_dir / "versions" / version
    manifest = storage.read_json(old / "manifest.json")
    base = Snapshot(version, manifest, None, None, None, None, None, None)
    new_version, vdir = storage.new_version_dir(data_dir, base)
    shutil.copyfile(old / "meta.sqlite", vdir / "meta.sqlite")
    db = sqlite3.connect(vdir / "meta.sqlite")
    try:
        db.execute("ALTER TABLE articles ADD COLUMN questions TEXT NOT NULL DEFAULT '[]'")
        db.executescript(storage.QUESTIONS_SCHEMA)
        ids, langs, terms = [], [], []
        for cid, lang, t in db.execute("SELECT chunk_id, language, terms FROM chunks ORDER BY chunk_id"):
            ids.append(cid)
            langs.append(lang)
            terms.append(t.split(" ") if t else [])
        questions: list[tuple[str, str, str, str]] = []
        for aid, lang, title in db.execute("SELECT article_id, language, title FROM articles ORDER BY article_id, language"):
            questions.append((aid, lang, "title", title))
            seen = {title.lower()}
            for (path,) in db.execute("SELECT DISTINCT heading_path FROM chunks WHERE article_id=? AND language=?", (aid, lang)):
                heads = json.loads(path)
                if heads and is_question(heads[-1]) and heads[-1].lower() not in seen:
                    seen.add(heads[-1].lower())
                    questions.append((aid, lang, "heading", f"{title}: {heads[-1]}"))
        db.executemany("INSERT INTO questions VALUES (?,?,?,?,?)", [(i, *q) for i, q in enumerate(questions)])
        db.commit()
        n_articles = db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
    finally:
        db.close()
    chunk_ids = np.array(ids, np.int64)
    lexical = LexicalIndex().add(chunk_ids, langs, terms)
    old_index = faiss.read_index(str(old / "dense.faiss"))
    vectors = dense.reconstruct(old_index, chunk_ids) if len(chunk_ids) else np.zeros((0, kb.embedder.dim), np.float32)
    del old_index
    code = {lang: i for i, lang in enumerate(lexical.languages)}
    codes = np.array([code[x] for x in langs], np.int64)
    wide = kb.embedder.dim + dense.LANGUAGE_SLOTS
    index = dense.create(wide, dense.with_language(vectors, codes), chunk_ids, kb.config.dense) if len(chunk_ids) else None
    centroids = {lang: (vectors[codes == i].astype(np.float64).sum(axis=0), int((codes == i).sum())) for lang, i in code.items()}
    del vectors
    q_vectors = kb.embedder.embed_queries([q[3] for q in questions]) if questions else np.zeros((0, kb.embedder.dim), np.float32)
    qindex = dense.create(kb.embedder.dim, q_vectors, np.arange(len(questions), dtype=np.int64), kb.config.dense) if questions else None
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    new_manifest = {
        **manifest, "format": storage.FORMAT_VERSION, "version": new_version, "seq": int(manifest.get("seq", 0)) + 1,
        "questions": len(questions), "next_question_id": len(questions), "reference": language_bias.reference_fingerprint(),
        "language_scale": dense.LANGUAGE_SCALE,
        "lexical": {"segments": 1, "method": "lucene BM25", "k1": 1.5, "b": 0.75}, "articles": n_articles,
        "updated_at": now, "migrated_from": version,
    }  # fmt: skip
    storage.commit(data_dir, vdir, new_version, new_manifest, index, qindex, lexical, centroids, kb._reference_means(), kb.embedder.dim, None)

