"""The gateway's channel stack on real HTTP, for channel tests.

Not a fake: uvicorn in a thread serving the real Telegram and WeChat routers, with the real
conversation service, Rasa client, SQLite database (migrated by Alembic), relay, outbox and
pushers, wired by ``channels.runtime.start_channels`` exactly as ``server.py`` does. It leaves out
what channel tests do not need (the knowledge-base index build, the widget, the action server),
and talks to whatever Rasa ``rasa_url`` names: a live one (through ``TcpProxy`` to take it down),
or a closed port (Rasa down: messages stay pending).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from channels.runtime import ChannelsRuntime, start_channels
from channels.telegram import router as telegram_router
from channels.wechat import router as wechat_router
from conversations import language
from conversations.rasa_client import RasaClient
from conversations.service import ConversationService
from scenarios.system import free_port
from settings import Settings
from storage.db import make_engine, make_session_factory, upgrade

# Outbox and inbound retries quick enough for a test to watch them happen (the live Rasa is slower).
QUICK_RETRIES: dict[str, Any] = {
    "outbox_retry_base_s": 0.1, "outbox_retry_max_s": 0.5, "outbox_poll_s": 0.2, "channel_inbound_retry_s": 0.3,
}  # fmt: skip
LIVE_RETRIES: dict[str, Any] = {
    "outbox_retry_base_s": 0.2, "outbox_retry_max_s": 1.0, "outbox_poll_s": 0.2, "channel_inbound_retry_s": 0.5,
}  # fmt: skip


def closed_port_url() -> str:
    """A URL where nothing listens: Rasa is down."""
    return f"http://127.0.0.1:{free_port()}"


class ChannelGateway:
    def __init__(self, data_dir: Path, rasa_url: str, rasa_token: str = "test-token", **settings: Any) -> None:
        self.port = free_port()
        self.settings = Settings(data_dir=data_dir, port=self.port, rasa_url=rasa_url, rasa_token=rasa_token,
                                 **settings)
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = self._build()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runtime: ChannelsRuntime | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.db: Engine = create_engine(self.settings.sqlalchemy_url)

    def _build(self) -> FastAPI:
        settings = self.settings

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            upgrade(settings.sqlalchemy_url)
            engine = make_engine(settings.sqlalchemy_url)
            sessions = make_session_factory(engine)
            language.warm_up()  # as server.py does: the first message must not wait for the detector to load
            rasa = RasaClient(str(settings.rasa_url), settings.rasa_token.get_secret_value(), settings.rasa_timeout_s,
                              channel_token=settings.rasa_channel_token.get_secret_value())  # Rasa's gateway channel
            app.state.conversations = ConversationService(sessions, rasa)
            self.runtime = start_channels(app, settings, sessions, app.state.conversations)
            self.loop = asyncio.get_running_loop()
            try:
                yield
            finally:
                await self.runtime.stop()
                await rasa.close()
                engine.dispose()

        app = FastAPI(lifespan=lifespan)
        app.state.settings = settings
        app.include_router(telegram_router)
        app.include_router(wechat_router)
        return app

    def start(self) -> ChannelGateway:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("channel gateway did not start")
            time.sleep(0.05)
        return self

    def __enter__(self) -> ChannelGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.db.dispose()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's event loop (e.g. a handoff push) and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(text(sql), params))

    def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        return int(self.query(f"select count(*) from {table} where {where}", **params)[0][0])  # noqa: S608 - test SQL


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` (an event, not a timing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
