"""Per-correspondence order under concurrency, through a running receiver: events pushed to the webhook in a
shuffled order run one at a time per resourceinstance, in `time` order (untimed ones in arrival order), while
different instances run side by side. A plugin handler given as a dotted path records when each one ran."""

from __future__ import annotations

import itertools
import random
import uuid
from pathlib import Path
from typing import Any

import httpx

from receiver.config import load_config
from tests.dispatch_plugins import recorded
from tests.dispatch_support import dispatching_app, wait_settled
from tests.ingest_support import config_text, inbox_rows, new_event, push, running_app, webhook
from tests.pipeline_support import CORRESPONDENCE_EVENTS, pipelines_toml
from tests.support import write_config

INSTANCES = 8
PER_INSTANCE = 6


def pipeline(path: Path) -> str:
    return pipelines_toml(
        ([CORRESPONDENCE_EVENTS], ["recorder"]),
        dispatch={"concurrency": 8, "poll_interval": "50ms"},
        handlers={"recorder": {"use": "tests.dispatch_plugins:Recorder", "path": str(path), "seconds": "20ms"}},
    )


def test_each_instance_runs_one_event_at_a_time_in_time_order_while_instances_run_in_parallel(tmp_path: Path) -> None:
    rng = random.Random(5)
    log = tmp_path / "ran.jsonl"
    config = load_config(write_config(tmp_path / "receiver.toml", config_text(tmp_path / "r.db") + pipeline(log)))
    expected: dict[str, list[str]] = {}
    events: list[dict[str, Any]] = []
    for n in range(INSTANCES):
        instance = str(uuid.uuid4())
        timed = [new_event(resourceinstance=instance, time=f"2026-01-05T10:{n:02d}:{s:02d}.{s}Z") for s in range(6)]
        expected[instance] = [e["id"] for e in timed]
        events += timed
    untimed_instance = str(uuid.uuid4())
    untimed = [new_event(resourceinstance=untimed_instance, time=None) for _ in range(PER_INSTANCE)]
    rng.shuffle(events)
    events += untimed  # pushed last, but each after the one before it
    expected[untimed_instance] = [e["id"] for e in untimed]

    with running_app(config) as server, httpx.Client() as client:  # the webhook alone: the backlog builds up
        for body in events:
            assert push(client, webhook(server.url), body).status_code == 200
    with dispatching_app(config):
        assert set(wait_settled(config.store.path, len(events)).values()) == {"done"}

    runs = recorded(log)
    assert sorted(r["id"] for r in runs) == sorted(e["id"] for e in events), "each event ran exactly once"
    for instance, order in expected.items():
        mine = sorted((r for r in runs if r["instance"] == instance), key=lambda r: float(r["start"]))
        assert [r["id"] for r in mine] == order
        for before, after in itertools.pairwise(mine):
            assert float(after["start"]) >= float(before["end"]), "two events of one instance overlapped"
    assert max_parallel(runs) > 1, "different instances should run side by side"


def max_parallel(runs: list[dict[str, Any]]) -> int:
    edges = sorted([(float(r["start"]), 1) for r in runs] + [(float(r["end"]), -1) for r in runs])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def test_an_event_no_pipeline_matches_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "ran.jsonl"
    text = config_text(tmp_path / "r.db") + pipeline(log)
    config = load_config(write_config(tmp_path / "receiver.toml", text))
    other = new_event(type="no.digdir.something.else")
    with dispatching_app(config) as server, httpx.Client() as client:
        assert push(client, webhook(server.url), other).status_code == 200
        assert wait_settled(config.store.path, 1) == {other["id"]: "skipped"}
    assert recorded(log) == []
    [row] = inbox_rows(config.store.path)
    assert row["last_error"] == "no pipeline for type no.digdir.something.else"
