"""``script: hant | hans``: is the Chinese the customer reads written in one script only?

The text checked is everything the customer reads in the reply (``Observation.readable_text``:
message texts, KB source titles, button titles), minus every verbatim copy of something the
customer typed in this conversation (the bot may echo an address in the customer's own script).
Of what remains, only Han characters count. A character *offends* ``hans`` when OpenCC ``t2s``
changes it, and ``hant`` when ``s2t`` changes it *and* so do the Taiwan and Hong Kong standards
(``s2tw``, ``s2hk``): 台, 群 or 為 are Traditional as Taiwan writes them although plain ``s2t``
prefers 臺, 羣, 爲, while a Simplified-only character (订, 发) is changed by all three. Characters
common to both scripts never offend. ``s2t``/``t2s`` are the product's own converters
(``conversations.language``), applied to each run of Han characters so that OpenCC's phrase tables
see the context they would in a reply (皇后 stays, 后来 offends).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

SCRIPTS = ("hant", "hans")
MAX_SHOWN = 10
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def without_echoes(text: str, typed: Sequence[str]) -> str:
    """``text`` with every verbatim occurrence of a customer's message cut out (longest first)."""
    for said in sorted({t.strip() for t in typed if t and t.strip()}, key=len, reverse=True):
        text = text.replace(said, "\n")
    return text


def han_runs(text: str) -> list[str]:
    return _HAN_RUN.findall(text)


@lru_cache(maxsize=4)
def _variant(config: str) -> Any:
    import opencc

    return opencc.OpenCC(config)


def _converters(target: str) -> list[Callable[[str], str]]:
    from conversations.language import to_simplified, to_traditional  # OpenCC: loaded on first use

    if target == "hans":
        return [to_simplified]
    return [to_traditional, _variant("s2tw.json").convert, _variant("s2hk.json").convert]


def _changed(run: str, convert: Callable[[str], str]) -> list[bool]:
    converted = convert(run)
    if len(converted) != len(run):  # a phrase changed length: judge character by character
        return [convert(c) != c for c in run]
    return [a != b for a, b in zip(run, converted, strict=True)]


def offending(text: str, target: str) -> list[str]:
    """The Han characters of ``text`` that are not written in ``target`` (distinct, in order)."""
    bad: list[str] = []
    converters = _converters(target)
    for run in han_runs(text):
        marks = [_changed(run, convert) for convert in converters]
        bad += [c for i, c in enumerate(run) if all(m[i] for m in marks)]
    return list(dict.fromkeys(bad))


def judge(text: str, typed: Sequence[str], target: str) -> tuple[bool, str | list[str]]:
    """(passes, got): at least one Han character and none that offends ``target``."""
    remaining = without_echoes(text, typed)
    if not han_runs(remaining):
        return False, "no Chinese text"
    bad = offending(remaining, target)
    return (not bad), (bad[:MAX_SHOWN] if bad else f"all {target}")


def leaks(text: str, typed: Sequence[str], script: str) -> list[str]:
    """For ``never: {script: X}``: the characters of ``text`` that only script ``X`` has."""
    other = "hans" if script == "hant" else "hant"
    return offending(without_echoes(text, typed), other)[:MAX_SHOWN]
