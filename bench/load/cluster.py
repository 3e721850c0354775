"""The system under test of the default mode, started and stopped by the project's launcher
(scenarios/system.py): ``server.py`` with embedded Rasa, free ports, a fresh temporary DATA_DIR and
MODEL_DIR = models/ (so a cached model is reused); and what its logs and database say afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.load import log
from bench.load.processes import pid_listening_on
from scenarios.system import LOCAL_CUSTOMERS, ROOT, Gateway, start_gateway


@dataclass
class Launched:
    gateway: Gateway
    config: Path
    model_cached: bool | None
    token: str = ""  # Rasa's API token (NLU pre-warm through /model/parse)
    channel_token: str = ""  # what Rasa's gateway channel accepts (the baseline target)
    model_name: str | None = None
    cold_start_s: float | None = None


def expected_model(config: Path, model_dir: Path) -> Path | None:
    try:
        from bot.training import DEFAULT_DATA, DEFAULT_DOMAIN, model_hash

        return model_dir / f"model-{model_hash(config, DEFAULT_DOMAIN, DEFAULT_DATA)}.tar.gz"
    except Exception:  # noqa: BLE001 — only used to say whether training was needed
        return None


def launch() -> Launched:
    config = Path(os.environ.get("RASA_CONFIG") or ROOT / "config.yml")
    config = config if config.is_absolute() else ROOT / config
    model_dir = Path(os.environ.get("MODEL_DIR") or ROOT / "models")
    model_dir = model_dir if model_dir.is_absolute() else ROOT / model_dir
    if not config.exists():
        raise SystemExit(f"Rasa config {config} does not exist (set RASA_CONFIG to develop against another one)")
    model = expected_model(config, model_dir)
    token = secrets.token_urlsafe(18)
    channel_token = secrets.token_urlsafe(24)  # the baseline calls Rasa's gateway channel with it
    env = {
        "MODEL_DIR": str(model_dir),
        "RASA_CONFIG": str(config),
        "RASA_TOKEN": token,
        "RASA_CHANNEL_TOKEN": channel_token,
        **LOCAL_CUSTOMERS,  # every simulated customer comes from 127.0.0.1
    }
    gateway = start_gateway(Path(tempfile.mkdtemp(prefix="bench-load-")), env)
    return Launched(gateway, config, model.exists() if model else None, token, channel_token)


def stop_system(sut: Launched) -> list[str]:
    """Stop the gateway (it stops Rasa) and anything of ours left; notes on whatever needed force."""
    started = time.monotonic()
    notes = sut.gateway.stop(grace_s=25)
    holder = pid_listening_on(sut.gateway.rasa_port) if sut.gateway.rasa_port else None
    if holder:
        notes.append(f"STILL RUNNING after stop: pid {holder} holds the Rasa port")
    log(
        f"system stopped in {time.monotonic() - started:.1f} s; no gateway/Rasa process left"
        if not notes
        else f"system stopped in {time.monotonic() - started:.1f} s: {'; '.join(notes)}"
    )
    return notes


def log_problems(data_dir: Path) -> list[str]:
    """ERROR, CRITICAL and Traceback lines of the gateway's and Rasa's logs."""
    text = ""
    for name in ("gateway.log", "rasa.log"):
        with contextlib.suppress(OSError):
            text += (data_dir / name).read_text(errors="replace") + "\n"
    return [ln for ln in text.splitlines() if re.search(r"\b(ERROR|Traceback|CRITICAL)\b", ln)]


def rasa_call_latencies(db: Path, run_id: str) -> dict[int, list[float]]:
    """The gateway stores how long each Rasa call took (turns.latency_ms): per concurrency level, seconds."""
    import sqlite3

    found: dict[int, list[float]] = defaultdict(list)
    pattern = re.compile(rf"^load-{re.escape(run_id)}-gateway-c(\d+)-\d+$")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT c.sender_id, t.latency_ms FROM turns t JOIN conversations c ON c.id = t.conversation_id"
        ).fetchall()
    for sender, latency_ms in rows:
        match = pattern.match(sender or "")
        if match and latency_ms is not None:
            found[int(match.group(1))].append(latency_ms / 1000)
    return found
