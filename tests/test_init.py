"""`altinn-receiver init`: the key Maskinporten accepts, a config `serve` starts with, a policy that parses."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from altinn_sim import running_simulator
from altinn_sim.runner import RunningSimulator
from receiver.altinn import AltinnClients, PermanentError
from receiver.config import load_config
from receiver.onboarding.agency import SCOPES
from receiver.onboarding.policy import XACML
from tests.onboarding_support import env_of, onboard, serving
from tests.support import REPO

ORG = "310000000"
RESOURCE = "onboarding-test-resource"
NS = {"x": XACML}
SERVICE_OWNER_FLAGS = ("--resource", RESOURCE, "--org", ORG, "--owner-code", "ttd")


def run_init(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver", "init", "--dir", str(directory), "--yes", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def init_ok(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_init(directory, *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator() as simulator:
        yield simulator


def simulator_flags(sim: RunningSimulator, client_id: str) -> tuple[str, ...]:
    return ("--platform-url", sim.url, "--issuer", sim.issuer, "--client-id", client_id)


def test_the_generated_key_gets_a_token_from_maskinporten_once_its_jwk_is_registered(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    init_ok(tmp_path, *SERVICE_OWNER_FLAGS, *simulator_flags(sim, "init-client"))
    config = load_config(tmp_path / "receiver.toml", environ=env_of(tmp_path))
    jwk = json.loads((tmp_path / "maskinporten.jwk.json").read_text())
    assert "d" not in jwk, "the JWK to paste into the self-service must be the public half only"
    assert config.maskinporten.kid == jwk["kid"]

    async def grant() -> str:
        async with AltinnClients.from_config(config) as clients:
            return (await clients.tokens.maskinporten()).value

    with pytest.raises(PermanentError):  # nothing registered yet: Maskinporten refuses the grant
        asyncio.run(grant())
    sim.register_client("init-client", public_jwk=jwk, scopes=list(SCOPES["service-owner"]), org=ORG)
    token = asyncio.run(grant())
    assert token.count(".") == 2


def test_serve_starts_with_the_generated_config_and_subscribes(tmp_path: Path, sim: RunningSimulator) -> None:
    agency = onboard(sim, tmp_path, "serve-client", RESOURCE, SCOPES["service-owner"])
    with serving(agency, sim, RESOURCE):
        assert httpx.get(f"http://127.0.0.1:{agency.port}/healthz").status_code == 200
    assert (tmp_path / "receiver.db").is_file(), "the store path is relative to receiver.toml"


def _rules(policy: ET.Element) -> dict[str, tuple[set[str], set[str]]]:
    """Rule id -> (subject attribute=value pairs, actions)."""
    rules = {}
    for rule in policy.findall("x:Rule", NS):
        subjects, actions = set(), set()
        for match in rule.iterfind(".//x:Match", NS):
            value = match.findtext("x:AttributeValue", namespaces=NS) or ""
            designator = match.find("x:AttributeDesignator", NS)
            assert designator is not None
            category, attribute = designator.get("Category", ""), designator.get("AttributeId", "")
            if category.endswith("access-subject"):
                subjects.add(f"{attribute}={value}")
            elif category.endswith("attribute-category:action"):
                actions.add(value)
            else:
                assert (attribute, value) == ("urn:altinn:resource", RESOURCE)
        assert rule.get("Effect") == "Permit"
        rules[rule.get("RuleId", "")] = (subjects, actions)
    return rules


def test_policy_permits_read_and_subscribe_to_the_role_and_write_to_the_service_owner(tmp_path: Path) -> None:
    init_ok(tmp_path, *SERVICE_OWNER_FLAGS, "--role-code", "lede")
    text = (tmp_path / "policy.xml").read_text()
    policy = ET.fromstring(text.encode())
    assert policy.tag == f"{{{XACML}}}Policy"
    assert policy.get("RuleCombiningAlgId", "").endswith("deny-overrides")
    rules = _rules(policy)
    assert sorted(rules.values(), key=lambda r: sorted(r[1])) == [
        ({"urn:altinn:rolecode=LEDE"}, {"read", "subscribe"}),
        ({"urn:altinn:org=ttd"}, {"subscribe", "write"}),
    ]
    assert all(rule_id.startswith(f"urn:altinn:resource:{RESOURCE}:") for rule_id in rules)
    assert text.count("<!--") >= 2, "each rule carries a comment on what it does"
    level = policy.find(".//x:AttributeAssignmentExpression/x:AttributeValue", NS)
    assert level is not None and level.text == "3"


def test_recipient_gets_a_subject_subscription_read_scopes_and_no_write_rule(tmp_path: Path) -> None:
    init_ok(tmp_path, "--role", "recipient", "--resource", f"urn:altinn:resource:{RESOURCE}", "--org", ORG)
    config = load_config(tmp_path / "receiver.toml", environ=env_of(tmp_path))
    assert config.altinn.role == "recipient"
    assert config.maskinporten.scopes == ("altinn:correspondence.read", "altinn:events.subscribe")
    [subscription] = config.subscriptions
    assert subscription.resource == f"urn:altinn:resource:{RESOURCE}"
    assert subscription.subject == f"urn:altinn:organization:identifier-no:{ORG}"
    assert "# system_user_org" in (tmp_path / "receiver.toml").read_text()
    actions = {a for _, acts in _rules(ET.parse(tmp_path / "policy.xml").getroot()).values() for a in acts}
    assert actions == {"read", "subscribe"}


def test_service_owner_config_subscribes_without_subject_and_keeps_the_secret_out_of_the_toml(tmp_path: Path) -> None:
    result = init_ok(tmp_path, *SERVICE_OWNER_FLAGS)
    secret = env_of(tmp_path)["ALTINN_RECEIVER_SECRET"]
    assert len(secret) >= 40
    toml = (tmp_path / "receiver.toml").read_text()
    assert secret not in toml and secret not in result.stdout and secret not in result.stderr
    config = load_config(tmp_path / "receiver.toml", environ={"ALTINN_RECEIVER_SECRET": secret})
    assert config.receiver.secret == secret
    assert config.altinn.platform_url == "https://platform.tt02.altinn.no"
    assert config.maskinporten.scopes == SCOPES["service-owner"]
    assert not config.maskinporten.configured, "no --client-id: client_id stays commented until step 4"
    [subscription] = config.subscriptions
    assert subscription.subject == ""
    for name, mode in [("maskinporten.pem", 0o600), ("receiver.env", 0o600), ("maskinporten.jwk.json", 0o644)]:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_init_prints_the_seven_steps_with_the_agencys_values(tmp_path: Path) -> None:
    stdout = init_ok(tmp_path, *SERVICE_OWNER_FLAGS, "--environment", "production").stdout
    kid = json.loads((tmp_path / "maskinporten.jwk.json").read_text())["kid"]
    numbered = re.findall(r"^(\d)\. ", stdout, flags=re.MULTILINE)
    assert numbered == [str(n) for n in range(1, 8)]
    for expected in (
        "servicedesk@altinn.no",
        "altinn:serviceowner",
        "https://sjolvbetjening.samarbeid.digdir.no/",
        kid,
        RESOURCE,
        str(tmp_path / "policy.xml"),
        f"altinn-receiver check --config {tmp_path / 'receiver.toml'}",
    ):
        assert expected in stdout, expected


def test_an_existing_key_is_never_replaced_without_force(tmp_path: Path) -> None:
    init_ok(tmp_path, *SERVICE_OWNER_FLAGS)
    key = (tmp_path / "maskinporten.pem").read_bytes()
    refused = run_init(tmp_path, *SERVICE_OWNER_FLAGS)
    assert refused.returncode == 1
    assert "maskinporten.pem" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / "maskinporten.pem").read_bytes() == key
    init_ok(tmp_path, *SERVICE_OWNER_FLAGS, "--force")
    assert (tmp_path / "maskinporten.pem").read_bytes() != key
    assert stat.S_IMODE((tmp_path / "maskinporten.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--org", ORG, "--owner-code", "ttd"), "--resource"),
        (("--resource", RESOURCE, "--owner-code", "ttd"), "--org"),
        (("--resource", RESOURCE, "--org", ORG), "--owner-code"),
        (("--resource", RESOURCE, "--org", "12345", "--owner-code", "ttd"), "--org"),
        (("--resource", "Upper-Case", "--org", ORG, "--owner-code", "ttd"), "--resource"),
        (("--public-url", "https://x.example/events?code=1", *SERVICE_OWNER_FLAGS), "--public-url"),
    ],
)
def test_missing_or_bad_values_exit_2_naming_the_flag_and_write_nothing(
    tmp_path: Path, args: tuple[str, ...], flag: str
) -> None:
    result = run_init(tmp_path / "out", *args)
    assert result.returncode == 2
    assert flag in result.stderr
    assert not (tmp_path / "out").exists()


def test_on_a_terminal_init_asks_for_what_is_missing(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver", "init", "--dir", str(tmp_path), "--environment", "tt02"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
    )
    os.close(follower)
    script = [
        ("Role", "recipient"),
        ("Resource id", RESOURCE),
        ("Organisation number", "12"),  # refused: asked again
        ("Organisation number", ORG),
        ("Role code", ""),  # the default, DAGL
        ("client id", "my-client"),
        ("Public https URL", "https://receiver.example.no/events"),
    ]
    transcript = pending = ""

    def read() -> str:
        try:
            return os.read(leader, 4096).decode()
        except OSError:  # the child closed the terminal
            return ""

    try:
        for prompt, answer in script:
            while prompt not in pending:
                chunk = read()
                assert chunk, f"init ended before asking {prompt!r}:\n{transcript}"
                pending += chunk
                transcript += chunk
            os.write(leader, (answer + "\n").encode())
            pending = ""
        while chunk := read():
            transcript += chunk
    finally:
        os.close(leader)
        process.wait(timeout=30)
    assert process.returncode == 0, transcript
    assert "9-digit organisation number" in transcript
    config = load_config(tmp_path / "receiver.toml", environ=env_of(tmp_path))
    assert config.altinn.role == "recipient"
    assert config.maskinporten.client_id == "my-client"
    assert config.receiver.public_url == "https://receiver.example.no/events"
    assert config.subscriptions[0].subject.endswith(ORG)
    assert "DAGL" in (tmp_path / "policy.xml").read_text()
