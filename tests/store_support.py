"""Stores of other releases for the migration, retention and backup tests: a store as release 0.1.0 wrote it
(tests/data/store-0.1.0.sql), and one that a newer release has migrated beyond this code."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from receiver.store.migrate import migrate
from receiver.store.migrations import LATEST
from tests.support import DATA

LEGACY_EVENTS = {
    "7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0001": "pending",
    "7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0002": "done",
    "7f0e6d64-3d1b-4a43-9a55-2b0f0c1d0003": "dead",
}
NEWER_RELEASE = "9.9.9"


def legacy_store(path: Path) -> Path:
    """A store with release 0.1.0's schema and data (user_version 1, no schema_migrations), in WAL mode as it ran."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript((DATA / "store-0.1.0.sql").read_text(encoding="utf-8"))
    return path


def newer_store(path: Path) -> Path:
    """A store of this code's schema plus a migration this code does not know, applied by release NEWER_RELEASE."""
    migrate(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at, receiver_version)"
            " VALUES (?, 'from_the_future', '2030-01-01T00:00:00.000000Z', ?)",
            (LATEST + 1, NEWER_RELEASE),
        )
    return path


def schema_rows(path: Path) -> list[tuple[int, str]]:
    """(version, name) of every recorded migration, in order."""
    with closing(sqlite3.connect(path)) as conn:
        return [(int(v), str(n)) for v, n in conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1")]
