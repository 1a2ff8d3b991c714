"""The store's schema as an ordered list of numbered migrations; `receiver/store/migrate.py` (SQLite) and
`receiver/store/postgres/migrate.py` apply them.

Each migration is a module here, `mNNNN_name.py`, with one `MIGRATION`, listed in `MIGRATIONS`. A migration holds its
SQL per backend: `"sqlite"`, `"postgresql"`, or `ANY_BACKEND` for SQL every backend runs as written. Once released a
migration never changes: a later schema change is a new migration, with the same tables, columns and meaning on
every backend.

Migrations only add (tables, indexes, triggers; columns on tables of our own): nothing is dropped or renamed in the
release that stops using it, so the release before keeps running on a migrated store during a rolling deploy. No
column may be added to `inbox`: release 0.1.0 reads `SELECT *` of it into a record with fixed fields, and an unknown
column would fail every read. New facts about events go into tables of their own.
"""

from __future__ import annotations

from receiver.store.migrations import (
    m0001_initial,
    m0002_correspondence_attachments,
    m0003_inbox_heads,
    m0004_retention,
    m0005_trace_context,
    m0006_attempts,
    m0007_runner_leases,
    m0008_heads_under_concurrency,
    m0009_correspondences_by_update,
    m0010_heads_inserted_in_one_statement,
)
from receiver.store.migrations.base import ANY_BACKEND, Migration

__all__ = ["ANY_BACKEND", "LATEST", "MIGRATIONS", "Migration"]

MIGRATIONS: tuple[Migration, ...] = tuple(
    module.MIGRATION
    for module in (
        m0001_initial,
        m0002_correspondence_attachments,
        m0003_inbox_heads,
        m0004_retention,
        m0005_trace_context,
        m0006_attempts,
        m0007_runner_leases,
        m0008_heads_under_concurrency,
        m0009_correspondences_by_update,
        m0010_heads_inserted_in_one_statement,
    )
)
if [m.version for m in MIGRATIONS] != list(range(1, len(MIGRATIONS) + 1)):
    raise AssertionError(f"migrations must be numbered 1, 2, 3, … in order: {[m.version for m in MIGRATIONS]}")
LATEST = MIGRATIONS[-1].version
"""The schema version this code reads and writes."""
