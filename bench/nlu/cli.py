"""python -m bench.nlu: train a Rasa config, evaluate it on the live pipeline, write RESULTS.md."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["RASA_TELEMETRY_ENABLED"] = "false"  # no data leaves the machine
os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.nlu import data as D  # noqa: E402
from bench.nlu import oos_set as O  # noqa: E402
from bench.nlu import results as R  # noqa: E402

ROOT = D.ROOT
DEFAULT_CONFIG = ROOT / "config.yml"
RASA_DEFAULT_CONFIG = Path(__file__).with_name("default_config.yml")
SIM_GRID = [0.0, 0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89, 0.90]
CONF_GRID = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.nlu", description=__doc__)
    p.add_argument("--dataset", choices=["shipped", "clinc150"], default="shipped")
    p.add_argument("--shots", type=int, default=None, help="K training examples per intent")
    p.add_argument("--seed", type=int, default=0, help="seed of the K-shot sample")
    p.add_argument("--train", type=Path, help="custom Rasa NLU training file/dir")
    p.add_argument("--test", type=Path, help="custom Rasa NLU test file")
    p.add_argument("--oos", type=Path, help="custom out-of-scope test file (all declined)")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--compare-default", action="store_true", help="also run Rasa's default pipeline (DIET, 100 epochs)")
    p.add_argument(
        "--sweep", action="store_true", help="clinc150: sweep the fallback thresholds on the validation split"
    )
    p.add_argument(
        "--min-answered",
        type=float,
        default=0.90,
        help="sweep pick: most OOS declined with val answered-correct >= this",
    )
    p.add_argument(
        "--ablation", action="store_true", help="clinc150: feature/classifier ablation on the validation split"
    )
    p.add_argument("--ablation-seeds", type=int, default=3)
    p.add_argument("--latency", type=int, default=50, help="messages timed one by one")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "nlu")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    p.add_argument("--no-write", action="store_true", help="print, don't touch RESULTS.md")
    return p.parse_args(argv)


# ---------------------------------------------------------------- data preparation
def _write_sampled_dir(src_dir: Path, dst: Path, shots: int, seed: int) -> Path:
    """Copies a Rasa data dir, keeping K examples per intent in each file (entities kept)."""
    import random
    from collections import defaultdict

    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData

    if dst.exists():
        shutil.rmtree(dst)
    for f in sorted(src_dir.rglob("*.yml")):
        out = dst / f.relative_to(src_dir)
        out.parent.mkdir(parents=True, exist_ok=True)
        td = load_data(str(f))
        if not td.intent_examples:
            shutil.copy(f, out)
            continue
        by = defaultdict(list)
        for m in td.intent_examples:
            by[m.get("intent")].append(m)
        rng = random.Random(seed)
        keep = []
        for intent in sorted(by):
            ms = by[intent]
            keep.extend(ms if len(ms) <= shots else rng.sample(ms, shots))
        out.write_text(RasaYAMLWriter().dumps(TrainingData(keep)), encoding="utf-8")
    return dst


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Training data path and named test sets: {name: (in_scope, oos)}."""
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.train:
        train_path = args.train
        if args.shots:
            train_path = _write_sampled_dir(
                args.train if args.train.is_dir() else args.train.parent,
                work / f"custom_k{args.shots}_s{args.seed}",
                args.shots,
                args.seed,
            )
        tests = {}
        if args.test:
            ex = D.load_rasa_examples(args.test)
            oos = [e for e in ex if e[1] in D.OOS_INTENTS]
            if args.oos:
                oos += D.load_rasa_examples(args.oos)
            tests[args.test.stem] = ([e for e in ex if e[1] not in D.OOS_INTENTS], oos)
        return {
            "train": train_path,
            "tests": tests,
            "label": f"custom ({args.train})",
            "n_train": len(D.load_rasa_examples(train_path)),
            "val": None,
        }
    if args.dataset == "clinc150":
        s = D.clinc_splits(args.shots, args.seed)
        tag = f"clinc150_k{args.shots or 'full'}_s{args.seed}"
        train_file = D.write_rasa_yaml(s["train"], work / tag / "train.yml")
        return {
            "train": train_file,
            "tests": {"test": (s["test"], s["test_oos"])},
            "val": (s["val"], s["val_oos"]),
            "label": f"CLINC150 {args.shots or 'full'}-shot (seed {args.seed})",
            "n_train": len(s["train"]),
        }
    train_path = D.SHIPPED_TRAIN
    if args.shots:
        train_path = _write_sampled_dir(
            D.SHIPPED_TRAIN, work / f"shipped_k{args.shots}_s{args.seed}", args.shots, args.seed
        )
    tests = {}
    gold_entities: dict[str, list] = {}
    for lang, f in D.SHIPPED_TESTS.items():
        gold_entities.update(D.load_rasa_entities(f))
        ex = D.load_rasa_examples(f)
        tests[lang] = ([e for e in ex if e[1] not in D.OOS_INTENTS], [e for e in ex if e[1] in D.OOS_INTENTS])
    per_lang = {}
    for lang in D.SHIPPED_TESTS:
        p = train_path / lang
        if p.exists():
            per_lang[lang] = len(D.load_rasa_examples(p))
    return {
        "train": train_path,
        "tests": tests,
        "val": None,
        "label": "shipped data (nlu_data/, tests/nlu/)" + (f", {args.shots}-shot" if args.shots else ""),
        "n_train": len(D.load_rasa_examples(train_path)),
        "per_lang_train": per_lang,
        "gold_entities": gold_entities,
        "oos_set": O.named(),
    }


def classifier_rule(config: Path) -> str | None:
    """The out-of-scope rule of the E5IntentClassifier in the config, in words."""
    import yaml

    cfg = yaml.safe_load(config.read_text()) or {}
    for comp in cfg.get("pipeline") or []:
        if str(comp.get("name", "")).endswith("E5IntentClassifier"):
            from bot.components.intent_classifier import E5IntentClassifier

            full = {**E5IntentClassifier.get_default_config(), **comp}
            sims = ", ".join(f"{k} {v}" for k, v in (full.get("similarity_thresholds") or {}).items())
            sim = f"similarity {full['similarity_threshold']}" + (f" ({sims})" if sims else "")
            if full.get("gate"):
                gate = full["gate"]
                weights = ", ".join(f"{k} {v}" for k, v in gate["weights"].items())
                return f"Out-of-scope rule: {sim}, and the gate (weights {weights}; bias {gate['bias']})."
            return f"Shipped thresholds: {sim}, confidence {full['confidence_threshold']}."
    return None


def classifier_thresholds(config: Path) -> tuple[float, float] | None:
    """(similarity_threshold, confidence_threshold) of an E5IntentClassifier in the config."""
    import yaml

    cfg = yaml.safe_load(config.read_text()) or {}
    for comp in cfg.get("pipeline") or []:
        if str(comp.get("name", "")).endswith("E5IntentClassifier"):
            from bot.components.intent_classifier import E5IntentClassifier

            full = {**E5IntentClassifier.get_default_config(), **comp}
            return float(full["similarity_threshold"]), float(full["confidence_threshold"])
    return None


# ---------------------------------------------------------------- one config
def run_config(args: argparse.Namespace, prep: dict[str, Any], config: Path, name: str) -> dict[str, Any]:
    from bench.nlu import evaluate as E

    print(f"[bench.nlu] training {name} ({config}) on {prep['train']} ...", flush=True)
    model, seconds, cpu_seconds = E.train(config, prep["train"], args.workdir / "models", name)
    print(f"[bench.nlu] trained in {seconds:.1f}s (CPU {cpu_seconds:.1f}s) -> {model}", flush=True)
    live = E.LiveModel(model)
    res: dict[str, Any] = {"name": name, "config": config, "train_s": seconds, "train_cpu_s": cpu_seconds, "tests": {}}
    all_texts = [t for ins, oos in prep["tests"].values() for t, _ in list(ins) + list(oos)]
    all_texts += [t for items in prep.get("oos_set", {}).values() for t, _ in items]
    if prep.get("val"):
        all_texts += [t for t, _ in prep["val"][0] + prep["val"][1]]
    # latency: interleave the test sets, cold cache (these texts were never embedded)
    sample = all_texts[:: max(1, len(all_texts) // max(1, args.latency))][: args.latency]
    res["latency"] = live.latency_ms(sample) if args.latency else None
    E.prewarm_embeddings(config, all_texts)
    for tname, (ins, oos) in prep["tests"].items():
        p_in, p_oos = live.parse(ins), live.parse(oos)
        res["tests"][tname] = {"metrics": E.metrics(p_in, p_oos), "in": p_in, "oos": p_oos}
        print(f"[bench.nlu] {name} {tname}: {res['tests'][tname]['metrics']}", flush=True)
    res["oos_set"] = {name: live.parse(items) for name, items in prep.get("oos_set", {}).items()}
    if prep.get("val") and args.sweep:
        res["val"] = (live.parse(prep["val"][0]), live.parse(prep["val"][1]))
    live.close()
    return res


# ---------------------------------------------------------------- reports
def shipped_table(res: dict[str, Any], prep: dict[str, Any]) -> list[str]:

    lines = [
        f"**{res['name']}** (`{_rel(res['config'])}`): trained in **{res['train_s']:.1f} s** "
        f"(CPU time {res['train_cpu_s']:.1f} s) on "
        f"{prep['n_train']} examples"
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in prep.get("per_lang_train", {}).items()) + ")"
            if prep.get("per_lang_train")
            else ""
        )
        + (
            f"; parse latency p50 {res['latency']['p50']:.0f} ms, p95 {res['latency']['p95']:.0f} ms"
            " (cold embedding cache)"
            if res.get("latency")
            else ""
        ),
        "",
        "| test set | examples | intent accuracy, all (out_of_scope as an intent) | "
        "intent accuracy, in-scope | macro-F1, in-scope | in-scope answered correctly (live, "
        "fallback = wrong) | in-scope sent to nlu_fallback | out_of_scope declined |",
        "|---|---|---|---|---|---|---|---|",
    ]
    tot_in, tot_oos = [], []
    for tname, t in res["tests"].items():
        lines.append(_shipped_row(tname, t["in"], t["oos"]))
        tot_in += t["in"]
        tot_oos += t["oos"]
    if len(res["tests"]) > 1:
        lines.append(_shipped_row("**all**", tot_in, tot_oos))
    if prep.get("gold_entities"):
        lines += ["", *entity_table(res, prep["gold_entities"])]
    wrong = [p for p in tot_in + tot_oos if p.top != p.gold]
    if wrong:
        lines += [
            "",
            f"<details><summary>{len(wrong)} misclassified test examples</summary>",
            "",
            "| text | gold | predicted (top) | final | similarity |",
            "|---|---|---|---|---|",
        ]
        for p in wrong[:80]:
            sim = "—" if p.similarity is None else f"{p.similarity:.3f}"
            lines.append(f"| {p.text.replace('|', '/')} | {p.gold} | {p.top} | {p.final} | {sim} |")
        lines += ["", "</details>"]
    return lines


def entity_table(res: dict[str, Any], gold: dict[str, list]) -> list[str]:
    from bench.nlu import evaluate as E

    per_test = {t: E.entity_scores(v["in"] + v["oos"], gold) for t, v in res["tests"].items()}
    allp = [p for v in res["tests"].values() for p in v["in"] + v["oos"]]
    total = E.entity_scores(allp, gold)
    lines = [
        'Entities (exact span match; "value ok" = share of matched spans whose value is right, '
        "i.e. synonyms mapped; a wrong or duplicate span counts against precision):",
        "",
        "| entity | support | precision | recall | F1 | value ok | " + " | ".join(f"F1 {t}" for t in per_test) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(per_test),
    ]
    for name in [k for k in total if k != "all"] + ["all"]:
        m = total[name]
        cells = " | ".join(R.pct(per_test[t][name]["f1"]) if name in per_test[t] else "—" for t in per_test)
        label = "**all (micro)**" if name == "all" else name
        lines.append(
            f"| {label} | {m['support']} | {R.pct(m['precision'])} | {R.pct(m['recall'])} | "
            f"{R.pct(m['f1'])} | {R.pct(m['value_ok'])} | {cells} |"
        )
    return lines


def _shipped_row(tname: str, p_in: list, p_oos: list) -> str:
    from bench.nlu import evaluate as E

    m = E.metrics(p_in, p_oos)
    allp = list(p_in) + list(p_oos)
    acc_all = sum(p.top == p.gold for p in allp) / len(allp) if allp else None
    return (
        f"| {tname} | {len(allp)} | {R.pct(acc_all)} | {R.pct(m.get('accuracy'))} | "
        f"{R.pct(m.get('macro_f1'))} | {R.pct(m.get('answered_correct'))} | "
        f"{R.pct(m.get('fallback_rate'))} | {R.pct(m.get('oos_recall'))} (n={len(p_oos)}) |"
    )


def clinc_table(runs: list[dict[str, Any]], prep: dict[str, Any], thresholds) -> list[str]:
    lines = [
        f"Training: {prep['n_train']} examples; test: CLINC150 `test` (in-scope, 4,500) and "
        f"`oos_test` (1,000, never trained on). Figures from the live pipeline (Rasa Agent, "
        f"`nlu_fallback` counted).",
        "",
        "| pipeline | in-scope intent accuracy | macro-F1 | OOS declined (recall) | "
        "in-scope answered correctly at the shipped threshold | in-scope sent to fallback | "
        "training time (CPU time) | parse p50 (cold) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        m = r["tests"]["test"]["metrics"]
        lat = f"{r['latency']['p50']:.0f} ms" if r.get("latency") else "—"
        lines.append(
            f"| {r['name']} (`{_rel(r['config'])}`) | {R.pct(m['accuracy'])} | {R.pct(m['macro_f1'])} | "
            f"{R.pct(m['oos_recall'])} | {R.pct(m['answered_correct'])} | "
            f"{R.pct(m['fallback_rate'])} | {r['train_s']:.1f} s ({r['train_cpu_s']:.1f} s) | {lat} |"
        )
    return lines


def sweep_tables(run: dict[str, Any], thresholds: tuple[float, float], min_answered: float) -> list[str]:
    from bench.nlu import evaluate as E

    v_in, v_oos = run["val"]
    t = run["tests"]["test"]
    sim_t, conf_t = thresholds
    lines = [
        "Validation split: CLINC150 `val` (3,000 in-scope) + `oos_val` and `oos_train` "
        "(200 out-of-scope; no OOS data is trained on). Rule: message → `nlu_fallback` when "
        "similarity to the nearest training example < similarity threshold, or top intent "
        "probability < confidence threshold. Cells: in-scope answered correctly / OOS declined, "
        "in %, on the **validation** split.",
        "",
        f"Similarity threshold alone (confidence threshold fixed at the shipped {conf_t}):",
        "",
        "| similarity threshold | " + " | ".join(f"{s:.2f}" if s else "off" for s in SIM_GRID) + " |",
        "|---|" + "---|" * len(SIM_GRID),
    ]
    cells = [E.offline_metrics(v_in, v_oos, s, conf_t) for s in SIM_GRID]
    lines.append("| val answered / declined | " + " | ".join(f"{100 * a:.1f} / {100 * r:.1f}" for a, r in cells) + " |")
    lines += [
        "",
        "Both thresholds (rows: confidence threshold, columns: similarity threshold):",
        "",
        "| conf \\ sim | " + " | ".join(f"{s:.2f}" if s else "off" for s in SIM_GRID) + " |",
        "|---|" + "---|" * len(SIM_GRID),
    ]
    best = None
    for c in CONF_GRID:
        row = []
        for s in SIM_GRID:
            a, r = E.offline_metrics(v_in, v_oos, s, c)
            row.append(f"{100 * a:.1f} / {100 * r:.1f}")
            if a >= min_answered and (best is None or r > best[0] or (r == best[0] and a > best[1])):
                best = (r, a, s, c)
        lines.append(f"| {c:.1f} | " + " | ".join(row) + " |")
    lines.append("")
    ta, tr = E.offline_metrics(t["in"], t["oos"], sim_t, conf_t)
    lines.append(
        f"- Shipped thresholds (similarity {sim_t}, confidence {conf_t}): test "
        f"answered correctly {100 * ta:.1f}%, OOS declined {100 * tr:.1f}% "
        f"(live figures above: {R.pct(t['metrics']['answered_correct'])} / "
        f"{R.pct(t['metrics']['oos_recall'])})."
    )
    if best:
        r, a, s, c = best
        ta, tr = E.offline_metrics(t["in"], t["oos"], s, c)
        lines.append(
            f"- Validation pick (most OOS declined with val answered-correct ≥ "
            f"{100 * min_answered:.0f}%): similarity {s:.2f}, confidence {c:.1f} → val "
            f"{100 * a:.1f} / {100 * r:.1f}; on test (looked at once, after the pick): "
            f"{100 * ta:.1f} / {100 * tr:.1f}."
        )
    return lines


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())

    if args.ablation:
        from bench.nlu.ablation import run_ablation

        lines = run_ablation(args)
        key = f"ablation-clinc150-k{args.shots or 10}"
        title = f"CLINC150 {args.shots or 10}-shot: feature and classifier ablation (validation split)"
        _emit(args, key, R.header(title, load_at_start) + lines)
        return

    prep = prepare(args)
    configs = [(args.config, "config" if args.config == DEFAULT_CONFIG else args.config.stem)]
    if args.compare_default:
        configs.append((RASA_DEFAULT_CONFIG, "rasa-default"))
    runs = [run_config(args, prep, cfg, name) for cfg, name in configs]
    thresholds = classifier_thresholds(args.config)

    if args.dataset == "clinc150" and not args.train:
        lines = clinc_table(runs, prep, thresholds)
        if thresholds:
            lines.insert(0, f"{classifier_rule(args.config)}\n")
        if args.sweep and thresholds and runs[0].get("val"):
            lines += ["", f"#### Fallback threshold sweep ({prep['label']})", ""]
            lines += sweep_tables(runs[0], thresholds, args.min_answered)
        key = f"clinc150-k{args.shots or 'full'}-s{args.seed}-{_key(args.config)}" + (
            "-vsdefault" if args.compare_default else ""
        )
        title = f"{prep['label']}: live pipeline"
    else:
        lines = []
        for r in runs:
            lines += shipped_table(r, prep) + [""]
            if r.get("oos_set"):
                lines += O.live_table(r["oos_set"]) + [""]
        if thresholds:
            lines.insert(0, f"{classifier_rule(args.config)}\n")
        key = (
            (f"shipped-k{args.shots}-s{args.seed}" if args.shots else "shipped")
            if not args.train
            else f"custom-{_key(args.train)}"
        )
        key += f"-{_key(args.config)}" + ("-vsdefault" if args.compare_default else "")
        title = f"{prep['label']}: live pipeline, per language"
    _emit(args, key, R.header(title, load_at_start) + lines)


def _key(p: Path) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in Path(p).stem)


def _emit(args: argparse.Namespace, key: str, lines: list[str]) -> None:
    print("\n".join(lines))
    if not args.no_write:
        R.update(args.out, key, lines)
        print(f"[bench.nlu] wrote block '{key}' into {args.out}")
