"""An embedder wrapper that remembers every vector on disk, for benchmarks only.

The quality benchmark embeds the same chunks, titles and queries run after run; on a shared 2-core
machine that is minutes of CPU each time. ``CachedEmbedder`` has the wrapped embedder's ``name`` and
``dim`` (so an index built through it is the index the embedder would build) and returns exactly
the vectors the embedder returned the first time a text was seen.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kb_index.embedders import Embedder


class CachedEmbedder:
    def __init__(self, inner: Embedder, directory: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        safe = "".join(ch if ch.isalnum() else "_" for ch in inner.name)
        self._path = Path(directory) / f"vectors-{safe}-{inner.dim}.npz"
        self._lock = threading.Lock()
        self._rows: dict[str, np.ndarray] = {}
        self._dirty = 0
        if self._path.exists():
            with np.load(self._path) as data:
                keys, vectors = data["keys"], data["vectors"]
            self._rows = {str(k): v for k, v in zip(keys, vectors, strict=True)}

    def _embed(self, side: str, texts: Sequence[str], fn) -> np.ndarray:  # type: ignore[no-untyped-def]
        keys = [side + hashlib.sha256(t.encode("utf-8")).hexdigest()[:32] for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self._rows))
        if missing:
            fresh = fn(missing)
            with self._lock:
                for t, v in zip(missing, fresh, strict=True):
                    self._rows[side + hashlib.sha256(t.encode("utf-8")).hexdigest()[:32]] = np.asarray(v, np.float32)
                self._dirty += len(missing)
            if self._dirty >= 256:
                self.save()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return np.stack([self._rows[k] for k in keys]).astype(np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed("q", list(texts), self.inner.embed_queries)

    def embed_passages(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        return self._embed("p", list(texts), lambda t: self.inner.embed_passages(t, progress=progress))

    def save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            keys = np.array(list(self._rows), dtype=object).astype(str)
            vectors = np.stack(list(self._rows.values())).astype(np.float32) if self._rows else np.zeros((0, self.dim), np.float32)
            self._dirty = 0
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.replace(self._path)
