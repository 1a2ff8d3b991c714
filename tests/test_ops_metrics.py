"""The alerting metrics on a real receiver's /metrics: read from its store at each scrape."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from altinn_sim import RunningSimulator, SimSettings, running_simulator
from receiver.config import SubscriptionConfig
from receiver.observability.store_gauges import LAST_CATCHUP, LAST_PUSH, OLDEST_UNPROCESSED
from receiver.onboarding.demo import ReceiverServer, ReceiverSetup, register_identity
from tests.ingest_support import make_config, new_event, push, running_app, webhook
from tests.ops_support import OpsStore
from tests.support import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_having(url: str, key: tuple[str, tuple[tuple[str, str], ...]]) -> Samples:
    """A scrape that has `key`, else an empty (falsy) one."""
    samples = scrape(url)
    return samples if key in samples else {}


def test_oldest_unprocessed_age_and_dead_count_come_from_the_store(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = OpsStore(tmp_path, config)
    with running_app(config) as server:
        fresh = scrape(server.url)
        assert fresh[(OLDEST_UNPROCESSED, ())] == 0
        assert (LAST_PUSH, ()) not in fresh and (LAST_CATCHUP, ()) not in fresh

        store.add("old-retrying", channel="catchup")
        store.set("old-retrying", status="retrying", attempts=3, next_attempt_at="2999-01-01T00:00:00.000000Z")
        store.received_ago("old-retrying", 7 * 3600)
        store.add("dead-one", channel="catchup")
        store.set("dead-one", status="dead", attempts=12)
        store.received_ago("dead-one", 30 * 3600)  # dead is handled: it does not count as unprocessed

        samples = scrape(server.url)
        assert 7 * 3600 <= samples[(OLDEST_UNPROCESSED, ())] < 7 * 3600 + 60
        assert samples[("altinn_receiver_inbox_events", (("status", "dead"),))] == 1
        assert (LAST_PUSH, ()) not in samples, "events from catch-up are not pushes"


def test_last_push_age_appears_with_the_first_push_and_grows(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running_app(config) as server, httpx.Client() as client:
        assert push(client, webhook(server.url), new_event()).status_code == 200
        first = scrape(server.url)[(LAST_PUSH, ())]
        later = wait_until(lambda: (age := scrape(server.url)[(LAST_PUSH, ())]) > first and age, timeout=5)
    assert 0 <= first < 5 and later < 10


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator(SimSettings(time_scale=10000, seed_correspondences=0)) as running:
        yield running


def test_a_subscribed_receiver_reports_catchup_push_and_validation(sim: RunningSimulator, tmp_path: Path) -> None:
    resource = f"urn:altinn:resource:metrics-{uuid.uuid4().hex[:8]}"
    setup = ReceiverSetup(
        sim.url, register_identity(sim, tmp_path), tmp_path / "receiver.db", [SubscriptionConfig(resource)]
    )
    config = setup.write(tmp_path / "receiver.toml")
    validated = ("altinn_receiver_subscription_validated", (("resource", resource), ("subject", ""), ("type", "")))
    with ReceiverServer(config) as receiver:
        receiver.wait_started()
        wait_until(lambda: scrape(receiver.url).get(validated) == 1, message="the subscription to be validated")
        sim.send_correspondence(resource, "urn:altinn:organization:identifier-no:312345678")
        samples = wait_until(lambda: scrape_having(receiver.url, (LAST_PUSH, ())), message="a push")
    assert samples[(LAST_CATCHUP, ())] < 60
    assert samples[(LAST_PUSH, ())] < 60
