"""One index version, loaded: what every search reads, never changed after construction.

A snapshot holds the chunk vectors (FAISS), the question vectors (FAISS), the BM25 segments, the
per-language centroids that correct e5's language bias, and an open read-only SQLite connection
for texts. Searches take ``KnowledgeBase._snap`` once and use only that object, so a write that
swaps in a new snapshot never changes a search in flight. The small caches here (language
filters) only ever add entries computed from immutable data.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from kb_index import dense
from kb_index.lexical import LexicalIndex
from kb_index.models import Chunk

EXCESS_SAMPLE = 300  # translated articles whose titles measure the same-language excess


class Snapshot:
    def __init__(
        self,
        version: str | None,
        manifest: dict[str, Any] | None,
        index: faiss.Index | None,
        questions: faiss.Index | None,
        lexical: LexicalIndex | None,
        centroids: dict[str, tuple[np.ndarray, int]] | None,
        query_means: dict[str, np.ndarray] | None,
        db_path: Path | None,
    ) -> None:
        self.version = version
        self.manifest = manifest or {}
        self.index = index
        self.questions = questions
        self.lexical = lexical or LexicalIndex()
        # language → (sum of its chunk vectors, count): the sums update exactly on add/remove.
        self.centroid_sums = centroids or {}
        self.centroids = {lang: (s / max(n, 1)).astype(np.float32) for lang, (s, n) in self.centroid_sums.items() if n}
        self.query_means = query_means or {}
        self.row_ids = self.lexical.row_ids()
        self.row_live = self.lexical.row_live()
        self.row_langs = self.lexical.row_langs()  # codes into self.lexical.languages
        self._sorted_rows = bool(np.all(np.diff(self.row_ids) > 0)) if len(self.row_ids) > 1 else True
        self._db = sqlite3.connect(f"file:{db_path}?mode=ro&immutable=1", uri=True, check_same_thread=False) if db_path else None
        self._db_lock = threading.Lock()
        self._filters: dict[frozenset[str], tuple[Any, np.ndarray, np.ndarray]] = {}
        self._coverage: dict[str, float] = {}
        self._excess: dict[str, float] = {}
        live_codes = np.unique(self.row_langs[self.row_live]) if len(self.row_live) else []
        self.languages: list[str] = sorted(self.lexical.languages[int(c)] for c in live_codes)
        self._load_articles()

    def _load_articles(self) -> None:
        """Article → languages, and each question row's article (for grouping question hits)."""
        self.article_languages: dict[str, set[str]] = {}
        for aid, lang in self.query("SELECT article_id, language FROM articles"):
            self.article_languages.setdefault(aid, set()).add(lang)
        rows = self.query("SELECT question_id, article_id, language FROM questions ORDER BY question_id") if self._has_questions() else []
        self.question_ids = np.array([r[0] for r in rows], dtype=np.int64)
        self.question_article = [r[1] for r in rows]
        self.question_language = [r[2] for r in rows]

    def _has_questions(self) -> bool:
        return bool(self.query("SELECT name FROM sqlite_master WHERE type='table' AND name='questions'"))

    @property
    def empty(self) -> bool:
        return self.index is None or self.index.ntotal == 0

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._db is None:
            return []
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def coverage(self, language: str) -> float:
        """Share of the articles that have a version in ``language``."""
        hit = self._coverage.get(language)
        if hit is None:
            n = len(self.article_languages)
            hit = sum(language in langs for langs in self.article_languages.values()) / n if n else 0.0
            self._coverage[language] = hit
        return hit

    def shifts(self, qa: np.ndarray, language: str | None = None, excess_max_coverage: float = 0.0, excess_scale: float = 1.0) -> np.ndarray:
        """The centred query's similarity to each language's mean chunk, by language code; plus,
        for the query's own ``language`` when it covers less than ``excess_max_coverage`` of the
        articles, ``excess_scale`` times its same-language excess (``language_excess``)."""
        out = np.array([float(qa @ self.centroids[lang]) if lang in self.centroids else 0.0 for lang in self.lexical.languages], np.float32)
        if language and language in self.lexical.languages and self.coverage(language) < excess_max_coverage:
            out[self.lexical.languages.index(language)] += excess_scale * self.language_excess(language)
        return out

    def language_excess(self, language: str) -> float:
        """How much more a question in ``language`` scores (language-corrected) against that
        language's version of an article than against another version of the same article,
        measured on this index's own titles: each title of a translated article, as a query,
        against its own version and the other versions of its article (up to
        ``EXCESS_SAMPLE`` articles). Mean centring leaves this much same-language pull (0.021
        for Chinese and 0.035 for Russian on the first help centre); subtracting it stops a
        Chinese question from preferring the Chinese version of a wrong article to the English-only
        right one. 0 when the index has fewer than 3 translated titles in ``language``."""
        hit = self._excess.get(language)
        if hit is None:
            hit = self._measure_excess(language)
            self._excess[language] = hit
        return hit

    def _measure_excess(self, language: str) -> float:
        if self.index is None or self.questions is None or language not in self.query_means or language not in self.centroids:
            return 0.0
        translated = sorted(a for a, langs in self.article_languages.items() if language in langs and len(langs) > 1)[:EXCESS_SAMPLE]
        if len(translated) < 3:
            return 0.0
        marks = ",".join("?" * len(translated))
        titles = self.query(
            f"SELECT question_id, article_id FROM questions WHERE source='title' AND language=? AND article_id IN ({marks})", [language, *translated]
        )
        chunks: dict[str, dict[str, list[int]]] = {}
        for cid, aid, lang in self.query(f"SELECT chunk_id, article_id, language FROM chunks WHERE article_id IN ({marks})", translated):
            chunks.setdefault(aid, {}).setdefault(lang, []).append(int(cid))
        if len(titles) < 3:
            return 0.0
        tvecs = dense.reconstruct(self.questions, np.array([t[0] for t in titles], np.int64))
        diffs = []
        for (_, aid), tv in zip(titles, tvecs, strict=True):
            qa = tv - self.query_means[language]
            best: dict[str, float] = {}
            for lang, ids in chunks.get(aid, {}).items():
                if lang in self.centroids:
                    vecs = dense.reconstruct(self.index, np.array(ids, np.int64))[:, : len(qa)]
                    best[lang] = float((vecs @ qa).max() - qa @ self.centroids[lang])
            others = [v for lang, v in best.items() if lang != language]
            if language in best and others:
                diffs.append(best[language] - max(others))
        return max(0.0, float(np.mean(diffs))) if len(diffs) >= 3 else 0.0

    def language_filter(self, languages: frozenset[str]) -> tuple[Any, np.ndarray, np.ndarray]:
        """(FAISS selector, its bitmap kept alive, BM25 row mask) for live chunks of these languages."""
        hit = self._filters.get(languages)
        if hit is not None:
            return hit
        codes = [i for i, lang in enumerate(self.lexical.languages) if lang in languages]
        row_mask = self.row_live & np.isin(self.row_langs, np.array(codes, np.uint8)) if len(self.row_ids) else np.zeros(0, bool)
        n_ids = int(self.manifest.get("next_chunk_id", 0)) + 1
        bitmap = np.zeros((n_ids + 7) // 8, dtype=np.uint8)
        ids = self.row_ids[row_mask]
        np.bitwise_or.at(bitmap, ids >> 3, (1 << (ids & 7)).astype(np.uint8))
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
        entry = (selector, bitmap, row_mask)
        self._filters[languages] = entry
        return entry

    def rows_of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """BM25 row of each chunk id (ids are assigned in increasing order, rows keep it)."""
        if self._sorted_rows:
            return np.searchsorted(self.row_ids, chunk_ids)
        order = np.argsort(self.row_ids)
        return order[np.searchsorted(self.row_ids[order], chunk_ids)]

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

    def chunks_article(self, ids: Sequence[int]) -> dict[int, str]:
        """Chunk id → article id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        return dict(self.query(f"SELECT chunk_id, article_id FROM chunks WHERE chunk_id IN ({marks})", [int(i) for i in ids]))

    def question_article_of(self, question_id: int) -> str | None:
        i = int(np.searchsorted(self.question_ids, question_id))
        return self.question_article[i] if i < len(self.question_ids) and self.question_ids[i] == question_id else None

    def chunk_ids_of(self, article_ids: Sequence[str]) -> dict[int, tuple[str, str]]:
        """Chunk id → (article id, language) for every version of these articles."""
        if not article_ids:
            return {}
        marks = ",".join("?" * len(article_ids))
        rows = self.query(f"SELECT chunk_id, article_id, language FROM chunks WHERE article_id IN ({marks})", list(article_ids))
        return {r[0]: (r[1], r[2]) for r in rows}

    def question_rows_of(self, article_ids: Sequence[str]) -> list[tuple[int, str, str, str, str]]:
        """(question id, article id, source, text, language) of these articles' questions."""
        if not article_ids or not len(self.question_ids):
            return []
        marks = ",".join("?" * len(article_ids))
        rows = self.query(
            f"SELECT question_id, article_id, source, text, language FROM questions WHERE article_id IN ({marks})", list(article_ids)
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def empty_snapshot() -> Snapshot:
    return Snapshot(None, None, None, None, None, None, None, None)
