"""bench/RESULTS.md is shared by every benchmark: each one owns a ``## Title`` section and
replaces only that section, so running one benchmark never erases another's figures."""

from __future__ import annotations

import os
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def replace_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Put ``## {title}`` + ``body`` in place of that section (or append it) in ``path``."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    block = f"## {title}\n\n{body.strip()}\n\n"
    match = re.search(rf"^## {re.escape(title)}\s*$", text, flags=re.M)
    if match is None:
        new = text.rstrip() + "\n\n" + block
    else:
        following = re.search(r"^## ", text[match.end():], flags=re.M)
        end = match.end() + following.start() if following else len(text)
        new = text[: match.start()] + block + text[end:]
    # Written beside and renamed over: a benchmark killed mid-write leaves the old file whole.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(path)
