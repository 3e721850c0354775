"""Rolling promotion over several Rasa replicas (ops/rollout.py, issue 16), against a real HAProxy
(Debian's, with the configuration ``python -m cluster run`` renders) and the real model registry.

The Rasa servers here are small fakes speaking Rasa's wire format (``GET /``, ``GET /status``,
``PUT /model``, the gateway channel's webhook), so that the order of the roll and the rollback can be
checked exactly: like Rasa 3.6, a fake does one thing at a time (its event loop), so a turn sent to
it while it loads a model waits for the load. The real Rasa servers are rolled in
tests/cluster/test_cluster_rollout.py (``make test-cluster``).

The cluster's side of a shared model (a Rasa server (re)starts on the registry's active model) runs on
PostgreSQL: skipped without it, failed under CI=true; HAProxy likewise.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from cluster import database, haproxy
from cluster.database import ClusterDatabase
from cluster.launcher import Cluster
from cluster.plan import Plan, run_secrets, with_model
from ops.registry import ModelRegistry, RegistryError, active_model_file
from ops.rollout import HAProxyRuntime, RollingSwapper
from ops.service import model_locator
from scenarios.system import ROOT, free_ports
from storage.db import make_engine, make_session_factory, upgrade
from storage.leases import DbLease
from tests.conftest import required
from tests.store_fixtures import temporary_schema

TOKEN = "rasa-api-token-1"
LOAD_S = 2.5  # a fake's model load; turns wait that long behind it
TURN_TIMEOUT_S = 2.0  # the "gateway's Rasa timeout" of the traffic below: a turn stuck behind a load fails




@dataclass
class FakeRasa:
    """Rasa's HTTP API as the swapper and the gateway use it; one request at a time, like its event loop."""

    model_file: str
    refuse: set[str] = field(default_factory=set)  # model file names whose load fails (HTTP 400)
    on_load: Any = None  # called as a load starts
    turns: list[tuple[float, float, str]] = field(default_factory=list)  # arrival, answered, model
    loads: list[dict[str, Any]] = field(default_factory=list)  # arrival, done, model, ok

    def __post_init__(self) -> None:
        self.loop = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if parse_qs(urlsplit(self.path).query).get("token") == [TOKEN]:
                    return True
                self._send(401, {"reason": "NotAuthenticated"})
                return False

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = urlsplit(self.path).path
                if path == "/":
                    with fake.loop:
                        self._send(200, b"Hello from Rasa: 3.6.21")
                elif path == "/status" and self._authorised():
                    with fake.loop:
                        self._send(200, {"model_file": fake.model_file, "model_id": f"id-{fake.model_file}"})

            def do_PUT(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                if urlsplit(self.path).path != "/model" or not self._authorised():
                    return
                arrival, path = time.monotonic(), Path(body["model_file"])
                if fake.on_load is not None:
                    fake.on_load()
                with fake.loop:
                    ok = path.is_file() and path.name not in fake.refuse
                    if ok:
                        time.sleep(LOAD_S)
                        fake.model_file = path.name
                    fake.loads.append({"arrival": arrival, "done": time.monotonic(), "model": path.name, "ok": ok})
                    if ok:
                        self._send(204)
                    else:
                        self._send(
                            400, {"reason": "BadRequest", "message": f"Agent with name '{path}' could not be loaded."}
                        )

            def do_POST(self) -> None:  # noqa: N802 - a turn (the gateway channel)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                arrival = time.monotonic()
                with fake.loop:
                    time.sleep(0.1)
                    model = fake.model_file
                    self._send(200, [{"recipient_id": "c", "text": f"answered by {model}"}])
                fake.turns.append((arrival, time.monotonic(), model))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *_: None  # type: ignore[method-assign]  # a client that gave up waiting
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Traffic:
    """Customers' turns through the balancer's Rasa frontend, from a few threads, until stopped."""

    def __init__(self, url: str, senders: int = 4) -> None:
        self.url, self.ok = url, 0
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(senders)]

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self.stop.is_set():
                try:
                    r = client.post(
                        f"{self.url}/webhooks/gateway/webhook", json={"message": "hi"}, timeout=TURN_TIMEOUT_S
                    )
                    if r.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as err:
                    self.failed.append(type(err).__name__)

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


@dataclass
class Bench:
    rasa: list[FakeRasa]
    balancer: HAProxyRuntime
    url: str  # the balancer's Rasa frontend
    models: Path
    sessions: sessionmaker[Session]

    def registry(self, replicas: list[str] | None = None, **lease: Any) -> ModelRegistry:
        swapper = RollingSwapper(replicas or [r.url for r in self.rasa], TOKEN, balancer=self.balancer,
                                 drain_timeout_s=10, up_timeout_s=30, poll_s=0.05)  # fmt: skip
        registry = ModelRegistry(
            self.sessions, None, swapper, lease=DbLease(self.sessions, "ops-model-rollout", **lease)
        )
        swapper.locate = model_locator(registry, self.models)
        return registry

    def states(self) -> dict[str, str]:
        return {name: s.status for name, s in self.balancer.servers().items()}

    def wait_up(self, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while set(self.states().values()) != {"UP"}:
            assert time.monotonic() < deadline, self.states()
            time.sleep(0.2)


@pytest.fixture
def bench(tmp_path: Path, sessions: sessionmaker[Session]) -> Iterator[Bench]:
    if not (haproxy.HAPROXY.exists() or shutil.which("haproxy")):
        required(f"HAProxy is not installed: {haproxy.INSTALL_HINT}")
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model-a", "model-b"):
        (models / f"{name}.tar.gz").write_bytes(b"a model")
    registry = ModelRegistry(sessions, None)
    for name in ("model-a", "model-b"):
        registry.register(models / f"{name}.tar.gz", data_hash=name, config="", actor="test")
    registry.mark_running(models / "model-a.tar.gz", data_hash="model-a", config="")
    fakes = [FakeRasa("model-a.tar.gz"), FakeRasa("model-a.tar.gz")]
    gateway_port, rasa_port = free_ports(2)
    backends = [haproxy.Backend(f"rasa-{i + 1}", int(f.url.rsplit(":", 1)[1])) for i, f in enumerate(fakes)]
    config, sock = tmp_path / "haproxy.cfg", tmp_path / "haproxy.sock"
    config.write_text(haproxy.render(gateway_port, [], rasa_port, backends, admin_socket=sock))
    proc = subprocess.Popen(haproxy.command(config), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "HAProxy did not start"
            time.sleep(0.1)
        b = Bench(fakes, HAProxyRuntime(sock, "rasa"), f"http://127.0.0.1:{rasa_port}", models, sessions)
        b.wait_up()
        yield b
    finally:
        proc.terminate()
        proc.wait(10)
        for f in fakes:
            f.close()


def _served_while(fake: FakeRasa, start: float, end: float) -> int:
    return sum(1 for arrival, _, _ in fake.turns if start <= arrival <= end)


def test_a_promotion_rolls_one_replica_at_a_time_out_of_rotation_and_no_turn_fails(bench: Bench) -> None:
    registry = bench.registry()
    with Traffic(bench.url) as traffic:
        time.sleep(0.5)
        result = registry.promote("model-b", "ops-user")
        time.sleep(0.5)
    assert result == {"active": "model-b", "previous": "model-a", "action": "promote"}
    assert traffic.failed == [] and traffic.ok > 20, (traffic.failed[:5], traffic.ok)
    first, second = (f.loads for f in bench.rasa)
    assert [(x["model"], x["ok"]) for x in first + second] == [("model-b.tar.gz", True)] * 2
    assert first[0]["done"] <= second[0]["arrival"], "one replica at a time, in the configured order"
    for fake, other in ((bench.rasa[0], bench.rasa[1]), (bench.rasa[1], bench.rasa[0])):
        load = fake.loads[0]
        # out of rotation: no turn reached it while it loaded; the turns it had were done before the load
        assert _served_while(fake, load["arrival"], load["done"]) == 0
        assert all(done <= load["arrival"] for arrival, done, _ in fake.turns if arrival < load["arrival"])
        assert _served_while(other, load["arrival"], load["done"]) > 0, "the other replica answered meanwhile"
        assert fake.turns[-1][2] == "model-b.tar.gz"  # back in rotation on the new model
    assert bench.states() == {"rasa-1": "UP", "rasa-2": "UP"}
    assert registry.active().id == "model-b"  # type: ignore[union-attr]
    with bench.sessions() as db:
        from ops.models import AuditEntry

        detail = db.query(AuditEntry).filter_by(action="promote").one().detail
    assert [(s["replica"], s["drained"]) for s in detail["replicas"]] == [("rasa-1", True), ("rasa-2", True)]


def test_a_replica_that_fails_to_load_stops_the_roll_and_the_loaded_ones_go_back(bench: Bench) -> None:
    bench.rasa[1].refuse.add("model-b.tar.gz")
    registry = bench.registry()
    with Traffic(bench.url) as traffic, pytest.raises(RegistryError) as refused:
        registry.promote("model-b", "ops-user")
    err = refused.value
    assert err.status == 502
    assert "stopped at Rasa replica rasa-2" in err.message and "could not be loaded" in err.message
    assert "rasa-1 was rolled back to model-a.tar.gz" in err.message
    assert "rasa-2 still serves model-a.tar.gz" in err.message and "the active model is unchanged" in err.message
    assert traffic.failed == [], traffic.failed[:5]
    assert [(x["model"], x["ok"]) for x in bench.rasa[0].loads] == [("model-b.tar.gz", True), ("model-a.tar.gz", True)]
    assert [(x["model"], x["ok"]) for x in bench.rasa[1].loads] == [("model-b.tar.gz", False)]
    assert [f.model_file for f in bench.rasa] == ["model-a.tar.gz"] * 2
    assert bench.states() == {"rasa-1": "UP", "rasa-2": "UP"}
    assert registry.active().id == "model-a"  # type: ignore[union-attr]
    bench.rasa[1].refuse.clear()  # the lease and the lock were given back: the next try goes through
    assert registry.promote("model-b", "ops-user")["active"] == "model-b"
    assert [f.model_file for f in bench.rasa] == ["model-b.tar.gz"] * 2


def test_a_replica_that_restarted_on_the_old_model_during_the_roll_is_rolled_again(bench: Bench) -> None:
    def restarted() -> None:  # rasa-1, already on the new model, restarts on the model the database names
        bench.rasa[0].model_file = "model-a.tar.gz"

    bench.rasa[1].on_load = restarted
    registry = bench.registry()
    with Traffic(bench.url) as traffic:
        assert registry.promote("model-b", "ops-user")["active"] == "model-b"
    assert traffic.failed == [], traffic.failed[:5]
    assert [[x["model"] for x in f.loads] for f in bench.rasa] == [["model-b.tar.gz"] * 2, ["model-b.tar.gz"]]
    assert [f.model_file for f in bench.rasa] == ["model-b.tar.gz"] * 2
    assert [s["replica"] for s in registry.swapper.last_report] == ["rasa-1", "rasa-2", "rasa-1"]  # type: ignore[union-attr]


def test_nothing_changes_when_the_replicas_and_the_balancer_disagree(bench: Bench, tmp_path: Path) -> None:
    only_one = bench.registry([bench.rasa[0].url])
    with pytest.raises(RegistryError) as err:
        only_one.promote("model-b", "ops-user")
    assert err.value.status == 503 and "also sends turns to ['rasa-2']" in err.value.message
    assert "nothing was changed" in err.value.message
    stranger = bench.registry([bench.rasa[0].url, bench.rasa[1].url, "http://127.0.0.1:9"])
    with pytest.raises(RegistryError) as err:
        stranger.promote("model-b", "ops-user")
    assert (
        err.value.status == 503 and "http://127.0.0.1:9 is not a server of HAProxy backend 'rasa'" in err.value.message
    )
    bench.rasa[1].model_file = "model-unknown.tar.gz"  # no file to roll back to
    with pytest.raises(RegistryError) as err:
        bench.registry().promote("model-b", "ops-user")
    assert err.value.status == 409 and "rasa-2 serves model-unknown.tar.gz" in err.value.message
    assert [f.loads for f in bench.rasa] == [[], []] and bench.states() == {"rasa-1": "UP", "rasa-2": "UP"}


def test_one_rollout_at_a_time_across_gateways_and_a_rollback_rolls_too(bench: Bench) -> None:
    gateway_1, gateway_2 = bench.registry(holder="gateway-1"), bench.registry(holder="gateway-2")
    outcome: dict[str, Any] = {}
    first = threading.Thread(target=lambda: outcome.update(gateway_1.promote("model-b", "alice")))
    with Traffic(bench.url) as traffic:
        first.start()
        deadline = time.monotonic() + 10
        while bench.states()["rasa-1"] != "DRAIN":  # gateway 1's rollout is under way
            assert time.monotonic() < deadline, bench.states()
            time.sleep(0.02)
        with pytest.raises(RegistryError) as other_gateway:
            gateway_2.promote("model-b", "bob")
        with pytest.raises(RegistryError) as same_gateway:
            gateway_1.rollback("bob", "model-a")
        first.join()
        back = gateway_2.rollback("bob")
    assert other_gateway.value.status == 409 and "another gateway" in other_gateway.value.message
    assert same_gateway.value.status == 409 and "another promotion or rollback" in same_gateway.value.message
    assert outcome["active"] == "model-b" and back == {"active": "model-a", "previous": "model-b", "action": "rollback"}
    assert traffic.failed == [], traffic.failed[:5]
    assert [[x["model"] for x in f.loads] for f in bench.rasa] == [["model-b.tar.gz", "model-a.tar.gz"]] * 2
    assert [f.model_file for f in bench.rasa] == ["model-a.tar.gz"] * 2


def test_a_cluster_rasa_server_starts_on_the_active_model_of_the_shared_database(tmp_path: Path) -> None:
    built, promoted = tmp_path / "model-built.tar.gz", tmp_path / "model-promoted.tar.gz"
    for f in (built, promoted):
        f.write_bytes(b"a model")
    with temporary_schema() as url:
        upgrade(url)
        db = ClusterDatabase(url, url, None)
        # a fresh cluster records the model it starts with as the active one: every gateway's registry agrees
        assert database.serving_model(db, built, ROOT / "config.yml")[0] == built
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        try:
            assert active_model_file(sessions) == built
            registry = ModelRegistry(sessions, None)
            registry.register(promoted, data_hash="p", config="", actor="test")
            registry.mark_running(promoted, data_hash="p", config="")  # as a promotion leaves it
            said: list[str] = []
            plan = Plan(run_dir=tmp_path, database=db, redis_url="redis://127.0.0.1:6379/0", model=built,
                        host="127.0.0.1", port=1, rasa_port=2, gateway_ports=[3], rasa_ports=[4],
                        secrets=run_secrets({}))  # fmt: skip
            cluster = Cluster(plan, said.append)
            argv = plan.rasa(0).argv
            restarted = asyncio.run(cluster.active_model("rasa-1", argv))
            assert restarted == with_model(argv, promoted) and restarted != argv
            assert said == ["rasa-1 starts on the active model model-promoted.tar.gz"]
            # the cluster started again on this database starts every server on it
            assert database.serving_model(db, built, ROOT / "config.yml") == (
                promoted,
                "the active model of this database: model-promoted.tar.gz",
            )
            promoted.unlink()  # its file is gone: the server starts on the model it was launched with
            assert asyncio.run(cluster.active_model("rasa-1", argv)) == argv
            assert cluster._db is not None
            cluster._db.dispose()
        finally:
            engine.dispose()
