"""One child process of the cluster, supervised: started in a session of its own (so that it and
whatever it starts are stopped together), restarted when it exits unexpectedly (a crash, a SIGKILL),
its current pid in ``pid_file`` (tests kill it by that pid) and its output appended to ``log_file``.

The environment carries the secrets; the command line never does (``ps`` shows it to every user).
``prepare`` may rewrite the command line before each start (a Rasa server starts on the model promoted
since the cluster started: cluster/launcher.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a run this long resets the backoff
CRASH_LOOP = 5  # exits in a row, each before STABLE_AFTER_S, without ever answering its health check


class CrashLoop(RuntimeError):
    """A child kept exiting before it ever became healthy; the message names its log."""


@dataclass(eq=False, repr=False)  # no repr: env holds secrets
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path
    pid_file: Path
    health_url: str
    cwd: Path | None = None
    prepare: Callable[[str, list[str]], Awaitable[list[str]]] | None = None  # (name, argv) → argv of this start
    starts: int = field(init=False, default=0)
    healthy_once: bool = field(init=False, default=False)
    failure: CrashLoop | None = field(init=False, default=None)
    _proc: asyncio.subprocess.Process | None = field(init=False, default=None)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _stopping: bool = field(init=False, default=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"child-{self.name}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = await self.prepare(self.name, self.argv) if self.prepare is not None else self.argv
        with open(self.log_file, "ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start #{self.starts + 1} of {self.name}\n".encode())
            out.flush()
            proc = await asyncio.create_subprocess_exec(*argv, cwd=self.cwd, env=self.env, stdout=out,
                                                        stderr=out, stdin=asyncio.subprocess.DEVNULL,
                                                        start_new_session=True)
        self.starts += 1
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    async def _run(self) -> None:
        backoff, quick_exits = BACKOFF_MIN_S, 0
        while not self._stopping:
            started = time.monotonic()
            self._proc = await self._spawn()
            code = await self._proc.wait()
            self._kill_group(signal.SIGKILL)  # anything it started dies with it
            with contextlib.suppress(OSError):
                self.pid_file.unlink()
            if self._stopping:
                break
            lasted = time.monotonic() - started
            if lasted >= STABLE_AFTER_S:
                backoff, quick_exits = BACKOFF_MIN_S, 0
            else:
                quick_exits += 1
            if quick_exits >= CRASH_LOOP and not self.healthy_once:
                self.failure = CrashLoop(f"{self.name} exited {quick_exits} times in a row without becoming healthy "
                                         f"(last status {code}); see {self.log_file}")
                return
            print(f"[cluster] {self.name} exited with status {code}; restarting in {backoff:.0f} s", flush=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _kill_group(self, sig: signal.Signals) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    async def healthy(self, client: httpx.AsyncClient) -> bool:
        """Its health check answers 200 now (and it counts as having started properly once)."""
        if self.pid is None:
            return False
        try:
            ok = (await client.get(self.health_url, timeout=3)).status_code == 200
        except httpx.HTTPError:
            return False
        self.healthy_once |= ok
        return ok

    async def wait_healthy(self, timeout_s: float, interval_s: float = 0.5) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while not await self.healthy(client):
                if self.failure is not None:
                    raise self.failure
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} did not answer {self.health_url} within {timeout_s:.0f} s; "
                                       f"see {self.log_file}")
                await asyncio.sleep(interval_s)

    async def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM its process group; SIGKILL what is left after ``grace_s``. No restart after this."""
        self._stopping = True
        await self._end(grace_s)
        if self._task is not None:
            self._task.cancel()  # it may be waiting out a restart backoff
            await asyncio.gather(self._task, return_exceptions=True)
        await self._end(grace_s)  # one started while we were stopping the first
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    async def _end(self, grace_s: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            self._kill_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                print(f"[cluster] {self.name} did not stop within {grace_s:.0f} s of SIGTERM; killing it", flush=True)
        self._kill_group(signal.SIGKILL)  # the group: anything it started that is still there
        await proc.wait()
