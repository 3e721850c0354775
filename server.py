"""The gateway: FastAPI app factory and entry point (`python server.py` / `make run`).

Wires settings, storage, the demo store, the Rasa connection (a supervised child process, or
the server named by RASA_URL), the action server and the customer channels.
"""

from __future__ import annotations

import os

# Before numpy loads: OpenBLAS's worker threads spin after every small matrix product (the KB's
# question classifier, the review inbox) and took as much CPU as the requests themselves
# (bench/RESULTS.md, ## Load). Requests run in parallel instead; set it to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import secrets  # noqa: E402
import stat  # noqa: E402
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import uvicorn
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

import api_docs
import api_errors
import handoff
from bot.actions import runtime as action_runtime
from bot.actions.webhook import router as actions_router
from bot.rasa_process import RasaSupervisor
from bot.rasa_stores import RasaStores
from bot.training import ensure_model
from channels import http_guards
from channels.registry import routers as push_channel_routers
from channels.rest import router as rest_router
from channels.runtime import start_channels
from channels.widget import routes as widget
from conversations import language
from conversations.rasa_client import RasaClient, RasaUnavailable
from conversations.service import ConversationService
from handoff.api import agent_router as handoff_agent_router
from handoff.api import customer_router as handoff_customer_router
from handoff.console_routes import router as handoff_console_router
from kb_index import KBConfig, KnowledgeBase, load_path, make_embedder
from kb_index.admin_routes import router as kb_admin_router
from kb_index.answering import Answerer
from kb_index.config import answer_policy
from kb_index.questions import QuestionIndex, load_questions, merge_questions
from ops import service as ops_service
from ops.api import metrics_router as ops_metrics_router
from ops.api import router as ops_router
from ops.kb_questions import load_ops_questions
from ops.page import router as ops_page_router
from settings import Settings, get_settings
from storage.coordination import FIRST_MESSAGE_LOCKS, turn_locks_for
from storage.db import make_engine, make_session_factory, upgrade
from storage.replicas import SharedSecretMissing, check_shared_secrets
from storage.secrets import key_for
from store.seed import seed
from store.service import SqlOrdersService

log = logging.getLogger("supportbot")


async def _start_rasa(app: FastAPI, settings: Settings) -> RasaClient:
    """External mode: use RASA_URL. Embedded mode: train if needed, then supervise `rasa run`.

    Three keys (README "Security"): Rasa's API token (support ops swaps models through Rasa's HTTP
    API), the gateway channel's token (the gateway → Rasa) and the action server's (Rasa → the
    gateway). Embedded Rasa gets them through its environment, never its command line.
    """
    token = settings.rasa_token.get_secret_value() or secrets.token_urlsafe(24)
    app.state.rasa_token = token
    channel_token = key_for(settings, "rasa-channel", settings.rasa_channel_token.get_secret_value())
    if settings.rasa_url:
        app.state.rasa_process = None
        if not (settings.rasa_channel_token.get_secret_value() and settings.action_server_token.get_secret_value()):
            log.warning("external Rasa: set RASA_CHANNEL_TOKEN and ACTION_SERVER_TOKEN here and, as "
                        "GATEWAY_CHANNEL_TOKEN and ACTION_SERVER_TOKEN, in Rasa's environment (README, Security)")
        return RasaClient(settings.rasa_url, token, settings.rasa_timeout_s, channel_token=channel_token)
    # A model promoted (or rolled back to) by support ops stays live across restarts.
    model = ops_service.pinned(settings) or await to_thread.run_sync(
        lambda: ensure_model(settings.rasa_config, settings.model_dir, venv=settings.rasa_venv)
    )
    supervisor = RasaSupervisor(
        model=model,
        port=settings.rasa_port,
        token=token,
        channel_token=channel_token,
        action_token=app.state.action_server_token,
        action_endpoint=f"http://127.0.0.1:{settings.port}/actions/webhook",
        tracker_db=settings.data_dir / "rasa_tracker.db",
        log_file=settings.data_dir / "rasa.log",
        stores=RasaStores.from_settings(settings),  # PostgreSQL tracker, Redis locks: several Rasa servers
        venv=settings.rasa_venv,
        restart_backoff_s=settings.rasa_restart_backoff_s,
    )
    await supervisor.start()
    app.state.rasa_process = supervisor
    return RasaClient(supervisor.url, token, settings.rasa_timeout_s, channel_token=channel_token)


def _open_knowledge(settings: Settings, sessions: sessionmaker[Session] | None = None) -> Answerer:
    """Open the saved index and bring it up to date with the help centre folder.

    Upsert re-embeds only articles whose content changed, and leaves articles uploaded through the
    admin API alone, so a restart is cheap and loses nothing. The question index (questions each
    article answers: the help centre's hand-written ones merged with the ops inbox's, i.e. published
    drafts' and resolved knowledge gaps' questions) is refitted in a second; its embeddings are
    cached on disk.
    """
    embedder = make_embedder(settings.kb_embedder)
    # KB_INDEX_DIR: one index shared by every replica (kb_index/shared.py); else DATA_DIR/kb.
    kb = KnowledgeBase.open(settings.kb_data_dir, embedder, config=KBConfig.from_settings(settings))
    report = load_path(settings.kb_source_dir)
    for path, reason in report.errors:
        log.warning("help centre file skipped", extra={"path": str(path), "reason": str(reason)})
    kb.upsert(report.articles)
    questions = QuestionIndex(embedder, cache_dir=settings.data_dir / "kb-questions")
    ops_questions = load_ops_questions(sessions) if sessions is not None else {}
    questions.build(merge_questions(load_questions(settings.kb_source_dir / "questions"), ops_questions))
    log.info("knowledge base ready", extra={**kb.stats(), "questions": questions.size})
    return Answerer(kb, questions, answer_policy(settings))


async def _start_knowledge(app: FastAPI, settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Runs beside start-up: the bot says "search is starting" until it is done, never guesses."""
    try:
        answerer = await to_thread.run_sync(_open_knowledge, settings, sessions)
    except Exception:
        log.exception("knowledge base failed to load")
        app.state.knowledge_error = "knowledge base failed to load (see the log)"
        return
    app.state.knowledge = answerer.kb
    action_runtime.update(knowledge=answerer)


def _private_data_dir(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    refused = []
    for path in [data_dir, *(Path(root, n) for root, dirs, files in os.walk(data_dir) for n in [*dirs, *files])]:
        try:
            mode = path.lstat().st_mode
            if mode & 0o077 and not stat.S_ISLNK(mode):
                path.chmod(stat.S_IMODE(mode) & ~0o077)
        except OSError:  # not ours (a mounted volume): say so, the gateway still starts
            refused.append(str(path))
    if refused:
        log.warning("could not make data files private", extra={"files": refused[:20], "count": len(refused)})


class Health(BaseModel):
    status: Literal["ok"]


class KbCounts(BaseModel):
    articles: int
    chunks: int


class Ready(BaseModel):
    status: Literal["ready"]
    model: str | None  # the loaded Rasa model's id
    kb: KbCounts


class NotReady(BaseModel):
    status: Literal["unavailable"]
    missing: str  # what is not ready yet


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Several replicas (PostgreSQL, Redis) must share SECRET_KEY: refuse to start without it.
    check_shared_secrets(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Data (database, KB index, tracker store, secrets, logs) is for the gateway's user only:
        # DATA_DIR 0700, and anything an older install left readable by others tightened.
        await to_thread.run_sync(_private_data_dir, settings.data_dir)
        url = settings.sqlalchemy_url
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        # Migrations and the demo store's seeding run once however many replicas start together.
        await to_thread.run_sync(upgrade, url, lambda: seed(sessions, auto_refund_limit=settings.auto_refund_limit))
        action_runtime.configure(
            SqlOrdersService(sessions, auto_refund_limit=settings.auto_refund_limit), settings, sessions=sessions
        )
        app.state.knowledge = None
        knowledge_task = asyncio.create_task(_start_knowledge(app, settings, sessions))
        await to_thread.run_sync(language.warm_up)
        rasa = await _start_rasa(app, settings)
        app.state.conversations = ConversationService(
            sessions, rasa, max_attempts=settings.rasa_max_attempts,
            knowledge=lambda: action_runtime.services().knowledge,  # a task, or a problem it answers
            turn_locks=turn_locks_for(url),  # one turn per conversation at a time, across replicas on PostgreSQL
        )
        app.state.first_message_locks = turn_locks_for(url, namespace=FIRST_MESSAGE_LOCKS)  # channels/rest.py
        widget.install(app)  # the widget's pusher on app.state.pushers (created there if absent)
        # Telegram/WeChat (when configured): outbox worker, inbound retry, pushers for handoff.
        push_channels = start_channels(app, settings, sessions, app.state.conversations)
        # Human handoff: turn hooks, the handoff actions' service, agent API, timeouts, outbox.
        handoff_running = await handoff.start(
            app, sessions, settings, app.state.conversations, action_runtime.services().orders
        )
        action_runtime.update(handoff=handoff_running.service)
        # Support ops: review inbox collection, training jobs, model registry (ops/service.py).
        ops_running = await ops_service.start(app, settings, sessions)
        try:
            yield
        finally:
            await ops_running.stop()
            await handoff_running.stop()
            await push_channels.stop()
            knowledge_task.cancel()
            if app.state.rasa_process is not None:
                await app.state.rasa_process.stop()
            await rasa.close()
            await app.state.conversations.turn_locks.aclose()
            await app.state.first_message_locks.aclose()
            engine.dispose()

    # /docs is Swagger UI from the pinned fastapi-offline package under a CSP (api_docs.py), not a CDN.
    app = FastAPI(title="Support bot gateway", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    api_docs.install(app)
    app.state.settings = settings
    http_guards.install(app)  # body caps, per-address rate limits, 422s that never echo the input
    # Every refusal of a route, a dependency or a service is an ApiError: answered here, once.
    app.add_exception_handler(api_errors.ApiError, api_errors.handle)
    # What Rasa must present to run actions (bot/actions/webhook.py); known before Rasa starts.
    app.state.action_server_token = key_for(settings, "action-server", settings.action_server_token.get_secret_value())
    app.include_router(rest_router)
    app.include_router(widget.router)
    for router in push_channel_routers():  # every registered push channel's webhook (channels/registry.py)
        app.include_router(router)
    app.include_router(actions_router)
    app.include_router(kb_admin_router)
    app.include_router(handoff_agent_router)
    app.include_router(handoff_customer_router)
    app.include_router(ops_router)
    app.include_router(ops_metrics_router)
    app.include_router(ops_page_router)
    app.include_router(handoff_console_router)

    @app.get("/healthz", tags=["ops"], response_model=Health)
    async def healthz() -> dict[str, str]:
        """The process is alive (says nothing about Rasa)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=Ready,
             responses={503: {"model": NotReady, "description": "Rasa or the knowledge base is not ready"}})
    async def readyz(request: Request) -> dict[str, Any] | JSONResponse:
        """200 only when Rasa has a model loaded and answers; 503 says what is missing."""
        service: ConversationService = request.app.state.conversations
        # Unauthenticated: status, model id and counts only (no paths, addresses or versions).
        try:
            status = await service.rasa.status()
        except RasaUnavailable:
            missing = "Rasa is not answering or has no model loaded (starting or restarting)"
            return JSONResponse({"status": "unavailable", "missing": missing}, status_code=503)
        if request.app.state.knowledge is None:
            missing = getattr(request.app.state, "knowledge_error", "knowledge base still loading")
            return JSONResponse({"status": "unavailable", "missing": missing}, status_code=503)
        kb = request.app.state.knowledge.stats()
        return {"status": "ready", "model": status.get("model_id"), "kb": {"articles": kb["articles"], "chunks": kb["chunks"]}}

    return app


_STANDARD_LOG_KEYS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra={...}`` fields kept as fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{k: v for k, v in record.__dict__.items() if k not in _STANDARD_LOG_KEYS},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Rasa call is noise
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [handler]
        logging.getLogger(name).propagate = False


def main() -> None:
    # Everything the gateway and its Rasa child create (database, index, logs, secrets, models) is
    # readable by this user only; create_app's start-up also makes DATA_DIR itself 0700.
    os.umask(0o077)
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except SharedSecretMissing as err:
        log.critical("gateway not started: %s", err)
        raise SystemExit(2) from None
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_config=None,
        log_level=settings.log_level.lower(),
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise: anyone on the host could
        # then choose their own client address.
        proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )


if __name__ == "__main__":
    main()
