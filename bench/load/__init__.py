"""Load benchmark: whole scripted conversations through the gateway vs. Rasa's gateway channel.

    .venv/bin/python -m bench.load [--concurrency 1 20] [--conversations N] [--url URL --rasa-url URL]
                                   [--out bench/RESULTS.md]

See ``bench/load/__main__.py`` for the method; results go to the ``## Load`` section of
bench/RESULTS.md. Modules: ``conversations`` (the scripted customers, scripts.yml), ``traffic`` (the
targets, the load and what it measured), ``processes`` (memory and CPU from /proc), ``cluster`` (the
system under test, by the project's launcher), ``report`` (the section written).
"""

from __future__ import annotations

import sys
import time


def log(msg: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
