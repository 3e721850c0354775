"""Review-inbox groups an ops lead can act on in one step.

An item's group is decided in three steps:

1. **Partition** by language and *kind* (what the bot did: ``fallback``, ``low_confidence``,
   ``kb_declined``, ``kb_unhelpful``, ``rephrased``, ``handoff:<reason>``): a group never mixes
   languages (each language's examples go to its own training file) or kinds (a declined KB
   question and a misunderstood request are different work).
2. **Unreadable** messages ("???", "asdkjh", "哈哈哈", the handoff policy's ``unintelligible``) of a
   partition form one group of their own: there is nothing to learn from them, one "Dismiss" clears them.
3. **Meaning**: the rest is clustered by average-linkage agglomerative clustering of *centred*
   multilingual-e5 vectors, cut at a per-language cosine distance (``ops_cluster_distance``).
   Raw e5 cosines of unrelated support messages sit in a narrow band (0.75-0.9), because every
   vector shares a large common component; subtracting each language's centre (the mean vector of
   a fixed sample of that language's training examples in ``nlu_data/``) removes it,
   and distances then spread over 0-2. A message left alone then joins the group it is closest to
   on average if that mean distance is under ``ops_cluster_attach``: an ops lead would rather untick
   one stray message in a group than open one group per message. Chinese is embedded in Simplified
   characters (Traditional converted), so both scripts of one request land together.

Thresholds were chosen on the tuning half of ``bench/ops/inbox_items.yml`` (fewest actions to clear
it: one per group, two per message in a group of another meaning, unticked and handled later) and
checked on its held-out half
(``bench/RESULTS.md``, "Review inbox grouping"; ``python -m bench.ops.inbox_groups``).

``describe`` turns a group's items into what the page shows: a representative message, the bot's
top intent guesses over the group, and the knowledge-base article closest to the group.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from conversations.language import to_simplified
from kb_index.models import KBError
from ops.annotations import REVIEWED, read_examples
from settings import OpsSettings

try:
    from handoff.policy import unintelligible
except ImportError:  # handoff not installed in this deployment: no unreadable groups

    def unintelligible(text: str | None) -> bool:
        return False


log = logging.getLogger(__name__)
FALLBACK_INTENT = "nlu_fallback"
_MASKS = re.compile(r"\[(?:EMAIL|PHONE|CARD|ADDRESS|ORDER_ID|PERSON)\]")
# Chosen on the tuning half of bench/ops/inbox_items.yml (see the module docstring).
DEFAULT_DISTANCE: dict[str, float] = dict(OpsSettings().cluster_distance)  # settings/sections.py, once
DEFAULT_ATTACH: float | None = OpsSettings().cluster_attach or None


def embedding_text(masked: str, language: str | None = None) -> str:
    """What is embedded for an item: its masked text without the marks (two messages that both hold
    an email are not similar for that reason), Chinese in Simplified characters."""
    text = re.sub(r"\s+", " ", _MASKS.sub(" ", masked)).strip() or masked
    return to_simplified(text) if language == "zh" else text


def item_kind(source: str, detail: Mapping[str, Any] | None) -> str:
    """What the bot did with the message; a handoff is told apart by its reason."""
    if source == "handoff":
        return f"handoff:{(detail or {}).get('reason') or 'unknown'}"
    return source


class Reference:
    """Per-language centre of e5 query vectors: the mean over a sample of ``size`` of the language's
    training examples (``<nlu_dir>/<language>/*.yml`` except the ops-written ``reviewed.yml``, so that
    annotating does not move it). The sample is the examples with the smallest SHA-1, so editing the
    training data changes it only by the examples added or removed. Computed once per process."""

    def __init__(self, nlu_dir: Path | None, embed: Callable[[list[str]], np.ndarray], size: int = 128) -> None:
        self.nlu_dir = Path(nlu_dir) if nlu_dir else None
        self._embed = embed
        self.size = size
        self._centres: dict[str, np.ndarray | None] = {}
        self._lock = threading.Lock()

    def sample(self, language: str) -> list[str]:
        if self.nlu_dir is None:
            return []
        texts = {
            t.strip() for path in (self.nlu_dir / language).glob("*.yml") if path.name != REVIEWED
            for _, t in read_examples(path) if t.strip()
        }  # fmt: skip
        return sorted(texts, key=lambda t: hashlib.sha1(t.encode(), usedforsecurity=False).hexdigest())[: self.size]

    def centre(self, language: str) -> np.ndarray | None:
        with self._lock:
            if language not in self._centres:
                texts = [embedding_text(t, language) for t in self.sample(language)]
                self._centres[language] = np.asarray(self._embed(texts), np.float32).mean(axis=0) if texts else None
            return self._centres[language]


@dataclass(frozen=True)
class Member:
    """What grouping needs of an inbox item."""

    language: str
    kind: str
    text: str  # masked
    vector: np.ndarray | None


def group(members: Sequence[Member], centre: Callable[[str], np.ndarray | None],
          distance: Mapping[str, float], attach: float | None = None) -> list[list[int]]:
    """Indices of ``members`` per group, biggest group first (ties: lowest index first). ``distance``:
    the cosine distance (centred vectors) at which the clustering of each language is cut; ``attach``:
    the mean distance under which a message left alone joins its closest group (None: never)."""
    parts: dict[tuple[str, str, bool], list[int]] = {}
    for idx, m in enumerate(members):
        parts.setdefault((m.language, m.kind, unintelligible(m.text)), []).append(idx)
    groups: list[list[int]] = []
    for (language, _kind, unreadable), idxs in parts.items():
        if unreadable or len(idxs) == 1:
            groups.append(idxs)
            continue
        threshold = distance.get(language, max(distance.values()))
        groups.extend(_by_meaning(members, idxs, centre(language), threshold, attach))
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


def _by_meaning(members: Sequence[Member], idxs: list[int], centre: np.ndarray | None, threshold: float,
                attach: float | None) -> list[list[int]]:
    dims = Counter(members[i].vector.shape[0] for i in idxs if members[i].vector is not None)  # type: ignore[union-attr]
    if not dims:
        return [[i] for i in idxs]
    dim = dims.most_common(1)[0][0]
    usable = [i for i in idxs if members[i].vector is not None and members[i].vector.shape[0] == dim]  # type: ignore[union-attr]
    # A vector of another model (the embedder was changed since it was stored) stays on its own.
    out = [[i] for i in idxs if i not in set(usable)]
    if len(usable) == 1:
        return [usable, *out]
    x = np.stack([members[i].vector for i in usable]).astype(np.float64)  # type: ignore[misc]
    if centre is not None and centre.shape[0] == dim:
        x = x - centre
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    labels = fcluster(linkage(x, method="average", metric="cosine"), threshold, criterion="distance")
    by_label: dict[int, list[int]] = {}
    for pos, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(pos)
    clusters = list(by_label.values())
    if attach is not None:
        clusters = _attach_singletons(clusters, 1.0 - x @ x.T, attach)
    return [*([usable[p] for p in c] for c in clusters), *out]


def _attach_singletons(clusters: list[list[int]], dist: np.ndarray, attach: float) -> list[list[int]]:
    """Each cluster of one joins the bigger cluster at the smallest mean distance, if under ``attach``."""
    cut = [c for c in clusters if len(c) > 1]
    if not cut:
        return clusters
    big = [list(c) for c in cut]
    alone = []
    for (p,) in (c for c in clusters if len(c) == 1):
        means = [float(dist[p, c].mean()) for c in cut]
        best = int(np.argmin(means))
        if means[best] < attach:
            big[best].append(p)  # compared with the clusters as cut, not as they grow
        else:
            alone.append([p])
    return [*big, *alone]


# --- what a group shows -----------------------------------------------------------------------------
def describe(items: Sequence[Any], vectors: Sequence[np.ndarray | None], kind: str,
             centre: Callable[[str], np.ndarray | None], kb: Any = None, embedder_name: str | None = None,
             samples: int = 5) -> tuple[dict[str, Any], list[int]]:
    """A group of inbox items (``ReviewItem``-like: id, language, source, intent, confidence, detail,
    masked, occurred_at) as the page shows it, without the items themselves; and the items' order,
    most typical first (the first is the label, the first ``samples`` are the samples)."""
    language = items[0].language
    dims = Counter(v.shape[0] for v in vectors if v is not None)
    keep = [k for k, v in enumerate(vectors) if v is not None and v.shape[0] == dims.most_common(1)[0][0]] if dims else []
    unreadable = all(unintelligible(i.masked) for i in items)
    order = list(range(len(items)))
    article = None
    if keep:
        x = np.stack([vectors[k] for k in keep])  # type: ignore[misc]
        typical = _typicality(x, centre(language))
        order = [keep[k] for k in np.argsort(-typical, kind="stable")] + [k for k in order if k not in set(keep)]
        if not unreadable:
            article = closest_article(kb, x, language, items[order[0]].masked, embedder_name)
    view = {
        "id": min(i.id for i in items),
        "size": len(items),
        "language": language,
        "kind": kind,
        "unreadable": unreadable,
        "label": items[order[0]].masked,
        "samples": [items[k].masked for k in order[:samples]],
        "guesses": guesses(items),
        "kb_article": article,
        "kb_answered": answered_articles(items),
        "languages": dict(Counter(i.language for i in items)),
        "sources": dict(Counter(i.source for i in items)),
        "intents": dict(Counter(i.intent or "-" for i in items)),
        "last_at": max(i.occurred_at for i in items).isoformat(),
    }  # fmt: skip
    return view, order


def guesses(items: Sequence[Any], top: int = 3) -> list[dict[str, Any]]:
    """The bot's intent guesses over a group: each intent's mean confidence across the group's items
    (0 for an item that did not name it) and how many items had it as their best guess. Sources:
    the stored NLU ranking (fallback, low confidence), the turn's intent, and for a rephrased item
    what the customer's rewording was understood as. ``nlu_fallback`` is no guess."""
    total: Counter[str] = Counter()
    best: Counter[str] = Counter()
    for item in items:
        scores: dict[str, float] = {}
        detail = item.detail or {}
        candidates = [(r.get("name"), r.get("confidence")) for r in detail.get("ranking") or []]
        candidates.append((item.intent, item.confidence))
        candidates.append((detail.get("rephrase_intent"), detail.get("rephrase_confidence")))
        for name, conf in candidates:
            if name and name != FALLBACK_INTENT and isinstance(conf, int | float):
                scores[name] = max(scores.get(name, 0.0), float(conf))
        total.update(scores)
        if scores:
            best[max(scores, key=lambda k: (scores[k], k))] += 1
    ranked = sorted(total, key=lambda k: (-total[k], k))[:top]
    return [{"intent": k, "score": round(total[k] / len(items), 3), "best_for": best[k]} for k in ranked]


def _typicality(vectors: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
    """Each member's mean cosine to the group's members (centred, as grouped): the highest is the
    group's most typical message, shown as its label."""
    x = vectors.astype(np.float64)
    if centre is not None and centre.shape[0] == x.shape[1]:
        x = x - centre
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    return (x @ x.T).mean(axis=1)


def closest_article(kb: Any, vectors: np.ndarray, language: str, query: str, embedder_name: str | None) -> dict[str, Any] | None:
    """The KB article closest to the group's mean vector (dense search in the group's language).
    The stored vectors are only comparable with the index when both come from the same model;
    otherwise the representative text is searched."""
    if kb is None:
        return None
    same_model = embedder_name is not None and getattr(getattr(kb, "embedder", None), "name", None) == embedder_name
    mean = vectors.astype(np.float32).mean(axis=0)
    qvec = (mean / (np.linalg.norm(mean) or 1.0)).reshape(1, -1) if same_model else None
    try:
        hits = kb.search(embedding_text(query), k=1, mode="dense", languages=[language], unique_articles=True,
                         query_vector=qvec)
    except KBError as err:  # e.g. the index was built with another model: the group is still shown
        log.warning("no closest KB article for an inbox group: %s", err)
        return None
    if not hits:
        return None
    chunk = hits[0].chunk
    return {"article_id": chunk.article_id, "title": chunk.title, "language": chunk.language,
            "score": round(float(hits[0].dense_score or hits[0].score), 3)}


def answered_articles(items: Sequence[Any]) -> dict[str, int]:
    """For KB items: which article the bot answered with (or chose when declining), per item."""
    return dict(Counter(str((i.detail or {}).get("article_id")) for i in items if (i.detail or {}).get("article_id")))
