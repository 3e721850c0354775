"""One cluster run: prepare (database and migrations once, model once, Rasa's endpoints, HAProxy's
configuration), start every child, wait until the balancer answers ``/readyz``, supervise (a child
that dies is restarted; one that never comes up ends the run), and stop everything on SIGINT/SIGTERM:
gateways first (they finish their turns), then the balancer and the Rasa servers.

``<run dir>/cluster.json`` (written once the cluster is ready) names the URLs, ports, pid files and
logs; each child's current pid is in ``<run dir>/<name>.pid``.

The model: every Rasa server starts, and restarts, on the model support ops' registry says is active
(``ops_models`` in the shared database: a promotion from any gateway changes it once the model is loaded
on every server; ``ops.registry.active_model_file``), else on the one the cluster was started with.
A server that restarts while a rollout is under way (the database still names the previous model) comes
back on the previous model; the rollout loads the new one into it again when it finds it so at its end
(``RollingSwapper.swap``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import NullPool

from cluster import database, haproxy
from cluster.database import ClusterDatabase
from cluster.plan import STATUS_FILE, ChildSpec, Plan, shown_redis, with_model
from cluster.processes import Child
from ops.registry import active_model_file

Say = Callable[[str], None]


class LaunchError(RuntimeError):
    """The cluster cannot start; the message says why and where to look."""


def say_default(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def check_redis(url: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as err:
        raise LaunchError(f"Redis does not answer at {shown_redis(url)}: {type(err).__name__}: {err}") from None


def copy_kb_index(kb_index: Path | None, data_dir: Path) -> None:
    """A built help-centre index into a gateway's DATA_DIR (it then only embeds what changed)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if kb_index is not None:
        shutil.copytree(kb_index, data_dir, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)


@dataclass(eq=False)
class Cluster:
    plan: Plan
    say: Say = say_default
    startup_timeout_s: float = 900.0
    children: dict[str, Child] = field(default_factory=dict)
    _db: Engine | None = None

    def _child(self, spec: ChildSpec, prepare: Callable[[str, list[str]], Awaitable[list[str]]] | None = None) -> Child:
        run_dir = self.plan.run_dir
        child = Child(spec.name, spec.argv, spec.env, run_dir / f"{spec.name}.log", run_dir / f"{spec.name}.pid",
                      spec.health_url, cwd=Path(__file__).resolve().parent.parent, prepare=prepare)
        self.children[spec.name] = child
        return child

    def prepare(self) -> None:
        """Everything before the first child: files, Rasa's schema, HAProxy's configuration (checked)."""
        plan = self.plan
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(plan.run_dir, 0o700)  # logs and secrets.env: this user's only
        plan.stores.prepare()  # Rasa's tracker schema, once
        plan.stores.write(plan.rasa_endpoints)
        if len(str(plan.haproxy_socket)) > 100:  # a Unix socket's path has at most 107 bytes
            raise LaunchError(f"the run directory's path is too long for HAProxy's runtime socket "
                              f"({plan.haproxy_socket}): choose a shorter --run-dir")
        plan.haproxy_config.write_text(plan.haproxy_text())
        checked = subprocess.run(haproxy.check_command(plan.haproxy_config), capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise LaunchError(f"HAProxy refuses {plan.haproxy_config}: {(checked.stderr or checked.stdout).strip()}")
        for i in range(len(plan.gateway_ports)):
            copy_kb_index(plan.kb_index, plan.gateway_dir(i))
        plan.write_secrets()

    async def start(self) -> None:
        """Start every child (Rasa first: it takes longest), then wait for each and for the balancer."""
        plan = self.plan
        rasa = [self._child(plan.rasa(i), prepare=self.active_model) for i in range(len(plan.rasa_ports))]
        gateways = [self._child(plan.gateway(i)) for i in range(len(plan.gateway_ports))]
        balancer = self._child(plan.balancer())
        for child in [*rasa, gateways[0], balancer]:
            await child.start()
        self.say(f"started {len(rasa)} Rasa server(s), gateway-1 and HAProxy; loading the model "
                 f"(a minute or more per Rasa server)…")
        # The first gateway alone seeds a fresh database (demo store, handoff accounts); the others
        # start once it answers, so that replicas do not race to insert the same seed rows.
        await gateways[0].wait_healthy(self.startup_timeout_s)
        for child in gateways[1:]:
            await child.start()
        await asyncio.gather(*(c.wait_healthy(self.startup_timeout_s) for c in [*gateways, balancer]))
        self.say("gateways are up; waiting for the Rasa servers")
        await asyncio.gather(*(c.wait_healthy(self.startup_timeout_s) for c in rasa))
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        """Until every gateway's own ``/readyz`` (Rasa reachable through the balancer, knowledge base
        loaded) and the balancer's answer 200."""
        deadline = time.monotonic() + self.startup_timeout_s
        waiting = [f"http://127.0.0.1:{p}/readyz" for p in self.plan.gateway_ports] + [f"{self.plan.local_url}/readyz"]
        async with httpx.AsyncClient() as client:
            while waiting:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(waiting[0], timeout=5)).status_code == 200:
                        waiting.pop(0)
                        continue
                if failed := self.failure():
                    raise LaunchError(failed)
                if time.monotonic() > deadline:
                    raise LaunchError(f"{waiting[0]} did not answer 200 within {self.startup_timeout_s:.0f} s; "
                                      f"see the logs in {self.plan.run_dir}")
                await asyncio.sleep(1)

    async def active_model(self, name: str, argv: list[str]) -> list[str]:
        """Rasa server ``name``'s command line for this start: on the model the registry says is active
        (promoted since the cluster started, from any gateway), when its file is there."""
        current = Path(argv[argv.index("--model") + 1])
        try:
            if self._db is None:
                self._db = create_engine(self.plan.database.url, poolclass=NullPool,
                                         connect_args={"connect_timeout": 5})
            model = await asyncio.to_thread(active_model_file, sessionmaker(self._db))
        except Exception as err:  # the type only: a connection error may quote the URL
            self.say(f"{name}: cannot read the active model from the database ({type(err).__name__}); "
                     f"starting on {current.name}")
            return argv
        if model is None or model == current:
            return argv
        self.say(f"{name} starts on the active model {model.name}")
        return with_model(argv, model)

    def failure(self) -> str | None:
        """Why the cluster cannot go on (a child in a crash loop), or None."""
        for child in self.children.values():
            if child.failure is not None:
                return str(child.failure)
        return None

    def announce(self) -> Path:
        status = self.plan.write_status(os.getpid())
        plan = self.plan
        lines = [
            "ready:",
            f"  gateways (balanced):  {plan.url}   console {plan.url}/console   demo store {plan.url}/demo   "
            f"API docs {plan.url}/docs",
            f"  Rasa (balanced):      {plan.rasa_url}",
            *(f"  {c.name}: http://127.0.0.1:{p}" for c, p in zip(
                [self.children[f"gateway-{i + 1}"] for i in range(len(plan.gateway_ports))], plan.gateway_ports,
                strict=True)),
            *(f"  rasa-{i + 1}: http://127.0.0.1:{p}" for i, p in enumerate(plan.rasa_ports)),
            f"  database: {database.shown(plan.database.url)} (Rasa's tracker in schema {plan.database.rasa_schema})",
            f"  redis: {shown_redis(plan.redis_url)}",
            f"  sign-in secrets: {plan.run_dir / 'secrets.env'}   logs, pids and {STATUS_FILE}: {plan.run_dir}",
            "  stop with Ctrl-C",
        ]
        self.say("\n".join(lines))
        return status

    async def stop(self) -> None:
        gateways = [c for n, c in self.children.items() if n.startswith("gateway-")]
        others = [c for n, c in self.children.items() if not n.startswith("gateway-")]
        await asyncio.gather(*(c.stop() for c in gateways))
        await asyncio.gather(*(c.stop() for c in others))
        with contextlib.suppress(OSError):
            (self.plan.run_dir / "secrets.env").unlink()
        with contextlib.suppress(OSError):
            (self.plan.run_dir / STATUS_FILE).unlink()
        if self._db is not None:
            self._db.dispose()


async def run(plan: Plan, *, keep_data: bool, startup_timeout_s: float, say: Say = say_default) -> int:
    """The whole run; the exit status (0 after a clean stop by a signal)."""
    cluster = Cluster(plan, say, startup_timeout_s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    status = 0
    try:
        cluster.prepare()
        starting = asyncio.create_task(cluster.start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            say("stopped before the cluster was ready")
            return 130
        stopping.cancel()
        starting.result()
        cluster.announce()
        while not stop.is_set():
            if failed := cluster.failure():
                say(f"giving up: {failed}")
                status = 1
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        return status
    except (LaunchError, TimeoutError, OSError, RuntimeError) as err:
        say(f"error: {err}")
        return 1
    except Exception as err:  # e.g. the database refusing Rasa's schema: say it, then stop what started
        say(f"error: {type(err).__name__}: {err}")
        return 1
    finally:
        say("stopping…")
        await cluster.stop()
        _finish_database(plan.database, keep_data, say)
        say("stopped")


def _finish_database(db: ClusterDatabase, keep_data: bool, say: Say) -> None:
    if db.schema is None:
        return
    if keep_data:
        say(f"kept schemas {db.schema} and {db.rasa_schema}; DATABASE_URL={database.shown(db.url)}")
        return
    try:
        db.drop()
        say(f"dropped this run's schemas {db.schema} and {db.rasa_schema}")
    except Exception as err:  # the run is over either way: say what is left behind
        say(f"could not drop schema {db.schema}: {type(err).__name__}: {err}")
