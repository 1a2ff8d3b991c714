"""The receiver is down while 500 events are published and Altinn stops pushing them: after a restart, catch-up
brings every one of them in and the dispatcher processes each exactly once.

The events are published pull-only (`?push=false`), the state Altinn is in once its push retries have run out:
letting the simulator run out 500 x 12 push attempts takes minutes (it makes about 50 attempts a second). The demo
test covers real retry exhaustion on a few events."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from receiver.config import SubscriptionConfig
from receiver.demo import ReceiverServer, ReceiverSetup, register_identity
from receiver.simulator import SimSettings, running_simulator
from tests.support import wait_until

CORRESPONDENCES = 250  # two events each (initialized, published): 500 events
RECIPIENT_ORG = "312345678"


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_500_events_missed_while_down_are_processed_exactly_once_after_a_restart(tmp_path: Path) -> None:
    # 50000x: Altinn's 35-hour push retry schedule takes about 2.5 s.
    with running_simulator(SimSettings(time_scale=50000, seed_correspondences=0)) as sim:
        identity = register_identity(sim, tmp_path)
        resource_id = f"outage-{uuid.uuid4().hex[:10]}"
        resource = f"urn:altinn:resource:{resource_id}"
        sim.set_resource_owner(resource, identity.org)
        setup = ReceiverSetup(sim.url, identity, tmp_path / "r.db", [SubscriptionConfig(resource)],
                              catchup={"interval": "1s"}, dispatch={"concurrency": 16})  # fmt: skip
        config = setup.write(tmp_path / "r.toml")
        with ReceiverServer(config) as receiver:
            receiver.wait_started()
            wait_until(
                lambda: receiver.runtime.service_status()["subscriptions"]["state"] == "validated",
                message="the subscription validated",
            )

        specs = [{"resource_id": resource_id, "recipient": RECIPIENT_ORG, "notify": False}] * CORRESPONDENCES
        sim.admin.post("/correspondences", json=specs, params={"push": "false"}).raise_for_status()
        events = [e["id"] for e in sim.state_snapshot()["events"] if e.get("resource") == resource]
        assert len(events) == 2 * CORRESPONDENCES
        assert count(setup.store, "SELECT COUNT(*) FROM inbox") == 0

        with ReceiverServer(config) as receiver:
            receiver.wait_started()
            wait_until(
                lambda: count(setup.store, "SELECT COUNT(*) FROM inbox WHERE status = 'done'") == 500,
                timeout=60,
                message="all 500 processed",
            )

    with sqlite3.connect(setup.store) as conn:
        inbox = dict(conn.execute("SELECT id, channel FROM inbox").fetchall())
        recorded = [row[0] for row in conn.execute("SELECT event_id FROM correspondence_events")]
    assert inbox == dict.fromkeys(events, "catchup")
    assert sorted(recorded) == sorted(events)  # one row per event: none lost, none twice
