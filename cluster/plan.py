"""What one cluster run is made of, decided before anything starts: ports, the run's secrets, and the
command line and environment of every child (gateways, Rasa servers, HAProxy).

Secrets (README "Security") are generated per run unless the environment sets them, and reach the
children through their environment only: never a command line, a log line or the status file. The
ones an operator needs to sign in (the handoff admin's and demo agents' passwords, the admin API
token) are written to ``<run dir>/secrets.env`` (mode 0600), removed when the run stops.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.rasa_process import SERVING_THREADS, RasaSupervisor
from bot.rasa_stores import RasaStores
from bot.training import ROOT, rasa_env
from cluster import haproxy
from cluster.database import ClusterDatabase, shown

# Shared by every replica: SECRET_KEY (every derived key: conversation tokens, agent sessions...),
# Rasa's API token, the gateway channel's and the action server's tokens.
SHARED_SECRETS = ("SECRET_KEY", "RASA_TOKEN", "RASA_CHANNEL_TOKEN", "ACTION_SERVER_TOKEN")
# ... and the ones for people: written to secrets.env.
OPERATOR_SECRETS = ("HANDOFF_ADMIN_PASSWORD", "SUPPORTBOT_DEMO_AGENT_PASSWORD", "ADMIN_API_TOKEN")
SECRETS_FILE = "secrets.env"
STATUS_FILE = "cluster.json"


def run_secrets(environ: dict[str, str]) -> dict[str, str]:
    """Each secret from the environment when set there, else a new random one for this run."""
    return {name: environ.get(name) or secrets.token_urlsafe(24) for name in (*SHARED_SECRETS, *OPERATOR_SECRETS)}


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    port: int
    health_path: str

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.health_path}"


@dataclass(frozen=True, repr=False)  # no repr: secrets
class Plan:
    run_dir: Path
    database: ClusterDatabase
    redis_url: str
    model: Path
    host: str
    port: int  # the balancer's gateway frontend
    rasa_port: int  # the balancer's Rasa frontend
    gateway_ports: list[int]
    rasa_ports: list[int]
    secrets: dict[str, str]
    kb_index: Path | None = None
    rasa_venv: Path | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    # --- addresses -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        shown_host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{shown_host}:{self.port}"

    @property
    def local_url(self) -> str:
        """The gateways' frontend as the children reach it (Rasa's action endpoint)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def stores(self) -> RasaStores:
        return RasaStores(self.database.url, self.redis_url)

    @property
    def haproxy_config(self) -> Path:
        return self.run_dir / "haproxy.cfg"

    @property
    def haproxy_socket(self) -> Path:
        """HAProxy's runtime API (support ops takes a Rasa server out of rotation through it)."""
        return self.run_dir / "haproxy.sock"

    @property
    def rasa_replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.rasa_ports]

    @property
    def rasa_endpoints(self) -> Path:
        return self.run_dir / "rasa" / "rasa-endpoints.yml"

    # --- children --------------------------------------------------------------------------------
    def gateway(self, i: int) -> ChildSpec:
        port = self.gateway_ports[i]
        env = {**self.environ, **self.secrets,
               "HOST": "127.0.0.1", "PORT": str(port), "DATA_DIR": str(self.gateway_dir(i)),
               "DATABASE_URL": self.database.url, "REDIS_URL": self.redis_url, "RASA_URL": self.rasa_url,
               # a promotion loads the model into one Rasa server at a time, out of the balancer's rotation
               "RASA_REPLICA_URLS": json.dumps(self.rasa_replica_urls),
               "RASA_HAPROXY_SOCKET": str(self.haproxy_socket), "RASA_HAPROXY_BACKEND": "rasa",
               # the balancer's X-Forwarded-For names the customer (per-address limits); no one else's
               "FORWARDED_ALLOW_IPS": "127.0.0.1",
               # one knowledge base for every gateway (kb_index/shared.py): gateway-1's, where the prebuilt index is copied
               "KB_INDEX_DIR": str(self.gateway_dir(0) / "kb"),
               "PYTHONUNBUFFERED": "1", "RASA_TELEMETRY_ENABLED": "false"}
        for nested in ("STORAGE__DATA_DIR", "STORAGE__DATABASE_URL", "STORAGE__REDIS_URL", "RASA__URL",
                       "RASA__REPLICA_URLS", "RASA__HAPROXY_SOCKET", "RASA__HAPROXY_BACKEND", "KB__INDEX_DIR"):
            env.pop(nested, None)  # they would win over the values above
        return ChildSpec(f"gateway-{i + 1}", [sys.executable, str(ROOT / "server.py")], env, port, "/healthz")

    def gateway_dir(self, i: int) -> Path:
        return self.run_dir / f"gateway-{i + 1}"

    def _rasa_supervisor(self, i: int) -> RasaSupervisor:
        """The gateway's own description of a Rasa server (command line, endpoints file), for server i."""
        return RasaSupervisor(
            model=self.model, port=self.rasa_ports[i], token=self.secrets["RASA_TOKEN"],
            action_endpoint=f"{self.local_url}/actions/webhook", tracker_db=self.rasa_endpoints.parent / "tracker.db",
            log_file=self.run_dir / f"rasa-{i + 1}.log", venv=self.rasa_venv,
            channel_token=self.secrets["RASA_CHANNEL_TOKEN"], action_token=self.secrets["ACTION_SERVER_TOKEN"],
            stores=self.stores,
        )

    def rasa(self, i: int) -> ChildSpec:
        sup = self._rasa_supervisor(i)
        assert sup.endpoints_file == self.rasa_endpoints, "the shared endpoints file"
        env = rasa_env({**self.environ, "ACTION_ENDPOINT_URL": sup.action_endpoint, "RASA_TRACKER_DB": str(sup.tracker_db),
                        "RASA_AUTH_TOKEN": sup.token, "GATEWAY_CHANNEL_TOKEN": sup.channel_token,
                        "ACTION_SERVER_TOKEN": sup.action_token, **self.stores.env()})
        for name, value in SERVING_THREADS.items():
            env.setdefault(name, value)
        return ChildSpec(f"rasa-{i + 1}", sup.command(), env, self.rasa_ports[i], "/")

    def balancer(self) -> ChildSpec:
        env = {k: v for k, v in self.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return ChildSpec("haproxy", haproxy.command(self.haproxy_config), env, self.port, "/healthz")

    def haproxy_text(self) -> str:
        gateways = [haproxy.Backend(f"gateway-{i + 1}", p) for i, p in enumerate(self.gateway_ports)]
        rasa = [haproxy.Backend(f"rasa-{i + 1}", p) for i, p in enumerate(self.rasa_ports)]
        return haproxy.render(self.port, gateways, self.rasa_port, rasa, host=self.host,
                              admin_socket=self.haproxy_socket)

    # --- files -----------------------------------------------------------------------------------
    def write_secrets(self) -> Path:
        path = self.run_dir / SECRETS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# this cluster run's sign-in secrets (removed when it stops)\n")
            out.writelines(f"{name}={self.secrets[name]}\n" for name in OPERATOR_SECRETS)
        return path

    def status(self, pid: int) -> dict[str, Any]:
        """What a script or a test needs to find its way in; no secret (only where they are)."""
        def child(spec: ChildSpec) -> dict[str, Any]:
            return {"name": spec.name, "port": spec.port, "url": f"http://127.0.0.1:{spec.port}",
                    "pid_file": str(self.run_dir / f"{spec.name}.pid"), "log": str(self.run_dir / f"{spec.name}.log")}

        return {
            "launcher_pid": pid, "url": self.url, "rasa_url": self.rasa_url,
            "database_url": shown(self.database.url), "database_schema": self.database.schema,
            "rasa_schema": self.database.rasa_schema, "redis_url": shown_redis(self.redis_url),
            "model": str(self.model), "haproxy_config": str(self.haproxy_config),
            "haproxy_socket": str(self.haproxy_socket),
            "secrets_file": str(self.run_dir / SECRETS_FILE),
            "gateways": [child(self.gateway(i)) for i in range(len(self.gateway_ports))],
            "rasa": [child(self.rasa(i)) for i in range(len(self.rasa_ports))],
            "haproxy": child(self.balancer()),
        }

    def write_status(self, pid: int) -> Path:
        path = self.run_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(pid), indent=2) + "\n")
        tmp.replace(path)  # whoever waits for the file reads it whole
        return path


def with_model(argv: list[str], model: Path) -> list[str]:
    """A Rasa server's command line (``RasaSupervisor.command``) with ``--model`` set to ``model``."""
    out = list(argv)
    i = out.index("--model")
    out[i + 1] = str(model)
    return out


def shown_redis(url: str) -> str:
    """A Redis URL without its password."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
