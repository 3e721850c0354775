"""The load benchmark's customers: scripted conversations (bench/load/scripts.yml) over the demo
store's real orders, and what a correct answer must show."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SCRIPTS_FILE = Path(__file__).resolve().parent / "scripts.yml"


@dataclass(frozen=True)
class Step:
    text: str
    verify: bool = False  # this turn completes identity verification: the reply must name the order
    form: bool = False  # a turn of the order-status form: Rasa calls the action server (validation, lookup)


@dataclass(frozen=True)
class Script:
    name: str
    language: str
    steps: tuple[Step, ...]


def _step(turn: Any) -> Step:
    """``"text"``, ``{"form": "text"}`` or ``{"verify": "text"}`` (a verifying turn is a form turn)."""
    if isinstance(turn, str):
        return Step(turn)
    ((kind, text),) = turn.items()
    if kind not in ("form", "verify"):
        raise ValueError(f"{SCRIPTS_FILE}: unknown kind of turn {kind!r} (form or verify)")
    return Step(str(text), verify=kind == "verify", form=True)


def load_scripts(path: Path = SCRIPTS_FILE) -> tuple[Script, ...]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(Script(name, s["language"], tuple(_step(t) for t in s["turns"])) for name, s in data.items())


SCRIPTS = load_scripts()
# The bot's "that email doesn't match order …" reply (utter_verification_failed) in en/zh/ru.
VERIFY_FAILED = ("doesn't match", "不符", "не совпадает")
# The gateway answers in the customer's language (Rasa's REST channel knows nothing about it).
SCRIPT_OF = {"zh": re.compile(r"[\u4e00-\u9fff]"), "ru": re.compile(r"[\u0400-\u04ff]"), "en": re.compile(r"[A-Za-z]")}
FIRST_TURNS = (("en", "hello"), ("zh", "你好"), ("ru", "здравствуйте"))

Order = tuple[str, str, str]  # (order_id, username, email)


def demo_orders() -> list[Order]:
    """(order_id, username, email) of the demo store's well-known orders."""
    from store.seed import DEMO

    return [(o.order_id, o.username, o.email) for o in DEMO.values()]


def conversation_plan(index: int, orders: list[Order]) -> tuple[Script, Order]:
    """The same index gives the same customer on both targets."""
    return SCRIPTS[index % len(SCRIPTS)], orders[(index // len(SCRIPTS) + index) % len(orders)]


def turn_text(step: Step, order: Order) -> str:
    order_id, username, email = order
    return step.text.format(order_id=order_id, username=username, email=email)


def planned_texts(conversations: int, orders: list[Order]) -> list[str]:
    """Every distinct text the first ``conversations`` customers send, in order."""
    texts: dict[str, None] = {}
    for index in range(conversations):
        script, order = conversation_plan(index, orders)
        for step in script.steps:
            texts[turn_text(step, order)] = None
    return list(texts)
