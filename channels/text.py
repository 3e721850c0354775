"""Long texts cut to a channel's message limit, at a paragraph, line or word break.

Each channel measures its limit in its own units: Telegram in UTF-16 code units (``utf16``),
WeChat in UTF-8 bytes (``utf8``). Chinese has no spaces between words, so just after a sentence
end (。！？；) is a break too; a word longer than the limit is cut where it must.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["split", "utf16", "utf8"]

SENTENCE_ENDS = "。！？；"


def utf16(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def utf8(ch: str) -> int:
    return len(ch.encode())


def size(text: str, units: Callable[[str], int]) -> int:
    return sum(map(units, text))


def _prefix_within(text: str, limit: int, units: Callable[[str], int]) -> int:
    """The number of characters of ``text`` that fit in ``limit`` units."""
    used = 0
    for i, ch in enumerate(text):
        used += units(ch)
        if used > limit:
            return i
    return len(text)


def split(text: str, limit: int, units: Callable[[str], int], paragraphs: bool = True) -> list[str]:
    """The non-empty parts of ``text``, each within ``limit``; with ``paragraphs`` the last
    paragraph break that fits is preferred to a line or word break."""
    parts: list[str] = []
    rest = text
    while size(rest, units) > limit:
        fit = _prefix_within(rest, limit, units)
        window = rest[:fit]
        cut = window.rfind("\n\n") if paragraphs else -1
        if cut <= 0:
            cut = max(window.rfind("\n"), window.rfind(" "), *(window.rfind(p) + 1 for p in SENTENCE_ENDS))
        if cut <= 0:
            cut = fit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    parts.append(rest)
    return [p for p in parts if p]
