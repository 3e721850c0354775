"""Questions written for articles by people: support staff (``help_centre/questions/<lang>.yml``)
and the ops inbox (``ops/kb_questions.py``: questions of published drafts, knowledge gaps).

Help-centre tools keep "suggested questions" per article for a reason this project measured
(bench/RESULTS.md, ## KB quality): a customer's question is much closer to another question than
to prose. They are embedded on e5's query side, like the customer's question, and compared with
the language-centred query vector (kb_index/language_bias.py), exactly like the questions the
knowledge base takes from the content itself (titles, FAQ questions, question headings); the
answerer merges both per article. There is no classifier over articles: a similarity does not
depend on how many articles or questions there are, a softmax over all articles does.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from kb_index.embedders import Embedder
from kb_index.models import KBError
from kb_index.text import detect_language

__all__ = ["QuestionIndex", "QuestionMatch", "load_questions", "merge_questions"]


def load_questions(folder: Path) -> dict[str, list[str]]:
    """``article id → questions`` from every ``*.yml`` in ``folder`` (one file per language)."""
    merged: dict[str, list[str]] = {}
    if not folder.is_dir():
        return merged
    for path in sorted(folder.glob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise KBError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(data, dict):
            raise KBError(f"{path}: expected a mapping of article id to a list of questions")
        for article_id, questions in data.items():
            if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
                raise KBError(f"{path}: {article_id!r} must map to a list of question strings")
            merged.setdefault(str(article_id), []).extend(q.strip() for q in questions if q.strip())
    return merged


def merge_questions(*sources: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """One ``article id → questions`` mapping from several, without repeating a question."""
    out: dict[str, list[str]] = {}
    for source in sources:
        for article_id, questions in source.items():
            have = out.setdefault(article_id, [])
            have.extend(q for q in questions if q not in have)
    return out


@dataclass
class QuestionMatch:
    """One article's questions against one query."""

    scores: list[float] = field(default_factory=list)  # centred query · question, best first
    best_cosine: float = -1.0  # plain cosine of the closest question
    best_relative: float = -1.0  # best relative cosine (match() with language means; else the plain one)
    best_question: str = ""


class QuestionIndex:
    """Immutable once built; rebuilt (cheaply, embeddings are cached on disk) when questions change."""

    def __init__(self, embedder: Embedder, cache_dir: Path | None = None) -> None:
        self.embedder = embedder
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._articles: list[str] = []
        self._owner = np.zeros(0, dtype=np.int64)  # question row → article index
        self._vectors = np.zeros((0, embedder.dim), dtype=np.float32)
        self._texts: list[str] = []
        self._languages: list[str] = []

    @property
    def size(self) -> int:
        return len(self._owner)

    @property
    def articles(self) -> list[str]:
        return list(self._articles)

    def build(self, questions: Mapping[str, Sequence[str]], known_articles: set[str] | None = None) -> None:
        """Embed (cached) and keep. Questions of articles not in ``known_articles`` are left out."""
        pairs = [(a, q) for a, qs in sorted(questions.items()) for q in qs if known_articles is None or a in known_articles]
        articles = sorted({a for a, _ in pairs})
        index = {a: i for i, a in enumerate(articles)}
        vectors = self._embed([q for _, q in pairs])
        owner = np.array([index[a] for a, _ in pairs], dtype=np.int64)
        with self._lock:  # readers take the fields together
            self._articles, self._owner, self._vectors, self._texts = articles, owner, vectors, [q for _, q in pairs]
            self._languages = [detect_language(q) for _, q in pairs]

    def match(
        self, query_vector: np.ndarray, centred: np.ndarray, articles: set[str] | None = None,
        language_means: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, QuestionMatch]:  # fmt: skip
        """Per article with questions (or only ``articles``): its questions' scores against the
        centred query, its closest question by plain cosine and, with ``language_means`` (the mean
        generic question per language, kb_index/language_bias.py), its best relative cosine: minus
        the query's cosine to the mean question of that question's language."""
        with self._lock:
            names, owner, vectors, texts, langs = self._articles, self._owner, self._vectors, self._texts, self._languages
        if not names:
            return {}
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        qa = np.asarray(centred, dtype=np.float32).reshape(-1)
        rows = np.arange(len(owner)) if articles is None else np.flatnonzero(np.isin(owner, [i for i, a in enumerate(names) if a in articles]))
        adjusted, cosine = vectors[rows] @ qa, vectors[rows] @ q
        relative = cosine
        if language_means:
            generic = {lang: float(q @ m) for lang, m in language_means.items()}
            relative = cosine - np.array([generic.get(langs[r], 0.0) for r in rows.tolist()], np.float32)
        out: dict[str, QuestionMatch] = {}
        for r, s, c, rel in zip(rows.tolist(), adjusted.tolist(), cosine.tolist(), relative.tolist(), strict=True):
            m = out.setdefault(names[owner[r]], QuestionMatch())
            m.scores.append(s)
            m.best_relative = max(m.best_relative, rel)
            if c > m.best_cosine:
                m.best_cosine, m.best_question = c, texts[r]
        for m in out.values():
            m.scores.sort(reverse=True)
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Query-side embeddings, cached per text on disk: a restart re-embeds only new questions."""
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        cache = self._load_cache()
        missing = [t for t in dict.fromkeys(texts) if _key(t) not in cache]
        if missing:
            fresh = self.embedder.embed_queries(missing)
            for text, vec in zip(missing, fresh, strict=True):
                cache[_key(text)] = vec
            self._save_cache(cache)
        return np.stack([cache[_key(t)] for t in texts]).astype(np.float32)

    def _cache_file(self) -> Path | None:
        if self._cache_dir is None:
            return None
        safe = "".join(ch if ch.isalnum() else "_" for ch in self.embedder.name)
        return self._cache_dir / f"question-vectors-{safe}-{self.embedder.dim}.npz"

    def _load_cache(self) -> dict[str, np.ndarray]:
        path = self._cache_file()
        if path is None or not path.exists():
            return {}
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    def _save_cache(self, cache: dict[str, np.ndarray]) -> None:
        path = self._cache_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **cache)
        tmp.replace(path)


def _key(text: str) -> str:
    return "q" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
