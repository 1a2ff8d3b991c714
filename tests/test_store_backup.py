"""`altinn-receiver store backup PATH`: a consistent copy taken while the webhook commits pushes, holding every event
acknowledged before it started, with `[store] file_mode`; never over an existing file; any schema version."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import uuid
from contextlib import closing
from pathlib import Path

import httpx

from receiver.store.inbox import INSERT_EVENT, event_row
from receiver.store.migrate import migrate
from receiver.store.migrations import LATEST
from receiver.store.records import NewEvent
from tests.ingest_support import make_config, new_event, push, running_app, webhook
from tests.ops_support import OpsStore
from tests.store_support import LEGACY_EVENTS, legacy_store
from tests.support import wait_until

BULK = 20_000


class Pusher(threading.Thread):
    """Pushes new events one after another until stopped; `acked` holds each acknowledged id in order."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.acked: list[str] = []
        self.failures: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.is_set():
                event = new_event()
                response = push(client, self.url, event)
                if response.status_code == 200:
                    self.acked.append(event["id"])
                else:
                    self.failures.append(response.status_code)


def ids_in(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {str(row[0]) for row in conn.execute("SELECT id FROM inbox")}


def test_a_backup_taken_under_load_opens_and_holds_every_acknowledged_event(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    migrate(config.store.path)
    bulk = [event_row(NewEvent(str(uuid.uuid4()), "t", "s", "", "r", "i", "", "{}"), "push", "x") for _ in range(BULK)]
    with closing(sqlite3.connect(config.store.path)) as conn, conn:
        conn.executemany(INSERT_EVENT, bulk)
    store = OpsStore(tmp_path, config)
    target = tmp_path / "backups" / "receiver-backup.db"
    target.parent.mkdir()
    with running_app(config) as server:
        pusher = Pusher(webhook(server.url))
        pusher.start()
        wait_until(lambda: len(pusher.acked) >= 50, message="pushes acknowledged before the backup")
        acked_before = list(pusher.acked)
        result = store.cli("store", "backup", str(target), "--json")
        acked_during = len(pusher.acked) - len(acked_before)
        wait_until(lambda: len(pusher.acked) >= len(acked_before) + acked_during + 20, message="pushes after it")
        pusher.stopping.set()
        pusher.join()
    assert result.exit_code == 0, result.stderr
    assert not pusher.failures, "the webhook answered other than 200 while the backup ran"
    copied = ids_in(target)
    assert set(acked_before) <= copied
    assert copied <= set(pusher.acked) | {row["id"] for row in bulk}, "the copy holds only what the store held"
    assert len(copied) < BULK + len(pusher.acked), "the copy is of one moment, not of the store at the end"
    summary = json.loads(result.stdout)
    assert (summary["backup"], summary["events"], summary["schema_version"]) == (str(target), len(copied), LATEST)
    assert summary["bytes"] == target.stat().st_size
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name], "no partial or journal files left"


def test_the_backup_has_the_configured_file_mode_whatever_the_umask_and_the_store_mode(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    store.add("one")
    store.path.chmod(0o644)  # a store created before [store] file_mode
    previous = os.umask(0)
    try:
        result = store.cli("store", "backup", str(tmp_path / "copy.db"))
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"backed up {store.path} to {tmp_path / 'copy.db'}: ")
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600


def test_a_backup_never_overwrites_a_file(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    store.add("one")
    existing = tmp_path / "already-here.db"
    existing.write_text("keep me")
    result = store.cli("store", "backup", str(existing))
    assert result.exit_code == 1
    assert result.stderr == f"error: {existing} already exists: give a new file name (a backup never overwrites)\n"
    assert existing.read_text() == "keep me"
    missing_folder = store.cli("store", "backup", str(tmp_path / "nowhere" / "copy.db"))
    assert missing_folder.exit_code == 1 and "create it first" in missing_folder.stderr


def test_a_store_of_an_older_release_is_backed_up_as_it_is(tmp_path: Path) -> None:
    """Backup comes before `store migrate`: it copies any schema version and migrates nothing."""
    store = OpsStore(tmp_path)
    legacy_store(store.path)
    result = store.cli("store", "backup", str(tmp_path / "before-migrating.db"), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["schema_version"], summary["events"]) == (1, len(LEGACY_EVENTS))
    assert ids_in(tmp_path / "before-migrating.db") == set(LEGACY_EVENTS)
    assert store.cli("events", "list").exit_code == 1, "the store itself is still at version 1"
