"""Claiming ahead, through a running receiver: with every slot busy, the next event is already claimed (`processing`
in the store, its lease renewed with the running ones), and a stop gives it back unrun without counting an attempt."""

from __future__ import annotations

from pathlib import Path

import httpx

from receiver.config import load_config
from tests.dispatch_plugins import recorded
from tests.dispatch_support import dispatching_app
from tests.ingest_support import config_text, inbox_rows, new_event, push, running_app, webhook
from tests.pipeline_support import CORRESPONDENCE_EVENTS, pipelines_toml
from tests.support import wait_until, write_config


def pipeline(path: Path) -> str:
    """One slot (so one event is claimed ahead), short leases renewed every 300 ms, a handler that outlasts both."""
    return pipelines_toml(
        ([CORRESPONDENCE_EVENTS], ["recorder"]),
        dispatch={"concurrency": 1, "lease": "900ms", "poll_interval": "50ms"},
        handlers={"recorder": {"use": "tests.dispatch_plugins:Recorder", "path": str(path), "seconds": "2s"}},
    )


def test_a_claimed_ahead_event_waits_with_its_lease_renewed_and_a_stop_gives_it_back_without_an_attempt(
    tmp_path: Path,
) -> None:
    log = tmp_path / "ran.jsonl"
    config = load_config(write_config(tmp_path / "receiver.toml", config_text(tmp_path / "r.db") + pipeline(log)))
    store = config.store.path
    running, ahead, waiting = (new_event(time=f"2026-01-05T10:00:0{n}Z") for n in range(3))
    ids = [e["id"] for e in (running, ahead, waiting)]

    with running_app(config) as server, httpx.Client() as client:  # the webhook alone: the backlog builds up
        for body in (running, ahead, waiting):
            assert push(client, webhook(server.url), body).status_code == 200

    def one_running_one_ahead() -> str | None:
        rows = {row["id"]: row for row in inbox_rows(store)}
        statuses = [rows[i]["status"] for i in ids]
        return rows[ahead["id"]]["lease_until"] if statuses == ["processing", "processing", "pending"] else None

    with dispatching_app(config) as server, httpx.Client() as client:
        first_lease = wait_until(one_running_one_ahead, message="one event running and the next claimed ahead")

        def counts() -> tuple[int, int]:
            dispatcher = client.get(f"{server.url}/readyz").json()["services"]["dispatcher"]
            return dispatcher["running"], dispatcher["ready"]

        # The store shows the claim a moment before the dispatcher's own count does (it is written first).
        wait_until(lambda: counts() == (1, 1), message="/readyz counting one running and one ready")
        wait_until(
            lambda: inbox_rows(store, "id = ?", ahead["id"])[0]["lease_until"] > first_lease,
            message="the lease of the claimed-ahead event to be renewed",
        )
        assert recorded(log) == [], "the running event's handler takes 2 s"
    # Leaving the block stops the dispatcher: the running event may finish, the one claimed ahead is given back.

    assert [run["id"] for run in recorded(log)] == [running["id"]]
    rows = {row["id"]: row for row in inbox_rows(store)}
    assert (rows[running["id"]]["status"], rows[running["id"]]["attempts"]) == ("done", 1)
    for event_id in (ahead["id"], waiting["id"]):
        row = rows[event_id]
        assert (row["status"], row["attempts"], row["lease_owner"], row["lease_until"]) == ("pending", 0, "", "")
