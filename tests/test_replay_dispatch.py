"""Replay end to end: an event goes dead in a running receiver, the operator fixes the cause and runs
`altinn-receiver events replay --status dead --yes` from another process, and the receiver's own dispatcher
runs it again to `done`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from altinn_sim.testing import Webhook
from receiver.config import Config, load_config
from tests.dispatch_support import dispatching_app, query, statuses, wait_settled
from tests.ingest_support import config_text, new_event, push, webhook
from tests.pipeline_support import CORRESPONDENCE_EVENTS, pipelines_toml
from tests.support import REPO, wait_until, write_config


def forwarding_config(tmp_path: Path, url: str) -> Config:
    text = config_text(tmp_path / "r.db") + pipelines_toml(
        ([CORRESPONDENCE_EVENTS], ["to_case_system"]),
        dispatch={"poll_interval": "50ms", "backoff_base": "20ms", "backoff_cap": "100ms"},
        handlers={"to_case_system": {"use": "forward_http", "url": f"{url}/case"}},
    )
    return load_config(write_config(tmp_path / "receiver.toml", text))


def replay_dead(config_file: Path) -> subprocess.CompletedProcess[str]:
    """The operator's command, as its own process beside the running receiver."""
    command = [sys.executable, "-m", "receiver", "events", "replay", "--status", "dead", "--yes"]
    return subprocess.run([*command, "--config", str(config_file)], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)  # fmt: skip


def test_a_dead_event_replayed_after_the_cause_is_fixed_ends_done_through_the_running_dispatcher(
    tmp_path: Path,
) -> None:
    event, other = new_event(), new_event()
    with Webhook(status=400) as target:  # the case system refuses the events: a permanent failure
        config = forwarding_config(tmp_path, target.url)
        with dispatching_app(config) as server, httpx.Client() as client:
            for pushed in (event, other):
                assert push(client, webhook(server.url), pushed).status_code == 200
            assert wait_settled(config.store.path, 2) == {event["id"]: "dead", other["id"]: "dead"}
            (dead,) = query(config.store.path, "SELECT * FROM inbox WHERE id = ?", event["id"])
            assert "400" in dead["last_error"] and dead["attempts"] == 1
            assert len(target.received) == 2  # a 4xx is not retried

            target.status = 200  # the case system is fixed
            result = replay_dead(tmp_path / "receiver.toml")
            assert result.returncode == 0, result.stderr
            assert "replayed 2 event(s)" in result.stdout

            wait_until(lambda: set(statuses(config.store.path).values()) == {"done"}, message="replayed events done")
        (replayed,) = query(config.store.path, "SELECT * FROM inbox WHERE id = ?", event["id"])
        forwarded = [json.loads(r.body)["id"] for r in target.received]
    assert (replayed["status"], replayed["attempts"], replayed["last_error"]) == ("done", 1, "")
    assert sorted(forwarded) == sorted([event["id"], other["id"]] * 2)  # refused once, delivered once each
