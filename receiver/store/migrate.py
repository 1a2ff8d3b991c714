"""Applying the schema migrations (receiver/store/migrations/) to a SQLite store: `serve` at start and
`altinn-receiver store migrate` do, nothing else.

One process at a time: everything happens in one `BEGIN IMMEDIATE` transaction, SQLite's write lock, so a second
`serve` starting at the same moment, or `store migrate` beside a running `serve`, waits for it and then finds
nothing left to do; and a failed migration changes nothing (SQLite's DDL is transactional). While it runs, the
webhook's commits wait for the lock like for any other writer.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from receiver import __version__
from receiver.store.db import connect_sync, make_folder, pragmas
from receiver.store.errors import StoreError, describe
from receiver.store.interface import SQLITE, Migrated
from receiver.store.migrations import LATEST, MIGRATIONS, Migration
from receiver.store.schema import SCHEMA_MIGRATIONS, SchemaState, StoreVersionError, read_state
from receiver.timeutil import now_iso

MIGRATE_BUSY_TIMEOUT_MS = 60_000
"""How long a migration waits for the write lock: other writers hold it for milliseconds, another migration for as
long as it takes."""

RECORD = "INSERT INTO schema_migrations (version, name, applied_at, receiver_version) VALUES (?, ?, ?, ?)"


def pending(path: Path) -> tuple[SchemaState, tuple[Migration, ...]]:
    """The store's schema state and the migrations it lacks, read without the write lock (`store migrate
    --dry-run`); StoreVersionError when the store is newer than this code."""
    with closing(connect_sync(path, read_only=True, check=False)) as conn:
        state = read_state(conn, path)
    if state.version > LATEST:
        raise StoreVersionError(path, state)
    return state, MIGRATIONS[state.version :]


def migrate(
    path: Path, *, migrations: tuple[Migration, ...] = MIGRATIONS, busy_timeout_ms: int = MIGRATE_BUSY_TIMEOUT_MS
) -> Migrated:
    """Bring the store at `path` (created when missing) to this code's schema, `migrations`; StoreVersionError when
    it is newer."""
    make_folder(path)
    try:
        conn = sqlite3.connect(str(path), isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    with closing(conn):
        try:
            for pragma in pragmas(busy_timeout_ms):
                conn.execute(pragma)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = _apply(conn, path, migrations)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"cannot migrate store {path}: {describe(exc)}", transient=False) from exc
    return result


def _apply(conn: sqlite3.Connection, path: Path, migrations: tuple[Migration, ...]) -> Migrated:
    """Inside the write transaction: read where the store is, then apply and record what it lacks."""
    state = read_state(conn, path)
    if state.version > migrations[-1].version:
        raise StoreVersionError(path, state)
    todo = migrations[state.version :]
    if state.recorded and not todo:
        return Migrated(state, ())
    conn.execute(SCHEMA_MIGRATIONS)
    stamp = now_iso()
    # A store from before migrations has the tables of its version without the record of them: their statements (all
    # IF NOT EXISTS) add nothing, and are run to record them the same way as for a new store.
    for migration in (*migrations[: state.version], *todo) if not state.recorded else todo:
        for statement in migration.statements(SQLITE):
            conn.execute(statement)
        conn.execute(RECORD, (migration.version, migration.name, stamp, __version__))
    return Migrated(state, todo)
