"""Migration 5: `inbox_traces`, the trace context an event arrived with (the W3C `traceparent` of the push's span, or
of the catch-up page's), so that each dispatch of the event links back to it across the inbox.

A table of its own, not a column of `inbox` (release 0.1.0 reads `SELECT *` of the inbox into fixed fields). A row
exists only for an event that arrived while traces were on; retention deletes it with the event's payload.
"""

from __future__ import annotations

from receiver.store.migrations.base import ANY_BACKEND, Migration

STATEMENTS: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS inbox_traces (id TEXT PRIMARY KEY, traceparent TEXT NOT NULL)",
)

MIGRATION = Migration(5, "trace_context", {ANY_BACKEND: STATEMENTS})
