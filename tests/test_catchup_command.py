"""`altinn-receiver catchup` by hand: progress on stderr, results as a table or JSON lines, bad events kept dead."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from altinn_sim import SimSettings, running_simulator
from receiver.cli.main import main
from receiver.config import StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import ReceiverSetup, register_identity
from tests.catchup_support import event, fresh_resource, inbox
from tests.store_backends import rows


def test_catchup_enqueues_what_is_new_keeps_an_invalid_event_dead_and_resumes_from_its_cursor(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    """On each backend: the command creates a store where there is none (a file; a schema without the tables)."""
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as sim:
        identity = register_identity(sim, tmp_path)
        resource = fresh_resource(sim, identity.org)
        good = [event(resource) for _ in range(3)]
        bad = {**event(resource), "Not-An-Attribute-Name": "x"}  # Altinn passes it on; the receiver refuses it
        for item in (good[0], bad, good[1], good[2]):
            sim.publish_event(item, push=False)
        setup = ReceiverSetup(sim.url, identity, store_config.path, [SubscriptionConfig(resource)],
                              catchup={"start": "beginning"}, store_url=store_config.url)  # fmt: skip
        config = tmp_path / "r.toml"
        setup.write(config)

        first = CliRunner().invoke(main, ["catchup", "--json", "--config", str(config)])
        table = CliRunner().invoke(main, ["catchup", "--config", str(config)])
        again = CliRunner().invoke(main, ["catchup", "--json", "--config", str(config)])

    assert first.exit_code == 0, first.output
    [result] = [json.loads(line) for line in first.stdout.splitlines()]
    assert (result["read"], result["enqueued"], result["invalid"], result["after"]) == (4, 3, 1, good[2]["id"])
    assert "4 events read, 3 new" in first.stderr
    assert inbox(store_config) == {e["id"]: "catchup" for e in (*good, bad)}
    [dead] = rows(store_config, "SELECT * FROM inbox WHERE status = 'dead'")
    assert dead["id"] == bad["id"] and "Not-An-Attribute-Name" in dead["last_error"]
    assert table.exit_code == 0 and table.stdout.startswith("RESOURCE")
    [resumed] = [json.loads(line) for line in again.stdout.splitlines()]
    assert (resumed["read"], resumed["enqueued"], resumed["after"]) == (0, 0, good[2]["id"])


def test_catchup_without_subscriptions_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "r.toml"
    config.write_text('[receiver]\nallow_no_secret = true\n[store]\npath = "r.db"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["catchup", "--config", str(config)])
    assert result.exit_code == 2
    assert "subscriptions: none configured" in result.stderr
