"""bench/RESULTS.md is shared by every benchmark: each one owns a ``## Title`` section and
replaces only that section, so running one benchmark never erases another's figures. Also what
every section states the same way: percentiles, milliseconds, the machine and the commit measured."""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"


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


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ms(seconds: float, fmt: str = ".0f") -> str:
    """Seconds as whole milliseconds; a dash for NaN (no sample)."""
    return "–" if math.isnan(seconds) else f"{seconds * 1000:{fmt}}"


def machine() -> dict[str, str]:
    """What the figures were measured on: usable CPUs, CPU model, RAM and kernel."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError):
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        ram = f"{kb / 2**20:.1f} GiB"
    nproc = len(os.sched_getaffinity(0))
    return {"nproc": str(nproc), "cpu": cpu, "ram": ram, "kernel": os.uname().release}


def git_revision() -> str:
    """The commit measured, and whether tracked files had uncommitted changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"
