"""The out-of-scope set of issue 13 (bench/nlu/oos/{en,zh,zh_hant,ru}.yml): messages the bot must
decline, in three categories (chit_chat, other_business, near_domain), split into dev (for
choosing the gate) and test (for reporting only).

    .venv-rasa/bin/python -m bench.nlu.oos_set      # checks the files, prints the counts

A file is ``{dev|test: {category: [message, ...]}}``. The check fails (exit 1, with the reason) on
an unknown split or category, fewer than MIN_PER_SPLIT messages in a split, a message twice in
the set, or a message that is also a training or test example of the shipped data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

OOS_DIR = Path(__file__).with_name("oos")
LANGUAGES = ("en", "zh", "zh_hant", "ru")
SPLITS = ("dev", "test")
CATEGORIES = ("chit_chat", "other_business", "near_domain")
MIN_PER_SPLIT = 60

Item = tuple[str, str]  # (text, category)


class OOSSetError(ValueError):
    """A malformed out-of-scope file."""


def load(lang: str, split: str, directory: Path = OOS_DIR) -> list[Item]:
    """(text, category) pairs of one language and split."""
    if lang not in LANGUAGES:
        raise OOSSetError(f"unknown language {lang!r}, use one of {LANGUAGES}")
    if split not in SPLITS:
        raise OOSSetError(f"unknown split {split!r}, use one of {SPLITS}")
    path = directory / f"{lang}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict) or set(data) - set(SPLITS):
        raise OOSSetError(f"{path}: top-level keys must be {SPLITS}, got {sorted(data) if isinstance(data, dict) else data!r}")
    cats = data.get(split) or {}
    unknown = set(cats) - set(CATEGORIES)
    if unknown:
        raise OOSSetError(f"{path}: {split} has unknown categories {sorted(unknown)}, use {CATEGORIES}")
    out: list[Item] = []
    for cat in CATEGORIES:
        for text in cats.get(cat) or []:
            if not isinstance(text, str) or not text.strip():
                raise OOSSetError(f"{path}: {split}/{cat} has an empty or non-text message: {text!r}")
            out.append((text.strip(), cat))
    return out


def load_all(split: str, directory: Path = OOS_DIR) -> dict[str, list[Item]]:
    return {lang: load(lang, split, directory) for lang in LANGUAGES}


def named(directory: Path = OOS_DIR) -> dict[str, list[Item]]:
    """Every language and split, named "<lang> <split>"."""
    return {f"{lang} {split}": load(lang, split, directory) for split in SPLITS for lang in LANGUAGES}


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" ?!.。？！")


def problems(directory: Path = OOS_DIR, shipped_texts: list[str] | None = None) -> list[str]:
    """Every reason the set is not usable (empty list: fine)."""
    errors: list[str] = []
    seen: dict[str, str] = {}
    shipped = {_norm(t) for t in shipped_texts or []}
    for lang in LANGUAGES:
        for split in SPLITS:
            try:
                items = load(lang, split, directory)
            except (OSError, OOSSetError, yaml.YAMLError) as e:
                errors.append(str(e))
                continue
            if len(items) < MIN_PER_SPLIT:
                errors.append(f"{lang}/{split}: {len(items)} messages, at least {MIN_PER_SPLIT} needed")
            for text, cat in items:
                key = _norm(text)
                where = f"{lang}/{split}/{cat}"
                if key in seen:
                    errors.append(f"{text!r} twice: {seen[key]} and {where}")
                seen[key] = where
                if key in shipped:
                    errors.append(f"{text!r} ({where}) is also in nlu_data/ or tests/nlu/")
    return errors


def live_table(parsed: dict[str, list]) -> list[str]:
    """Markdown table of the live pipeline's answers to the set: {"<lang> <split>": [Parsed]}
    (bench/nlu/evaluate.py; Parsed.gold is the category here)."""
    from bench.nlu.evaluate import declined

    lines = [
        "Our out-of-scope set (bench/nlu/oos/; dev: what the gate's thresholds were chosen on, "
        "test: not used to choose), declined % (nlu_fallback or out_of_scope):",
        "",
        "| split | " + " | ".join(LANGUAGES) + " | " + " | ".join(CATEGORIES) + " |",
        "|---|" + "---|" * (len(LANGUAGES) + len(CATEGORIES)),
    ]
    for split in SPLITS:
        cells = []
        for lang in LANGUAGES:
            ps = parsed.get(f"{lang} {split}") or []
            cells.append(f"{100 * sum(map(declined, ps)) / len(ps):.1f} (n={len(ps)})" if ps else "—")
        every = [p for lang in LANGUAGES for p in parsed.get(f"{lang} {split}") or []]
        for cat in CATEGORIES:
            ps = [p for p in every if p.gold == cat]
            cells.append(f"{100 * sum(map(declined, ps)) / len(ps):.1f}" if ps else "—")
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return lines


def _shipped_texts() -> list[str]:
    from bench.nlu import data as D

    texts = [t for t, _ in D.load_rasa_examples(D.SHIPPED_TRAIN)]
    for path in D.SHIPPED_TESTS.values():
        texts += [t for t, _ in D.load_rasa_examples(path)]
    return texts


def main() -> int:
    errors = problems(shipped_texts=_shipped_texts())
    for lang in LANGUAGES:
        counts = []
        for split in SPLITS:
            try:
                items = load(lang, split)
            except (OSError, OOSSetError, yaml.YAMLError):
                continue
            per_cat = ", ".join(f"{c} {sum(1 for _, k in items if k == c)}" for c in CATEGORIES)
            counts.append(f"{split} {len(items)} ({per_cat})")
        print(f"{lang}: " + "; ".join(counts))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
