"""`altinn-receiver store copy`: an SQLite store with every status, cursor and correspondence row into PostgreSQL,
row for row with the leases reset; a source in use refused; an interrupted copy carried on; and `serve` on the copy
going on where the original stopped."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from receiver.config import StoreConfig, SubscriptionConfig
from receiver.store import state
from receiver.store.backends import open_backend
from receiver.store.copy import TABLES, copy_store
from receiver.store.interface import Database
from tests.ingest_support import run_cli
from tests.ops_support import OpsStore
from tests.store_backends import rows
from tests.support import wait_until

STATUSES = {"p": "pending", "r": "retrying", "w": "processing", "d": "done", "x": "dead", "s": "skipped"}
BULK = 2500
"""Events beyond a batch or two: the copy goes in batches of 1000."""
KEY = SubscriptionConfig("urn:altinn:resource:copy-test", subject="urn:altinn:organization:identifier-no:312345678")


def sqlite_store(tmp_path: Path) -> OpsStore:
    """A store file holding some of everything: events in each status (one held under a lease), bulk done events,
    a validation, a correspondence with an event and an attachment, a subscription, a cursor, a fact and two
    attempts."""
    (tmp_path / "old").mkdir()
    store = OpsStore(tmp_path / "old")
    for short, status in STATUSES.items():
        store.add(f"event-{short}", instance=f"instance-{short}")
        store.set(f"event-{short}", status=status, attempts=3 if status != "pending" else 0, last_error="boom")
    store.set("event-w", lease_owner="host:1:gone", lease_until="2999-01-01T00:00:00.000000Z")
    store.set("event-r", next_attempt_at="2000-01-01T00:00:00.000000Z")

    async def everything_else(db: Database) -> None:
        await db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :bulk)"
            " INSERT INTO inbox (id, type, source, raw, received_at, channel, status, attempts, updated_at)"
            " SELECT 'bulk-' || i, 't', 's', '{}', '2026-01-01T00:00:00.000000Z', 'catchup', 'done', 1,"
            " '2026-01-01T00:00:00.000000Z' FROM n",
            {"bulk": BULK},
        )
        await db.execute("INSERT INTO validations VALUES ('v-1', 'sub-1', 's', '2026-01-01T00:00:00.000000Z')")
        await db.execute(
            "INSERT INTO correspondences VALUES ('c-1', 'r', 'sender', 'recipient', 'Published', 'Title',"
            " '{\"content\":{\"messageTitle\":\"Title\"}}', '2026-01-01T00:00:00.000000Z', '2026-01-02T00:00:00Z')"
        )
        await db.execute("INSERT INTO correspondence_events VALUES ('event-d', 'c-1', 'c-1', 't', '', 'x')")
        await db.execute(
            "INSERT INTO correspondence_attachments VALUES ('c-1', 'a-1', 'f.pdf', NULL, 'sum', 'Published', '',"
            " '', 'x')"
        )
        await state.save_subscription(db, 4242, KEY, "https://r.example/events", "fp", validated=True)
        await state.move_cursor(db, KEY, "cursor-after-this-id")
        await state.set_fact(db, state.LAST_CATCHUP_AT, "2026-01-03T00:00:00.000000Z")
        await db.execute_many(
            "INSERT INTO attempts (event_id, attempt, started_at, finished_at, step, outcome, error, http_status)"
            " VALUES (:id, 1, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:01.000000Z', 'forward', :outcome,"
            " :error, :status)",
            [{"id": "event-d", "outcome": "done", "error": "", "status": None},
             {"id": "event-r", "outcome": "retrying", "error": "forward: HTTP 503", "status": 503}],
        )  # fmt: skip

    store.run(everything_else)
    return store


def table(store: StoreConfig, name: str, key: tuple[str, ...]) -> list[dict[str, Any]]:
    return rows(store, f"SELECT * FROM {name} ORDER BY {', '.join(key)}")


def copied_statuses(store: StoreConfig) -> dict[str, str]:
    return {r["id"]: r["status"] for r in rows(store, "SELECT id, status FROM inbox WHERE id LIKE 'event-%'")}


def copy(source: str, target: str, *more: str) -> subprocess.CompletedProcess[str]:
    return run_cli("store", "copy", "--from", source, "--to", target, *more, timeout=120)


def test_a_copy_holds_every_row_with_the_leases_reset_and_serve_goes_on_from_there(
    tmp_path: Path, store_url: str
) -> None:
    old = sqlite_store(tmp_path)
    new = StoreConfig(url=store_url)
    result = copy(str(old.path), store_url, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows"]["inbox"] == len(STATUSES) + BULK and summary["resumed"] is False
    assert summary["rows"]["catchup_cursors"] == summary["rows"]["subscriptions"] == 1
    for name, key in TABLES:
        before, after = table(old.store, name, key), table(new, name, key)
        if name == "inbox":
            before = [{**row, "lease_until": "", "lease_owner": ""} for row in before]
        assert after == before, name
    assert not rows(new, "SELECT key FROM receiver_state WHERE key LIKE 'store_copy:%'")

    # serve on the copy: the open events run (the one whose claim the old store held, too), the others stay.
    expected = {f"event-{s}": "done" if s in "prw" else STATUSES[s] for s in STATUSES}
    config = tmp_path / "new.toml"
    config.write_text(
        f'[receiver]\nallow_no_secret = true\nport = 0\n\n[store]\nurl = "{store_url}"\n\n'
        '[dispatch]\npoll_interval = "50ms"\nbackoff_base = "10ms"\n\n[catchup]\nenabled = false\n\n'
        '[[pipelines]]\ntypes = ["*"]\nhandlers = ["log"]\n',
        encoding="utf-8",
    )
    with subprocess.Popen([sys.executable, "-m", "receiver", "serve", "--config", str(config)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as serve:  # fmt: skip
        try:
            wait_until(lambda: copied_statuses(new) == expected, timeout=30, message="the open events done")
        finally:
            serve.terminate()
    [cursor] = rows(new, "SELECT after FROM catchup_cursors")
    assert cursor["after"] == "cursor-after-this-id"
    [held] = rows(new, "SELECT attempts FROM inbox WHERE id = 'event-w'")
    assert held["attempts"] == 4, "the event the old store had claimed ran again, its attempts counted on"
    history = rows(new, "SELECT seq, event_id, outcome FROM attempts ORDER BY seq")
    assert [(r["event_id"], r["outcome"]) for r in history[:2]] == [("event-d", "done"), ("event-r", "retrying")]
    assert {r["event_id"] for r in history[2:]} == {"event-p", "event-r", "event-w"}, "numbered after the copied"


def test_a_source_in_use_is_refused(tmp_path: Path, store_url: str) -> None:
    old = sqlite_store(tmp_path)
    with closing(sqlite3.connect(old.path)) as reader:
        reader.execute("SELECT COUNT(*) FROM inbox").fetchone()
        result = copy(str(old.path), store_url)
    assert result.returncode == 1
    assert "another process has the store" in result.stderr and "stop it first" in result.stderr
    with psycopg.connect(store_url) as target:
        tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        assert target.execute(tables).fetchone() == (0,), "nothing written to the target"


def test_an_interrupted_copy_carries_on_and_a_target_with_another_store_is_refused(
    tmp_path: Path, store_url: str
) -> None:
    old = sqlite_store(tmp_path)
    source, target = open_backend(old.store), open_backend(StoreConfig(url=store_url))
    target.migrate()

    class Interrupted(Exception):
        pass

    def stop_after_two_batches(count: int, seen: list[int] = []) -> None:  # noqa: B006 (a counter across calls)
        seen.append(count)
        if len(seen) == 2:
            raise Interrupted

    async def interrupted() -> None:
        db, into = await source.connect(read_only=True), await target.connect()
        try:
            await copy_store(db, into, stop_after_two_batches)
        finally:
            await db.close()
            await into.close()

    with pytest.raises(Interrupted):
        asyncio.run(interrupted())
    [partial] = rows(StoreConfig(url=store_url), "SELECT COUNT(*) AS n FROM inbox")
    assert 0 < partial["n"] < len(STATUSES) + BULK
    resumed = copy(str(old.path), store_url, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed"] is True
    assert json.loads(resumed.stdout)["rows"]["inbox"] == len(STATUSES) + BULK

    again = copy(str(old.path), store_url)
    assert again.returncode == 1
    assert "the target already holds a store" in again.stderr


def test_the_target_must_be_a_postgresql_url(tmp_path: Path) -> None:
    old = sqlite_store(tmp_path)
    result = copy(str(old.path), str(tmp_path / "other.db"))
    assert result.returncode == 2
    assert "--to" in result.stderr and "postgresql://" in result.stderr


def test_a_missing_source_is_one_line(tmp_path: Path) -> None:
    result = copy(str(tmp_path / "missing.db"), "postgresql://postgres@127.0.0.1:5432/postgres")
    assert result.returncode == 1
    assert result.stderr.startswith("error: store") and "does not exist" in result.stderr
