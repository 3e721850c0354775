"""Index and search parameters of a KnowledgeBase (defaults from ``settings.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kb_index import dense
from kb_index.search import SearchParams

if TYPE_CHECKING:
    from settings import Settings


@dataclass(frozen=True)
class KBConfig:
    """Index and search parameters (defaults from ``settings.py``; see ``from_settings``)."""

    dense: dense.DenseParams = field(default_factory=dense.DenseParams)
    candidates: int = 50  # depth of each ranked list (dense: per language)
    lexical_weight: float = 0.03  # BM25 (normalised to the query's best) added to the corrected cosine
    lexical_min_coverage: float = 0.9  # ...only when the query's language covers this share of articles
    chunk_max_chars: int = 900
    chunk_overlap_chars: int = 150
    keep_versions: int = 3
    auto_refresh_s: float = 2.0  # how often a search checks CURRENT for another process's write; 0: never
    # Query embeddings remembered (LRU): one customer turn searches the same text several times;
    # 0 disables (benchmarks of the embedding cost).
    query_cache: int = 256
    # OpenMP threads of a FAISS search, set in the searching thread (one avoids barrier spinning
    # on a shared 2-core machine; a single query needs no more).
    search_threads: int = 1

    @classmethod
    def from_settings(cls, s: Settings) -> KBConfig:
        return cls(
            dense=dense.DenseParams(
                ann_threshold=s.kb_ann_threshold, ivf_nlist=s.kb_ivf_nlist, ivf_nprobe=s.kb_ivf_nprobe, ivf_encoding=s.kb_ivf_encoding,
            ),
            lexical_weight=s.kb_lexical_weight, lexical_min_coverage=s.kb_lexical_min_coverage,
            chunk_max_chars=s.kb_chunk_max_chars, chunk_overlap_chars=s.kb_chunk_overlap_chars, keep_versions=s.kb_keep_versions,
        )  # fmt: skip

    def search_params(self) -> SearchParams:
        return SearchParams(self.candidates, self.lexical_weight, self.lexical_min_coverage, self.search_threads)


def default_data_dir(s: Settings | None = None) -> Path:
    if s is None:
        from settings import get_settings

        s = get_settings()
    return s.kb_data_dir
