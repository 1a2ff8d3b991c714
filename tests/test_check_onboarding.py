"""`altinn-receiver check` on what `init` wrote: every step passes against the simulator with `serve` running,
each names the onboarding guide step it verifies, and one broken thing fails the step that covers it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from altinn_sim import SimSettings, running_simulator
from altinn_sim.runner import RunningSimulator
from receiver.onboarding.agency import SCOPES
from receiver.onboarding.steps import CHECK_GUIDE_STEPS
from tests.onboarding_support import Agency, onboard, serving

STEPS = ["config", "key", "maskinporten", "exchange", "correspondence-api", "subscriptions", "webhook"]
OWNER_SCOPES = SCOPES["service-owner"]


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=1000.0, seed_correspondences=0)) as simulator:
        yield simulator


def check(agency: Agency) -> tuple[int, dict[str, dict[str, Any]]]:
    result = agency.run("check", "--json")
    report = json.loads(result.stdout)
    assert [step["name"] for step in report["steps"]] == STEPS, result.stderr
    return result.returncode, {step["name"]: step for step in report["steps"]}


def statuses(steps: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: step["status"] for name, step in steps.items()}


def test_every_step_passes_and_names_the_guide_step_it_verifies(tmp_path: Path, sim: RunningSimulator) -> None:
    agency = onboard(sim, tmp_path, "check-ok", "check-ok-resource", OWNER_SCOPES)
    with serving(agency, sim, "check-ok-resource"):
        code, steps = check(agency)
        human = agency.run("check").stdout
    assert code == 0, steps
    assert set(statuses(steps).values()) == {"passed"}, steps
    assert {name: step["guide_steps"] for name, step in steps.items()} == {
        name: list(numbers) for name, numbers in CHECK_GUIDE_STEPS.items()
    }
    assert steps["key"]["guide_steps"] == [4] and steps["exchange"]["guide_steps"] == [5]
    key_line = next(line for line in human.splitlines() if line.split()[1] == "key")
    assert "guide step 4" in key_line
    assert agency.env["ALTINN_RECEIVER_SECRET"] not in json.dumps(steps) + human


def test_a_kid_the_client_does_not_have_fails_maskinporten_naming_an_unknown_kid(
    tmp_path: Path, sim: RunningSimulator
) -> None:
    agency = onboard(sim, tmp_path, "check-kid", "check-kid-resource", OWNER_SCOPES)
    kid = agency.jwk["kid"]
    agency.config.write_text(agency.config.read_text().replace(f'kid = "{kid}"', 'kid = "rotated-away"'))
    code, steps = check(agency)
    assert code == 1
    assert statuses(steps)["key"] == "passed"
    assert steps["maskinporten"]["status"] == "failed"
    assert "unknown kid" in steps["maskinporten"]["detail"] and "rotated-away" in steps["maskinporten"]["detail"]
    assert steps["exchange"]["status"] == "not checked"


def test_a_scope_the_client_lacks_fails_maskinporten_naming_the_scope(tmp_path: Path, sim: RunningSimulator) -> None:
    lacking = tuple(s for s in OWNER_SCOPES if s != "altinn:events.subscribe")
    agency = onboard(sim, tmp_path, "check-scope", "check-scope-resource", lacking)
    code, steps = check(agency)
    assert code == 1
    assert statuses(steps) | {"webhook": "no receiver runs here"} == {
        "config": "passed", "key": "passed", "maskinporten": "failed", "exchange": "not checked",
        "correspondence-api": "not checked", "subscriptions": "not checked", "webhook": "no receiver runs here",
    }  # fmt: skip
    detail = steps["maskinporten"]["detail"]
    assert "missing scope" in detail and "altinn:events.subscribe" in detail
    assert "altinn:correspondence.write" not in detail, "only the scope the client lacks is named"


def test_an_unvalidated_subscription_fails_the_subscriptions_step(tmp_path: Path, sim: RunningSimulator) -> None:
    # public_url names a path the receiver does not serve: Altinn's validation push gets 404 and never succeeds
    agency = onboard(sim, tmp_path, "check-unvalidated", "check-unvalidated-resource", OWNER_SCOPES,
                     public_path="/not-the-webhook")  # fmt: skip
    with serving(agency, sim, "check-unvalidated-resource", validated=False):
        code, steps = check(agency)
    assert code == 1
    assert all(statuses(steps)[name] == "passed" for name in STEPS[:5]), steps
    assert steps["subscriptions"]["status"] == "failed"
    assert "not validated" in steps["subscriptions"]["detail"]
    assert steps["webhook"]["status"] == "failed"
