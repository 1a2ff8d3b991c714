"""Migration 7: `runner_leases`, one row per job that must run on one process at a time among all that share the
store (`sync`: subscription reconciliation and catch-up; receiver/store/leases.py).

`holder` is the process that holds it (`hostname:pid`), `term` counts the holders it has had (it goes up at each
takeover), `since` is when the holder took it, `renewed_at` when it last renewed it, and it is free once
`expires_at` has passed (ISO-8601 UTC text, fixed width, so text order is time order). A released lease keeps its
last holder, with `expires_at` set to the moment of release.
"""

from __future__ import annotations

from receiver.store.migrations.base import ANY_BACKEND, Migration

STATEMENTS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS runner_leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        term       INTEGER NOT NULL,
        since      TEXT NOT NULL,
        renewed_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )
    """,
)

MIGRATION = Migration(7, "runner_leases", {ANY_BACKEND: STATEMENTS})
