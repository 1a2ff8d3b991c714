"""`subscriptions list|sync|delete|prune` against the simulator, and rotating the code while the receiver runs."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from altinn_sim import RunningSimulator
from receiver.cli.main import main
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import Identity, ReceiverServer, ReceiverSetup, register_identity
from receiver.runtime import Runtime, Service
from receiver.sync.subscriptions import SubscriptionService
from receiver.timeutil import parse_iso
from tests.support import wait_until


@pytest.fixture(scope="module")
def identity(sim: RunningSimulator, tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return register_identity(sim, tmp_path_factory.mktemp("identity"))


def fresh_resource() -> str:
    return f"urn:altinn:resource:cmd-test-{uuid.uuid4().hex[:10]}"


def cli(config: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--config", str(config)], input=stdin)


def write(setup: ReceiverSetup, path: Path) -> Path:
    setup.write(path)
    return path


def at_altinn(sim: RunningSimulator, *resources: str) -> list[dict[str, Any]]:
    return [s for s in sim.state_snapshot()["subscriptions"] if s.get("resourceFilter") in resources]


def test_prune_deletes_only_unwanted_subscriptions_of_this_endpoint(
    sim: RunningSimulator, identity: Identity, tmp_path: Path
) -> None:
    kept, dropped = fresh_resource(), fresh_resource()
    ours = ReceiverSetup(
        sim.url, identity, tmp_path / "ours.db", [SubscriptionConfig(kept), SubscriptionConfig(dropped)]
    )
    theirs = dataclasses.replace(ours, store=tmp_path / "theirs.db", port=ours.port + 1, secret="another-webhook-code")
    # Nothing listens on these endpoints, so Altinn cannot validate them: sync says so and exits 1.
    result = cli(write(ours, tmp_path / "ours.toml"), "subscriptions", "sync", "--wait", "0")
    assert result.exit_code == 1, result.output
    assert "not validated" in result.stderr
    assert cli(write(theirs, tmp_path / "theirs.toml"), "subscriptions", "sync", "--wait", "0").exit_code == 1
    assert len(at_altinn(sim, kept, dropped)) == 4

    config = write(dataclasses.replace(ours, subscriptions=[SubscriptionConfig(kept)]), tmp_path / "ours.toml")
    listed = [json.loads(line) for line in cli(config, "subscriptions", "list", "--json").stdout.splitlines()]
    roles = {(v["resource"], v["role"]) for v in listed if v["resource"] in (kept, dropped)}
    assert roles == {(kept, "current"), (dropped, "unwanted"), (kept, "other-endpoint"), (dropped, "other-endpoint")}
    assert all(v["endpoint"].endswith("?code=***") for v in listed)

    refused = cli(config, "subscriptions", "prune", stdin="n\n")
    assert refused.exit_code == 1 and len(at_altinn(sim, kept, dropped)) == 4

    pruned = cli(config, "subscriptions", "prune", "--yes")
    assert pruned.exit_code == 0, pruned.output
    left = {(s["resourceFilter"], s["endPoint"]) for s in at_altinn(sim, kept, dropped)}
    assert left == {
        (kept, ours.public_url + "?code=***"),
        (kept, theirs.public_url + "?code=***"),
        (dropped, theirs.public_url + "?code=***"),
    }
    assert ours.secret not in pruned.output + refused.output + "".join(json.dumps(v) for v in listed)


def test_delete_removes_one_subscription_and_says_when_the_config_still_wants_it(
    sim: RunningSimulator, identity: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource()
    config = write(
        ReceiverSetup(sim.url, identity, tmp_path / "r.db", [SubscriptionConfig(resource)]), tmp_path / "r.toml"
    )
    cli(config, "subscriptions", "sync", "--wait", "0")
    [subscription] = at_altinn(sim, resource)
    result = cli(config, "subscriptions", "delete", str(subscription["id"]))
    assert result.exit_code == 0, result.output
    assert "will create it again" in result.stderr
    assert at_altinn(sim, resource) == []
    missing = cli(config, "subscriptions", "delete", str(subscription["id"]))
    assert missing.exit_code == 1 and "404" in missing.stderr


def rows(path: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


def test_rotation_keeps_the_old_subscription_until_the_new_one_has_been_validated_for_the_cache_lifetime(
    sim: RunningSimulator, identity: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource()
    first = ReceiverSetup(sim.url, identity, tmp_path / "r.db", [SubscriptionConfig(resource)],
                          catchup={"enabled": False, "interval": "1s"})  # fmt: skip
    with ReceiverServer(first.write(tmp_path / "r.toml")) as receiver:
        receiver.wait_started()
        wait_until(lambda: at_altinn(sim, resource) and at_altinn(sim, resource)[0]["validated"], message="validated")
    [old] = at_altinn(sim, resource)

    lifetime = 3.0  # Altinn's hour, shortened

    def services(runtime: Runtime) -> list[Service]:
        return [SubscriptionService(cache_lifetime=lifetime, poll_initial=0.05)]

    rotated = dataclasses.replace(first, secret="the-new-webhook-code", previous_secrets=[first.secret])
    with ReceiverServer(rotated.write(tmp_path / "r.toml"), services) as receiver:
        receiver.wait_started()
        new = wait_until(
            lambda: next((s for s in at_altinn(sim, resource) if s["id"] != old["id"] and s["validated"]), None),
            message="the subscription with the new code validated",
        )
        # Both exist now; the old one still gets Altinn's pushes (the old code is still accepted).
        assert {s["id"] for s in at_altinn(sim, resource)} == {old["id"], new["id"]}

        def superseded_with_deadline() -> dict[str, Any] | None:
            # The receiver learns of the validation on its own next poll, a moment after Altinn records it.
            status = httpx.get(receiver.url + "/readyz").json()["services"]["subscriptions"]
            view: dict[str, Any] = next(s for s in status["subscriptions"] if s["id"] == old["id"])
            return view if view["delete_after"] else None

        superseded = wait_until(superseded_with_deadline, message="the old subscription's deletion time in /readyz")
        assert superseded["role"] == "superseded"
        listed = cli(tmp_path / "r.toml", "subscriptions", "list", "--json").stdout
        assert f'"id": {old["id"]}, ' in listed and '"role": "superseded"' in listed
        wait_until(lambda: len(at_altinn(sim, resource)) == 1, timeout=lifetime + 10, message="old one deleted")

    assert [s["id"] for s in at_altinn(sim, resource)] == [new["id"]]
    [record] = rows(tmp_path / "r.db", f"SELECT validated_at FROM subscriptions WHERE altinn_id = {new['id']}")
    [deleted_at] = [r["at"] for r in sim.state_snapshot()["requests"]
                    if r["method"] == "DELETE" and r["path"].endswith(f"/subscriptions/{old['id']}")]  # fmt: skip
    assert (parse_iso(deleted_at) - parse_iso(record["validated_at"])).total_seconds() >= lifetime
