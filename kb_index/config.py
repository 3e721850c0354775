"""Index and search parameters of a KnowledgeBase and the answer policy, from the settings' ``kb``
section (each default is written once, in ``settings/sections.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kb_index import dense
from kb_index.decision import AnswerPolicy
from kb_index.search import SearchParams
from settings import KbSettings, Settings, get_settings

_KB = KbSettings()  # the defaults (no environment read here)


@dataclass(frozen=True)
class KBConfig:
    """Index and search parameters (defaults: the ``kb`` settings section; see ``from_settings``)."""

    dense: dense.DenseParams = field(default_factory=dense.DenseParams)
    candidates: int = 50  # depth of each ranked list (dense: per language)
    lexical_weight: float = _KB.lexical_weight  # BM25 (normalised to the query's best) added to the corrected cosine
    lexical_min_coverage: float = _KB.lexical_min_coverage  # ...only when the query's language covers this share of articles
    chunk_max_chars: int = _KB.chunk_max_chars
    chunk_overlap_chars: int = _KB.chunk_overlap_chars
    keep_versions: int = _KB.keep_versions
    # How often a read checks CURRENT for a version another process made live (kb_index/shared.py); 0: never.
    auto_refresh_s: float = _KB.refresh_s
    # PostgreSQL URL of the processes sharing the directory: their writers also take an advisory
    # lock there (kb_index/shared.py). Empty: the directory's flock alone.
    writers_lock_url: str = field(default="", repr=False)  # may hold a password
    # Query embeddings remembered (LRU): one customer turn searches the same text several times;
    # 0 disables (benchmarks of the embedding cost).
    query_cache: int = 256
    # OpenMP threads of a FAISS search, set in the searching thread (one avoids barrier spinning
    # on a shared 2-core machine; a single query needs no more).
    search_threads: int = 1
    # Share of the same-language excess (kb_index/snapshot.py) taken off a question in a language
    # that covers few articles; chosen on the first help centre by bench/kb/calibrate.py.
    language_excess_scale: float = 1.0

    @classmethod
    def from_settings(cls, s: Settings) -> KBConfig:
        kb = s.kb
        return cls(
            dense=dense.DenseParams(
                ann_threshold=kb.ann_threshold, ivf_nlist=kb.ivf_nlist, ivf_nprobe=kb.ivf_nprobe, ivf_encoding=kb.ivf_encoding,
            ),
            lexical_weight=kb.lexical_weight, lexical_min_coverage=kb.lexical_min_coverage,
            chunk_max_chars=kb.chunk_max_chars, chunk_overlap_chars=kb.chunk_overlap_chars, keep_versions=kb.keep_versions,
            auto_refresh_s=kb.refresh_s, writers_lock_url=s.sqlalchemy_url if _is_postgres(s.sqlalchemy_url) else "",
        )  # fmt: skip

    def search_params(self) -> SearchParams:
        return SearchParams(
            self.candidates, self.lexical_weight, self.lexical_min_coverage, self.search_threads,
            excess_scale=self.language_excess_scale,
        )  # fmt: skip


def _is_postgres(url: str) -> bool:
    from storage.coordination import is_postgres

    return is_postgres(url)


def answer_policy(s: Settings) -> AnswerPolicy:
    """The answer decision with the configured threshold, clarify floor and margin."""
    return AnswerPolicy(threshold=s.kb.answer_threshold, clarify_floor=s.kb.clarify_floor, clarify_margin=s.kb.clarify_margin)


def default_data_dir(s: Settings | None = None) -> Path:
    return (s or get_settings()).kb_data_dir
