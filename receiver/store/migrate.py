"""Applying the schema migrations (receiver/store/migrations/) to a SQLite store: `serve` at start and
`altinn-receiver store migrate` do, nothing else.

One process at a time: everything happens in one `BEGIN IMMEDIATE` transaction, SQLite's write lock, so a second
`serve` starting at the same moment, or `store migrate` beside a running `serve`, waits for it and then finds
nothing left to do; and a failed migration changes nothing (SQLite's DDL is transactional). While it runs, the
webhook's commits wait for the lock like for any other writer.

A new store is made whole before it has its name: created with `[store] file_mode` under a hidden name (SQLite gives
its `-wal` and `-shm` files the same mode), migrated, flushed, and only then linked to the store's path. So the path
never names an empty file that `serve` made, and an empty file found there is refused: it is not a store, and
migrating it would make a new store without the history and cursors the operator expects.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from receiver import __version__
from receiver.store.db import connect_sync, make_folder, pragmas
from receiver.store.errors import StoreError, describe
from receiver.store.files import DEFAULT_FILE_MODE, create_with_mode, flush, publish
from receiver.store.integrity import empty, empty_store
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
    path: Path,
    *,
    file_mode: int = DEFAULT_FILE_MODE,
    migrations: tuple[Migration, ...] = MIGRATIONS,
    busy_timeout_ms: int = MIGRATE_BUSY_TIMEOUT_MS,
) -> Migrated:
    """Bring the store at `path` to this code's schema, `migrations`; a missing store is created, a file of
    `file_mode`. StoreError for an empty file at `path`; StoreVersionError when the store is newer."""
    make_folder(path)
    if not path.exists():
        created = _create(path, file_mode, migrations)
        if created is not None:
            return created
    if empty_store(path):
        raise StoreError(empty(path), transient=False)
    return _migrate(path, path, migrations, busy_timeout_ms)


def _create(path: Path, file_mode: int, migrations: tuple[Migration, ...]) -> Migrated | None:
    """A new store at `path`, whole or not at all; None when another process created one there meanwhile."""
    fresh = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        create_with_mode(fresh, file_mode)
        created = _migrate(fresh, path, migrations, MIGRATE_BUSY_TIMEOUT_MS)
        # Closing the only connection moved everything from the WAL into the file, and removed the WAL.
        if Path(f"{fresh}-wal").exists():
            raise StoreError(f"cannot create store {path}: SQLite could not finish writing it", transient=False)
        flush(fresh)
        if not publish(fresh, path):
            return None
        flush(path.parent)
    except OSError as exc:
        raise StoreError(f"cannot create store {path}: {exc.strerror or exc}", transient=False) from None
    finally:
        for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return created


def _migrate(file: Path, path: Path, migrations: tuple[Migration, ...], busy_timeout_ms: int) -> Migrated:
    """Migrate the existing store file `file` (named `path` in messages) in one write transaction."""
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
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
