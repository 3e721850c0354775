"""Chunking by headings, then paragraphs, then sentences, with a size limit and overlap.

Headings give every chunk a path ("Returns > Gold members") that the embedder sees with the text
and that a reply can cite. Paragraphs of one section are packed together up to ``max_chars``; a
paragraph too long for one chunk is cut at sentence ends, and a following chunk of the same section
starts with the tail (``overlap_chars``) of the previous one so that a fact split across the cut is
still whole in one of them.
"""

from __future__ import annotations

import re

from kb_index.models import Article, Chunk
from settings import KbSettings

_KB = KbSettings()  # the defaults, written once in settings/sections.py (no environment read here)

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Sentence ends in the three languages (Chinese ones need no following space).
_SENT_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？；])")


def _sections(text: str) -> list[tuple[list[str], str]]:
    """Split Markdown into (heading path, body) sections; ``#`` inside code fences is not a heading."""
    sections: list[tuple[list[str], str]] = []
    path: list[tuple[int, str]] = []
    buf: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(buf).strip()
        if body:
            sections.append(([h for _, h in path], body))
        buf.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            buf.append(line)
            continue
        m = None if in_fence else _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, m.group(2).strip()))
        else:
            buf.append(line)
    flush()
    return sections


def _paragraphs(body: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]


def _split_long(par: str, max_chars: int) -> list[str]:
    """Cut a paragraph longer than ``max_chars`` at sentence ends; a sentence that is itself too long
    is cut at the last space (or hard, for unspaced Chinese)."""
    pieces: list[str] = []
    for sent in (s for s in _SENT_END.split(par) if s and s.strip()):
        sent = sent.strip()
        while len(sent) > max_chars:
            cut = sent.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(sent[:cut].strip())
            sent = sent[cut:].strip()
        if sent:
            pieces.append(sent)
    return pieces


def _tail(text: str, n: int) -> str:
    """The last ~n characters, starting at a sentence or word boundary when there is one."""
    if n <= 0 or len(text) <= n:
        return text if n > 0 else ""
    tail = text[-n:]
    m = _SENT_END.search(tail)
    if m and m.end() < len(tail) - 20:
        return tail[m.end() :].strip()
    sp = tail.find(" ")
    return tail[sp + 1 :].strip() if 0 <= sp < len(tail) // 2 else tail.strip()


def _units(pars: list[str], max_chars: int) -> list[tuple[str, str]]:
    """(text, joiner before it): whole paragraphs join with a blank line; the sentences of a
    paragraph too long for one chunk join with a space (nothing between Chinese sentences)."""
    units: list[tuple[str, str]] = []
    for p in pars:
        if len(p) <= max_chars:
            units.append((p, "\n\n"))
            continue
        for i, sent in enumerate(_split_long(p, max_chars)):
            units.append((sent, "\n\n" if i == 0 else "" if _is_cjk(sent[:1]) else " "))
    return units


def _pack(units: list[tuple[str, str]], max_chars: int, overlap_chars: int) -> list[str]:
    chunks: list[str] = []
    cur = ""
    for unit, joiner in units:
        if cur and len(cur) + len(joiner) + len(unit) > max_chars:
            chunks.append(cur)
            overlap = _tail(cur, overlap_chars)
            cur = f"{overlap}{joiner}{unit}" if overlap and len(overlap) + len(joiner) + len(unit) <= max_chars else unit
        else:
            cur = f"{cur}{joiner}{unit}" if cur else unit
    if cur:
        chunks.append(cur)
    return chunks


def _is_cjk(ch: str) -> bool:
    return bool(ch) and "\u3000" <= ch <= "\u9fff"


def chunk_text(text: str, max_chars: int = _KB.chunk_max_chars, overlap_chars: int = _KB.chunk_overlap_chars) -> list[tuple[list[str], str]]:
    """(heading path, chunk text) pairs for a Markdown/plain body."""
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    if not 0 <= overlap_chars < max_chars // 2:
        raise ValueError("overlap_chars must be between 0 and max_chars/2")
    out: list[tuple[list[str], str]] = []
    for path, body in _sections(text):
        packed = _pack(_units(_paragraphs(body), max_chars), max_chars, overlap_chars)
        out.extend((list(path), c) for c in packed)
    return out


def chunk_article(
    article: Article, max_chars: int = _KB.chunk_max_chars, overlap_chars: int = _KB.chunk_overlap_chars
) -> list[Chunk]:
    """Chunks of one article, in reading order, each with the article's id, title, language, url
    and its heading path. ``chunk_id`` is -1 until the index assigns one."""
    return [
        Chunk(
            chunk_id=-1,
            article_id=article.id,
            language=article.language,
            title=article.title,
            heading_path=path,
            url=article.url,
            text=text,
        )
        for path, text in chunk_text(article.text, max_chars, overlap_chars)
    ]
