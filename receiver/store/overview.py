"""The numbers behind the console's overview (`/`): events received and finished per minute, the store's size.

The backlog by status, the oldest unprocessed event, the subscriptions and the catch-up cursors come from the
modules that own them (`inbox.count_by_status`, `operations.oldest_event`, `state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from receiver.store.interface import SQLITE, Database
from receiver.timeutil import to_iso

MINUTE = slice(0, 16)
"""`2026-11-30T10:31` of a timestamp: the fixed-width text (docs/store.md) cut to its minute."""

# Both count through the `inbox_updated` index: an event received at or after :since was last updated then too, and
# an event that finished since then was updated then. On SQLite the index is named: with a status condition its
# planner would rather walk `inbox_status` through every finished event. `substr` is the same on both backends.
RECEIVED_PER_MINUTE = """
    SELECT substr(received_at, 1, 16) AS minute, COUNT(*) AS n FROM {inbox}
    WHERE updated_at >= :since AND received_at >= :since GROUP BY substr(received_at, 1, 16)
"""
FINISHED_PER_MINUTE = """
    SELECT substr(updated_at, 1, 16) AS minute, COUNT(*) AS n FROM {inbox}
    WHERE updated_at >= :since AND status IN ('done', 'skipped', 'dead') GROUP BY substr(updated_at, 1, 16)
"""
STORE_BYTES = {
    SQLITE: "SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()",
    # The receiver's tables and their indexes and TOAST, in the schema it uses (not the whole database's).
    "postgresql": """
        SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS bytes
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r'
    """,
}


@dataclass(frozen=True)
class Minute:
    """One minute of the chart: its start (`2026-11-30T10:31`), events received in it and events that finished in
    it (done, skipped or dead; an event's last change, so a replayed event counts once more when it finishes)."""

    minute: str
    received: int
    processed: int


async def per_minute(db: Database, end: datetime, minutes: int = 60) -> list[Minute]:
    """The `minutes` whole minutes up to and including the one `end` is in, oldest first, every one present."""
    last = end.replace(second=0, microsecond=0)
    starts = [to_iso(last - timedelta(minutes=back))[MINUTE] for back in range(minutes - 1, -1, -1)]
    params = {"since": starts[0] + ":00.000000Z"}
    inbox = "inbox INDEXED BY inbox_updated" if db.backend == SQLITE else "inbox"
    received = {str(r["minute"]): int(r["n"]) for r in await db.fetch(RECEIVED_PER_MINUTE.format(inbox=inbox), params)}
    finished = {str(r["minute"]): int(r["n"]) for r in await db.fetch(FINISHED_PER_MINUTE.format(inbox=inbox), params)}
    return [Minute(start, received.get(start, 0), finished.get(start, 0)) for start in starts]


async def store_bytes(db: Database) -> int:
    """How large the store is: the SQLite file's pages (without its WAL), or the receiver's tables on PostgreSQL."""
    rows = await db.fetch(STORE_BYTES[db.backend])
    return int(rows[0]["bytes"]) if rows else 0
