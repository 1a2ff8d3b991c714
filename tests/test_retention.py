"""Retention on a running receiver: finished events older than `[retention] done` lose their payload and keep their
id (a repeated push of one is still a duplicate, replay refuses it), dead events older than `[retention] dead` are
deleted, the trace contexts and attempt histories stored with them go too, nothing else is touched; the service
reports in /readyz and counts in /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from receiver.config import StoreConfig
from receiver.runtime import Runtime, Service
from receiver.store.interface import Database
from receiver.store.records import PRUNED_RAW
from receiver.timeutil import iso_after
from receiver.worker.retention import RetentionService
from tests.dispatch_support import dispatching_app
from tests.ingest_support import make_config, new_event, push, running_app, webhook
from tests.ops_support import OpsStore, json_lines
from tests.store_backends import rows
from tests.support import wait_until

DAY = 86400
BATCH = 3
# Seven old finished events: more than two batches.
OLD_FINISHED = {f"old-done-{n}": "done" for n in range(6)} | {"old-skipped": "skipped"}
KEPT = {"recent-done": "done", "recent-dead": "dead", "old-pending": "pending", "old-retrying": "retrying"}
OLD_DEAD = ["old-dead-1", "old-dead-2"]


def finished_ago(store: OpsStore, event_id: str, status: str, days: float) -> None:
    """An event received and finished (or last changed) `days` ago."""
    store.add(event_id)
    stamp = iso_after(-days * DAY)
    store.set(event_id, status=status, updated_at=stamp, received_at=stamp)


async def agency_tables(db: Database) -> None:
    await db.execute(
        "INSERT INTO correspondences (correspondence_id, first_event_at, updated_at) VALUES ('c', 'x', 'x')"
    )
    await db.execute("INSERT INTO correspondence_events (event_id, type, received_at) VALUES ('old-done-0', 't', 'x')")
    await db.execute(
        "INSERT INTO correspondence_attachments (correspondence_id, attachment_id, updated_at) VALUES ('c', 'a', 'x')"
    )


async def traced(db: Database) -> None:
    """Each event arrived while traces were on, and has run (two runs each in its history)."""
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await db.execute("INSERT INTO inbox_traces (id, traceparent) SELECT id, :parent FROM inbox", {"parent": parent})
    for attempt in (1, 2):
        await db.execute(
            "INSERT INTO attempts (event_id, attempt, started_at, finished_at, step, outcome, error)"
            " SELECT id, :attempt, received_at, received_at, 'log', status, '' FROM inbox",
            {"attempt": attempt},
        )


def only_retention(runtime: Runtime) -> list[Service]:
    return [RetentionService(batch=BATCH)]


def retention_status(url: str) -> dict[str, Any]:
    status: dict[str, Any] = httpx.get(url + "/readyz", timeout=10).json()["services"]["retention"]
    return status


def pruned_total(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {
        sample.labels["what"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "altinn_receiver_retention_pruned_total"
    }


def test_retention_prunes_old_payloads_keeps_their_ids_and_deletes_old_dead_events(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    config = make_config(tmp_path, store=store_config)
    store = OpsStore(tmp_path, config)
    for event_id, status in OLD_FINISHED.items():
        finished_ago(store, event_id, status, 91)
    finished_ago(store, "recent-done", "done", 89)
    finished_ago(store, "recent-dead", "dead", 179)
    for event_id in OLD_DEAD:
        finished_ago(store, event_id, "dead", 181)
    finished_ago(store, "old-pending", "pending", 200)  # not finished: whatever its age, it stays whole
    finished_ago(store, "old-retrying", "retrying", 200)
    store.run(agency_tables)  # never retention's
    store.run(traced)
    raw_before = {record_id: store.get(record_id).raw for record_id in KEPT}

    with running_app(config, services=only_retention) as server, httpx.Client() as client:
        status = wait_until(lambda: (s := retention_status(server.url))["runs"] >= 1 and s, message="a retention run")
        assert status["pruned_payloads"] == len(OLD_FINISHED) and status["deleted_dead"] == len(OLD_DEAD)
        assert (status["done"], status["dead"]) == ("90d", "180d")
        assert pruned_total(server.url) == {"payload": len(OLD_FINISHED), "dead": len(OLD_DEAD)}
        # The id of a pruned event still deduplicates.
        repeated = push(client, webhook(server.url), new_event(id="old-done-0"))
        assert (repeated.status_code, repeated.json()) == (200, {"status": "duplicate"})

    for event_id, status_ in OLD_FINISHED.items():
        record = store.get(event_id)
        assert (record.status, record.raw, record.pruned) == (status_, PRUNED_RAW, True)
    assert {event_id: store.get(event_id).raw for event_id in KEPT} == raw_before
    assert not rows(config.store, "SELECT id FROM inbox WHERE id LIKE 'old-dead-%'")
    assert {row["id"] for row in rows(config.store, "SELECT id FROM inbox_traces")} == set(KEPT), (
        "a trace context goes with its event's payload"
    )
    history = [row["event_id"] for row in rows(config.store, "SELECT event_id FROM attempts")]
    assert sorted(history) == sorted(list(KEPT) * 2), "an event's attempt history goes with its payload"
    for table in ("correspondences", "correspondence_events", "correspondence_attachments"):
        assert len(rows(config.store, f"SELECT * FROM {table}")) == 1, table

    shown = json_lines(store.cli("events", "show", "old-done-1", "--json").stdout)[0]
    assert (shown["pruned"], shown["event"]) == (True, None)
    refused = store.cli("events", "replay", "old-done-1", "recent-done", "--yes")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1
    assert "pruned by retention, so they cannot run again: old-done-1; nothing replayed" in refused.stderr
    assert store.get("recent-done").status == "done"
    by_status = json_lines(store.cli("events", "replay", "--status", "done", "--yes", "--json").stdout)[0]
    assert (by_status["selected"], by_status["replayed"]) == (["recent-done"], 1)
    assert sorted(by_status["pruned"]) == sorted(k for k, v in OLD_FINISHED.items() if v == "done")


def test_a_pruned_event_put_back_by_an_older_release_is_dead_not_run(tmp_path: Path) -> None:
    """Release 0.1.0's replay does not know about pruning; the dispatcher ends such an event instead of running a
    pipeline on an empty payload."""
    config = make_config(tmp_path)
    store = OpsStore(tmp_path, config)
    store.add("pruned-then-replayed")
    store.set("pruned-then-replayed", raw=PRUNED_RAW, status="pending")
    with dispatching_app(config):
        record = wait_until(lambda: (r := store.get("pruned-then-replayed")).status in {"dead", "done"} and r)
    assert (record.status, record.last_error) == (
        "dead",
        "its payload was pruned by retention ([retention] done): it cannot run again",
    )
