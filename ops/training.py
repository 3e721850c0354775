"""Retraining as a background job: train → evaluate candidate and baseline → gate → (promote).

One job at a time (a second submission while one is queued or running is refused with 409). The job
runs ``rasa train`` in the Rasa environment exactly as ``bot.training.ensure_model`` does (same
command, same hash-keyed file name and lock, so a model trained here is the cache entry ``make run``
would use), streams its log to follow progress, then runs ``ops.rasa_eval`` for the candidate and,
unless its metrics on this test split are already stored, for the active model (the baseline).
Nothing changes for customers unless the gate passes and promotion was asked for (``auto_promote``)
or an ops user promotes the model afterwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api_errors import ApiError
from bot.training import ROOT, model_hash, rasa_env, rasa_executable
from ops import audit
from ops.gate import GatePolicy, decide
from ops.models import TrainingJob
from ops.registry import ModelRegistry, RegistryError
from settings import OpsSettings
from storage.db import get_or_raise, transaction

log = logging.getLogger(__name__)

# Share of the progress bar per stage (training dominates; evaluations are ~20-40 s each).
_TRAIN_SHARE, _EVAL_SHARE = 0.7, 0.15


class JobError(ApiError):
    """A refused job operation; its ``status`` is the HTTP status the API answers."""


@dataclass(frozen=True)
class TrainPaths:
    config: Path
    domain: Path
    data: tuple[Path, ...]
    model_dir: Path
    nlu_test_dir: Path
    stories: Path | None
    venv: Path | None = None
    timeout_s: float = OpsSettings().train_timeout_s  # default: settings/sections.py
    extra_env: dict[str, str] = field(default_factory=dict)

    def test_hash(self) -> str:
        """Which held-out split and stories the metrics belong to (metrics on another are not comparable)."""
        digest = hashlib.sha256()
        files = sorted(self.nlu_test_dir.glob("*.yml"))
        if self.stories is not None:
            files += sorted(self.stories.rglob("*.yml")) if self.stories.is_dir() else [self.stories]
        for f in files:
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        return digest.hexdigest()[:16]


def _now() -> datetime:
    return datetime.now(UTC)


def job_view(job: TrainingJob) -> dict[str, Any]:
    return {
        "id": job.id, "status": job.status, "stage": job.stage, "progress": round(job.progress, 3),
        "started_by": job.started_by, "auto_promote": bool(job.auto_promote), "model_id": job.model_id,
        "baseline_id": job.baseline_id, "report": job.report, "error": job.error, "log_tail": job.log_tail,
        "created_at": job.created_at.isoformat(), "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }  # fmt: skip


class TrainingService:
    def __init__(self, sessions: sessionmaker[Session], registry: ModelRegistry, paths: TrainPaths,
                 policy: GatePolicy | None = None) -> None:
        self._sessions = sessions
        self.registry = registry
        self.paths = paths
        self.policy = policy or GatePolicy()
        self._run_lock = threading.Lock()

    # --- jobs ------------------------------------------------------------------------------------
    def submit(self, actor: str, *, auto_promote: bool = False) -> dict[str, Any]:
        with transaction(self._sessions) as db:
            busy = db.scalar(select(TrainingJob).where(TrainingJob.status.in_(("queued", "running"))))
            if busy is not None:
                raise JobError(409, f"training job {busy.id} is already {busy.status}; wait for it to finish")
            job = TrainingJob(status="queued", stage="queued", progress=0.0, started_by=actor, auto_promote=int(auto_promote),
                              params={"config": str(self.paths.config)}, report={}, log_tail="", created_at=_now())
            db.add(job)
            db.flush()
            audit.add(db, actor, "train", f"job:{job.id}", {"auto_promote": auto_promote})
            return job_view(job)

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._sessions() as db:
            return [job_view(j) for j in db.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit))]

    def job(self, job_id: int) -> dict[str, Any]:
        with self._sessions() as db:
            return job_view(get_or_raise(db, TrainingJob, job_id, JobError(404, f"no training job {job_id}")))

    def next_queued(self) -> int | None:
        with self._sessions() as db:
            return db.scalar(select(TrainingJob.id).where(TrainingJob.status == "queued").order_by(TrainingJob.id).limit(1))

    def fail_interrupted(self) -> int:
        """Jobs left 'running' by a process that died: mark them failed (at start-up)."""
        with transaction(self._sessions) as db:
            jobs = list(db.scalars(select(TrainingJob).where(TrainingJob.status == "running")))
            for job in jobs:
                job.status, job.error, job.finished_at = "failed", "interrupted: the gateway stopped during the job", _now()
            return len(jobs)

    def _update(self, job_id: int, **fields: Any) -> None:
        with transaction(self._sessions) as db:
            job = db.get_one(TrainingJob, job_id)
            for k, v in fields.items():
                setattr(job, k, v)

    # --- running ---------------------------------------------------------------------------------
    def run(self, job_id: int) -> dict[str, Any]:
        """Run one job to its end (blocking; the runner calls it in a worker thread)."""
        with self._run_lock:
            self._update(job_id, status="running", stage="training", started_at=_now(), progress=0.0)
            job = self.job(job_id)
            try:
                self._run(job_id, job["started_by"], job["auto_promote"])
            except Exception as err:  # the job records why; the runner keeps going
                log.exception("training job failed", extra={"job": job_id})
                self._update(job_id, status="failed", error=str(err)[:2000], finished_at=_now())
            return self.job(job_id)

    def _run(self, job_id: int, actor: str, auto_promote: bool) -> None:
        p = self.paths
        data_hash = model_hash(p.config, p.domain, p.data)
        target = p.model_dir / f"model-{data_hash}.tar.gz"
        tail: deque[str] = deque(maxlen=40)
        started = time.monotonic()
        reused = self._train(job_id, target, tail)
        seconds = None if reused else time.monotonic() - started
        model = self.registry.register(target, data_hash=data_hash, config=p.config.read_text(encoding="utf-8"),
                                       actor=actor, training_seconds=seconds, job_id=job_id)
        self._update(job_id, model_id=model.id, progress=_TRAIN_SHARE, log_tail="\n".join(tail))
        test_hash = p.test_hash()

        self._update(job_id, stage="evaluating candidate")
        cand = self._metrics(job_id, model.id, test_hash, _TRAIN_SHARE)
        baseline = self.registry.active()
        base: dict[str, Any] | None = None
        if baseline is not None and baseline.id != model.id:
            self._update(job_id, stage="evaluating baseline", baseline_id=baseline.id)
            base = self._metrics(job_id, baseline.id, test_hash, _TRAIN_SHARE + _EVAL_SHARE)
        report = decide(cand, base, self.policy).as_dict()
        report.update(candidate=model.id, baseline=baseline.id if baseline else None, reused_model=reused,
                      training_seconds=seconds, test_hash=test_hash)  # fmt: skip
        if baseline is not None and baseline.id == model.id:
            report["note"] = "the training data did not change: the candidate is the active model"
        status = "passed" if report["passed"] else "refused"
        self.registry.set_status(model.id, "candidate" if report["passed"] else "refused")
        self._update(job_id, stage="gated", report=report, progress=1.0)
        if report["passed"] and auto_promote and (baseline is None or baseline.id != model.id):
            self._update(job_id, stage="promoting")
            try:
                report["promotion"] = self.registry.promote(model.id, actor)
            except RegistryError as err:
                report["promotion"] = {"error": str(err)}
        self._update(job_id, status=status, stage="done", report=report, finished_at=_now())

    def _metrics(self, job_id: int, model_id: str, test_hash: str, base_progress: float) -> dict[str, Any]:
        m = self.registry.get(model_id)
        if m.metrics is not None and m.test_hash == test_hash:
            return m.metrics
        metrics = self.evaluate(Path(m.path), lambda f: self._update(job_id, progress=base_progress + f * _EVAL_SHARE))
        self.registry.save_metrics(model_id, metrics, test_hash)
        return metrics

    def evaluate(self, model: Path, on_progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        """``ops.rasa_eval`` in the Rasa environment; returns its metrics."""
        p = self.paths
        python = rasa_executable(p.venv).with_name("python")
        with tempfile.TemporaryDirectory(prefix="ops-eval-") as tmp:
            out = Path(tmp) / "metrics.json"
            cmd = [str(python), "-m", "ops.rasa_eval", "--model", str(model), "--domain", str(p.domain),
                   "--nlu-dir", str(p.nlu_test_dir), "--out", str(out)]
            if p.stories is not None:
                cmd += ["--stories", str(p.stories)]
            env = rasa_env({"ACTION_ENDPOINT_URL": "http://127.0.0.1:9/unused", "RASA_TRACKER_DB": str(Path(tmp) / "t.db"),
                            **p.extra_env})
            tail: deque[str] = deque(maxlen=40)
            code = _stream(cmd, env, p.timeout_s, tail, lambda line: _eval_progress(line, on_progress))
            if code != 0 or not out.exists():
                raise RuntimeError(f"evaluation failed (exit {code}): " + "\n".join(tail)[-2000:])
            return json.loads(out.read_text(encoding="utf-8"))

    def _train(self, job_id: int, target: Path, tail: deque[str]) -> bool:
        """Train into ``target`` unless it exists; True when an existing model was reused."""
        p = self.paths
        p.model_dir.mkdir(parents=True, exist_ok=True)
        with open(p.model_dir / ".train.lock", "w") as lock:  # the same lock as bot.training.ensure_model
            fcntl.flock(lock, fcntl.LOCK_EX)
            if target.exists():
                tail.append(f"{target.name} already trained for these inputs: reused")
                return True
            with tempfile.TemporaryDirectory(dir=p.model_dir) as tmp:
                cmd = [
                    str(rasa_executable(p.venv)), "train", "--config", str(p.config), "--domain", str(p.domain),
                    "--data", *[str(d) for d in p.data], "--out", tmp,
                    "--fixed-model-name", target.name.removesuffix(".tar.gz"),
                ]  # fmt: skip
                progress = _TrainProgress(_count_components(p.config))
                last = [0.0]

                def on_line(line: str) -> None:
                    frac = progress.feed(line)
                    if frac is not None and (frac - last[0] >= 0.02 or frac >= 1.0):
                        last[0] = frac
                        self._update(job_id, progress=frac * _TRAIN_SHARE, stage=f"training: {progress.stage}",
                                     log_tail="\n".join(tail))

                code = _stream(cmd, rasa_env(p.extra_env or None), p.timeout_s, tail, on_line)
                if code != 0:
                    raise RuntimeError(f"rasa train failed (exit {code}): " + "\n".join(tail)[-2000:])
                shutil.move(str(Path(tmp) / target.name), target)
        return False


def _stream(cmd: list[str], env: dict[str, str], timeout_s: float, tail: deque[str],
            on_line: Callable[[str], None]) -> int:
    """Run ``cmd``, feeding each output line (``\\r`` progress bars included) to ``on_line``."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:  # text mode: "\r" ends a line too, so tqdm updates arrive one by one
            line = raw.strip()
            if line:
                tail.append(line[-300:])
                on_line(line)
        return proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _eval_progress(line: str, on_progress: Callable[[float], None] | None) -> None:
    m = re.match(r"PROGRESS ([0-9.]+) ", line)
    if m and on_progress is not None:
        on_progress(float(m.group(1)))


def _count_components(config: Path) -> int:
    """Pipeline components + policies: how many 'Finished training component' lines to expect."""
    import yaml

    try:
        doc = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return 10
    components = [c.get("name", "") for c in (doc.get("pipeline") or []) + (doc.get("policies") or []) if isinstance(c, dict)]
    # Tokenizers and the fallback classifier have nothing to train: Rasa logs no line for them.
    trained = [c for c in components if not (str(c).endswith("Tokenizer") or str(c).endswith("FallbackClassifier"))]
    return max(1, len(trained))


class _TrainProgress:
    """Turns ``rasa train``'s log into a fraction: components finished out of those configured,
    with the epochs of the component being trained (TED's progress bar) filling the gap."""

    _FINISHED = re.compile(r"Finished training component '([^']+)'")
    _STARTED = re.compile(r"Starting to train component '([^']+)'")
    _EPOCHS = re.compile(r"Epochs:\s+(\d+)%")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.done = 0
        self.stage = "preparing"

    def feed(self, line: str) -> float | None:
        if m := self._STARTED.search(line):
            self.stage = m.group(1)
            return min(self.done / self.expected, 0.99)
        if m := self._FINISHED.search(line):
            self.done += 1
            self.stage = f"{m.group(1)} done"
            return min(self.done / self.expected, 0.99)
        if m := self._EPOCHS.search(line):
            within = int(m.group(1)) / 100
            return min((self.done + within) / self.expected, 0.99)
        if "Your Rasa model is trained and saved" in line:
            self.stage = "saved"
            return 1.0
        return None

