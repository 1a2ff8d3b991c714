"""Helpers for the dispatcher and handler tests: a receiver set up against the simulator as a recipient or as the
service owner (the demo's own setup code), a receiver running only the dispatcher, reads of the store file, and
of a receiver's /metrics."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from altinn_sim import RunningSimulator
from receiver.config import Config, StoreConfig, SubscriptionConfig
from receiver.onboarding.demo import SCOPES, ReceiverServer, ReceiverSetup, register_identity
from receiver.runtime import Runtime, Service
from receiver.server_thread import ServerThread
from receiver.worker.dispatcher import Dispatcher
from tests.ingest_support import running_app
from tests.store_backends import statuses as backend_statuses
from tests.support import wait_until

RESOURCE = "urn:altinn:resource:dispatch-test"
SENDER_ORG = "991825827"
RECIPIENT_ORG = "312345678"
RECIPIENT = f"urn:altinn:organization:identifier-no:{RECIPIENT_ORG}"
RECIPIENT_SCOPES = ("altinn:events.subscribe", "altinn:correspondence.read")
FAST_RETRIES = {"backoff_base": "20ms", "backoff_cap": "100ms", "poll_interval": "50ms"}
FINAL = ("done", "dead", "skipped")


def recipient_setup(
    sim: RunningSimulator,
    tmp_path: Path,
    *,
    extra: str = "",
    dispatch: dict[str, Any] | None = None,
    scopes: Sequence[str] = RECIPIENT_SCOPES,
    store_url: str = "",
) -> ReceiverSetup:
    """A recipient organisation's receiver: its own Maskinporten key (holding `scopes`, in the config too),
    subscribed with its subject filter; its store a file in `tmp_path`, or the PostgreSQL one at `store_url`."""
    sim.set_resource_owner(RESOURCE, SENDER_ORG)
    identity = register_identity(sim, tmp_path, org=RECIPIENT_ORG, service_owner=None, scopes=scopes)
    return ReceiverSetup(
        sim.url,
        identity,
        tmp_path / "receiver.db",
        [SubscriptionConfig(RESOURCE, subject=RECIPIENT)],
        catchup={"enabled": False},
        role="recipient",
        dispatch={**FAST_RETRIES, **(dispatch or {})},
        extra=extra,
        store_url=store_url,
    )


def service_owner_setup(
    sim: RunningSimulator, tmp_path: Path, *, store: Path | None = None, store_url: str = ""
) -> ReceiverSetup:
    """The service owner's receiver with the default pipelines, subscribed to its resource without a subject
    filter; `store` another receiver's store file to share (default: its own in `tmp_path`), or the PostgreSQL
    store at `store_url`."""
    sim.set_resource_owner(RESOURCE, SENDER_ORG)
    identity = register_identity(sim, tmp_path, org=SENDER_ORG, scopes=SCOPES)
    return ReceiverSetup(
        sim.url,
        identity,
        store or tmp_path / "receiver.db",
        [SubscriptionConfig(RESOURCE)],
        catchup={"enabled": False},
        role="service-owner",
        dispatch=FAST_RETRIES,
        store_url=store_url,
    )


@contextmanager
def subscribed_receiver(setup: ReceiverSetup, tmp_path: Path) -> Iterator[ReceiverServer]:
    """The receiver with all its services, once Altinn (the simulator) has validated its subscription."""
    config = setup.write(tmp_path / "receiver.toml")
    with ReceiverServer(config) as receiver:
        receiver.wait_started()
        wait_until(
            lambda: receiver.runtime.service_status()["subscriptions"].get("state") == "validated",
            message="the subscription to be validated",
        )
        yield receiver


def only_dispatcher(runtime: Runtime) -> list[Service]:
    return [Dispatcher.from_config(runtime.config)]


@contextmanager
def dispatching_app(config: Config) -> Iterator[ServerThread]:
    """The receiver app with the dispatcher as its only background service."""
    with running_app(config, services=only_dispatcher) as server:
        yield server


def query(store: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(store)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def statuses(store: Path | StoreConfig) -> dict[str, str]:
    """Each event's status, in a store file or any backend's store."""
    if isinstance(store, StoreConfig):
        return backend_statuses(store)
    return {row["id"]: row["status"] for row in query(store, "SELECT id, status FROM inbox")}


def wait_settled(store: Path | StoreConfig, count: int, timeout: float = 20.0) -> dict[str, str]:
    """Until `count` events are in the inbox and every one is done, dead or skipped; their statuses."""

    def settled() -> dict[str, str] | None:
        now = statuses(store) if isinstance(store, StoreConfig) or store.exists() else {}
        return now if len(now) >= count and all(s in FINAL for s in now.values()) else None

    result: dict[str, str] = wait_until(settled, timeout=timeout, message=f"{count} events to be processed")
    return result


def metric_value(url: str, name: str, **labels: str) -> float:
    """A sample of the receiver's /metrics, e.g. `metric_value(url, "x_total", reason="expired")`; it must be there."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels == labels
    ]
    assert found, f"{name}{labels} is not on /metrics"
    return found[0]
