"""The receiver is down while 500 events are published with push and Altinn's push retries run out: after a restart,
catch-up brings every one of them in and the dispatcher processes each exactly once."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from altinn_sim import SimSettings, running_simulator
from receiver.config import SubscriptionConfig
from receiver.onboarding.demo import ReceiverServer, ReceiverSetup, register_identity
from tests.support import wait_until

CORRESPONDENCES = 250  # two events each (initialized, published): 500 events
RECIPIENT_ORG = "312345678"
ATTEMPTS = 13  # Altinn's default push path (Functions): 1 attempt and 12 requeues (correspondence contract §7.10)


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


def test_500_events_whose_pushes_ran_out_while_down_are_processed_exactly_once_after_a_restart(tmp_path: Path) -> None:
    # 1000000x: Altinn's 47-hour push retry schedule takes about 0.17 s; the 6500 attempts themselves take longer.
    with running_simulator(SimSettings(time_scale=1_000_000, seed_correspondences=0)) as sim:
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
        sim.admin.post("/correspondences", json=specs).raise_for_status()
        events = [e["id"] for e in sim.state_snapshot()["events"] if e.get("resource") == resource]
        assert len(events) == 2 * CORRESPONDENCES

        def dead_letters() -> list[dict[str, Any]]:
            letters = [d for d in sim.state_snapshot()["dead_letters"] if d["kind"] == "event"]
            return letters if len(letters) == len(events) else []

        letters = wait_until(dead_letters, timeout=60, interval=0.25, message="Altinn to give up pushing all 500")
        assert sorted(d["event_id"] for d in letters) == sorted(events)
        assert {d["attempt_count"] for d in letters} == {ATTEMPTS}
        assert {a["outcome"] for d in letters for a in d["attempts"]} == {"ConnectError"}  # nobody listening
        assert count(setup.store, "SELECT COUNT(*) FROM inbox") == 0

        with ReceiverServer(config) as receiver:
            receiver.wait_started()
            wait_until(
                lambda: count(setup.store, "SELECT COUNT(*) FROM inbox WHERE status = 'done'") == len(events),
                timeout=60,
                message="all 500 processed",
            )

    with sqlite3.connect(setup.store) as conn:
        inbox = {row[0]: row[1:] for row in conn.execute("SELECT id, channel, status FROM inbox")}
        recorded = [row[0] for row in conn.execute("SELECT event_id FROM correspondence_events")]
    assert inbox == dict.fromkeys(events, ("catchup", "done"))
    assert sorted(recorded) == sorted(events)  # one row per event: none lost, none twice
