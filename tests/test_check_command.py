"""`altinn-receiver check` against the simulator and a running receiver: each step passed, failed or not checked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from altinn_sim import RunningSimulator, SimSettings
from receiver.app import create_app, server_options
from receiver.cli.main import main
from receiver.config import load_config
from receiver.server_thread import ServerThread, free_port
from tests.altinn_support import KID, new_key, simulator_with_client, stand_in_config_file
from tests.support import wait_until

KEY = new_key()
SCOPES = ["altinn:events.subscribe", "altinn:correspondence.read"]
WRITE = "altinn:correspondence.write"
RESOURCE = "urn:altinn:resource:check-resource"
STEPS = ["config", "key", "maskinporten", "exchange", "correspondence-api", "subscriptions", "webhook"]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with simulator_with_client(KEY, [*SCOPES, WRITE], "310000000", SimSettings(time_scale=1000)) as simulator:
        yield simulator


def config_file(tmp_path: Path, sim: RunningSimulator, *, scopes: list[str] = SCOPES, receiver: str = "") -> Path:
    return stand_in_config_file(
        sim,
        tmp_path,
        KEY,
        scopes=scopes,
        receiver=f'secret = "a-long-webhook-secret-0123456789"\n{receiver}',
        extra_maskinporten='system_user_org = "310000000"',
        extra=f"""
[store]
path = "{tmp_path / "receiver.db"}"
[[subscriptions]]
resource = "{RESOURCE}"
subject = "urn:altinn:organization:identifier-no:310000000"
""",
    )


def check(config: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["check", "--config", str(config), "--json"])
    report = json.loads(result.stdout)
    assert [s["name"] for s in report["steps"]] == STEPS
    return result.exit_code, {s["name"]: s for s in report["steps"]}


def statuses(steps: dict[str, Any]) -> dict[str, str]:
    return {name: step["status"] for name, step in steps.items()}


def test_every_step_passes_with_a_running_receiver(tmp_path: Path, sim: RunningSimulator) -> None:
    port = free_port()
    path = config_file(tmp_path, sim, receiver=f'port = {port}\npublic_url = "http://127.0.0.1:{port}/events"')
    config = load_config(path)
    options = {k: v for k, v in server_options(config).items() if k not in ("host", "access_log", "lifespan")}
    with ServerThread(create_app(config), **options):
        # the receiver registers its subscription at startup; the simulator then validates it by a push
        code, steps = wait_until(
            lambda: (result := check(path))[1]["subscriptions"]["status"] == "passed" and result,
            timeout=20,
            message="check to see the subscription validated",
        )
    assert code == 0, steps
    assert set(statuses(steps).values()) == {"passed"}
    assert "kid test-kid" in steps["key"]["detail"]
    assert "a-long-webhook-secret" not in json.dumps(steps)


def test_without_public_url_subscriptions_and_webhook_are_not_checked(tmp_path: Path, sim: RunningSimulator) -> None:
    code, steps = check(config_file(tmp_path, sim))
    assert code == 0
    assert statuses(steps) == {
        "config": "passed", "key": "passed", "maskinporten": "passed", "exchange": "passed",
        "correspondence-api": "passed", "subscriptions": "not checked", "webhook": "not checked",
    }  # fmt: skip
    assert "public_url" in steps["webhook"]["detail"]
    assert "warning" not in steps["maskinporten"]["detail"]
    assert (
        "one per scope set (recipient: altinn:correspondence.read; events: altinn:events.subscribe)"
        in (steps["exchange"]["detail"])
    )


def test_a_recipient_client_holding_write_passes_with_a_warning_saying_why_it_is_harmless(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    code, steps = check(config_file(tmp_path, sim, scopes=[*SCOPES, WRITE]))
    assert code == 0
    assert steps["maskinporten"]["status"] == "passed"
    detail = steps["maskinporten"]["detail"]
    assert f"warning: the client also holds {WRITE}" in detail and "counts a caller whose token carries it" in detail
    assert "harmless here: the receiver's recipient calls ask for altinn:correspondence.read alone" in detail
    assert "recipient: altinn:correspondence.read;" in steps["exchange"]["detail"]
    assert steps["correspondence-api"]["status"] == "passed"


def test_a_role_lacking_a_scope_it_needs_fails_config_naming_the_scope(tmp_path: Path, sim: RunningSimulator) -> None:
    code, steps = check(config_file(tmp_path, sim, scopes=["altinn:correspondence.read"]))
    assert code == 1
    assert steps["config"]["status"] == "failed"
    assert (
        "maskinporten.scopes: lacks altinn:events.subscribe, which [altinn] role = 'recipient' needs"
        in (steps["config"]["detail"])
    )
    assert [n for n, s in statuses(steps).items() if s == "failed"] == ["config"]


def test_a_refused_scope_fails_maskinporten_and_names_it(tmp_path: Path, sim: RunningSimulator) -> None:
    code, steps = check(config_file(tmp_path, sim, scopes=[*SCOPES, "altinn:correspondence.maintenance"]))
    assert code == 1
    assert steps["maskinporten"]["status"] == "failed"
    assert "altinn:correspondence.maintenance" in steps["maskinporten"]["detail"]
    assert "altinn:events.subscribe" not in steps["maskinporten"]["detail"]
    assert steps["exchange"]["status"] == "not checked"
    assert "maskinporten" in steps["exchange"]["detail"]


def test_an_unreachable_webhook_fails_with_what_to_do(tmp_path: Path, sim: RunningSimulator) -> None:
    port = free_port()
    code, steps = check(config_file(tmp_path, sim, receiver=f'public_url = "http://127.0.0.1:{port}/events"'))
    assert code == 1
    assert steps["webhook"]["status"] == "failed"
    assert "is the receiver running" in steps["webhook"]["detail"]
    assert "code=***" in steps["webhook"]["detail"]
    assert steps["subscriptions"]["status"] == "failed"
    assert "not registered" in steps["subscriptions"]["detail"]


def test_a_config_problem_fails_config_and_nothing_else_is_checked(tmp_path: Path, sim: RunningSimulator) -> None:
    path = config_file(tmp_path, sim)
    path.write_text(path.read_text().replace(f'kid = "{KID}"\n', f'kid = "{KID}"\nclient_idd = "typo"\n'))
    code, steps = check(path)
    assert code == 1
    assert steps["config"]["status"] == "failed" and "maskinporten.client_idd" in steps["config"]["detail"]
    assert set(statuses(steps).values()) == {"failed", "not checked"}
    assert [n for n, s in statuses(steps).items() if s == "failed"] == ["config"]


def test_human_output_is_one_line_per_step(tmp_path: Path, sim: RunningSimulator) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(config_file(tmp_path, sim))])
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["passed"] * 5 + ["not"] * 2
    assert [line[13:32].strip() for line in lines] == STEPS
