"""Writes figures into the ``## NLU`` section of bench/RESULTS.md (other sections untouched).

Each run owns a block delimited by ``<!-- bench.nlu:KEY -->`` / ``<!-- /bench.nlu:KEY -->``;
re-running the same command replaces its block, anything else in the section is kept.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

SECTION = "## NLU"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"nproc": nproc, "cpu": cpu, "ram": ram, "python": platform.python_version(), "load": load}


def command_line() -> str:
    return ".venv-rasa/bin/python -m bench.nlu " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def header(title: str, load_at_start: str, command: str | None = None) -> list[str]:
    m = machine()
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"### {title}",
        "",
        f"- Date: {now}. Machine: `nproc`={m['nproc']}, {m['cpu']}, RAM {m['ram']}; "
        f"Rasa venv Python {m['python']}; load average at start {load_at_start}, at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (other jobs share these cores, so "
        f"wall-clock times are upper bounds; CPU times are not stretched by them).",
        f"- Reproduce (from the project root): `{command or command_line()}`",
        "",
    ]


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def update(results_path: Path, key: str, lines: list[str]) -> None:
    """Replaces (or appends) block ``key`` inside the ``## NLU`` section."""
    text = results_path.read_text(encoding="utf-8") if results_path.exists() else ""
    if not text.strip():
        text = "# Benchmark results\n\n"
    if not re.search(rf"^{re.escape(SECTION)}\s*$", text, flags=re.M):
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n"
    start_tag, end_tag = f"<!-- bench.nlu:{key} -->", f"<!-- /bench.nlu:{key} -->"
    block = "\n".join([start_tag, *lines, end_tag]) + "\n"
    if start_tag in text and end_tag in text:
        pre, rest = text.split(start_tag, 1)
        _, post = rest.split(end_tag, 1)
        text = pre + block.rstrip("\n") + post
    else:
        m = re.search(rf"^{re.escape(SECTION)}\s*$", text, flags=re.M)
        nxt = re.search(r"^## ", text[m.end() :], flags=re.M)
        at = m.end() + nxt.start() if nxt else len(text)
        before = text[:at].rstrip("\n") + "\n\n"
        text = before + block + ("\n" + text[at:] if nxt else "")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(text, encoding="utf-8")
