"""python -m bench.nlu.crossval: 5-fold cross-validation of the intent classifier on nlu_data/,
with the confusions between the intents customers mix up, and the same figures on tests/nlu.

    .venv-rasa/bin/python -m bench.nlu.crossval [--folds 5] [--train DIR] [--no-write]

Offline (bench/nlu/gate_data.py: the real E5IntentClassifier on cached embeddings). Folds are
stratified by intent and language; each held-out example is classified by the model trained on
the other folds. Reported: top-intent accuracy per language (zh split into Simplified and
Traditional by script), and for each confusable group (refund / return / refund status /
cancel; password vs account-security questions; order status / tracking / shipping questions;
handoff) the held-out examples of the group's intents classified as another intent of the group.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.nlu import data as D
from bench.nlu import gate_data as G
from bench.nlu import results as R

CONFUSABLES = Path(__file__).with_name("confusables.yml")
GROUPS = {
    "refund / return / refund status / cancel": ("request_refund", "return_item", "refund_status", "cancel_order"),
    "password / account-security question": ("reset_password", "ask_question"),
    "order status / tracking / shipping question": ("check_order_status", "track_shipment", "ask_question"),
    "handoff / the topic's own intent": ("human_handoff", "request_refund", "refund_status", "return_item"),
}
def variety(text: str) -> str:
    """en / zh-Hans / zh-Hant / ru by script; Chinese is Traditional when a character changes
    under the tokenizer's Traditional -> Simplified mapping."""
    from bot.components.intent_gate import text_script
    from bot.components.tokenizer import to_simplified

    script = text_script(text)
    if script == "han":
        return "zh-Hant" if to_simplified(text) != text else "zh-Hans"
    return {"latin": "en", "cyrillic": "ru"}[script]


def folds(pairs: Sequence[tuple[str, str]], k: int, seed: int = 0) -> list[np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    strata = [f"{intent}|{variety(t)}" for t, intent in pairs]
    counts = Counter(strata)
    strata = [s if counts[s] >= k else s.split("|")[0] for s in strata]  # rare strata: intent only
    split = StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(pairs)), strata)
    return [test for _, test in split]


def cross_validate(pairs: list[tuple[str, str]], k: int, config: dict) -> np.ndarray:
    """Held-out predicted intent of every training example."""
    pred = np.empty(len(pairs), dtype=object)
    for n, test in enumerate(folds(pairs, k)):
        held = set(test.tolist())
        clf = G.train([p for i, p in enumerate(pairs) if i not in held], config)
        pred[test] = G.score(clf, [pairs[i] for i in test]).pred
        print(f"[crossval] fold {n + 1}/{k} done", flush=True)
    return pred


def table(texts: Sequence[str], gold: Sequence[str], pred: Sequence[str]) -> list[str]:
    gold_a, pred_a = np.array(gold), np.array(pred, dtype=object)
    var = np.array([variety(t) for t in texts])
    ins = ~np.isin(gold_a, D.OOS_INTENTS)
    lines = ["| | " + " | ".join(["en", "zh-Hans", "zh-Hant", "ru", "all"]) + " |", "|---|---|---|---|---|---|"]
    cells = []
    for v in ("en", "zh-Hans", "zh-Hant", "ru", None):
        m = ins & ((var == v) if v else True)
        cells.append(f"{R.pct(float((gold_a[m] == pred_a[m]).mean()))} (n={int(m.sum())})" if m.any() else "—")
    lines.append("| intent accuracy, in-scope | " + " | ".join(cells) + " |")
    for name, intents in GROUPS.items():
        row = []
        for v in ("en", "zh-Hans", "zh-Hant", "ru", None):
            m = np.isin(gold_a, intents) & ((var == v) if v else True)
            confused = m & np.isin(pred_a, intents) & (pred_a != gold_a)
            row.append(f"{int(confused.sum())} / {int(m.sum())}")
        lines.append(f"| confused within {name} | " + " | ".join(row) + " |")
    pairs = Counter((g, p) for g, p in zip(gold_a[ins], pred_a[ins], strict=True) if g != p)
    lines += ["", "Most frequent confusions (gold → predicted: count): " + "; ".join(f"{g} → {p}: {n}" for (g, p), n in pairs.most_common(12))]
    return lines


def _accuracies(pairs: Sequence[tuple[str, str]], pred: Sequence[str]) -> list[str]:
    gold, pred_a = np.array([i for _, i in pairs]), np.array(pred, dtype=object)
    var = np.array([variety(t) for t, _ in pairs])
    ins = ~np.isin(gold, D.OOS_INTENTS)
    out = []
    for v in ("en", "zh-Hans", "zh-Hant", "ru", None):
        m = ins & ((var == v) if v else True)
        out.append(R.pct(float((gold[m] == pred_a[m]).mean())))
    return out


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(D.ROOT))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.nlu.crossval", description=__doc__.split("\n")[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--train", type=Path, default=D.SHIPPED_TRAIN)
    p.add_argument("--rev", help="use nlu_data/ as of this git revision (e.g. the commit before a data change)")
    p.add_argument("--config", type=Path, default=D.ROOT / "config.yml")
    p.add_argument("--out", type=Path, default=D.ROOT / "bench" / "RESULTS.md")
    p.add_argument(
        "--test-seeds", type=int, nargs="*", default=[], help="also: tests/nlu accuracy with these other mlp_seed values"
    )
    p.add_argument("--no-cv", action="store_true", help="only the tests/nlu figures (no cross-validation)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.folds < 2:
        print("error: --folds must be at least 2", file=sys.stderr)
        return 2
    os.chdir(D.ROOT)
    if args.rev:
        args.train, error = D.nlu_data_or_error(args.rev)
        if error:
            print(error, file=sys.stderr)
            return 2
    if not args.train.exists():
        print(f"error: no training data at {args.train}", file=sys.stderr)
        return 2
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    config = G.classifier_config(args.config)
    pairs = D.load_rasa_examples(args.train)
    tests = [e for f in D.SHIPPED_TESTS.values() for e in D.load_rasa_examples(f)]
    G.load_embeddings()
    G.embed([t for t, _ in pairs + tests])
    pred = None if args.no_cv else cross_validate(pairs, args.folds, config)
    probes = D.load_rasa_examples(CONFUSABLES)
    G.embed([t for t, _ in probes])
    clf = G.train(pairs, config)
    test_pred = G.score(clf, tests).pred
    probe = G.score(clf, probes)
    source = f"nlu_data/ at {args.rev}" if args.rev else _rel(args.train)
    lines = []
    if pred is not None:
        lines = [
            f"{args.folds}-fold cross-validation on {source} ({len(pairs)} examples; held-out top intent, no fallback gate):",
            "",
            *table([t for t, _ in pairs], [i for _, i in pairs], pred),
            "",
        ]
    lines += [
        f"tests/nlu ({len(tests)} messages), trained on all of {source}:",
        "",
        *table([t for t, _ in tests], [i for _, i in tests], test_pred),
        "",
        f"The issue's confusable messages (bench/nlu/confusables.yml, trained on all of {source}): "
        f"{int(probe.correct.sum())} / {len(probe.texts)} right"
        + "".join(f"; wrong: {t} ({g} → {p})" for t, g, p in zip(probe.texts, probe.gold, probe.pred, strict=True) if g != p),
    ]
    if args.test_seeds:
        lines += ["", "tests/nlu in-scope intent accuracy with other MLP seeds (mlp_seed: en / zh-Hans / zh-Hant / ru / all):", ""]
        for seed in [0, *args.test_seeds]:
            pred_s = test_pred if seed == 0 else G.score(G.train(pairs, {**config, "mlp_seed": seed}), tests).pred
            lines.append(f"- {seed}: " + " / ".join(_accuracies(tests, pred_s)))
    print("\n".join(lines))
    if not args.no_write:
        tag = args.rev or ("" if args.train == D.SHIPPED_TRAIN else str(args.train))
        key = "crossval" + ("-" + "".join(c if c.isalnum() else "-" for c in tag) if tag else "")
        key += "-tests-only" if args.no_cv else ""
        command = ".venv-rasa/bin/python -m bench.nlu.crossval " + " ".join(sys.argv[1:] if argv is None else argv)
        title = "Intent cross-validation and confusable intents (issue 13), offline"
        R.update(args.out, key, R.header(title, load_at_start, command.strip()) + lines)
        print(f"[crossval] wrote block '{key}' into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
