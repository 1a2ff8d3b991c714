"""Which schema a store has, and the refusal when it is not the one this code knows.

The schema is built by the numbered migrations in receiver/store/migrations/, recorded in `schema_migrations`; only
`serve` and `altinn-receiver store migrate` apply them (receiver/store/migrate.py). Every other connection checks
the version when it opens and refuses a store that is older or newer than this code (`StoreVersionError`).

Before migrations the schema was created on every open and `PRAGMA user_version` said which: 1 for release 0.1.0
(the tables of migration 1), 2 for the builds after it that added `correspondence_attachments` (migration 2). Such a
store has no `schema_migrations` and is at that version. Agency systems read `correspondences`,
`correspondence_events` and `correspondence_attachments`, see docs/store.md.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from receiver import __version__
from receiver.store.errors import StoreError
from receiver.store.migrations import LATEST

INBOX_STATUSES = ("pending", "processing", "retrying", "done", "dead", "skipped")
BEFORE_MIGRATIONS = {1: "0.1.0", 2: "0.1.0"}
"""`PRAGMA user_version` of a store from before migrations -> the release that wrote it (2: a build after 0.1.0)."""


SCHEMA_MIGRATIONS = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version          INTEGER PRIMARY KEY,
        name             TEXT NOT NULL,
        applied_at       TEXT NOT NULL,
        receiver_version TEXT NOT NULL DEFAULT ''
    )
"""
"""The record of the migrations applied, the same on every backend."""
NEWEST_MIGRATION = "SELECT version, receiver_version FROM schema_migrations ORDER BY version DESC LIMIT 1"


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema is: `version` 0 for an empty file; `by`, the release that applied the newest
    migration; `recorded` False for a store without `schema_migrations` (release 0.1.0's, or empty)."""

    version: int
    by: str
    recorded: bool


def read_state(conn: sqlite3.Connection, path: Path | str) -> SchemaState:
    """The schema state of the store open on `conn` (reads only)."""
    tables = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_migrations" in tables:
        newest = conn.execute(NEWEST_MIGRATION).fetchone()
        if newest is not None:
            return SchemaState(int(newest[0]), str(newest[1]), True)
    user_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if "inbox" in tables and user_version in BEFORE_MIGRATIONS:
        return SchemaState(user_version, BEFORE_MIGRATIONS[user_version], False)
    if not tables - {"sqlite_sequence", "schema_migrations"}:
        return SchemaState(0, "", False)
    raise StoreError(
        f"{path} is not an altinn-receiver store (tables without schema_migrations, user_version {user_version}):"
        " check [store] path",
        transient=False,
    )


class StoreVersionError(StoreError):
    """The store's schema is older than this code (migrate it) or newer (run the release that migrated it)."""

    def __init__(self, path: Path | str, state: SchemaState) -> None:
        self.path = path
        self.state = state
        super().__init__(self.line(), transient=False)

    @property
    def newer(self) -> bool:
        return self.state.version > LATEST

    def line(self, config: Path | str | None = None) -> str:
        """The refusal in one line, naming what to run (with `--config config` when given)."""
        have = self.state.version
        if self.newer:
            release = f"altinn-receiver {self.state.by} or newer" if self.state.by else "a newer altinn-receiver"
            return (
                f"store {self.path} is at schema version {have}, newer than altinn-receiver {__version__} knows"
                f" ({LATEST}): run {release}"
            )
        option = f" --config {config}" if config else ""
        return (
            f"store {self.path} is at schema version {have} and altinn-receiver {__version__} needs {LATEST}:"
            f" run `altinn-receiver store migrate{option}` first (or start `altinn-receiver serve`, which migrates it)"
        )


def require_current(conn: sqlite3.Connection, path: Path | str) -> None:
    """Refuse (StoreVersionError) a store whose schema is not the version this code reads and writes."""
    state = read_state(conn, path)
    if state.version != LATEST:
        raise StoreVersionError(path, state)
