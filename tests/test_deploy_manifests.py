"""The Dockerfile, the Kubernetes manifests and the Compose file agree with the project: ports, probe paths, config
keys, volume paths, secrets. There is no container engine here, so they are read, not run — except the Compose
file's client registration and the example config, which are run against the simulator."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from altinn_sim import SimSettings, running_simulator
from receiver.app import create_app
from receiver.config import Config, parse_config
from receiver.onboarding.demo import ReceiverServer
from receiver.server_thread import free_port
from receiver.store.state import list_subscriptions
from tests.deploy_support import COMPOSE, DEPLOY, EXAMPLE_CONFIG, KUBERNETES, documents
from tests.ops_support import OpsStore
from tests.support import REPO, wait_until

ALTINN_PUSH_ADDRESSES = {"20.100.24.41/32", "20.100.46.139/32"}


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object by `Kind/name`."""
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in documents(path):
            if doc.get("kind") != "Kustomization":
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


K8S = manifests()
DEPLOYMENT = K8S["Deployment/agency-system"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
RECEIVER = next(c for c in POD["containers"] if c["name"] == "altinn-receiver")


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(instruction, arguments) of each stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the final stage."""
    return dockerfile_stages()[-1]


def instruction(name: str) -> str:
    values = [arguments for found, arguments in dockerfile() if found == name]
    assert len(values) == 1, f"the final stage should have one {name}, has {values}"
    return values[0]


def config_with(environ: dict[str, str], tmp_path: Path) -> Config:
    """The example config as the container reads it; the Maskinporten key file must exist, so one is made here."""
    key_file = tmp_path / "maskinporten.pem"
    key_file.write_text("placeholder: parse_config checks that the file exists, not its content")
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return parse_config(data, {**environ, "MASKINPORTEN_KEY_FILE": str(key_file)}, base_dir=Path("/config"))


def pod_environ() -> dict[str, str]:
    """The receiver container's env: literal values, and secret references resolved to a stand-in."""
    secret = K8S["Secret/altinn-receiver"]["stringData"]
    environ = {}
    for var in RECEIVER["env"]:
        if "value" in var:
            environ[var["name"]] = str(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert f"Secret/{ref['name']}" in K8S and ref["key"] in secret, f"{var['name']} names a missing secret"
            environ[var["name"]] = f"secret-{ref['key']}"
    return environ


@pytest.fixture
def pod_config(tmp_path: Path) -> Config:
    return config_with(pod_environ(), tmp_path)


def mounts(container: dict[str, Any]) -> dict[str, str]:
    return {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}


def test_every_yaml_file_parses_and_names_its_kind() -> None:
    for path in [*KUBERNETES.glob("*.yaml"), DEPLOY / "compose.yaml"]:
        assert documents(path), f"{path} is empty"
    assert set(K8S) == {
        "Secret/altinn-receiver",
        "ConfigMap/altinn-receiver-config",
        "PersistentVolumeClaim/altinn-receiver-data",
        "Deployment/agency-system",
        "Service/altinn-receiver",
        "Ingress/altinn-receiver",
    }
    listed = documents(KUBERNETES / "kustomization.yaml")[0]["resources"]
    assert sorted(listed) == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert documents(KUBERNETES.parent / "kustomization.yaml")[0]["resources"] == [KUBERNETES.name]


def test_the_configmap_holds_the_example_config_verbatim() -> None:
    mounted = K8S["ConfigMap/altinn-receiver-config"]["data"]["receiver.toml"]
    assert mounted == EXAMPLE_CONFIG.read_text(encoding="utf-8")


def test_the_pod_env_supplies_every_variable_the_config_uses_and_it_parses(pod_config: Config) -> None:
    assert pod_config.receiver.host == "0.0.0.0"
    assert pod_config.receiver.secret == "secret-webhook-code"
    assert {str(n) for n in pod_config.receiver.trusted_networks} <= ALTINN_PUSH_ADDRESSES
    assert pod_config.receiver.forwarded_allow_ips, "behind an ingress the proxy must be trusted for X-Forwarded-For"
    assert pod_config.subscriptions and pod_config.maskinporten.configured
    assert urlsplit(pod_config.receiver.public_url).scheme == "https"


def test_ports_agree_from_config_to_container_service_ingress_and_dockerfile(pod_config: Config) -> None:
    port = pod_config.receiver.port
    [container_port] = RECEIVER["ports"]
    assert container_port["containerPort"] == port
    service = K8S["Service/altinn-receiver"]["spec"]
    assert service["ports"][0]["targetPort"] == container_port["name"]
    assert service["selector"].items() <= DEPLOYMENT["spec"]["template"]["metadata"]["labels"].items()
    [rule] = K8S["Ingress/altinn-receiver"]["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert path["path"] == pod_config.receiver.path and path["pathType"] == "Exact"
    assert path["backend"]["service"]["name"] == "altinn-receiver"
    assert path["backend"]["service"]["port"]["name"] == service["ports"][0]["name"]
    assert instruction("EXPOSE") == str(port)
    assert f"127.0.0.1:{port}/healthz" in instruction("HEALTHCHECK")
    assert DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_probe_paths_are_routes_of_the_app(pod_config: Config) -> None:
    routes = {getattr(route, "path", "") for route in create_app(pod_config).routes}
    assert RECEIVER["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert RECEIVER["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert RECEIVER[probe]["httpGet"]["path"] in routes
        assert RECEIVER[probe]["httpGet"]["port"] == RECEIVER["ports"][0]["name"]


def test_volumes_hold_the_store_the_config_and_the_key_where_the_config_says(pod_config: Config) -> None:
    volumes = {volume["name"]: volume for volume in POD["volumes"]}
    receiver_mounts = mounts(RECEIVER)
    assert receiver_mounts["data"] == str(pod_config.store.path.parent)
    claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
    assert K8S[f"PersistentVolumeClaim/{claim}"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    agency = next(c for c in POD["containers"] if c["name"] != "altinn-receiver")
    assert mounts(agency)["data"] == receiver_mounts["data"], "the sidecar shares the store with the agency system"

    config_file = PurePosixPath(RECEIVER["args"][RECEIVER["args"].index("--config") + 1])
    assert receiver_mounts["config"] == str(config_file.parent)
    assert volumes["config"]["configMap"]["name"] == "altinn-receiver-config"
    assert config_file.name in K8S["ConfigMap/altinn-receiver-config"]["data"]

    key_file = PurePosixPath(pod_environ()["MASKINPORTEN_KEY_FILE"])
    assert receiver_mounts["maskinporten"] == str(key_file.parent)
    secret_volume = volumes["maskinporten"]["secret"]
    assert [item["path"] for item in secret_volume["items"]] == [key_file.name]
    assert secret_volume["items"][0]["key"] in K8S["Secret/altinn-receiver"]["stringData"]

    assert str(pod_config.store.path.parent) in instruction("VOLUME")
    assert f'"--config", "{config_file}"' in instruction("CMD")


def test_one_replica_recreated_with_probes_limits_and_time_to_drain(pod_config: Config) -> None:
    assert DEPLOYMENT["spec"]["replicas"] == 1
    assert DEPLOYMENT["spec"]["strategy"] == {"type": "Recreate"}
    assert POD["terminationGracePeriodSeconds"] > pod_config.receiver.shutdown_timeout
    for container in POD["containers"]:
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), container["name"]


def test_the_image_is_slim_runs_as_the_pods_non_root_user_and_serves_the_mounted_config() -> None:
    assert instruction("FROM").startswith("python:3.11-slim")
    user = instruction("USER")
    assert user.split(":")[0] not in ("", "0", "root")
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert str(POD["securityContext"]["runAsUser"]) == user.split(":")[0]
    assert instruction("CMD") == '["altinn-receiver", "serve", "--config", "/config/receiver.toml"]'
    assert RECEIVER["args"] == ["altinn-receiver", "serve", "--config", "/config/receiver.toml"]
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "*.db", "*.pem", "receiver.env"} <= set(ignored), "no store or secret in the build context"


def pip_commands(stage: list[tuple[str, str]]) -> list[list[str]]:
    """Each `pip install` or `pip wheel` of a stage's RUN instructions, as its words."""
    commands = []
    for found, arguments in stage:
        if found == "RUN":
            for command in re.split(r"&&|;", arguments):
                words = command.split()
                if words[:1] == ["pip"] and words[1:2] in (["install"], ["wheel"]):
                    commands.append(words)
    return commands


def test_the_image_installs_the_runtime_lock_by_hash_and_the_project_without_dependencies() -> None:
    """The build stage fetches exactly what requirements.lock pins, checked by hash; the final stage installs the same
    set again by hash, offline, and the project's own wheel with no dependency of its own choosing."""
    *builds, final = dockerfile_stages()
    assert ("COPY", "requirements.lock ./") in builds[0]
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert "requirements.lock" not in ignored and "*.lock" not in ignored
    for stage in [*builds, final]:
        for words in pip_commands(stage):
            assert "--no-cache-dir" in words, words
            if "-r" in words:
                assert "--require-hashes" in words and words[words.index("-r") + 1].endswith("requirements.lock")
            else:
                assert "--no-deps" in words, f"{words} would resolve dependencies outside the lock"
    final_pips = pip_commands(final)
    assert final_pips and all("--no-index" in words for words in final_pips)
    assert any("--require-hashes" in words for words in final_pips)


def compose_environ(service: str) -> dict[str, str]:
    return {key: str(value) for key, value in COMPOSE["services"][service]["environment"].items()}


def test_compose_runs_the_receiver_on_the_simulator_with_the_example_config(tmp_path: Path) -> None:
    services = COMPOSE["services"]
    receiver = services["receiver"]
    assert "./receiver.toml:/config/receiver.toml:ro" in receiver["volumes"]
    config = config_with(compose_environ("receiver"), tmp_path)
    simulator_port = services["simulator"]["command"][services["simulator"]["command"].index("--port") + 1]
    assert config.altinn.platform_url == f"http://127.0.0.1:{simulator_port}"
    assert config.maskinporten.issuer == config.altinn.platform_url + "/"
    assert urlsplit(config.receiver.public_url).port == config.receiver.port
    assert f"127.0.0.1:{config.receiver.port}:{config.receiver.port}" in services["simulator"]["ports"]
    assert receiver["network_mode"] == services["register"]["network_mode"] == "service:simulator"
    key_dir = str(PurePosixPath(compose_environ("register")["MASKINPORTEN_KEY_FILE"]).parent)
    assert f"keys:{key_dir}:ro" in receiver["volumes"] and f"keys:{key_dir}" in services["register"]["volumes"]


def test_compose_registration_and_example_config_get_a_validated_subscription(tmp_path: Path) -> None:
    """Run the Compose file's `register` script against the simulator, then serve the example config with the
    Compose environment (on free loopback ports and a temporary store) until Altinn validates the subscription."""
    register = COMPOSE["services"]["register"]
    key_file = tmp_path / "keys" / "maskinporten.pem"
    key_file.parent.mkdir()
    port = free_port()
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as sim:
        environ = {**compose_environ("register"), "SIMULATOR_URL": sim.url, "MASKINPORTEN_KEY_FILE": str(key_file)}
        script = register["command"]
        done = subprocess.run(
            [sys.executable, *script[1:]], env={**os.environ, **environ}, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "201"

        receiver_env = {
            **compose_environ("receiver"),
            "ALTINN_PLATFORM_URL": sim.url,
            "MASKINPORTEN_ISSUER": sim.issuer,
            "ALTINN_RECEIVER_PUBLIC_URL": f"http://127.0.0.1:{port}/events",
            "ALTINN_RESOURCE": f"compose-{uuid.uuid4().hex[:8]}",
        }
        data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
        parsed = parse_config(data, {**receiver_env, "MASKINPORTEN_KEY_FILE": str(key_file)})
        config = dataclasses.replace(
            parsed,
            receiver=dataclasses.replace(parsed.receiver, host="127.0.0.1", port=port),
            store=dataclasses.replace(parsed.store, path=tmp_path / "receiver.db"),
        )
        store = OpsStore(tmp_path, store=config.store)
        with ReceiverServer(config) as server:
            server.wait_started()
            subscriptions = wait_until(
                lambda: [s for s in store.run(list_subscriptions) if s.state == "validated"],
                message="the subscription to be validated",
            )
    assert subscriptions[0].resource == "urn:altinn:resource:" + receiver_env["ALTINN_RESOURCE"]
