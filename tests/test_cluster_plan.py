"""The local cluster's plan (cluster/plan.py, cluster/haproxy.py) without starting anything: secrets only
in environments, the balancer's configuration as issue 16 asks, errors that say what to do. The
whole cluster runs in tests/cluster (``make test-cluster``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cluster import haproxy
from cluster.cli import main
from cluster.database import ClusterDatabase
from cluster.plan import OPERATOR_SECRETS, SHARED_SECRETS, Plan, run_secrets

URL = "postgresql+psycopg://bot:db-password-1@127.0.0.1:5432/test?options=-csearch_path%3Dcluster_0123456789ab"


def plan(tmp_path: Path, environ: dict[str, str] | None = None) -> Plan:
    return Plan(run_dir=tmp_path, database=ClusterDatabase(URL, URL, "cluster_0123456789ab"),
                redis_url="redis://:redis-password-1@127.0.0.1:6379/0", model=tmp_path / "model.tar.gz",
                host="127.0.0.1", port=8100, rasa_port=5100, gateway_ports=[8101, 8102], rasa_ports=[5101, 5102],
                secrets=run_secrets(environ or {}), environ={"PATH": "/usr/bin", **(environ or {})})


def test_secrets_reach_the_children_by_environment_only(tmp_path: Path) -> None:
    p = plan(tmp_path, {"RASA_TOKEN": "given-rasa-token-1"})
    assert p.secrets["RASA_TOKEN"] == "given-rasa-token-1"  # the environment's, when set
    assert len({p.secrets[n] for n in (*SHARED_SECRETS, *OPERATOR_SECRETS)}) == len(SHARED_SECRETS) + len(OPERATOR_SECRETS)
    specs = [p.gateway(0), p.gateway(1), p.rasa(0), p.rasa(1), p.balancer()]
    hidden = [*p.secrets.values(), "db-password-1", "redis-password-1"]
    for spec in specs:
        assert not [s for s in hidden if any(s in arg for arg in spec.argv)], spec.name
    status = json.dumps(p.status(pid=1))
    assert not [s for s in hidden if s in status]
    # every gateway shares the run's keys (conversation tokens, sessions) and reaches Rasa through the balancer
    for i in (0, 1):
        env = p.gateway(i).env
        assert env["SECRET_KEY"] == p.secrets["SECRET_KEY"] and env["RASA_URL"] == "http://127.0.0.1:5100"
        assert env["DATABASE_URL"] == URL and env["DATA_DIR"] != p.gateway(1 - i).env["DATA_DIR"]
    rasa = p.rasa(0).env
    assert rasa["ACTION_ENDPOINT_URL"] == "http://127.0.0.1:8100/actions/webhook"
    assert rasa["GATEWAY_CHANNEL_TOKEN"] == p.secrets["RASA_CHANNEL_TOKEN"]
    assert rasa["ACTION_SERVER_TOKEN"] == p.secrets["ACTION_SERVER_TOKEN"]
    assert rasa["POSTGRESQL_SCHEMA"] == "cluster_0123456789ab_rasa" and rasa["RASA_TRACKER_PASSWORD"] == "db-password-1"
    assert "--port" in p.rasa(1).argv and "5102" in p.rasa(1).argv
    secrets_file = p.write_secrets()
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert set(OPERATOR_SECRETS) <= {line.split("=")[0] for line in secrets_file.read_text().splitlines()}


def test_the_balancer_is_round_robin_with_health_checks_and_websockets(tmp_path: Path) -> None:
    text = plan(tmp_path).haproxy_text()
    assert text.count("balance roundrobin") == 2 and "cookie" not in text and "stick" not in text  # no stickiness
    assert "option httpchk GET /healthz" in text and "option httpchk GET /\n" in text
    assert "timeout tunnel" in text and "option forwardfor" in text
    for port in (8101, 8102, 5101, 5102):
        assert f"127.0.0.1:{port} check" in text
    if shutil.which("haproxy") or haproxy.HAPROXY.exists():  # HAProxy itself accepts it (when installed)
        (tmp_path / "haproxy.cfg").write_text(text)
        checked = subprocess.run(haproxy.check_command(tmp_path / "haproxy.cfg"), capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--database-url", "sqlite:///x.db"], "share one PostgreSQL database"),
    (["--database-url", "not a url"], "not a database URL"),
    (["--gateways", "0"], "Invalid value for '--gateways'"),
])
def test_wrong_arguments_are_refused_with_the_reason(args: list[str], says: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["cluster", "run", *args])
    assert main() in (1, 2)
    out = capsys.readouterr()
    assert says in out.out + out.err
