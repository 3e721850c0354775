"""The value objects that cross the package boundary (loaders → chunker → index → callers).

All are frozen dataclasses: a search result handed to a Rasa action or an HTTP route can never be
changed under another reader's feet, and snapshots can share them freely between threads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class KBError(Exception):
    """A knowledge-base error meant for a person: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Article:
    """One help article in one language; ``(id, language)`` names it in the index."""

    id: str
    language: str
    title: str
    url: str
    text: str  # Markdown or plain body (headings as ``#`` lines are used for chunking)
    tags: list[str] = field(default_factory=list)
    translations: list[str] = field(default_factory=list)
    source_path: str = ""
    # Questions the article answers, from its source: an FAQ table's question column, or
    # ``questions:`` in Markdown front matter (see kb_index/content_questions.py).
    questions: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.id, self.language)

    def content_hash(self) -> str:
        """Hash of everything that changes what is indexed (not where it was loaded from), so an
        unchanged article is recognised on re-import and not embedded again."""
        fields: list[object] = [self.id, self.language, self.title, self.url, self.text, list(self.tags), list(self.translations)]
        if self.questions:  # absent from older hashes: articles without questions keep theirs
            fields.append(list(self.questions))
        payload = json.dumps(fields, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A searchable piece of an article. ``chunk_id`` is the index-wide id (-1 before indexing)."""

    chunk_id: int
    article_id: str
    language: str
    title: str
    heading_path: list[str]
    url: str
    text: str

    def embedding_text(self) -> str:
        """What the embedder and BM25 see: title and heading path give a short chunk its context
        (a paragraph saying "within 30 days" means nothing without "Returns > Guest orders")."""
        head = " > ".join([self.title, *self.heading_path]) if self.title else " > ".join(self.heading_path)
        return f"{head}\n\n{self.text}" if head else self.text


@dataclass(frozen=True)
class SearchHit:
    """One ranked result.

    ``score`` is the ranking score of the mode used (hybrid: language-corrected similarity plus
    the weighted, normalised BM25 score; dense: language-corrected similarity; lexical: BM25).
    ``adjusted_score`` is the language-corrected similarity (kb_index/language_bias.py), the
    dense part of the ranking. ``dense_score`` is the plain cosine between the query and this
    chunk, computed for every hit of a dense or hybrid search (also for hits that only BM25 found);
    both are None in lexical mode. ``dense_rank``/``lexical_rank`` (1-based) tell which candidate
    lists the chunk was in.
    """

    chunk: Chunk
    score: float
    dense_score: float | None
    lexical_score: float | None
    rank: int
    dense_rank: int | None = None
    lexical_rank: int | None = None
    adjusted_score: float | None = None


@dataclass(frozen=True)
class ArticleInfo:
    id: str
    language: str
    title: str
    url: str
    chunk_count: int
    tags: list[str] = field(default_factory=list)
    translations: list[str] = field(default_factory=list)
    source_path: str = ""


@dataclass
class LoadReport:
    """What a folder import produced: articles, and per file (or row) the reason it was refused."""

    articles: list[Article] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # files of a type we do not read (e.g. catalog.yml)

    def extend(self, other: LoadReport) -> None:
        self.articles.extend(other.articles)
        self.errors.extend(other.errors)
        self.skipped.extend(other.skipped)


@dataclass(frozen=True)
class BuildReport:
    articles: int
    chunks: int
    index_type: str
    content_hash: str
    seconds: float
    version: str


@dataclass(frozen=True)
class UpsertReport:
    added: list[tuple[str, str]]
    replaced: list[tuple[str, str]]
    unchanged: list[tuple[str, str]]
    chunks_added: int
    chunks_removed: int
    index_type: str
    version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [list(k) for k in self.added],
            "replaced": [list(k) for k in self.replaced],
            "unchanged": [list(k) for k in self.unchanged],
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "index_type": self.index_type,
            "version": self.version,
        }
