"""Schema migrations: recorded in `schema_migrations`, applied only by `serve` and `store migrate` (one process at a
time, all or nothing), a store of release 0.1.0 recognised at version 1, and every other command refusing a store of
another version with one line that names what to run. Reading commands open the store read-only, so they work while
another connection holds the write lock."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from receiver.config import load_config
from receiver.store.errors import StoreError
from receiver.store.migrate import migrate
from receiver.store.migrations import ANY_BACKEND, LATEST, MIGRATIONS, Migration
from tests.ingest_support import CLI, ServeProcess, new_event, push, run_cli, webhook
from tests.ops_support import OpsStore, json_lines
from tests.store_support import LEGACY_EVENTS, NEWER_RELEASE, legacy_store, newer_store, schema_rows
from tests.support import wait_until

ALL = [(m.version, m.name) for m in MIGRATIONS]
LEGACY_ID = next(iter(LEGACY_EVENTS))
# Every command that opens the store but must not migrate it: the readers, and replay, which writes.
NOT_MIGRATING = [
    ["events", "list"],
    ["events", "show", LEGACY_ID],
    ["events", "dead"],
    ["tail"],
    ["stats"],
    ["events", "replay", LEGACY_ID, "--yes"],
]
READERS = NOT_MIGRATING[:-1]


def table_names(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        return {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_store_records_every_migration_in_order_and_a_second_run_applies_none(tmp_path: Path) -> None:
    path = tmp_path / "new" / "receiver.db"
    first = migrate(path)
    assert (first.before.version, [m.version for m in first.applied]) == (0, [v for v, _ in ALL])
    assert schema_rows(path) == ALL
    again = migrate(path)
    assert (again.before.version, again.applied) == (LATEST, ())
    assert schema_rows(path) == ALL
    assert {"correspondence_attachments", "inbox_heads"} <= table_names(path)


def test_the_attachments_table_has_the_columns_agency_systems_read(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    migrate(path)
    with closing(sqlite3.connect(path)) as conn:
        columns = {
            row[1]: (row[2], bool(row[3]), row[4], row[5])
            for row in conn.execute("PRAGMA table_info(correspondence_attachments)")
        }
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(correspondence_attachments)")}
    text = ("TEXT", True, "''", 0)
    assert columns == {
        "correspondence_id": ("TEXT", True, None, 1),
        "attachment_id": ("TEXT", True, None, 2),
        "file_name": text,
        "size": ("INTEGER", False, None, 0),  # NULL while the file is not on disk
        "checksum": text,
        "status": text,
        "expiration_time": text,
        "path": text,
        "updated_at": ("TEXT", True, None, 0),
    }
    assert "correspondence_attachments_by_attachment" in indexes


@pytest.mark.parametrize("command", NOT_MIGRATING, ids=" ".join)
def test_a_store_of_release_0_1_0_is_refused_with_one_line_naming_store_migrate(
    tmp_path: Path, command: list[str]
) -> None:
    store = OpsStore(tmp_path)
    legacy_store(store.path)
    result = store.cli(*command)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: store {store.path} is at schema version 1 ")
    assert f"run `altinn-receiver store migrate --config {store.config}` first" in result.stderr
    assert "schema_migrations" not in table_names(store.path), "the refusal changed the store"


def test_a_store_of_a_build_with_attachments_before_migrations_is_at_version_2(tmp_path: Path) -> None:
    """Builds after 0.1.0 created `correspondence_attachments` on open and set user_version 2."""
    path = legacy_store(tmp_path / "receiver.db")
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in MIGRATIONS[1].statements("sqlite"):
            conn.execute(statement)
        conn.execute("INSERT INTO correspondence_attachments (correspondence_id, attachment_id, updated_at)"
                     " VALUES ('c', 'a', '2026-01-05T10:00:00.000000Z')")  # fmt: skip
        conn.execute("PRAGMA user_version = 2")
    result = migrate(path)
    assert (result.before.version, [m.version for m in result.applied]) == (2, [v for v, _ in ALL[2:]])
    assert schema_rows(path) == ALL
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT attachment_id FROM correspondence_attachments").fetchall() == [("a",)]


def test_store_migrate_dry_run_lists_what_it_would_apply_and_changes_nothing(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    legacy_store(store.path)
    result = store.cli("store", "migrate", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert f"store {store.path} is at schema version 1; would apply:" in result.stdout
    for version, name in ALL[1:]:
        assert f"{version:>4}  {name}" in result.stdout
    assert result.stdout.endswith("dry run: nothing changed\n")
    assert "schema_migrations" not in table_names(store.path)

    result = store.cli("store", "migrate", "--json")
    applied = json.loads(result.stdout)
    assert applied == {"store": str(store.path), "dry_run": False, "from_version": 1, "to_version": LATEST,
                       "applied": [{"version": v, "name": n} for v, n in ALL[1:]]}  # fmt: skip
    assert schema_rows(store.path) == ALL
    result = store.cli("store", "migrate")
    assert result.stdout == f"store {store.path} is at schema version {LATEST}, this release's: nothing to migrate\n"


def test_serve_migrates_a_store_of_release_0_1_0_keeping_its_events_and_their_ids(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    legacy_store(serve.store)
    store = OpsStore(tmp_path, load_config(serve.config))
    assert store.cli("events", "list").exit_code == 1
    with serve, httpx.Client() as client:
        # An id the 0.1.0 store already holds is still a duplicate.
        repeated = push(client, webhook(serve.url), new_event(id=LEGACY_ID))
        assert (repeated.status_code, repeated.json()) == (200, {"status": "duplicate"})

        def listed() -> dict[str, str]:
            result = store.cli("events", "list", "--json")
            assert result.exit_code == 0, result.stderr
            return {row["id"]: row["status"] for row in json_lines(result.stdout)}

        # The dispatcher claims the event that was pending in the 0.1.0 store.
        after = wait_until(lambda: (now := listed())[LEGACY_ID] != "pending" and now, message="the pending event")
    assert after == {**LEGACY_EVENTS, LEGACY_ID: "done"}
    assert schema_rows(serve.store) == ALL
    [line] = [line for line in serve.log_lines() if line["msg"] == "store migrated"]
    assert (line["from_version"], line["to_version"]) == (1, LATEST)


def test_a_store_migrated_by_a_newer_release_is_refused_naming_that_release(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    newer_store(store.path)
    expected = f"is at schema version {LATEST + 1}, newer than altinn-receiver"
    for command in (["events", "list"], ["store", "migrate"], ["store", "migrate", "--dry-run"]):
        result = store.cli(*command)
        assert result.exit_code == 1, command
        assert expected in result.stderr and f"run altinn-receiver {NEWER_RELEASE} or newer" in result.stderr
        assert result.stderr.count("\n") == 1
    served = run_cli("serve", "--config", str(store.config))
    assert served.returncode == 1
    assert f"run altinn-receiver {NEWER_RELEASE} or newer" in served.stderr.splitlines()[-1]
    assert schema_rows(store.path)[-1] == (LATEST + 1, "from_the_future")


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_reading_commands_work_while_another_connection_holds_the_write_lock(
    tmp_path: Path, command: list[str]
) -> None:
    store = OpsStore(tmp_path)
    store.add(LEGACY_ID)
    store.set(LEGACY_ID, status="dead")
    with closing(sqlite3.connect(store.path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE receiver_state SET value = value")
        result = store.cli(*command, "--json") if command != ["events", "show", LEGACY_ID] else store.cli(*command)
        writer.execute("COMMIT")
    assert result.exit_code == 0, result.stderr
    assert LEGACY_ID in result.stdout or command == ["stats"]


def test_two_migrations_started_at_once_apply_each_migration_once(tmp_path: Path) -> None:
    store = OpsStore(tmp_path)
    legacy_store(store.path)
    command = [*CLI, "store", "migrate", "--json", "--config", str(store.config)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    applied = sorted(len(json.loads(out)["applied"]) for out, _ in outputs)
    assert applied == [0, LATEST - 1]
    assert schema_rows(store.path) == ALL


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    migrate(path)
    broken = Migration(LATEST + 1, "broken", {"sqlite": ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")})
    with pytest.raises(StoreError, match="cannot migrate store"):
        migrate(path, migrations=(*MIGRATIONS, broken))
    assert "half_done" not in table_names(path)
    assert schema_rows(path) == ALL


def test_release_0_1_0_can_still_open_and_read_a_migrated_store(tmp_path: Path) -> None:
    """During a rolling deploy the previous release runs on the migrated store: it runs its schema statements and
    writes user_version 1 on every open, reads `SELECT * FROM inbox` into a record with 0.1.0's fields, and claims
    through `inbox_open_by_time`."""
    path = legacy_store(tmp_path / "receiver.db")
    with closing(sqlite3.connect(path)) as conn:
        columns_before = conn.execute("PRAGMA table_info(inbox)").fetchall()
    migrate(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as old_release:
        old_release.execute("BEGIN IMMEDIATE")
        for statement in MIGRATIONS[0].statements("sqlite"):
            old_release.execute(statement)
        old_release.execute("PRAGMA user_version=1")
        old_release.execute("COMMIT")
        assert old_release.execute("PRAGMA table_info(inbox)").fetchall() == columns_before
        indexes = {row[1] for row in old_release.execute("PRAGMA index_list(inbox)")}
    assert "inbox_open_by_time" in indexes
    assert migrate(path).applied == ()
    assert schema_rows(path) == ALL


def test_a_migration_carries_sql_per_backend() -> None:
    shared = Migration(90, "shared", {ANY_BACKEND: ("CREATE TABLE a (x)",), "postgresql": ("CREATE TABLE b (x)",)})
    assert shared.statements("sqlite") == ("CREATE TABLE a (x)",)
    assert shared.statements("postgresql") == ("CREATE TABLE b (x)",)
    sqlite_only = Migration(91, "triggers", {"sqlite": ("CREATE TRIGGER …",)})
    with pytest.raises(LookupError, match="migration 91 \\(triggers\\) has no SQL for the postgresql backend"):
        sqlite_only.statements("postgresql")
    # Each migration says what each backend runs, if only nothing (migration 8 on SQLite, whose writers take turns).
    statements = {
        (m.version, backend): m.statements(backend) for m in MIGRATIONS for backend in ("sqlite", "postgresql")
    }
    assert all(statements[m.version, "sqlite"] or statements[m.version, "postgresql"] for m in MIGRATIONS)
