"""`altinn-receiver token` against the simulator: claims by default, the token only with --raw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from altinn_sim import RunningSimulator
from receiver.cli.main import main
from tests.altinn_support import new_key, simulator_with_client, stand_in_config_file

KEY = new_key()
SCOPES = ["altinn:events.subscribe", "altinn:correspondence.read"]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_with_client(KEY, SCOPES, "310000000") as simulator:
        yield simulator


def config_file(tmp_path: Path, sim: RunningSimulator, scopes: list[str] = SCOPES) -> str:
    return str(stand_in_config_file(sim, tmp_path, KEY, scopes=scopes))


def token_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["token", *args])
    return result.exit_code, result.stdout, result.stderr


def test_token_prints_the_claims_and_not_the_token(tmp_path: Path, sim: RunningSimulator) -> None:
    code, out, _ = token_cli("--config", config_file(tmp_path, sim))
    assert code == 0
    assert "eyJ" not in out
    assert out.startswith("altinn token for altinn:correspondence.read altinn:events.subscribe")
    claims = json.loads(out[out.index("{") :])
    assert claims["iss"] == sim.url + "/authentication/api/v1/openid/"
    assert claims["urn:altinn:orgNumber"] == "310000000"


def test_raw_prints_only_the_token_and_json_has_the_claims(tmp_path: Path, sim: RunningSimulator) -> None:
    config = config_file(tmp_path, sim)
    code, raw, _ = token_cli("--config", config, "--raw")
    assert code == 0
    assert jwt.decode(raw.strip(), options={"verify_signature": False})["urn:altinn:orgNumber"] == "310000000"
    code, out, _ = token_cli("--config", config, "--json")
    info = json.loads(out)
    assert code == 0 and "token" not in info and "eyJ" not in out
    assert info["kind"] == "altinn" and sorted(info["scopes"]) == sorted(SCOPES)
    assert info["expires_at"].endswith("Z") and info["expires_in"] > 0


def test_maskinporten_flag_shows_the_maskinporten_token_for_the_scopes_asked(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    code, out, _ = token_cli("--config", config_file(tmp_path, sim), "--maskinporten", "--scope", SCOPES[0], "--json")
    info = json.loads(out)
    assert code == 0
    assert info["kind"] == "maskinporten"
    assert info["claims"]["iss"] == sim.issuer
    assert info["scopes"] == [SCOPES[0]]


def test_a_refused_scope_exits_1_and_says_which(tmp_path: Path, sim: RunningSimulator) -> None:
    code, out, err = token_cli("--config", config_file(tmp_path, sim), "--scope", "altinn:correspondence.write")
    assert code == 1 and out == ""
    assert "altinn:correspondence.write" in err


def test_config_problems_exit_2(tmp_path: Path, sim: RunningSimulator) -> None:
    code, _, err = token_cli("--config", config_file(tmp_path, sim, scopes=[]))
    assert code == 2
    assert err.startswith("config error: maskinporten.scopes:")
