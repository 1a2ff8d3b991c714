"""SIGKILL in the middle of processing: a real `altinn-receiver serve` killed while pipelines run (some events
already stored, not yet done) resumes after a restart once their leases expire, and every event is recorded
exactly once in `correspondence_events`."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from altinn_sim import SimSettings, running_simulator
from tests.dispatch_support import RECIPIENT_ORG, RESOURCE, query, recipient_setup, wait_settled
from tests.ingest_support import ServeProcess
from tests.support import wait_until

EVENTS = 12
PUBLISHED = "no.altinn.correspondence.correspondencepublished"


def pipelines(log: Path) -> str:
    return f"""
[[pipelines]]
types = ["{PUBLISHED}"]
handlers = ["fetch_correspondence", "store", "slow"]

[handlers.slow]
use = "tests.dispatch_plugins:Recorder"
path = "{log}"
seconds = "400ms"
"""


def stored_but_not_done(store: Path) -> list[str]:
    rows = query(
        store,
        "SELECT e.event_id FROM correspondence_events e JOIN inbox i ON i.id = e.event_id"
        " WHERE i.status = 'processing'",
    )
    return [row[0] for row in rows]


def validated(serve: ServeProcess) -> bool:
    services = httpx.get(f"{serve.url}/readyz", timeout=5).json()["services"]
    return bool(services["subscriptions"].get("state") == "validated")


def test_after_sigkill_mid_pipeline_a_restart_finishes_every_event_and_stores_each_once(tmp_path: Path) -> None:
    with running_simulator(SimSettings(time_scale=1000, seed_correspondences=0)) as sim:
        setup = recipient_setup(
            sim, tmp_path, dispatch={"lease": "1s", "concurrency": 4}, extra=pipelines(tmp_path / "slow.jsonl")
        )
        serve = ServeProcess(tmp_path)
        serve.port = setup.port
        setup.write(serve.config)
        assert serve.store == setup.store

        with serve:
            wait_until(lambda: validated(serve), message="the subscription to be validated")
            sent = [sim.send_correspondence(RESOURCE, RECIPIENT_ORG, attachments=1) for _ in range(EVENTS)]
            interrupted = wait_until(lambda: stored_but_not_done(serve.store), message="a stored, unfinished event")
            serve.signal(signal.SIGKILL)
            assert serve.wait() == -signal.SIGKILL

        with serve:
            final = wait_settled(serve.store, EVENTS, timeout=30)

    assert set(final.values()) == {"done"}
    events = query(serve.store, "SELECT event_id, correspondence_id FROM correspondence_events")
    assert sorted(row["event_id"] for row in events) == sorted(final), "each event recorded exactly once"
    assert sorted(row["correspondence_id"] for row in events) == sorted(sent)
    assert len(query(serve.store, "SELECT * FROM correspondences")) == EVENTS
    reruns = query(
        serve.store, f"SELECT attempts FROM inbox WHERE id IN ({','.join('?' * len(interrupted))})", *interrupted
    )
    assert all(row["attempts"] >= 2 for row in reruns), "the interrupted events ran again after the restart"
