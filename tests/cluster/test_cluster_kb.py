"""Issue 16, ``make test-cluster``: one knowledge base for every gateway replica (kb_index/shared.py).

2 gateways (sharing ``KB_INDEX_DIR``, set by cluster/plan.py) + 1 Rasa server behind HAProxy. An
article uploaded through the balancer (the admin KB route) is found by every gateway asked directly
and answered to customers who ask any gateway; its deletion and an ops rollback through the balancer
likewise reach every gateway, each within a bound.

Not part of ``make test`` (pyproject's ``norecursedirs``): ``make test-cluster`` runs it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.harness import RunningCluster, running_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.rasa]

BOUND_S = 5.0  # every gateway answers from the new version within this (each checks every second)
ARTICLE = (
    "---\nid: gift-wrapping\ntitle: Gift wrapping\nlanguage: en\n"
    "url: https://help.demo-store.example/en/articles/gift-wrapping\ntags: [gifts]\ntranslations: []\n---\n"
    "# Gift wrapping\nWe wrap any order in recycled kraft paper with a handwritten card for $4.50 (code WRAP-K7).\n"
    "Choose gift wrapping at checkout; the receipt inside shows no prices.\n"
)
QUESTION = "do you offer gift wrapping for presents, how much is it?"


@pytest.fixture(scope="module")
def cluster(
    trained_model: Path, help_centre_index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster-kb"), help_centre_index, gateways=2, rasa=1) as running:
        yield running


def admin(cluster: RunningCluster) -> dict[str, str]:
    """The run's ADMIN_API_TOKEN, from its secrets.env (the children's environment has it)."""
    lines = Path(cluster.status["secrets_file"]).read_text().splitlines()
    token = next(line.split("=", 1)[1] for line in lines if line.startswith("ADMIN_API_TOKEN="))
    return {"Authorization": f"Bearer {token}"}


def gateways(cluster: RunningCluster) -> list[str]:
    return [g["url"] for g in cluster.status["gateways"]]


def top_hit(url: str, headers: dict[str, str]) -> str | None:
    resp = httpx.get(
        f"{url}/api/v1/admin/kb/search", params={"q": "WRAP-K7 gift wrapping"}, headers=headers, timeout=30
    )
    assert resp.status_code == 200, resp.text
    hits = resp.json()
    return hits[0]["article_id"] if hits else None


def everywhere_within(cluster: RunningCluster, holds: Callable[[str], bool], what: str) -> dict[str, float]:
    """Seconds until ``holds(gateway url)`` on each gateway, asked directly; fails past ``BOUND_S``."""
    start, took = time.monotonic(), {}
    while len(took) < len(gateways(cluster)):
        for url in gateways(cluster):
            if url not in took and holds(url):
                took[url] = round(time.monotonic() - start, 2)
        if time.monotonic() - start > BOUND_S and len(took) < len(gateways(cluster)):
            raise AssertionError(f"{what}: not on every gateway within {BOUND_S} s (only {took})")
        time.sleep(0.1)
    print(f"{what}: {took}")
    return took


def kb_sources(reply: dict[str, Any]) -> list[str]:
    return [s["url"] for m in reply["messages"] if m["type"] == "kb_answer" for s in m["sources"]]


def ask(url: str) -> dict[str, Any]:
    resp = httpx.post(
        f"{url}/api/v1/chat", json={"sender_id": f"kb-{uuid.uuid4().hex[:12]}", "text": QUESTION}, timeout=120
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_an_upload_delete_and_rollback_through_the_balancer_reach_every_gateway(cluster: RunningCluster) -> None:
    headers = admin(cluster)
    versions = [
        httpx.get(f"{url}/api/v1/admin/kb/stats", headers=headers, timeout=30).json()["version"]
        for url in gateways(cluster)
    ]
    assert len(set(versions)) == 1, versions  # one index: the same live version everywhere
    assert all(top_hit(url, headers) != "gift-wrapping" for url in gateways(cluster))

    files = {"files": ("gift-wrapping.md", ARTICLE.encode(), "text/markdown")}
    up = httpx.post(f"{cluster.url}/api/v1/admin/kb/articles", files=files, headers=headers, timeout=120)
    assert up.status_code == 201, up.text
    everywhere_within(cluster, lambda url: top_hit(url, headers) == "gift-wrapping", "upload searchable")
    for url in gateways(cluster):  # a customer asking any gateway (Rasa's action may run on the other one)
        reply = ask(url)
        assert any("gift-wrapping" in s for s in kb_sources(reply)), (url, reply)
    uploaded = httpx.get(f"{cluster.url}/api/v1/admin/kb/stats", headers=headers, timeout=30).json()["version"]

    gone = httpx.delete(f"{cluster.url}/api/v1/admin/kb/articles/gift-wrapping", headers=headers, timeout=60)
    assert gone.status_code == 200 and gone.json()["chunks_removed"] >= 1, gone.text
    everywhere_within(cluster, lambda url: top_hit(url, headers) != "gift-wrapping", "deletion")
    for url in gateways(cluster):
        assert not any("gift-wrapping" in s for s in kb_sources(ask(url)))

    back = httpx.post(f"{cluster.url}/api/v1/ops/kb/versions/{uploaded}/rollback", headers=headers, timeout=60)
    assert back.status_code == 200 and back.json()["current"] == uploaded, back.text
    everywhere_within(cluster, lambda url: top_hit(url, headers) == "gift-wrapping", "rollback")
    live = {
        httpx.get(f"{url}/api/v1/admin/kb/stats", headers=headers, timeout=30).json()["version"]
        for url in gateways(cluster)
    }
    assert live == {uploaded}
