"""Train the Rasa model only when its inputs changed.

The model file is named after a hash of everything that shapes it (pipeline config, domain,
stories, rules, NLU data, and the custom components' code), so `make run`, the tests and the
benchmarks reuse a model until one of those changes. Standard library only: it runs from
either virtual environment and shells out to the Rasa one.

    python -m bot.training [--config config.yml] [--model-dir models] [--force]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DOMAIN = ROOT / "bot" / "domain.yml"
DEFAULT_DATA = (ROOT / "bot" / "data", ROOT / "nlu_data")
COMPONENTS = ROOT / "bot" / "components"


def rasa_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Rasa process: no telemetry, no error reports, our code importable."""
    env = dict(os.environ)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        SENTRY_DSN="",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra or {})
    # endpoints.yml reads these; unset, Rasa would create a file literally named "${RASA_TRACKER_DB}".
    if "RASA_TRACKER_DB" not in env:
        (ROOT / "data").mkdir(exist_ok=True)
        env["RASA_TRACKER_DB"] = str(ROOT / "data" / "rasa-tracker.db")
    env.setdefault("ACTION_ENDPOINT_URL", "http://127.0.0.1:8000/actions/webhook")
    env.setdefault("ACTION_SERVER_TOKEN", "")  # endpoints.yml names it; only `rasa run` uses it
    return env


def rasa_executable(venv: Path | None = None) -> Path:
    exe = (venv or ROOT / ".venv-rasa") / "bin" / "rasa"
    if not exe.exists():
        raise SystemExit(f"Rasa is not installed at {exe}: run `make setup` (scripts/setup_envs.sh rasa) first.")
    return exe


def _files(paths: Iterable[Path], suffixes: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes]
        elif path.is_file():
            found.append(path)
    return sorted(set(found))


def model_hash(config: Path, domain: Path, data: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    inputs = [config, domain, *_files(data, (".yml", ".yaml")), *_files([COMPONENTS], (".py",))]
    for path in inputs:
        digest.update(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_model(
    config: Path = ROOT / "config.yml",
    model_dir: Path = ROOT / "models",
    domain: Path = DEFAULT_DOMAIN,
    data: Iterable[Path] = DEFAULT_DATA,
    force: bool = False,
    venv: Path | None = None,
) -> Path:
    """Return the trained model for these inputs, training it first if it isn't cached."""
    data = list(data)
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / f"model-{model_hash(config, domain, data)}.tar.gz"
    # One trainer at a time per model directory (parallel test workers, make run + make test).
    with open(model_dir / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force:
            return target
        with tempfile.TemporaryDirectory(dir=model_dir) as tmp:
            cmd = [
                str(rasa_executable(venv)), "train",
                "--config", str(config), "--domain", str(domain),
                "--data", *[str(d) for d in data],
                "--out", tmp, "--fixed-model-name", target.name.removesuffix(".tar.gz"),
            ]
            started = time.monotonic()
            print(f"[train] training {target.name} …", file=sys.stderr, flush=True)
            result = subprocess.run(cmd, cwd=ROOT, env=rasa_env(), capture_output=True, text=True)
            if result.returncode != 0:
                sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
                raise RuntimeError(f"rasa train failed with exit code {result.returncode}")
            shutil.move(str(Path(tmp) / target.name), target)
            print(f"[train] done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.yml")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", ROOT / "models")))
    parser.add_argument("--force", action="store_true", help="train even if a cached model matches")
    args = parser.parse_args(argv)
    try:
        print(ensure_model(args.config.resolve(), args.model_dir.resolve(), force=args.force))
    except (RuntimeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
