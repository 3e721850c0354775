"""Rolling promotion over several Rasa replicas behind HAProxy (issue 16): no turn waits for a model load.

Rasa 3.6 loads a model (``PUT /model``) on its event loop: every turn sent to that server meanwhile
waits, 27-37 s on two busy cores, longer than the gateway's Rasa timeout (see ``BlueGreenSwapper``).
``RollingSwapper`` therefore changes one replica at a time while the others answer:

1. take it out of the balancer's rotation (``set server <backend>/<server> state drain`` on HAProxy's
   runtime socket) and wait until its in-flight turns are done (``show stat``: no current session
   or queued request; at most the gateway's Rasa timeout, after which those turns have failed anyway);
2. ``PUT /model`` on the replica's own URL (Rasa's API token), then ``/status`` must name the model;
3. ``state ready`` and wait until HAProxy's health checks have it ``UP`` again; then the next one.

A replica is only taken out while another one is in rotation. One that fails to load stops the roll:
the replicas already changed (and the failed one, if it reports the new model) are rolled back the
same way onto the model each of them served before, and the promotion fails with a ``RegistryError``
saying what happened; the registry's active model (the database) is not changed then.

Without a runtime socket (``RASA_HAPROXY_SOCKET`` unset) the replicas still change one at a time, but
nothing takes them out of rotation: turns sent to the one loading wait for it. With a single replica in
the backend there is nobody to take its turns, so it loads in place (as ``RasaModelSwapper``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ops.registry import RegistryError

log = logging.getLogger(__name__)

LOAD_TIMEOUT_S = 600.0  # one replica's PUT /model (a model load on two busy cores took up to a minute)
UP_TIMEOUT_S = 120.0  # back in rotation after the load (HAProxy: two good health checks, a second apart)


class RolloutError(RuntimeError):
    """One step of a rollout failed; the message says which and why."""


@dataclass(frozen=True)
class ServerStat:
    """One server of an HAProxy backend, from ``show stat``."""

    name: str
    addr: str  # "127.0.0.1:5101"
    status: str  # UP, DOWN, DRAIN, MAINT, "UP 1/3" (going down), "no check", ...
    scur: int  # current sessions (turns in flight)
    qcur: int  # requests queued for it

    @property
    def in_rotation(self) -> bool:
        return self.status in ("UP", "no check")


class HAProxyRuntime:
    """HAProxy's runtime API on its admin socket (``stats socket <path> level admin``), for one backend."""

    def __init__(self, socket_path: Path, backend: str, timeout_s: float = 5.0) -> None:
        self.socket_path, self.backend, self.timeout_s = Path(socket_path), backend, timeout_s

    def command(self, line: str) -> str:
        """One command, non-interactive: HAProxy answers and closes the connection."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout_s)
                s.connect(str(self.socket_path))
                s.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
        except OSError as err:
            raise RolloutError(f"HAProxy's runtime socket {self.socket_path} does not answer: {err}") from None
        return b"".join(chunks).decode(errors="replace")

    def servers(self) -> dict[str, ServerStat]:
        text = self.command("show stat -1 4 -1").lstrip("# ")  # every proxy's servers (a frontend may share the name)
        rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("pxname") == self.backend]
        out = {r["svname"]: ServerStat(r["svname"], r.get("addr") or "", r.get("status") or "",
                                       int(r.get("scur") or 0), int(r.get("qcur") or 0))
               for r in rows if r.get("svname") not in ("FRONTEND", "BACKEND")}  # fmt: skip
        if not out:
            raise RolloutError(f"HAProxy has no backend {self.backend!r} with servers (RASA_HAPROXY_BACKEND)")
        return out

    def set_state(self, server: str, state: str) -> None:
        answer = self.command(f"set server {self.backend}/{server} state {state}").strip()
        if answer:
            raise RolloutError(f"HAProxy refused 'set server {self.backend}/{server} state {state}': {answer}")


@dataclass
class Replica:
    url: str
    server: str | None = None  # its name in HAProxy's backend

    @property
    def name(self) -> str:
        return self.server or self.url


def _address(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    with contextlib.suppress(OSError):
        host = socket.gethostbyname(host)
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class RollingSwapper:
    """Promotes a model on every Rasa replica in turn (see the module's docstring).

    ``locate`` finds the file of a model a replica reports (``/status`` gives its file name only), to
    roll back to; ops/service.py gives one that asks the registry, then ``MODEL_DIR``."""

    def __init__(
        self,
        replica_urls: Sequence[str],
        token: str,
        *,
        balancer: HAProxyRuntime | None = None,
        locate: Callable[[str], Path | None] | None = None,
        drain_timeout_s: float = 35.0,
        load_timeout_s: float = LOAD_TIMEOUT_S,
        up_timeout_s: float = UP_TIMEOUT_S,
        poll_s: float = 0.2,
    ) -> None:
        if not replica_urls:
            raise ValueError("a rolling swap needs at least one Rasa replica URL")
        self.replicas = [Replica(u.rstrip("/")) for u in replica_urls]
        self.token, self.balancer, self.locate = token, balancer, locate
        self.drain_timeout_s, self.load_timeout_s = drain_timeout_s, load_timeout_s
        self.up_timeout_s, self.poll_s = up_timeout_s, poll_s
        self.last_report: list[dict[str, Any]] = []  # per replica: what happened and how long it took
        if balancer is None:
            log.warning(
                "rolling model swaps without HAProxy's runtime socket: turns sent to a replica while "
                "it loads a model wait for it (set RASA_HAPROXY_SOCKET)"
            )

    # --- the roll --------------------------------------------------------------------------------
    def swap(self, model_path: Path) -> str:
        """Every replica on ``model_path``, one at a time; returns the model id Rasa reports."""
        try:
            self._map_servers()
            before = {r.url: self._status(r) for r in self.replicas}
        except RolloutError as err:
            raise RegistryError(503, f"{err}; nothing was changed") from None
        old: dict[str, Path] = {}
        for r in self.replicas:
            name = before[r.url]["model_file"]
            if name != model_path.name:
                found = self.locate(name) if self.locate is not None else None
                if found is None:
                    raise RegistryError(
                        409,
                        f"Rasa replica {r.name} serves {name}, whose file cannot be found to roll "
                        "back to if the rollout fails; nothing was changed",
                    )
                old[r.url] = found
        report: list[dict[str, Any]] = [
            {"replica": r.name, "model": model_path.name, "model_id": before[r.url]["model_id"], "skipped": True}
            for r in self.replicas
            if r.url not in old
        ]
        changed: list[Replica] = []
        self._roll_all([r for r in self.replicas if r.url in old], model_path, old, changed, report)
        # One rolled already that restarted meanwhile came back on the model the database still names
        # (cluster/launcher.py): roll it again. A restart after this check, before the promotion is
        # recorded, is not caught.
        self._roll_all([r for r in changed if self._serves_other(r, model_path)], model_path, old, changed, report)
        self.last_report = report
        return str(report[-1].get("model_id") or "") if report else ""

    def _roll_all(
        self,
        replicas: list[Replica],
        model_path: Path,
        old: dict[str, Path],
        changed: list[Replica],
        report: list[dict[str, Any]],
    ) -> None:
        for r in replicas:
            try:
                step = self._roll_one(r, model_path)
            except RolloutError as err:
                back = self._roll_back(changed if r in changed else [*changed, r], old)
                raise RegistryError(
                    502, f"the rollout of {model_path.name} stopped at Rasa replica {r.name}: {err}. {back}"
                ) from None
            if r not in changed:
                changed.append(r)
            report.append(step)

    def _serves_other(self, r: Replica, model_path: Path) -> bool:
        """It serves another model than ``model_path``; one restarting is waited for (``up_timeout_s``)."""
        deadline = time.monotonic() + self.up_timeout_s
        while True:
            try:
                return self._status(r)["model_file"] != model_path.name
            except RolloutError:
                if time.monotonic() > deadline:
                    log.warning("rasa replica not answering after the rollout", extra={"replica": r.name})
                    return False
                time.sleep(1.0)

    def _roll_one(self, r: Replica, model_path: Path) -> dict[str, Any]:
        started = time.monotonic()
        drained = self._take_out(r)
        taken_out = time.monotonic()
        try:
            model_id = self._load(r, model_path)
        finally:
            if drained:
                self._put_back(r)
        loaded = time.monotonic()
        if drained:
            self._wait_in_rotation(r)
        step = {"replica": r.name, "model": model_path.name, "model_id": model_id,
                "drain_s": round(taken_out - started, 1), "load_s": round(loaded - taken_out, 1),
                "back_s": round(time.monotonic() - loaded, 1), "drained": drained}  # fmt: skip
        log.info("rasa replica swapped", extra=step)
        return step

    def _roll_back(self, replicas: list[Replica], old: dict[str, Path]) -> str:
        """Each of ``replicas`` back on the model it served before; a sentence saying how that went."""
        said = []
        for r in replicas:
            previous = old[r.url]
            try:
                if self._status(r)["model_file"] == previous.name:
                    said.append(f"{r.name} still serves {previous.name}")
                    continue
            except RolloutError:
                pass  # busy or down: load the old model anyway
            try:
                self._roll_one(r, previous)
                said.append(f"{r.name} was rolled back to {previous.name}")
            except RolloutError as err:
                said.append(f"{r.name} could NOT be rolled back to {previous.name} ({err})")
                log.error("rasa replica not rolled back", extra={"replica": r.name, "model": previous.name})
        return "; ".join(said) + "; the active model is unchanged"

    # --- one replica -----------------------------------------------------------------------------
    def _params(self) -> dict[str, str]:
        return {"token": self.token} if self.token else {}

    def _status(self, r: Replica) -> dict[str, Any]:
        try:
            resp = httpx.get(f"{r.url}/status", params=self._params(), timeout=10.0)
        except httpx.HTTPError as err:
            raise RolloutError(f"Rasa replica {r.name} does not answer /status ({type(err).__name__})") from None
        try:
            body = resp.json() if resp.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RolloutError(
                f"Rasa replica {r.name} answered /status with HTTP {resp.status_code}: {resp.text[:200]}"
            )
        return {"model_file": str(body.get("model_file") or ""), "model_id": body.get("model_id")}

    def _load(self, r: Replica, model_path: Path) -> str:
        try:
            resp = httpx.put(
                f"{r.url}/model",
                params=self._params(),
                json={"model_file": str(model_path)},
                timeout=self.load_timeout_s,
            )
        except httpx.TimeoutException:
            raise RolloutError(f"no answer to PUT /model within {self.load_timeout_s:.0f} s") from None
        except httpx.HTTPError as err:
            raise RolloutError(f"PUT /model failed ({type(err).__name__}: {err})") from None
        if resp.status_code != 204:
            raise RolloutError(f"Rasa refused the model (HTTP {resp.status_code}): {resp.text[:300]}")
        status = self._status(r)
        if status["model_file"] != model_path.name:
            raise RolloutError(f"/status reports {status['model_file']!r} after loading {model_path.name}")
        return str(status.get("model_id") or "")

    # --- the balancer ----------------------------------------------------------------------------
    def _map_servers(self) -> None:
        """Each replica's server name in HAProxy's backend, by address; every server must be a replica."""
        if self.balancer is None:
            return
        servers = self.balancer.servers()
        by_addr = {_address(f"http://{s.addr}"): s.name for s in servers.values()}
        for r in self.replicas:
            r.server = by_addr.get(_address(r.url))
            if r.server is None:
                raise RolloutError(
                    f"Rasa replica {r.url} is not a server of HAProxy backend "
                    f"{self.balancer.backend!r} (its servers: {sorted(by_addr)})"
                )
        unknown = sorted(set(servers) - {r.server for r in self.replicas})
        if unknown:
            raise RolloutError(
                f"HAProxy backend {self.balancer.backend!r} also sends turns to {unknown}, which "
                "are not in RASA_REPLICA_URLS and would keep the old model"
            )

    def _take_out(self, r: Replica) -> bool:
        """Out of rotation once no in-flight turn is left; False when it stays in (no balancer, or alone)."""
        if self.balancer is None or r.server is None:
            return False
        servers = self.balancer.servers()
        if len(servers) == 1:
            log.warning("one Rasa replica only: it loads the model in place, turns wait", extra={"replica": r.name})
            return False
        deadline = time.monotonic() + self.up_timeout_s
        while not any(s.in_rotation for name, s in servers.items() if name != r.server):
            if time.monotonic() > deadline:
                states = {name: s.status for name, s in servers.items()}
                raise RolloutError(f"no other Rasa replica is in rotation to take the turns ({states})")
            time.sleep(self.poll_s)
            servers = self.balancer.servers()
        self.balancer.set_state(r.server, "drain")
        deadline, idle = time.monotonic() + self.drain_timeout_s, 0
        while idle < 2:  # twice in a row: nothing in flight
            s = self.balancer.servers()[r.server]
            idle = idle + 1 if s.scur + s.qcur == 0 else 0
            if time.monotonic() > deadline:
                log.warning(
                    "rasa replica still busy after the drain timeout", extra={"replica": r.name, "scur": s.scur}
                )
                break
            time.sleep(self.poll_s)
        return True

    def _put_back(self, r: Replica) -> None:
        assert self.balancer is not None and r.server is not None
        self.balancer.set_state(r.server, "ready")

    def _wait_in_rotation(self, r: Replica) -> None:
        assert self.balancer is not None and r.server is not None
        deadline = time.monotonic() + self.up_timeout_s
        while True:
            s = self.balancer.servers()[r.server]
            if s.in_rotation:
                return
            if time.monotonic() > deadline:
                raise RolloutError(
                    f"back in HAProxy's rotation but not UP after {self.up_timeout_s:.0f} s ({s.status})"
                )
            time.sleep(self.poll_s)
