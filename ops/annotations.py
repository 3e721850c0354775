"""Annotations → Rasa training data: ``nlu_data/<language>/reviewed.yml``, one file per language.

Kept apart from the hand-written ``nlu.yml`` so that a reviewer sees exactly what ops added (one
example per line, intents sorted, examples in the order they were added) and can revert any line.
Refused with a reason: an unknown intent (unless declared new), an unknown entity, spans outside the
text or overlapping, a text already in the training data under another intent, and a text that is
in the held-out test split (training on it would inflate the very figures the gate relies on).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from api_errors import ApiError
from storage.files import file_lock

REVIEWED = "reviewed.yml"
LANGUAGES = ("en", "zh", "ru")
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_MARKUP = re.compile(r"\[([^\]]*)\]\((\w+)\)|\[([^\]]*)\]\{[^}]*\}")
HEADER = (
    'version: "3.1"\n'
    "# Written by support ops (python -m ops / the ops console): review-inbox messages an ops user\n"
    "# assigned to an intent. Personal data was replaced by fake values of the same shape before writing.\n"
)


class AnnotationError(ApiError):
    """A refused annotation operation; its ``status`` is the HTTP status the API answers."""


@dataclass(frozen=True)
class Example:
    language: str
    intent: str
    text: str
    entities: list[dict[str, Any]]  # {"start", "end", "entity", "value"} on ``text``

    @property
    def markup(self) -> str:
        """Rasa's inline entity markup: ``where is [1234567890](order_id)``."""
        out, pos = [], 0
        for e in sorted(self.entities, key=lambda e: e["start"]):
            out.append(_plain(self.text[pos:e["start"]]))
            out.append(f"[{_plain(self.text[e['start']:e['end']])}]({e['entity']})")
            pos = e["end"]
        out.append(_plain(self.text[pos:]))
        return "".join(out).strip()


def _plain(text: str) -> str:
    """Text that cannot be mistaken for markup and fits on one YAML line."""
    return re.sub(r"\s+", " ", text.replace("[", "(").replace("]", ")"))


def strip_markup(text: str) -> str:
    return _MARKUP.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(3), text).strip()


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", strip_markup(text)).strip().casefold()


def read_examples(path: Path) -> Iterator[tuple[str, str]]:
    """(intent, plain text) of every example in a Rasa NLU YAML file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return
    for block in doc.get("nlu") or []:
        if not isinstance(block, dict) or "intent" not in block:
            continue
        for line in str(block.get("examples") or "").splitlines():
            line = line.strip()
            if line.startswith("- "):
                yield str(block["intent"]), strip_markup(line[2:])


class NluWriter:
    """Validates and writes annotations. One writer per process; a file lock guards other processes."""

    def __init__(self, nlu_dir: Path, domain: Path, test_dir: Path | None = None) -> None:
        self.nlu_dir = Path(nlu_dir)
        self.domain = Path(domain)
        self.test_dir = Path(test_dir) if test_dir else None
        self._lock = threading.Lock()

    def domain_names(self) -> tuple[set[str], set[str]]:
        doc = yaml.safe_load(self.domain.read_text(encoding="utf-8")) or {}
        intents = {i if isinstance(i, str) else next(iter(i)) for i in doc.get("intents") or []}
        entities = {e if isinstance(e, str) else next(iter(e)) for e in doc.get("entities") or []}
        return intents, entities

    def known_intents(self) -> set[str]:
        """Intents of the domain plus those ops created (present only in reviewed.yml files)."""
        intents, _ = self.domain_names()
        for lang in LANGUAGES:
            intents |= {i for i, _ in read_examples(self.nlu_dir / lang / REVIEWED)}
        return intents

    def prepare(self, language: str, text: str, intent: str, spans: Sequence[dict[str, Any]], *,
                new_intent: bool = False) -> Example:
        if language not in LANGUAGES:
            raise AnnotationError(422, f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
        if not INTENT_NAME.match(intent or ""):
            raise AnnotationError(422, "an intent name is lower-case letters, digits and underscores (2-64), starting with a letter")
        known = self.known_intents()
        domain_intents, entity_names = self.domain_names()
        if new_intent and intent in domain_intents:
            raise AnnotationError(409, f"intent {intent!r} already exists; assign to it without new_intent")
        if not new_intent and intent not in known:
            raise AnnotationError(422, f"unknown intent {intent!r}; pass new_intent to create it")
        entities = []
        for span in sorted(spans, key=lambda s: int(s.get("start", -1))):
            start, end, name = span.get("start"), span.get("end"), span.get("entity")
            if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
                raise AnnotationError(422, f"entity span {start}-{end} is outside the text (0-{len(text)})")
            if name not in entity_names:
                raise AnnotationError(422, f"unknown entity {name!r}; the domain has {', '.join(sorted(entity_names))}")
            if entities and start < entities[-1]["end"]:
                raise AnnotationError(422, f"entity spans overlap at {start}")
            if not text[start:end].strip():
                raise AnnotationError(422, f"entity span {start}-{end} is blank")
            entities.append({"start": start, "end": end, "entity": name, "value": text[start:end]})
        example = Example(language, intent, text, entities)
        self._check_conflicts(example)
        return example

    def _check_conflicts(self, ex: Example) -> None:
        wanted = _normal(ex.text)
        if not wanted:
            raise AnnotationError(422, "the text is empty")
        for path in sorted((self.nlu_dir / ex.language).glob("*.yml")):
            for intent, text in read_examples(path):
                if _normal(text) == wanted and intent != ex.intent:
                    raise AnnotationError(409, f"this text is already an example of {intent!r} in {path.name}")
        if self.test_dir is not None:
            test_file = self.test_dir / f"{ex.language}.yml"
            if any(_normal(t) == wanted for _, t in read_examples(test_file)):
                raise AnnotationError(409, "this text is in the held-out test split; training on it would inflate the gate's figures")

    def write(self, examples: Sequence[Example]) -> list[str]:
        """Append the examples (de-duplicated) and return, per example, the file written."""
        by_lang: dict[str, list[Example]] = {}
        for ex in examples:
            by_lang.setdefault(ex.language, []).append(ex)
        written: dict[str, str] = {}
        with self._lock:
            for lang, exs in by_lang.items():
                path = self.nlu_dir / lang / REVIEWED
                # The lock lives outside nlu_data/ so that Rasa and git never see it.
                lock = Path(tempfile.gettempdir()) / f"ops-reviewed-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.lock"
                with file_lock(lock):
                    blocks = self._read_blocks(path)
                    for ex in exs:
                        lines = blocks.setdefault(ex.intent, [])
                        if _normal(ex.markup) not in {_normal(line) for line in lines}:
                            lines.append(ex.markup)
                    _write_atomic(path, render(blocks))
                written[lang] = str(path)
        return [written[ex.language] for ex in examples]

    @staticmethod
    def _read_blocks(path: Path) -> dict[str, list[str]]:
        if not path.exists():
            return {}
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        blocks: dict[str, list[str]] = {}
        for block in doc.get("nlu") or []:
            if isinstance(block, dict) and "intent" in block:
                lines = [ln.strip()[2:] for ln in str(block.get("examples") or "").splitlines() if ln.strip().startswith("- ")]
                blocks.setdefault(str(block["intent"]), []).extend(lines)
        return blocks


def render(blocks: dict[str, list[str]]) -> str:
    out = [HEADER, "nlu:"]
    for intent in sorted(blocks):
        if not blocks[intent]:
            continue
        out.append(f"- intent: {intent}")
        out.append("  examples: |")
        out.extend(f"    - {line}" for line in blocks[intent])
    text = "\n".join(out) + "\n"
    yaml.safe_load(text)  # never write a file Rasa cannot read
    return text


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
