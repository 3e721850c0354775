"""Questions each article answers, as a second way to find the article.

Help-centre tools keep "suggested questions" per article for a reason this project measured
(bench/RESULTS.md, ## KB quality): a customer's question is much closer to another question than
to prose, and a Chinese or Russian question finds an English-only article through the Chinese or
Russian questions written for it. Questions live in ``help_centre/questions/<lang>.yml``
(``article-id: [question, ...]``) and are embedded as queries (e5's ``query:`` side on both ends).

The index answers "which articles, how sure": the best cosine to any of an article's questions,
and a logistic-regression probability over the question embeddings (the same few-shot recipe as
the NLU's intent classifier), which separates close articles better than a nearest neighbour.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression

from kb_index.embedders import Embedder
from kb_index.models import KBError

__all__ = ["ArticleScore", "QuestionIndex", "load_questions"]


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


@dataclass(frozen=True)
class ArticleScore:
    article_id: str
    similarity: float  # best cosine between the query and one of the article's questions
    probability: float  # classifier probability that the query is about this article


class QuestionIndex:
    """Immutable once built; rebuilt (cheaply, embeddings are cached on disk) when questions change."""

    def __init__(self, embedder: Embedder, cache_dir: Path | None = None, c: float = 20.0) -> None:
        self.embedder = embedder
        self._cache_dir = cache_dir
        self._c = c
        self._lock = threading.Lock()
        self._articles: list[str] = []
        self._owner = np.zeros(0, dtype=np.int64)  # question row → article index
        self._vectors = np.zeros((0, embedder.dim), dtype=np.float32)
        self._classifier: LogisticRegression | None = None

    @property
    def size(self) -> int:
        return len(self._owner)

    @property
    def articles(self) -> list[str]:
        return list(self._articles)

    def build(self, questions: Mapping[str, Sequence[str]], known_articles: set[str] | None = None) -> None:
        """Embed and fit. Questions of articles not in ``known_articles`` are left out, so a deleted
        article is never suggested by its questions."""
        pairs = [(a, q) for a, qs in sorted(questions.items()) for q in qs if known_articles is None or a in known_articles]
        articles = sorted({a for a, _ in pairs})
        index = {a: i for i, a in enumerate(articles)}
        vectors = self._embed([q for _, q in pairs])
        owner = np.array([index[a] for a, _ in pairs], dtype=np.int64)
        classifier = None
        if len(articles) >= 2:
            classifier = LogisticRegression(C=self._c, max_iter=2000)
            classifier.fit(vectors, owner)
        with self._lock:  # readers take the four fields together
            self._articles, self._owner, self._vectors, self._classifier = articles, owner, vectors, classifier

    def scores(self, query_vector: np.ndarray) -> list[ArticleScore]:
        """Every article with questions, best first (by probability, then similarity)."""
        with self._lock:
            articles, owner, vectors, classifier = self._articles, self._owner, self._vectors, self._classifier
        if not articles:
            return []
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        sims = vectors @ q
        best = np.full(len(articles), -1.0, dtype=np.float32)
        np.maximum.at(best, owner, sims)
        if classifier is not None:
            probs = np.zeros(len(articles))
            probs[classifier.classes_] = classifier.predict_proba(q.reshape(1, -1))[0]
        else:
            probs = np.ones(len(articles))
        order = sorted(range(len(articles)), key=lambda i: (-probs[i], -best[i]))
        return [ArticleScore(articles[i], float(best[i]), float(probs[i])) for i in order]

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
