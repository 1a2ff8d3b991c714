"""`altinn-receiver token` against the simulator: one token per scope set the receiver uses, each with its purpose;
claims by default, the token only with --raw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner

from altinn_sim import RunningSimulator
from receiver.cli.main import main
from tests.altinn_support import SERVICE_OWNER_SCOPES, new_key, simulator_with_client, stand_in_config_file

KEY = new_key()
READ, WRITE = "altinn:correspondence.read", "altinn:correspondence.write"
SUBSCRIBE, SERVICE_OWNER = "altinn:events.subscribe", "altinn:serviceowner"
SCOPES = [SUBSCRIBE, READ]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_with_client(KEY, [*SCOPES, WRITE, SERVICE_OWNER], "310000000") as simulator:
        yield simulator


def config_file(tmp_path: Path, sim: RunningSimulator, scopes: list[str] = SCOPES, **options: Any) -> str:
    return str(stand_in_config_file(sim, tmp_path, KEY, scopes=scopes, **options))


def token_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["token", *args])
    return result.exit_code, result.stdout, result.stderr


def json_lines(out: str) -> dict[str, dict[str, Any]]:
    """--json output: one object per token, by purpose."""
    return {info["purpose"]: info for info in map(json.loads, out.splitlines())}


def test_token_prints_each_scope_sets_claims_with_its_purpose_and_not_the_token(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    code, out, _ = token_cli("--config", config_file(tmp_path, sim))
    assert code == 0
    assert "eyJ" not in out
    recipient, events = out.split("\n\n")
    assert recipient.startswith(f"altinn token for recipient: {READ}\nused for the recipient's Correspondence calls")
    assert events.startswith(f"altinn token for events: {SUBSCRIBE}\nused for the Events calls")
    claims = json.loads(recipient[recipient.index("{") :])
    assert claims["iss"] == sim.url + "/authentication/api/v1/openid/"
    assert claims["urn:altinn:orgNumber"] == "310000000"


def test_json_has_one_object_per_set_and_raw_prints_the_one_token_chosen(tmp_path: Path, sim: RunningSimulator) -> None:
    config = config_file(tmp_path, sim)
    code, out, _ = token_cli("--config", config, "--json")
    tokens = json_lines(out)
    assert code == 0 and "eyJ" not in out
    assert {purpose: info["scopes"] for purpose, info in tokens.items()} == {"recipient": [READ], "events": [SUBSCRIBE]}
    assert all(info["kind"] == "altinn" and "token" not in info for info in tokens.values())
    assert all(info["expires_at"].endswith("Z") and info["expires_in"] > 0 for info in tokens.values())
    code, raw, _ = token_cli("--config", config, "--raw", "--purpose", "recipient")
    assert code == 0
    claims = jwt.decode(raw.strip(), options={"verify_signature": False})
    assert (claims["scope"], claims["urn:altinn:orgNumber"]) == (READ, "310000000")


def test_raw_without_a_choice_of_token_exits_2_and_prints_no_token(tmp_path: Path, sim: RunningSimulator) -> None:
    code, out, err = token_cli("--config", config_file(tmp_path, sim), "--raw")
    assert code == 2 and out == ""
    assert "--purpose (recipient, events)" in err


def test_a_recipient_holding_the_write_scope_still_reads_with_read_alone(tmp_path: Path, sim: RunningSimulator) -> None:
    code, out, _ = token_cli("--config", config_file(tmp_path, sim, scopes=[*SCOPES, WRITE]), "--json")
    assert code == 0
    # the write scope has a token of its own, for `send` only
    assert {p: info["scopes"] for p, info in json_lines(out).items()} == {
        "recipient": [READ],
        "events": [SUBSCRIBE],
        "sender": [WRITE],
    }


def test_a_service_owner_sends_with_write_and_subscribes_as_service_owner(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    config = config_file(tmp_path, sim, scopes=[*SERVICE_OWNER_SCOPES, READ], role="service-owner")
    code, out, _ = token_cli("--config", config, "--json")
    tokens = json_lines(out)
    assert code == 0
    assert {p: info["scopes"] for p, info in tokens.items()} == {
        "sender": [WRITE],
        "events": [SUBSCRIBE, SERVICE_OWNER],
    }
    assert "urn:altinn:org" in tokens["events"]["claims"] and "urn:altinn:org" not in tokens["sender"]["claims"]
    code, _, err = token_cli("--config", config, "--purpose", "recipient")
    assert code == 2 and "--purpose" in err and "no recipient token" in err


def test_maskinporten_flag_shows_the_maskinporten_token_for_the_scopes_asked(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    code, out, _ = token_cli("--config", config_file(tmp_path, sim), "--maskinporten", "--scope", SCOPES[0], "--json")
    info = json.loads(out)
    assert code == 0
    assert (info["kind"], info["purpose"]) == ("maskinporten", None)
    assert info["claims"]["iss"] == sim.issuer
    assert info["scopes"] == [SCOPES[0]]


def test_a_refused_scope_exits_1_and_says_which(tmp_path: Path, sim: RunningSimulator) -> None:
    code, out, err = token_cli("--config", config_file(tmp_path, sim), "--scope", "altinn:correspondence.maintenance")
    assert code == 1 and out == ""
    assert "altinn:correspondence.maintenance" in err


@pytest.mark.parametrize(
    ("role", "scopes", "missing"),
    [
        ("recipient", [], READ),
        ("recipient", [READ], SUBSCRIBE),
        ("service-owner", SCOPES, WRITE),
        ("service-owner", [WRITE, SUBSCRIBE], SERVICE_OWNER),
    ],
)
def test_a_role_without_the_scopes_it_needs_exits_2_naming_the_missing_one(
    tmp_path: Path, sim: RunningSimulator, role: str, scopes: list[str], missing: str
) -> None:
    code, _, err = token_cli("--config", config_file(tmp_path, sim, scopes=scopes, role=role))
    assert code == 2
    assert err.startswith(f"config error: maskinporten.scopes: lacks {missing}, which [altinn] role = '{role}' needs")
