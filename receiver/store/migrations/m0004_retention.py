"""Migration 4: indexes for retention (receiver/store/retention.py), so that each pruning batch reads only what it
prunes: finished events whose payload is still there, by when they finished, and dead events by when they died.

A pruned event keeps its row (its id deduplicates a repeated push) with `raw` = `{"pruned":true}`.
"""

from __future__ import annotations

from receiver.store.migrations.base import ANY_BACKEND, Migration

STATEMENTS: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS inbox_finished_with_payload ON inbox (updated_at)"
    " WHERE status IN ('done', 'skipped') AND raw <> '{\"pruned\":true}'",
    "CREATE INDEX IF NOT EXISTS inbox_dead ON inbox (updated_at) WHERE status = 'dead'",
)

MIGRATION = Migration(4, "retention", {ANY_BACKEND: STATEMENTS})
