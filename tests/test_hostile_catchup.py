"""Hostile pages from the pull API: an event that cannot be stored or is not a valid CloudEvent becomes a `dead`
inbox row (its text kept, escaped; the reason in `last_error`), the good events of its page are stored, and the
cursor moves on. It was one bad event — even a lone surrogate only inside `data` — failing its page's commit, so the
cursor never moved again and nothing after it was ever caught up."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from altinn_sim import RunningSimulator
from receiver.config import Config, SubscriptionConfig
from receiver.onboarding.demo import Identity, ReceiverServer, ReceiverSetup
from receiver.runtime import Runtime, Service
from receiver.store import db, queue
from receiver.sync.catchup import CatchupService
from tests.catchup_support import event, fresh_resource, rows
from tests.ingest_support import run_cli

SURROGATE = "\ud800"


def catchup_only(runtime: Runtime) -> list[Service]:
    return [CatchupService(pull_lag=0)]


def setup_for(sim: RunningSimulator, owner: Identity, tmp_path: Path, resource: str) -> tuple[ReceiverSetup, Config]:
    setup = ReceiverSetup(sim.url, owner, tmp_path / "r.db", [SubscriptionConfig(resource)],
                          catchup={"start": "beginning", "interval": "5m"})  # fmt: skip
    return setup, setup.write(tmp_path / "r.toml")


def by_id(store: Path) -> dict[str, sqlite3.Row]:
    return {row["id"]: row for row in rows(store, "SELECT * FROM inbox")}


def cursor(store: Path) -> str:
    [row] = rows(store, "SELECT after FROM catchup_cursors")
    return str(row["after"])


def bad_events(resource: str, instance: str) -> dict[str, dict[str, Any]]:
    """One of each kind of bad event, by what is wrong with it."""
    surrogate_in_data = {**event(resource), "resourceinstance": instance, "data": {"title": f"x{SURROGATE}y"}}
    surrogate_in_data["time"] = "2020-01-01T00:00:00Z"  # before the good event of the same instance
    return {
        "surrogate in data": surrogate_in_data,
        "nul in subject": {**event(resource), "subject": "urn:x\u0000y"},
        "no id": {k: v for k, v in event(resource).items() if k != "id"},
        "time out of range": {**event(resource), "time": "9999-12-31T23:59:59-23:59"},
        "type not a string": {**event(resource), "type": 42},
        "surrogate in id": {**event(resource), "id": f"id-{SURROGATE}"},
    }


def test_bad_events_become_dead_rows_the_good_ones_are_stored_and_the_cursor_moves_on(
    sim: RunningSimulator, owner: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource(sim, owner.org)
    instance = "6d6b0f7e-0000-4000-8000-000000000001"
    good = [event(resource) for _ in range(3)]
    good[1]["resourceinstance"] = instance
    bad = bad_events(resource, instance)
    sim.publish_unchecked([good[0], *bad.values(), good[1], good[2]])
    setup, config = setup_for(sim, owner, tmp_path, resource)

    with ReceiverServer(config, catchup_only) as receiver:
        receiver.wait_started()
    stored = by_id(setup.store)
    for item in good:
        assert stored[item["id"]]["status"] == "pending" and stored[item["id"]]["channel"] == "catchup"
    assert cursor(setup.store) == good[-1]["id"]
    dead = [row for row in stored.values() if row["status"] == "dead"]
    assert len(dead) == len(bad)
    for row in dead:
        assert row["channel"] == "catchup" and row["attempts"] == 0
        assert row["last_error"].startswith("invalid event from the pull API: ")
        json.loads(row["raw"])  # the text as JSON, lone surrogates escaped: it reads back
        assert SURROGATE not in row["raw"] and "\u0000" not in row["raw"]

    surrogate_row = stored[bad["surrogate in data"]["id"]]
    assert "data" in surrogate_row["last_error"] and "lone surrogate" in surrogate_row["last_error"]
    assert '"title":"x\\ud800y"' in surrogate_row["raw"]
    assert json.loads(surrogate_row["raw"])["data"]["title"] == f"x{SURROGATE}y"
    assert "time" in stored[bad["time out of range"]["id"]]["last_error"]
    assert "type" in stored[bad["type not a string"]["id"]]["last_error"]
    # An event without an id, or with one that cannot be stored, gets one made of its text.
    named = [item["id"] for kind, item in bad.items() if kind not in ("no id", "surrogate in id")]
    assert {row["id"] for row in dead} - set(named) == {row["id"] for row in dead if row["id"].startswith("invalid:")}
    assert sum(row["id"].startswith("invalid:") for row in dead) == 2

    # The dead row of the instance blocks nothing: the good event after it is the one a worker claims.
    async def claim() -> list[str]:
        conn = await db.connect(setup.store)
        try:
            return [record.id for record in await queue.claim(conn, "test", 60, limit=10)]
        finally:
            await conn.close()

    assert good[1]["id"] in asyncio.run(claim())

    # A second run reads the same events again (a cursor set back): nothing new, nothing lost, no error.
    with sqlite3.connect(setup.store) as conn:
        conn.execute("UPDATE catchup_cursors SET after = '0'")
    with ReceiverServer(config, catchup_only) as receiver:
        receiver.wait_started()
    assert by_id(setup.store).keys() == stored.keys()
    assert cursor(setup.store) == good[-1]["id"]


def test_a_bad_event_last_on_its_page_moves_the_cursor_and_shows_in_events_dead(
    sim: RunningSimulator, owner: Identity, tmp_path: Path
) -> None:
    resource = fresh_resource(sim, owner.org)
    good = event(resource)
    last = {**event(resource), "data": {"note": SURROGATE}}
    sim.publish_unchecked([good, last])
    setup_for(sim, owner, tmp_path, resource)
    config = tmp_path / "r.toml"
    caught_up = run_cli("catchup", "--config", str(config), "--json")
    assert caught_up.returncode == 0, caught_up.stderr
    [result] = [json.loads(line) for line in caught_up.stdout.splitlines()]
    assert result["enqueued"] == 1 and result["invalid"] == 1 and result["after"] == last["id"]
    assert cursor(tmp_path / "r.db") == last["id"]

    listed = run_cli("events", "dead", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert last["id"] in listed.stdout and "invalid event from the pull API" in listed.stdout
    shown = run_cli("events", "show", last["id"], "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert '"note": "\\ud800"' in shown.stdout
    as_json = run_cli("events", "show", last["id"], "--config", str(config), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["event"]["data"]["note"] == SURROGATE  # exact JSON, the escape travels

    replay = run_cli("events", "replay", "--status", "dead", "--yes", "--config", str(config))
    assert replay.returncode == 0, replay.stderr
    assert "refused at the door" in replay.stdout
    assert by_id(tmp_path / "r.db")[last["id"]]["status"] == "dead"  # never handed to the handlers
    by_id_replay = run_cli("events", "replay", last["id"], "--yes", "--config", str(config))
    assert by_id_replay.returncode == 1
    assert "refused at the door" in by_id_replay.stderr
