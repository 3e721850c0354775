"""``python -m cluster run --gateways N --rasa M``: a local cluster on one machine (README "Running
several replicas"). Exit status: 0 stopped by Ctrl-C/SIGTERM after running; 1 it could not start or
a child kept failing; 2 wrong arguments."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from cluster import database, haproxy
from cluster.launcher import LaunchError, check_redis, run, say_default
from cluster.plan import Plan, run_secrets
from scenarios.system import cached_kb_index, free_ports

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="N gateways and M Rasa servers behind HAProxy, on this machine's PostgreSQL and Redis.")


@app.callback()
def _root() -> None:
    """A local cluster of the support bot."""


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HAProxy binds: TIME_WAIT is no obstacle
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ports(wanted: int, n: int) -> tuple[int, list[int]]:
    """The balancer's port (``wanted``, or a free one for 0) and ``n`` free ports for the servers behind it."""
    free = free_ports(n + 1)
    return (wanted or free[0]), free[1:]


@app.command("run")
def run_command(
    gateways: Annotated[int, typer.Option(min=1, max=16, help="gateway replicas")] = 2,
    rasa: Annotated[int, typer.Option(min=1, max=8, help="Rasa servers (each loads the model: ~1 GB of memory)")] = 2,
    port: Annotated[int, typer.Option(min=0, max=65535, help="the balancer's gateway port (0: a free one)")] = 8000,
    rasa_port: Annotated[int, typer.Option(min=0, max=65535, help="the balancer's Rasa port (0: a free one)")] = 5005,
    host: Annotated[str, typer.Option(help="address the balancer's gateway port listens on")] = "127.0.0.1",
    database_url: Annotated[str | None, typer.Option(
        envvar="DATABASE_URL", show_envvar=True,
        help="PostgreSQL for every replica (kept after the run); default: a fresh schema on --postgres")] = None,
    postgres: Annotated[str, typer.Option(
        envvar="CLUSTER_POSTGRES_URL", help="server for the fresh schema, without DATABASE_URL")] = database.DEFAULT_POSTGRES,
    redis_url: Annotated[str, typer.Option(envvar="REDIS_URL", show_envvar=True, help="Redis shared by the replicas")] = DEFAULT_REDIS,
    run_dir: Annotated[Path | None, typer.Option(help="logs, pid files, cluster.json (default: data/cluster-<time>)")] = None,
    kb_index: Annotated[Path | None, typer.Option(
        help="a built help-centre index to copy into each gateway (default: the newest the tests cached)")] = None,
    keep_data: Annotated[bool, typer.Option(help="keep the fresh schema (and Rasa's) after the run")] = False,
    startup_timeout: Annotated[float, typer.Option(min=10, help="seconds for everything to become ready")] = 900,
) -> None:
    """Start the cluster, print its URLs, supervise it until Ctrl-C, then stop it."""
    from bot.training import ensure_model
    from settings import get_settings

    signal.signal(signal.SIGTERM, _interrupted)  # stopped while preparing: the fresh schema is dropped too
    try:
        if database_url:
            database.require_postgres(database_url)
        haproxy.executable()
        for wanted, what in ((port, "--port"), (rasa_port, "--rasa-port")):
            if wanted and not port_free(host if what == "--port" else "127.0.0.1", wanted):
                raise LaunchError(f"port {wanted} is in use (`make run`?): choose another with {what} (0: a free one)")
        check_redis(redis_url)
        db = database.given(database_url) if database_url else database.fresh_schema(postgres)
    except (FileNotFoundError, LaunchError, database.DatabaseError) as err:
        say_default(f"error: {err}")
        raise typer.Exit(1) from None
    try:
        say_default(f"database {database.shown(db.url)}: migrating once… at {database.migrate(db)}")
        settings = get_settings()
        say_default("checking the trained model (training takes minutes when the training data changed)…")
        model = ensure_model(settings.rasa_config, settings.model_dir, venv=settings.rasa_venv)
        model, why = database.serving_model(db, model, settings.rasa_config)
        say_default(f"model: {why}")
    except (database.DatabaseError, RuntimeError, SystemExit, KeyboardInterrupt) as err:
        say_default(f"error: {err}" if not isinstance(err, KeyboardInterrupt) else "interrupted")
        if db.schema is not None:
            db.drop()
        raise typer.Exit(1) from None
    balancer_port, gateway_ports = ports(port, gateways)
    balancer_rasa_port, rasa_ports = ports(rasa_port, rasa)
    where = (run_dir or ROOT / "data" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    index = kb_index or cached_kb_index()
    if index is None:
        say_default("no built help-centre index found: each gateway embeds the help centre on start (minutes)")
    plan = Plan(run_dir=where, database=db, redis_url=redis_url, model=model, host=host, port=balancer_port,
                rasa_port=balancer_rasa_port, gateway_ports=gateway_ports, rasa_ports=rasa_ports,
                secrets=run_secrets(dict(os.environ)), kb_index=index, rasa_venv=settings.rasa_venv)
    raise typer.Exit(asyncio.run(run(plan, keep_data=keep_data, startup_timeout_s=startup_timeout)))


def main() -> int:
    try:
        return int(app(standalone_mode=False) or 0)
    except typer.Exit as done:
        return int(done.exit_code)
    except typer.Abort:
        return 130
    except typer.BadParameter as err:
        err.show()
        return 2
    except Exception as err:  # click's usage errors
        show = getattr(err, "show", None)
        if callable(show):
            show()
            return 2
        raise
