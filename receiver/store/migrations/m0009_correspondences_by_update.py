"""Migration 9: `correspondences` by their last change, newest first, so that the console's list
(receiver/store/correspondences.py `LIST`) reads a page of them in order instead of sorting the whole table for
each page.
"""

from __future__ import annotations

from receiver.store.migrations.base import ANY_BACKEND, Migration

STATEMENTS: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS correspondences_by_update ON correspondences (updated_at DESC, correspondence_id)",
)

MIGRATION = Migration(9, "correspondences_by_update", {ANY_BACKEND: STATEMENTS})
