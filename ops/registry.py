"""The model registry: every trained model kept with its metadata; promote and roll back.

Promotion swaps the model customers talk to without a gap: in embedded mode ``BlueGreenSwapper``
starts a second Rasa on the new model and switches the conversation service to it once it answers
(see its docstring for why not Rasa's ``PUT /model``); with an external Rasa (``RASA_URL``)
``RasaModelSwapper`` uses ``PUT /model``; with several external replicas (``RASA_REPLICA_URLS``, the local
cluster) ``ops.rollout.RollingSwapper`` loads it into one replica at a time, out of the balancer's
rotation. One promotion or rollback at a time: a lock in the process and a lease in the database
(``ops-model-rollout``), so that gateways sharing a database never roll two models at once. A pin file
(``<data_dir>/ops/active_model.json``) makes the gateway start on the promoted model after a restart
(setting ``ops_pin_promoted_model``); the local cluster's Rasa servers start on the registry's active
model instead (``active_model_file``).
Figures: bench/RESULTS.md "Support ops: retraining and promotion".
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api_errors import ApiError
from ops import audit
from ops.models import ModelVersion
from storage.db import get_or_raise, transaction
from storage.leases import Lease, LocalLease

log = logging.getLogger(__name__)

ROLLOUT_LEASE = "ops-model-rollout"


class RegistryError(ApiError):
    """A refused registry operation; its ``status`` is the HTTP status the API answers."""


class ModelSwapper(Protocol):
    def swap(self, model_path: Path) -> str: ...


@dataclass
class RasaModelSwapper:
    """Swaps the model of a running Rasa server through its HTTP API (``--enable-api``): for an
    external Rasa. Turns wait while it loads the model (its event loop is busy meanwhile)."""

    base_url: str
    token: str
    supervisor: Any = None  # bot.rasa_process.RasaSupervisor in embedded mode
    timeout_s: float = 300.0

    def swap(self, model_path: Path) -> str:
        """Load ``model_path`` into Rasa; returns the model id Rasa reports afterwards."""
        url = self.base_url.rstrip("/")
        params = {"token": self.token} if self.token else {}
        try:
            with httpx.Client(timeout=self.timeout_s) as client:
                r = client.put(f"{url}/model", params=params, json={"model_file": str(model_path)})
                if r.status_code != 204:
                    raise RegistryError(502, f"Rasa refused the model ({r.status_code}): {r.text[:300]}")
                status = client.get(f"{url}/status", params=params).json()
        except httpx.HTTPError as err:
            raise RegistryError(503, f"Rasa is not reachable to load the model: {err}") from err
        loaded = str(status.get("model_file") or "")
        if Path(loaded).name != model_path.name:
            raise RegistryError(502, f"Rasa reports model {loaded!r} after loading {model_path.name}")
        if self.supervisor is not None:
            self.supervisor.model = model_path  # a restart of Rasa comes back on this model
        return str(status.get("model_id") or "")


class BlueGreenSwapper:
    """Embedded mode: start a second Rasa on the new model beside the running one, switch the
    conversation service to it once it answers with that model, and stop the old one after the turns
    it was still answering are done (``drain_s``, the gateway's Rasa timeout).

    Why not ``PUT /model``: Rasa 3.6 loads the new agent on its event loop, so every turn waits for
    the load; on two busy cores that took 27-37 s, longer than the gateway's 30 s Rasa timeout, and
    turns failed with 503 (bench/RESULTS.md "Support ops"). Here the old process keeps answering
    until the new one is ready. Both use the same tracker store (SQLite); the gateway processes one
    turn per conversation at a time, so no conversation is handled by both at once. Costs a second
    Rasa process (about 1 GB) for the length of the swap.
    """

    def __init__(self, app: Any, run_async: Callable[[Callable[[], Awaitable[Any]]], Any], *,
                 timeout_s: float = 30.0, ready_timeout_s: float = 900.0, drain_s: float | None = None) -> None:
        self.app = app
        self.run_async = run_async  # runs a coroutine function on the gateway's event loop, from a worker thread
        self.timeout_s = timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.drain_s = timeout_s + 5.0 if drain_s is None else drain_s
        self._retiring: set[asyncio.Task[None]] = set()

    def swap(self, model_path: Path) -> str:
        return self.run_async(lambda: self._swap(model_path))

    async def _swap(self, model_path: Path) -> str:
        from conversations.rasa_client import RasaUnavailable

        old_sup = self.app.state.rasa_process
        service = self.app.state.conversations
        old_client = service.rasa
        new_sup = old_sup.clone(model_path, _free_port())
        await new_sup.start()
        new_client = old_client.for_url(new_sup.url)
        deadline = time.monotonic() + self.ready_timeout_s
        status: dict[str, Any] = {}
        while True:
            try:
                status = await new_client.status()
                if Path(str(status.get("model_file") or "")).name == model_path.name:
                    break
            except RasaUnavailable:
                pass
            if time.monotonic() > deadline:
                await new_sup.stop()
                await new_client.close()
                raise RegistryError(504, f"the new Rasa did not become ready with {model_path.name}; the old model stays")
            await asyncio.sleep(1.0)
        # The switch: turns from now on go to the new process; the old one finishes what it has.
        service.rasa = new_client
        self.app.state.rasa_process = new_sup
        task = asyncio.create_task(self._retire(old_sup, old_client), name="ops-retire-rasa")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        log.info("rasa swapped", extra={"model": model_path.name, "port": new_sup.port, "old_port": old_sup.port})
        return str(status.get("model_id") or "")

    async def _retire(self, sup: Any, client: Any) -> None:
        try:
            await asyncio.sleep(self.drain_s)
        finally:
            await asyncio.shield(sup.stop())
            await client.close()

    async def aclose(self) -> None:
        """Stop any old Rasa still draining (the gateway is shutting down)."""
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _now() -> datetime:
    return datetime.now(UTC)


def model_view(m: ModelVersion) -> dict[str, Any]:
    metrics = m.metrics or {}
    langs = {k: v.get("accuracy") for k, v in (metrics.get("languages") or {}).items()}
    stories = metrics.get("stories") or {}
    return {
        "id": m.id, "path": m.path, "status": m.status, "data_hash": m.data_hash, "trained_by": m.trained_by,
        "created_at": m.created_at.isoformat(), "promoted_at": m.promoted_at.isoformat() if m.promoted_at else None,
        "training_seconds": m.training_seconds, "job_id": m.job_id, "test_hash": m.test_hash,
        "accuracy": langs, "stories": {"total": stories.get("total"), "failed": stories.get("failed")} if stories else None,
        "file_present": Path(m.path).exists(),
    }  # fmt: skip


class ModelRegistry:
    """``pin_file``: where promotions pin the model for the next start of an embedded Rasa (None: no pin).
    ``lease``: held during a promotion or rollback, so that replicas sharing the database take turns."""

    def __init__(self, sessions: sessionmaker[Session], pin_file: Path | None, swapper: ModelSwapper | None = None,
                 *, lease: Lease | None = None) -> None:
        self._sessions = sessions
        self.pin_file = Path(pin_file) if pin_file is not None else None
        self.swapper = swapper
        self.lease = lease or LocalLease(ROLLOUT_LEASE)
        self._busy = threading.Lock()

    def list(self) -> list[dict[str, Any]]:
        with self._sessions() as db:
            return [model_view(m) for m in db.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc()))]

    def get(self, model_id: str) -> ModelVersion:
        with self._sessions() as db:
            return get_or_raise(db, ModelVersion, model_id, RegistryError(404, f"no model {model_id!r}"))

    def active(self) -> ModelVersion | None:
        with self._sessions() as db:
            return db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))

    def file_of(self, file_name: str) -> Path | None:
        """The file of the registered model named ``file_name`` (as Rasa's /status names it), if still there."""
        with self._sessions() as db:
            m = db.get(ModelVersion, file_name.removesuffix(".tar.gz"))
        return Path(m.path) if m is not None and Path(m.path).exists() else None

    def register(self, path: Path, *, data_hash: str, config: str, actor: str, training_seconds: float | None = None,
                 job_id: int | None = None) -> ModelVersion:
        """Record a model file (idempotent: the same file keeps its first record)."""
        model_id = path.name.removesuffix(".tar.gz")
        with transaction(self._sessions) as db:
            m = db.get(ModelVersion, model_id)
            if m is None:
                m = ModelVersion(id=model_id, path=str(path), data_hash=data_hash, config=config, status="candidate",
                                 trained_by=actor, training_seconds=training_seconds, job_id=job_id, created_at=_now())
                db.add(m)
            elif job_id is not None and m.job_id is None:
                m.job_id = job_id
            return m

    def save_metrics(self, model_id: str, metrics: dict[str, Any], test_hash: str) -> None:
        with transaction(self._sessions) as db:
            m = db.get_one(ModelVersion, model_id)
            m.metrics, m.test_hash = metrics, test_hash

    def set_status(self, model_id: str, status: str) -> None:
        with transaction(self._sessions) as db:
            m = db.get_one(ModelVersion, model_id)
            if m.status != "active":
                m.status = status

    def mark_running(self, path: Path, *, data_hash: str, config: str) -> None:
        """At start-up: the model Rasa was started with is the active one (registered if new)."""
        self.register(path, data_hash=data_hash, config=config, actor="startup")
        with transaction(self._sessions) as db:
            for m in db.scalars(select(ModelVersion).where(ModelVersion.status == "active")):
                if m.id != path.name.removesuffix(".tar.gz"):
                    m.status = "retired"
            m = db.get_one(ModelVersion, path.name.removesuffix(".tar.gz"))
            if m.status != "active":
                m.status, m.promoted_at = "active", m.promoted_at or _now()

    def promote(self, model_id: str, actor: str, *, action: str = "promote", force: bool = False) -> dict[str, Any]:
        """Make ``model_id`` the model customers talk to. A model the gate refused needs ``force``."""
        with self._exclusive():
            return self._promote(model_id, actor, action=action, force=force)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One promotion or rollback at a time, in this process and among the gateways of one database;
        the lease is renewed while a long rollout runs, and expires if this gateway dies."""
        if not self._busy.acquire(blocking=False):
            raise RegistryError(409, "another promotion or rollback is in progress; try again when it is done")
        try:
            if not self.lease.try_acquire():
                raise RegistryError(409, "another gateway is promoting or rolling back a model; try again when it is done")
            stop = threading.Event()

            def renew() -> None:
                while not stop.wait(self.lease.ttl_s / 3):
                    try:
                        self.lease.try_acquire()
                    except Exception:  # the database is away: the rollout goes on, the lease may lapse
                        log.warning("could not renew the model rollout lease", exc_info=True)

            renewer = threading.Thread(target=renew, name="ops-rollout-lease", daemon=True)
            renewer.start()
            try:
                yield
            finally:
                stop.set()
                renewer.join()
                self.lease.release()
        finally:
            self._busy.release()

    def _promote(self, model_id: str, actor: str, *, action: str, force: bool) -> dict[str, Any]:
        m = self.get(model_id)
        if m.status == "active":
            raise RegistryError(409, f"model {model_id} is already active")
        if m.status == "refused" and not force and action == "promote":
            raise RegistryError(409, f"the regression gate refused model {model_id}; use rollback or force to load it anyway")
        path = Path(m.path)
        if not path.exists():
            raise RegistryError(410, f"the file of model {model_id} is gone ({path})")
        if self.swapper is None:
            raise RegistryError(503, "no Rasa server to load the model into (is the gateway running?)")
        previous = self.active()
        loaded_id = self.swapper.swap(path)
        now = _now()
        with transaction(self._sessions) as db:
            for other in db.scalars(select(ModelVersion).where(ModelVersion.status == "active")):
                other.status = "retired"
            row = db.get_one(ModelVersion, model_id)
            row.status, row.promoted_at = "active", now
            audit.add(db, actor, action, f"model:{model_id}",
                      {"previous": previous.id if previous else None, "rasa_model_id": loaded_id,
                       **({"replicas": report} if (report := getattr(self.swapper, "last_report", None)) else {})})
        self._write_pin(path)
        log.info("model %s", action, extra={"model": model_id, "previous": previous.id if previous else None, "by": actor})
        return {"active": model_id, "previous": previous.id if previous else None, "action": action}

    def rollback(self, actor: str, model_id: str | None = None) -> dict[str, Any]:
        """Back to ``model_id`` (any kept model), or to the model that was active before this one."""
        if model_id is None:
            with self._sessions() as db:
                current = db.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
                prior = db.scalar(
                    select(ModelVersion).where(ModelVersion.status != "active", ModelVersion.promoted_at.is_not(None))
                    .order_by(ModelVersion.promoted_at.desc()).limit(1)
                )  # fmt: skip
            if prior is None:
                raise RegistryError(409, "no earlier model to roll back to" + (f" (active: {current.id})" if current else ""))
            model_id = prior.id
        return self.promote(model_id, actor, action="rollback", force=True)

    def _write_pin(self, path: Path) -> None:
        if self.pin_file is None:
            return
        self.pin_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pin_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": str(path), "at": _now().isoformat()}), encoding="utf-8")
        os.replace(tmp, self.pin_file)


def active_model_file(sessions: sessionmaker[Session]) -> Path | None:
    """The file of the model the registry says is active, if it still exists: what a Rasa server of a
    cluster (re)starts on (cluster/launcher.py), so that every replica serves the promoted model."""
    with sessions() as db:
        path = db.scalar(select(ModelVersion.path).where(ModelVersion.status == "active"))
    return Path(path) if path and Path(path).exists() else None


def pinned_model(pin_file: Path) -> Path | None:
    """The model pinned by the last promotion or rollback, if its file still exists."""
    try:
        path = Path(json.loads(Path(pin_file).read_text(encoding="utf-8"))["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if path.exists() else None
