"""The bodies the knowledge-base admin routes answer with (``kb_index/admin_routes.py``; ``/docs`` shows them).

Fields are in the order the routes and ``KnowledgeBase.stats`` build them, so the JSON is unchanged.
"""

from __future__ import annotations

from pydantic import BaseModel


class ArticleInfo(BaseModel):
    id: str
    language: str
    title: str
    url: str


class ArticleRow(ArticleInfo):
    chunks: int


class FileError(BaseModel):
    """A file of an upload that could not be read: its name and the loader's reason (never its content)."""

    file: str
    reason: str


class Replaced(BaseModel):
    indexed: list[ArticleInfo]


class Uploaded(Replaced):
    errors: list[FileError]


class Deleted(BaseModel):
    deleted: str
    language: str | None
    chunks_removed: int


class Hit(BaseModel):
    rank: int
    article_id: str
    language: str
    title: str
    url: str
    heading_path: list[str]
    text: str
    score: float
    dense_score: float | None
    lexical_score: float | None


class Stats(BaseModel):
    data_dir: str
    version: str | None
    embedder: str
    dim: int
    chunks: int
    articles: int
    questions: int
    chunks_per_language: dict[str, int]
    index_type: str
    lexical: str
    content_hash: str | None
    built_at: str | None
    updated_at: str | None
