"""The FAISS side: which index for which size, and how it is changed in place of a rebuild.

- Below ``ann_threshold`` chunks: ``IndexIDMap2(IndexFlatIP)``, exact cosine (vectors are unit
  length). A few thousand help-centre chunks are searched exhaustively in well under a millisecond.
- From ``ann_threshold`` up: ``IndexIVFScalarQuantizer`` (8-bit by default) with our chunk ids
  stored in the inverted lists and a hash-table direct map. IVF was chosen over HNSW because it
  deletes for real (``remove_ids``), so replacing an article never needs tombstones or a
  compaction pass, and because IVF-SQ8 holds 1M 384-d vectors in ~0.4 GB where HNSW over float
  vectors needs ~1.8 GB. (``IndexIDMap`` is not wrapped around IVF: its ``remove_ids`` assumes the
  sub-index renumbers after a removal, which IVF does not; IVF keeps external ids itself.)
- Crossing the threshold through upserts converts the index (re-training IVF on the stored
  vectors); an IVF that shrinks below half the threshold turns back into an exact index. The
  vectors read back from SQ8 are the quantised ones (error ~1e-3 in cosine), which is why a full
  ``build`` re-embeds instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

from settings import KbSettings

_KB = KbSettings()  # the defaults, written once in settings/sections.py (no environment read here)

ENCODINGS = {"sq8": "SQ8", "flat": "Flat", "sq4": "SQ4", "fp16": "SQfp16"}
# Chunk vectors are stored with one extra dimension per chunk language (a one-hot), so that one
# inner-product search ranks by the language-corrected score (kb_index/language_bias.py): the
# query carries minus its per-language shift in those dimensions.
LANGUAGE_SLOTS = 16
# The one-hot is scaled down (and the query's shifts up by as much) so that the language
# dimensions barely move IVF's k-means: at 1.0 the lists split by language and recall@10 at the
# default nprobe fell from 0.997 to 0.834 on the 100k benchmark.
LANGUAGE_SCALE = 0.02


def with_language(vectors: np.ndarray, codes: np.ndarray, scale: float = LANGUAGE_SCALE) -> np.ndarray:
    """``vectors`` (n × d) followed by the scaled one-hot of each row's language code. The scale
    an index was written with is kept in its manifest (``language_scale``)."""
    n, d = vectors.shape
    out = np.zeros((n, d + LANGUAGE_SLOTS), dtype=np.float32)
    out[:, :d] = vectors
    out[np.arange(n), d + np.asarray(codes, dtype=np.int64)] = scale
    return out


def shifted_query(qa: np.ndarray, shifts: np.ndarray, scale: float = LANGUAGE_SCALE) -> np.ndarray:
    """The centred query followed by minus each language's shift: q·c' = qa·c − shift[lang(c)]."""
    out = np.zeros((1, len(qa) + LANGUAGE_SLOTS), dtype=np.float32)
    out[0, : len(qa)] = qa
    out[0, len(qa) : len(qa) + len(shifts)] = -np.asarray(shifts, dtype=np.float32) / scale
    return out


@dataclass(frozen=True)
class DenseParams:
    ann_threshold: int = _KB.ann_threshold
    ivf_nlist: int = _KB.ivf_nlist  # 0: automatic, ~4·sqrt(n)
    ivf_nprobe: int = _KB.ivf_nprobe  # 0: automatic, nlist/32 with a floor of 16 (tuned in bench/kb/scale.py)
    ivf_encoding: str = _KB.ivf_encoding
    ivf_train_per_list: int = 40  # training sample = nlist × this (FAISS wants ≥ 39)
    seed: int = 1234

    def nlist_for(self, n: int) -> int:
        if self.ivf_nlist > 0:
            return self.ivf_nlist
        return int(min(65536, max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))

    def nprobe_for(self, nlist: int) -> int:
        if self.ivf_nprobe > 0:
            return min(self.ivf_nprobe, nlist)
        return int(min(nlist, max(16, nlist // 32)))

    def kind_for(self, n: int) -> str:
        return "ivf" if n >= self.ann_threshold else "flat"


def describe(index: faiss.Index | None) -> str:
    """Human-readable index type for the manifest and stats."""
    if index is None:
        return "none"
    ivf = _ivf(index)
    if ivf is not None:
        ivf = faiss.downcast_index(ivf)
        enc = type(ivf).__name__.replace("IndexIVF", "") or "Flat"
        if isinstance(ivf, faiss.IndexIVFScalarQuantizer):
            enc = {faiss.ScalarQuantizer.QT_8bit: "SQ8", faiss.ScalarQuantizer.QT_4bit: "SQ4", faiss.ScalarQuantizer.QT_fp16: "SQfp16"}.get(
                ivf.sq.qtype, "SQ"
            )
        return f"IVF{ivf.nlist},{enc} (nprobe {ivf.nprobe})"
    return "Flat (exact inner product)"


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def kind_of(index: faiss.Index | None) -> str:
    if index is None:
        return "none"
    return "ivf" if _ivf(index) is not None else "flat"


def new_flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def new_ivf(dim: int, train_vectors: np.ndarray, params: DenseParams, n_total: int) -> faiss.Index:
    """Train an IVF index on (a sample of) the vectors it will hold."""
    nlist = params.nlist_for(n_total)
    nlist = max(1, min(nlist, len(train_vectors) // 4 or 1))
    enc = params.ivf_encoding.lower()
    quantizer = faiss.IndexFlatIP(dim)
    if enc == "flat":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        qtypes = {"sq8": faiss.ScalarQuantizer.QT_8bit, "sq4": faiss.ScalarQuantizer.QT_4bit, "fp16": faiss.ScalarQuantizer.QT_fp16}
        if enc not in qtypes:
            raise ValueError(f"unknown IVF encoding {params.ivf_encoding!r}; choose one of {', '.join(ENCODINGS)}")
        index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, qtypes[enc], faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = params.seed
    index.train(np.ascontiguousarray(train_vectors, dtype=np.float32))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = params.nprobe_for(nlist)
    return index


def sample_for_training(vectors: np.ndarray, params: DenseParams, n_total: int) -> np.ndarray:
    nlist = params.nlist_for(n_total)
    m = min(len(vectors), nlist * params.ivf_train_per_list)
    if m >= len(vectors):
        return vectors
    rng = np.random.default_rng(params.seed)
    return vectors[np.sort(rng.choice(len(vectors), size=m, replace=False))]


def create(dim: int, vectors: np.ndarray, ids: np.ndarray, params: DenseParams) -> faiss.Index:
    """A fresh index of the kind its size calls for, holding ``vectors`` under ``ids``."""
    n = len(ids)
    if params.kind_for(n) == "ivf":
        index = new_ivf(dim, sample_for_training(vectors, params, n), params, n)
    else:
        index = new_flat(dim)
    add(index, vectors, ids)
    return index


def add(index: faiss.Index, vectors: np.ndarray, ids: np.ndarray, batch: int = 65536) -> None:
    for s in range(0, len(ids), batch):
        index.add_with_ids(
            np.ascontiguousarray(vectors[s : s + batch], dtype=np.float32), np.ascontiguousarray(ids[s : s + batch], dtype=np.int64)
        )


def reconstruct(index: faiss.Index, ids: np.ndarray, batch: int = 65536) -> np.ndarray:
    out = np.empty((len(ids), index.d), dtype=np.float32)
    for s in range(0, len(ids), batch):
        out[s : s + batch] = index.reconstruct_batch(np.ascontiguousarray(ids[s : s + batch], dtype=np.int64))
    return out


def updated(
    old: faiss.Index | None,
    dim: int,
    remove_ids: np.ndarray,
    add_vectors: np.ndarray,
    add_ids: np.ndarray,
    keep_ids: np.ndarray,
    params: DenseParams,
) -> faiss.Index:
    """A new index = ``old`` − ``remove_ids`` + the added vectors; ``old`` is left untouched
    (searches in flight keep using it). ``keep_ids`` are the ids that stay from ``old``; they are
    needed only when the index changes kind."""
    n_after = len(keep_ids) + len(add_ids)
    old_kind = kind_of(old)
    want = params.kind_for(n_after)
    if old_kind == "ivf" and n_after >= params.ann_threshold // 2:
        want = "ivf"  # hysteresis: do not flip between kinds around the threshold
    if old is None or old_kind != want:
        kept = reconstruct(old, keep_ids) if old is not None and len(keep_ids) else np.zeros((0, dim), np.float32)
        vectors = np.concatenate([kept, add_vectors]) if len(kept) else add_vectors
        ids = np.concatenate([keep_ids, add_ids]).astype(np.int64)
        forced = DenseParams(**{**params.__dict__, "ann_threshold": 0 if want == "ivf" else 1 << 62})
        return create(dim, vectors, ids, forced)
    new = faiss.clone_index(old)
    if len(remove_ids):
        new.remove_ids(np.ascontiguousarray(remove_ids, dtype=np.int64))
    add(new, add_vectors, add_ids)
    return new


def set_nprobe(index: faiss.Index, params: DenseParams) -> None:
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = params.nprobe_for(ivf.nlist)


def search(
    index: faiss.Index, queries: np.ndarray, k: int, selector: faiss.IDSelector | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if selector is None:
        return index.search(queries, k)
    ivf = _ivf(index)
    if ivf is not None:
        sp = faiss.SearchParametersIVF(sel=selector, nprobe=ivf.nprobe)
    else:
        sp = faiss.SearchParameters(sel=selector)
    return index.search(queries, k, params=sp)
