"""Fault injection (from sim.toml and the admin API), sim.toml parsing, and the command's config errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from altinn_sim import FaultRule, RunningSimulator, SimSettings, load_sim_settings, running_simulator
from receiver.cli.simulator import simulator_command
from receiver.config import ConfigError

METADATA = "/.well-known/oauth-authorization-server"


@pytest.fixture()
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(seed_correspondences=0)) as running:
        yield running


def test_sim_toml_is_read_into_settings(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        'time_scale = 500\nrequire_https = true\naltinn_token_lifetime = "10m"\npull_lag = 0\n'
        'push_schedule = "wolverine"\npush_timeout = "10s"\n'
        '[[faults]]\npath = "/token"\nmethod = "post"\nerror_rate = 1.0\nerror_status = 500\ncount = 2\n'
    )
    settings = load_sim_settings(path)
    assert settings.time_scale == 500 and settings.require_https and settings.pull_lag == 0
    assert settings.altinn_token_lifetime == 600
    assert settings.push_schedule == "wolverine" and settings.push_timeout == 10
    assert settings.faults == (FaultRule(path="/token", method="POST", error_rate=1.0, error_status=500, count=2),)
    assert load_sim_settings(None) == SimSettings()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("time_scale = 0", "time_scale"),
        ("time_scal = 2", "time_scal"),
        ('push_schedule = "storage-queues"', "push_schedule"),
        ('push_timeout = "0s"', "push_timeout"),
        ("[[faults]]\nerror_rate = 2", "faults[0].error_rate"),
        ("[[faults]]\nerror_status = 404", "faults[0].error_status"),
        ("[[faults]]\nlatncy = 1", "faults[0].latncy"),
        ('[[faults]]\nerror_code = "4001"', "faults[0].error_code"),
    ],
)
def test_bad_sim_toml_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_sim_settings(path)
    assert raised.value.key == key


def test_command_exits_2_on_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("time_scale = -1")
    result = CliRunner().invoke(simulator_command, ["--config", str(path)])
    assert result.exit_code == 2
    assert "time_scale" in result.output


def test_counted_errors_then_normal_service(sim: RunningSimulator) -> None:
    rules = sim.admin.put(
        "/faults", json={"path": "/.well-known/*", "error_rate": 1.0, "error_status": 503, "count": 3}
    )
    assert rules.status_code == 200 and rules.json()[0]["count"] == 3
    statuses = [httpx.get(sim.url + METADATA).status_code for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    assert sim.state_snapshot()["faults"] == []


def test_429_carries_retry_after_and_admin_is_never_faulted(sim: RunningSimulator) -> None:
    sim.admin.put("/faults", json=[{"path": "*", "error_rate": 1.0, "error_status": 429, "retry_after": "7s"}])
    response = httpx.get(sim.url + METADATA)
    assert (response.status_code, response.headers["retry-after"]) == (429, "7")
    assert sim.admin.get("/state").status_code == 200
    assert sim.admin.delete("/faults").json() == []
    assert httpx.get(sim.url + METADATA).status_code == 200


def test_an_error_code_rides_in_the_problem_details_body(sim: RunningSimulator) -> None:
    sim.admin.put("/faults", json={"path": METADATA, "error_rate": 1.0, "error_status": 401, "error_code": 4001})
    response = httpx.get(sim.url + METADATA)
    sim.admin.delete("/faults")
    assert response.status_code == 401
    assert (response.json()["status"], response.json()["errorCode"]) == (401, 4001)


def test_latency_and_hanging_requests(sim: RunningSimulator) -> None:
    sim.admin.put("/faults", json={"path": METADATA, "latency": "300ms"})
    started = time.monotonic()
    assert httpx.get(sim.url + METADATA).status_code == 200
    assert time.monotonic() - started >= 0.3
    sim.admin.put("/faults", json={"path": METADATA, "method": "GET", "hang": True})
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(sim.url + METADATA, timeout=0.5)
    assert httpx.post(sim.url + "/token", data={}).status_code == 400  # other routes still answer


def test_bad_rules_are_refused(sim: RunningSimulator) -> None:
    response = sim.admin.put("/faults", json={"path": "/x", "error_rate": "often"})
    assert response.status_code == 400 and "error_rate" in response.json()["error"]


def test_faults_from_settings_apply() -> None:
    rule = FaultRule(path="/token", method="POST", error_rate=1.0, error_status=500, count=1)
    with running_simulator(SimSettings(seed_correspondences=0, faults=(rule,))) as sim:
        assert httpx.post(sim.url + "/token", data={}).status_code == 500
        assert httpx.post(sim.url + "/token", data={}).status_code == 400
        seen = [r["status"] for r in sim.state_snapshot()["requests"] if r["path"] == "/token"]
        assert seen == [500, 400]
