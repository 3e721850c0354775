"""What a write needs from articles: chunks with their vectors and BM25 terms, and the questions
taken from the content with theirs (embedded here, outside the writers' lock)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from kb_index import storage
from kb_index.chunking import chunk_article
from kb_index.content_questions import content_questions
from kb_index.embedders import Embedder
from kb_index.models import Article, KBError
from kb_index.text import default_tokenizer

# Part of every article's stored hash: when what is derived from an article changes (the chunk
# text, the questions taken from it), the next upsert re-indexes it.
INDEX_RECIPE = "questions-2"


def article_hash(a: Article, max_chars: int, overlap_chars: int) -> str:
    """What an indexed article is stored under: its content and how it is chunked and derived."""
    return hashlib.sha256(f"{a.content_hash()}|{max_chars}|{overlap_chars}|{INDEX_RECIPE}".encode()).hexdigest()


def prepare(arts: list[Article], embedder: Embedder, max_chars: int, overlap_chars: int, progress: bool | None) -> storage.Pending:
    chunks = [chunk_article(a, max_chars, overlap_chars) for a in arts]
    empty = [a.key for a, cs in zip(arts, chunks, strict=True) if not cs]
    if empty:
        raise KBError(f"article(s) without any text to index: {', '.join(f'{i} ({lang})' for i, lang in empty)}")
    texts = [c.embedding_text() for cs in chunks for c in cs]
    vectors = embedder.embed_passages(texts, progress=progress)
    questions = [content_questions(a) for a in arts]
    q_texts = [t for qs in questions for _, t in qs]
    q_vectors = embedder.embed_queries(q_texts) if q_texts else np.zeros((0, embedder.dim), np.float32)
    tok = default_tokenizer()
    return storage.Pending(arts, chunks, vectors, [tok.tokenize(t) for t in texts], questions, q_vectors)


def unique(articles: Iterable[Article]) -> list[Article]:
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
