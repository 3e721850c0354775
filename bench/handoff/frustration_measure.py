"""Precision and recall of the frustration detector (handoff/frustration.py) on the labelled sets
``bench/handoff/frustration_{en,zh,ru}.txt`` (label<TAB>message, 1 = frustrated).

    .venv/bin/python -m bench.handoff.frustration_measure [--threshold 1.0] [--errors]

A message counts as detected when its score reaches the threshold (the policy's single-message
rule; the "two mildly angry messages in a row" rule is not measured here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handoff.frustration import score

HERE = Path(__file__).resolve().parent
LANGUAGES = ("en", "zh", "ru")


def load(language: str) -> list[tuple[int, str]]:
    rows = []
    for n, line in enumerate((HERE / f"frustration_{language}.txt").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, _, text = line.partition("\t")
        if label not in ("0", "1") or not text:
            sys.exit(f"frustration_{language}.txt:{n}: expected 'label<TAB>message'")
        rows.append((int(label), text))
    return rows


def measure(rows: list[tuple[int, str]], threshold: float) -> dict[str, float]:
    tp = fp = fn = tn = 0
    for label, text in rows:
        hit = score(text).value >= threshold
        tp += hit and label == 1
        fp += hit and label == 0
        fn += (not hit) and label == 1
        tn += (not hit) and label == 0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": len(rows), "positives": tp + fn, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "precision": precision, "recall": recall, "f1": f1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=1.0)
    parser.add_argument("--errors", action="store_true", help="list the misclassified messages")
    args = parser.parse_args()
    print(f"| language | messages (frustrated) | precision | recall | F1 | FP | FN |  threshold {args.threshold}")
    print("|---|---|---|---|---|---|---|")
    for language in LANGUAGES:
        rows = load(language)
        m = measure(rows, args.threshold)
        print(f"| {language} | {m['n']} ({m['positives']}) | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
              f"| {m['fp']} | {m['fn']} |")
        if args.errors:
            for label, text in rows:
                s = score(text)
                if (s.value >= args.threshold) != bool(label):
                    print(f"    {'FN' if label else 'FP'} {s.value:.1f} {s.signals} {text}")


if __name__ == "__main__":
    main()
