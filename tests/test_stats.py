"""`altinn-receiver stats`: counts, the oldest waiting event, last push and catch-up, subscriptions — from the store
of a real receiver subscribed to the simulator, and from a store file set up event by event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import ReceiverServer, ReceiverSetup, register_identity
from receiver.store import leases
from tests.ops_support import PUBLISHED, READ, OpsStore
from tests.support import wait_until


@pytest.fixture
def store(tmp_path: Path, store_config: StoreConfig) -> OpsStore:
    """An SQLite file or a PostgreSQL schema: each test runs on both."""
    return OpsStore(tmp_path, store=store_config)


def stats_json(store: OpsStore) -> dict[str, Any]:
    result = store.cli("stats", "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_stats_counts_by_status_and_type_and_names_the_oldest_waiting_event(store: OpsStore) -> None:
    for event_id in ("p1", "p2", "r1", "d1", "run1"):
        store.add(event_id)
    store.add("read1", type_=READ)
    store.set("r1", status="retrying", attempts=2, next_attempt_at="2999-01-01T00:00:00.000000Z")
    store.set("d1", status="dead", attempts=12)
    store.set("run1", status="processing", attempts=1)
    store.received_ago("r1", 3 * 3600)
    store.received_ago("run1", 9 * 3600)  # processing is not waiting: not the oldest *waiting* event

    stats = stats_json(store)

    assert stats["events"]["total"] == 6
    assert stats["events"]["by_status"] == {
        "pending": 3,
        "processing": 1,
        "retrying": 1,
        "done": 0,
        "dead": 1,
        "skipped": 0,
    }
    assert stats["events"]["by_type"] == {
        PUBLISHED: {"pending": 2, "retrying": 1, "dead": 1, "processing": 1},
        READ: {"pending": 1},
    }
    oldest = stats["oldest_waiting"]
    assert (oldest["id"], oldest["status"]) == ("r1", "retrying")
    assert 3 * 3600 <= oldest["age_seconds"] < 3 * 3600 + 60
    assert stats["last_push"] == {"at": store.get("read1").received_at, "age_seconds": pytest.approx(0, abs=60)}
    assert stats["last_catchup"] == {"at": None, "age_seconds": None}
    assert stats["sync_lease"] is None
    assert stats["subscriptions"] == []


def test_stats_for_people_reads_as_sentences_and_tables(store: OpsStore) -> None:
    store.add("p1")
    store.add("d1")
    store.set("d1", status="dead")
    result = store.cli("stats")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "events         2 (1 pending, 1 dead)" in lines
    assert any(line.startswith("oldest waiting ") and "pending" in line and "p1" in line for line in lines)
    assert "last catch-up  never" in lines
    assert "sync lease     nobody yet" in lines
    assert any(line.startswith(PUBLISHED) for line in lines)
    store.run(lambda db: leases.take(db, "sync", "gone:1", -1))  # its holder stopped renewing it
    assert "sync lease     nobody: gone:1's lease ran out at " in store.cli("stats").stdout


def test_stats_without_a_store_says_where_it_looked(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    result = store.cli("stats")
    assert result.exit_code == 1
    assert str(store.path) in result.stderr
    assert not store.path.exists()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    # 10000x: Altinn's validation retries and the pull API's 30 s lag take milliseconds.
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as running:
        yield running


def test_stats_of_a_running_receiver_shows_validated_subscriptions_last_push_and_catchup(
    sim: RunningSimulator, tmp_path: Path
) -> None:
    resource = f"urn:altinn:resource:stats-{uuid.uuid4().hex[:8]}"
    setup = ReceiverSetup(
        sim.url, register_identity(sim, tmp_path), tmp_path / "receiver.db", [SubscriptionConfig(resource)]
    )
    config = setup.write(tmp_path / "receiver.toml")
    store = OpsStore(tmp_path, config)
    with ReceiverServer(config) as receiver:
        receiver.wait_started()
        stats = wait_until(
            lambda: (s := stats_json(store))["subscriptions"] and s["subscriptions"][0]["validated"] and s,
            message="the subscription to be validated",
        )
        sim.send_correspondence(resource, "urn:altinn:organization:identifier-no:312345678")
        stats = wait_until(lambda: (s := stats_json(store))["events"]["total"] and s, message="a pushed event")

    [subscription] = stats["subscriptions"]
    assert (subscription["resource"], subscription["state"], subscription["validated"]) == (resource, "validated", True)
    assert subscription["validated_at"]
    assert stats["last_catchup"]["at"] is not None and stats["last_catchup"]["age_seconds"] < 60
    assert stats["last_push"]["age_seconds"] < 60
    assert all(type_.startswith("no.altinn.correspondence.") for type_ in stats["events"]["by_type"])
