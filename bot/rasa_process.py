"""Rasa as a supervised child process (the default "embedded" mode).

Rasa 3.6 needs its own Python 3.10 environment, so it can't run inside the gateway; the
gateway starts ``rasa run`` with the trained model, restarts it whenever it exits, and stops
it (the whole process group) when the gateway stops. With ``RASA_URL`` set none of this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.rasa_stores import RasaStores
from bot.training import ROOT, rasa_env, rasa_executable

log = logging.getLogger(__name__)


# Serving works on one message at a time. The default thread pools (one thread per core) of
# OpenBLAS (numpy, under the intent classifier) and TensorFlow (the TED policy) then spin between
# tiny operations and took most of a core from the gateway and the action server running beside
# Rasa; one thread each does the same work without the spin (bench/RESULTS.md, ## Load). Set in
# the environment to override.
SERVING_THREADS = {
    "OPENBLAS_NUM_THREADS": "1",
    "TF_INTER_OP_PARALLELISM_THREADS": "1",
    "TF_INTRA_OP_PARALLELISM_THREADS": "1",
}


@dataclass(eq=False, repr=False)  # no repr: it would print the tokens
class RasaSupervisor:
    """Starts ``rasa run`` with ``model`` on ``port`` and keeps it running until ``stop``.

    ``token``: Rasa's HTTP API token; ``channel_token``: what the gateway channel accepts;
    ``action_token``: what Rasa sends to the action server. All three reach Rasa through its
    environment (bot/rasa_serve.py, bot/gateway_channel.py, bot/endpoints.yml), never argv.

    ``stores``: where the tracker and the locks live (bot/rasa_stores.py). The default is
    ``bot/endpoints.yml`` (the SQLite file ``tracker_db``); with PostgreSQL and/or Redis configured,
    an endpoints file rendered next to ``tracker_db``, so that several Rasa servers share both."""

    model: Path
    port: int
    token: str
    action_endpoint: str
    tracker_db: Path
    log_file: Path
    venv: Path | None = None
    restart_backoff_s: float = 2.0
    channel_token: str = ""
    action_token: str = ""
    stores: RasaStores = field(default_factory=RasaStores)
    starts: int = field(init=False, default=0)
    _proc: asyncio.subprocess.Process | None = field(init=False, default=None)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _stopping: bool = field(init=False, default=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def command(self) -> list[str]:
        """No secret here: the command line is visible to every user of the machine (``ps``)."""
        python = rasa_executable(self.venv).parent / "python"
        return [
            str(python), "-m", "bot.rasa_serve", "run",
            "--model", str(self.model),
            "--endpoints", str(self.endpoints_file),
            "--credentials", str(ROOT / "bot" / "credentials.yml"),
            "--interface", "127.0.0.1", "--port", str(self.port),
            "--enable-api",
        ]

    @property
    def endpoints_file(self) -> Path:
        return ROOT / "bot" / "endpoints.yml" if self.stores.default else self.tracker_db.parent / "rasa-endpoints.yml"

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.tracker_db.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = rasa_env({
            "ACTION_ENDPOINT_URL": self.action_endpoint, "RASA_TRACKER_DB": str(self.tracker_db),
            "RASA_AUTH_TOKEN": self.token, "GATEWAY_CHANNEL_TOKEN": self.channel_token,
            "ACTION_SERVER_TOKEN": self.action_token, **self.stores.env(),
        })
        for name, value in SERVING_THREADS.items():
            env.setdefault(name, value)
        with open(self.log_file, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *self.command(), cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
            )
        self.starts += 1
        log.info("rasa started", extra={"pid": proc.pid, "port": self.port, "model": self.model.name})
        return proc

    async def _run(self) -> None:
        while not self._stopping:
            self._proc = await self._spawn()
            code = await self._proc.wait()
            if self._stopping:
                break
            log.warning("rasa exited; restarting", extra={"code": code, "backoff_s": self.restart_backoff_s})
            await asyncio.sleep(self.restart_backoff_s)

    async def start(self) -> None:
        if not self.stores.default:  # the tracker's schema, and the file every start of this Rasa reads
            await asyncio.to_thread(self.stores.prepare)
            await asyncio.to_thread(self.stores.write, self.endpoints_file)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="rasa-supervisor")

    def clone(self, model: Path, port: int) -> RasaSupervisor:
        """A supervisor like this one (token, action endpoint, tracker store, log, venv) for another
        model on another port: support ops starts it beside this one to swap models without a gap."""
        return replace(self, model=model, port=port)

    def kill(self) -> None:
        """Kill the current Rasa process (tests use it to prove the restart)."""
        if self._proc and self._proc.returncode is None:
            os.killpg(self._proc.pid, signal.SIGKILL)

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping = True
        proc = self._proc
        if proc and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), grace_s)
            except (TimeoutError, ProcessLookupError):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)
