"""deploy/kubernetes/postgres/ (the overlay for PostgreSQL: webhook and worker Deployments) and the `postgres` profile
of deploy/compose.yaml agree with the base, the config and the command line. There is no cluster or container engine
here: the overlay is read as kustomize builds it (its resources, its patches on the base's objects, its generated
ConfigMap), its config parsed with the environment its pods get."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from receiver.config import Config, parse_config
from tests.deploy_support import COMPOSE, DEPLOY, EXAMPLE_CONFIG, KUBERNETES, documents

OVERLAY = DEPLOY / "kubernetes" / "postgres"
KUSTOMIZATION = documents(OVERLAY / "kustomization.yaml")[0]
CONFIG = OVERLAY / "receiver.toml"


def objects(directory: Path) -> dict[str, dict[str, Any]]:
    """The objects a kustomization lists as resources (files, or directories with a kustomization of their own)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in documents(directory / "kustomization.yaml")[0]["resources"]:
        path = (directory / entry).resolve()
        if path.is_dir():
            found |= objects(path)
        else:
            found |= {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in documents(path)}
    return found


def built() -> dict[str, dict[str, Any]]:
    """The overlay's objects as kustomize builds them, for what these tests read: the deletions applied, the
    Service's selector patched, the ConfigMap replaced by the generated one."""
    found = objects(OVERLAY)
    for patch in KUSTOMIZATION["patches"]:
        [doc] = documents(OVERLAY / patch["path"])
        key = f"{doc['kind']}/{doc['metadata']['name']}"
        assert key in found, f"{patch['path']} patches {key}, which is not in the base"
        if doc.get("$patch") == "delete":
            del found[key]
        else:
            found[key]["spec"]["selector"] = {**found[key]["spec"]["selector"], **doc["spec"]["selector"]}
    for generator in KUSTOMIZATION["configMapGenerator"]:
        key = f"ConfigMap/{generator['name']}"
        assert generator["behavior"] == "replace" and key in found, f"{key} must be the base's, replaced"
        found[key]["data"] = {name: (OVERLAY / name).read_text(encoding="utf-8") for name in generator["files"]}
    return found


K8S = built()
WEBHOOK = K8S["Deployment/altinn-receiver-webhook"]
WORKER = K8S["Deployment/altinn-receiver-worker"]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [found] = deployment["spec"]["template"]["spec"]["containers"]
    return found


def labels(deployment: dict[str, Any]) -> dict[str, str]:
    pod_labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return pod_labels


def pod_environ(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment: its ConfigMap's values, and secret references resolved to their stand-ins."""
    environ: dict[str, str] = {}
    for source in container(deployment)["envFrom"]:
        environ |= K8S[f"ConfigMap/{source['configMapRef']['name']}"]["data"]
    for var in container(deployment)["env"]:
        ref = var["valueFrom"]["secretKeyRef"]
        secret = K8S.get(f"Secret/{ref['name']}")
        assert secret is not None and ref["key"] in secret["stringData"], f"{var['name']} names a missing secret"
        environ[var["name"]] = secret["stringData"][ref["key"]]
    return environ


def config_of(environ: dict[str, str], tmp_path: Path) -> Config:
    key_file = tmp_path / "maskinporten.pem"
    key_file.write_text("placeholder: parse_config checks that the file exists")
    data = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    return parse_config(data, {**environ, "MASKINPORTEN_KEY_FILE": str(key_file)}, base_dir=Path("/config"))


def test_the_overlay_builds_on_the_base_without_its_sqlite_pod() -> None:
    for entry in KUSTOMIZATION["resources"]:
        assert (OVERLAY / entry).exists(), entry
    assert (OVERLAY / "../base").resolve() == KUBERNETES.resolve()
    assert "Deployment/agency-system" not in K8S and "PersistentVolumeClaim/altinn-receiver-data" not in K8S
    assert {"Secret/altinn-receiver", "Ingress/altinn-receiver", "Service/altinn-receiver"} <= set(K8S)


@pytest.mark.parametrize("deployment", [WEBHOOK, WORKER], ids=["webhook", "worker"])
def test_each_deployment_runs_its_role_with_the_database_from_a_secret(
    deployment: dict[str, Any], tmp_path: Path
) -> None:
    role = labels(deployment)["app.kubernetes.io/component"]
    args = container(deployment)["args"]
    assert args[:4] == ["altinn-receiver", "serve", "--role", role]
    config = config_of(pod_environ(deployment), tmp_path)
    database = K8S["Secret/altinn-receiver-database"]["stringData"]
    assert config.store.url == database["url"] and urlsplit(config.store.url).password is None
    assert pod_environ(deployment)["PGPASSWORD"] == database["password"], "the password reaches libpq"

    mounted = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
    config_file = Path(args[args.index("--config") + 1])
    assert mounted["config"] == str(config_file.parent)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert config_file.name in K8S[f"ConfigMap/{volumes['config']['configMap']['name']}"]["data"]
    assert mounted["maskinporten"] == str(Path(pod_environ(deployment)["MASKINPORTEN_KEY_FILE"]).parent)

    [port] = container(deployment)["ports"]
    assert port["containerPort"] == config.receiver.port
    assert container(deployment)["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container(deployment)["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    spec = deployment["spec"]
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > config.receiver.shutdown_timeout
    assert spec["selector"]["matchLabels"].items() <= labels(deployment).items()
    assert spec["strategy"]["type"] == "RollingUpdate"


def test_the_webhook_rolls_with_a_pod_always_ready_and_a_disruption_budget() -> None:
    spec = WEBHOOK["spec"]
    assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = K8S["PodDisruptionBudget/altinn-receiver-webhook"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels(WEBHOOK).items()
    assert 1 <= budget["minAvailable"] < spec["replicas"], "a drain can go on, one pod at a time"
    assert not budget["selector"]["matchLabels"].items() <= labels(WORKER).items()


def test_pushes_go_to_the_webhooks_and_both_roles_are_scraped() -> None:
    service = K8S["Service/altinn-receiver"]["spec"]["selector"]
    assert service.items() <= labels(WEBHOOK).items() and not service.items() <= labels(WORKER).items()
    worker_service = K8S["Service/altinn-receiver-worker"]
    assert worker_service["spec"]["selector"].items() <= labels(WORKER).items()
    [monitor] = documents(DEPLOY / "kubernetes" / "monitoring" / "servicemonitor.yaml")
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    assert wanted <= K8S["Service/altinn-receiver"]["metadata"]["labels"].items()
    assert wanted <= worker_service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in worker_service["spec"]["ports"]}


def test_the_overlays_config_is_the_example_but_for_the_store() -> None:
    example = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    overlay = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    assert set(overlay.pop("store")) == {"url"}
    example.pop("store")
    assert overlay == example


def test_the_compose_postgres_profile_runs_a_webhook_and_a_worker_on_its_database(tmp_path: Path) -> None:
    services = COMPOSE["services"]
    database = services["postgres"]
    assert database["profiles"] == ["postgres"] and "pg_isready" in database["healthcheck"]["test"]
    for role in ("webhook", "worker"):
        service = services[f"{role}-postgres"]
        assert service["profiles"] == ["postgres"]
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        command = service["command"]
        assert command[:4] == ["altinn-receiver", "serve", "--role", role]
        port = int(command[command.index("--port") + 1])
        assert f"127.0.0.1:{port}:{port}" in services["simulator"]["ports"]
        source, target, _ = next(v for v in service["volumes"] if v.endswith("/config/receiver.toml:ro")).split(":")
        assert (DEPLOY / source).resolve() == CONFIG.resolve() and target == command[command.index("--config") + 1]
        environ = {k: str(v) for k, v in service["environment"].items()}
        config = config_of(environ, tmp_path)
        url = urlsplit(config.store.url)
        assert url.hostname == "postgres" and url.username == database["environment"]["POSTGRES_USER"]
        assert environ["PGPASSWORD"] == database["environment"]["POSTGRES_PASSWORD"]
        webhook_port = int(
            services["webhook-postgres"]["command"][services["webhook-postgres"]["command"].index("--port") + 1]
        )
        assert urlsplit(config.receiver.public_url).port == webhook_port, "Altinn pushes to the webhook"
