"""Issue 16, ``make test-cluster``: promotion and rollback roll across the cluster's Rasa servers with no
failed turn (ops/rollout.py), and every Rasa server serves the promoted model, restarted or not.

On the cluster of conftest.py (2 gateways + 2 Rasa servers behind HAProxy), through the ops API:

- a copy of the cluster's model under a new name is registered and promoted while customers keep
  talking through the balancer: no turn fails, is retried or waits for a model load, nothing is lost or
  duplicated, every Rasa server's ``/status`` names the new model, both gateways' registries say it is
  active;
- a Rasa server killed with SIGKILL afterwards is restarted on the promoted model;
- a model no Rasa server can load stops the rollout with a 502 that says so, nothing changed;
- a rollback rolls the servers back to the first model the same way, under load again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import sessionmaker

from ops.registry import ModelRegistry
from ops.rollout import HAProxyRuntime
from tests.cluster.harness import ADMIN_TOKEN, RASA_TOKEN, RunningCluster
from tests.cluster.load import Customer, check, converse_until

pytestmark = [pytest.mark.cluster, pytest.mark.rasa]

CONVERSATIONS = 12
TEXTS = [
    "hi",
    "what is your return policy?",
    "how long does shipping take?",
    "do you ship to Canada?",
    "how do I use a promo code?",
    "thanks, bye",
]
RESTART_TIMEOUT_S = 300
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _id(model: Path | str) -> str:
    return Path(model).name.removesuffix(".tar.gz")


def _rasa_models(cluster: RunningCluster) -> dict[str, str]:
    """The model file each Rasa server reports on its own port (not through the balancer)."""
    out = {}
    for r in cluster.status["rasa"]:
        resp = httpx.get(f"{r['url']}/status", params={"token": RASA_TOKEN}, timeout=30)
        out[r["name"]] = resp.json().get("model_file") if resp.status_code == 200 else f"HTTP {resp.status_code}"
    return out


def _active_per_gateway(cluster: RunningCluster) -> dict[str, str | None]:
    """The active model in each gateway's registry, asked of each gateway directly."""
    out = {}
    for g in cluster.status["gateways"]:
        models = httpx.get(f"{g['url']}/api/v1/ops/models", headers=ADMIN, timeout=30).json()
        out[g["name"]] = next((m["id"] for m in models if m["status"] == "active"), None)
    return out


def _register(cluster: RunningCluster, name: str, content: bytes | None = None) -> Path:
    """A model file (a copy of the cluster's, or ``content``) recorded in the shared registry."""
    folder = cluster.run_dir / "promoted-models"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.tar.gz"
    if content is None:
        shutil.copyfile(cluster.status["model"], path)
    else:
        path.write_bytes(content)
    ModelRegistry(sessionmaker(cluster.db), None).register(path, data_hash=name, config="", actor="test")
    return path


async def _under_load(
    cluster: RunningCluster, customers: list[Customer], path: str, body: dict[str, Any]
) -> tuple[httpx.Response, tuple[float, float]]:
    """POST ``path`` (the ops API, through the balancer) while ``customers`` talk; the answer, and when
    the request started and ended (time.monotonic)."""
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=CONVERSATIONS * 2)
    async with httpx.AsyncClient(limits=limits) as client:
        talks = [asyncio.create_task(converse_until(client, cluster.url, c, stop)) for c in customers]
        await asyncio.sleep(5)  # conversations under way
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=1800) as admin:
            resp = await admin.post(f"{cluster.url}{path}", json=body, headers=ADMIN)
        window = (started, time.monotonic())
        await asyncio.sleep(3)  # a few turns after it
        stop.set()
        await asyncio.gather(*talks)
    return resp, window


def _assert_no_turn_failed_or_waited(
    cluster: RunningCluster, customers: list[Customer], window: tuple[float, float], report: list[dict[str, Any]]
) -> None:
    """No turn failed or was retried, nothing lost or duplicated; and no turn answered during the rollout
    waited for a model load: each took less than half the shortest load (a turn sent to a loading Rasa
    server waits for the rest of the load: with ~30 turns a second, some wait most of it)."""
    failures: dict[str, int] = {}
    for c in customers:
        for why, n in c.failures.items():
            failures[why] = failures.get(why, 0) + n
    found = check(cluster, customers)
    during = sorted(s.seconds for c in customers for s in c.sent if window[0] <= s.answered_at <= window[1])
    shortest_load = min(step["load_s"] for step in report)
    print(
        f"{found.acknowledged} turns answered, {len(during)} during the rollout ({window[1] - window[0]:.1f} s): "
        f"p50 {during[len(during) // 2]:.2f} s, p99 {during[int(len(during) * 0.99)]:.2f} s, max {during[-1]:.2f} s; "
        f"failures {json.dumps(failures)}; shortest load {shortest_load} s"
    )
    assert len(during) >= 5 * CONVERSATIONS, f"the conversations hardly ran during the rollout ({len(during)} turns)"
    assert failures == {} and sum(c.retries for c in customers) == 0, failures
    assert not found.problems, json.dumps(found.problems, indent=2, ensure_ascii=False)
    assert during[-1] < shortest_load / 2, f"a turn took {during[-1]:.1f} s: it waited for a model load"


def _rollout_report(cluster: RunningCluster, action: str) -> list[dict[str, Any]]:
    detail = cluster.query("select detail from ops_audit where action = :a order by id desc limit 1", a=action)[0][0]
    return list((json.loads(detail) if isinstance(detail, str) else detail)["replicas"])


def _restarted(cluster: RunningCluster, name: str, killed: int) -> float:
    child = next(c for c in cluster.status["rasa"] if c["name"] == name)
    started = time.monotonic()
    while time.monotonic() - started < RESTART_TIMEOUT_S:
        pid = cluster.pid(name)
        if pid is not None and pid != killed:
            try:
                if httpx.get(f"{child['url']}/", timeout=3).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    raise AssertionError(f"{name} was not restarted within {RESTART_TIMEOUT_S} s; see {cluster.log(name)}")


def test_a_promotion_and_a_rollback_roll_across_the_rasa_servers_with_no_failed_turn(cluster: RunningCluster) -> None:
    first = Path(cluster.status["model"]).name
    assert set(_rasa_models(cluster).values()) == {first}
    assert set(_active_per_gateway(cluster).values()) == {_id(first)}  # recorded at start
    run = uuid.uuid4().hex[:6]
    new = _register(cluster, f"model-rollout-{run}")

    customers = [Customer(f"roll-{run}-{i:02d}", TEXTS) for i in range(CONVERSATIONS)]
    resp, window = asyncio.run(_under_load(cluster, customers, f"/api/v1/ops/models/{_id(new)}/promote", {}))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"active": _id(new), "previous": _id(first), "action": "promote"}
    report = _rollout_report(cluster, "promote")
    print(f"\npromotion: {window[1] - window[0]:.1f} s; {json.dumps(report)}")
    _assert_no_turn_failed_or_waited(cluster, customers, window, report)
    assert [(s["replica"], s["drained"]) for s in report] == [("rasa-1", True), ("rasa-2", True)]
    assert _rasa_models(cluster) == {"rasa-1": new.name, "rasa-2": new.name}
    assert set(_active_per_gateway(cluster).values()) == {_id(new)}
    servers = HAProxyRuntime(Path(cluster.status["haproxy_socket"]), "rasa").servers()
    assert {name: s.status for name, s in servers.items()} == {"rasa-1": "UP", "rasa-2": "UP"}

    # a Rasa server that restarts comes back on the promoted model, not on the one it was launched with
    killed = cluster.sigkill("rasa-2")
    back_after = _restarted(cluster, "rasa-2", killed)
    print(f"rasa-2 restarted after {back_after:.1f} s")
    assert _rasa_models(cluster) == {"rasa-1": new.name, "rasa-2": new.name}
    assert f"rasa-2 starts on the active model {new.name}" in (cluster.run_dir / "launcher.out").read_text()

    # a model that cannot be loaded: the rollout stops at the first server, which keeps its model
    broken = _register(cluster, f"model-broken-{run}", b"not a model")
    refused = httpx.post(f"{cluster.url}/api/v1/ops/models/{_id(broken)}/promote", json={}, headers=ADMIN, timeout=1800)
    print(f"broken model: HTTP {refused.status_code} {refused.text[:400]}")
    assert refused.status_code == 502
    assert "stopped at Rasa replica rasa-1" in refused.json()["detail"]
    assert (
        "rasa-1 still serves" in refused.json()["detail"]
        and "the active model is unchanged" in refused.json()["detail"]
    )
    assert _rasa_models(cluster) == {"rasa-1": new.name, "rasa-2": new.name}
    assert set(_active_per_gateway(cluster).values()) == {_id(new)}

    # the rollback rolls the same way, under load
    customers = [Customer(f"back-{run}-{i:02d}", TEXTS) for i in range(CONVERSATIONS)]
    resp, window = asyncio.run(_under_load(cluster, customers, "/api/v1/ops/models/rollback", {}))
    assert resp.status_code == 200, resp.text
    assert resp.json()["active"] == _id(first) and resp.json()["action"] == "rollback"
    report = _rollout_report(cluster, "rollback")
    print(f"rollback: {window[1] - window[0]:.1f} s; {json.dumps(report)}")
    _assert_no_turn_failed_or_waited(cluster, customers, window, report)
    assert _rasa_models(cluster) == {"rasa-1": first, "rasa-2": first}
    assert set(_active_per_gateway(cluster).values()) == {_id(first)}
