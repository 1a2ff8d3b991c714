"""Retention: what the inbox keeps how long (`[retention]`, docs/store.md).

- A `done` or `skipped` event loses its payload once it finished longer than `[retention] done` ago: `raw` becomes
  `PRUNED_RAW`. Its row stays, id included, so a repeated push or a catch-up of it is still a duplicate for as long
  as Altinn can send it (its pull API keeps events 90 days); it can no longer run, so replay refuses it.
- A `dead` event is deleted once it died longer than `[retention] dead` ago (at least 90 days, see config.py).
- The trace context stored with an event (`inbox_traces`) and its attempt history (`attempts`) go with its
  payload, or with the event, in the same transaction.

Nothing else is touched: not `correspondences`, `correspondence_events` or `correspondence_attachments`, not the
downloaded files. Each statement handles at most `limit` rows and stands alone (its own short write transaction), so
the webhook's commits get the write lock between batches; indexes of migration 4 make each batch read only what it
prunes, oldest first.
"""

from __future__ import annotations

import re

from receiver.store.interface import POSTGRESQL, SQLITE, Database
from receiver.store.records import PRUNED_RAW

# The partial indexes' conditions are written out: SQLite uses such an index only for a query that repeats them.
PRUNE_PAYLOADS = f"""
    UPDATE inbox SET raw = '{PRUNED_RAW}'
    WHERE seq IN (
        SELECT seq FROM inbox INDEXED BY inbox_finished_with_payload
        WHERE status IN ('done', 'skipped') AND raw <> '{PRUNED_RAW}' AND updated_at < :before
        ORDER BY updated_at LIMIT :limit
    )
    RETURNING id
"""

DELETE_DEAD = """
    DELETE FROM inbox
    WHERE seq IN (
        SELECT seq FROM inbox INDEXED BY inbox_dead
        WHERE status = 'dead' AND updated_at < :before
        ORDER BY updated_at LIMIT :limit
    )
    RETURNING id
"""


def _per_backend(sql: str) -> dict[str, str]:
    """SQLite's statement, and PostgreSQL's without `INDEXED BY` (its planner picks the partial index itself)."""
    return {SQLITE: sql, POSTGRESQL: re.sub(r" INDEXED BY \w+", "", sql)}


STATEMENTS = {"payload": _per_backend(PRUNE_PAYLOADS), "dead": _per_backend(DELETE_DEAD)}
FOLLOWING = (("inbox_traces", "id"), ("attempts", "event_id"))
"""The tables whose rows about an event (table, its event id column) go with the event's payload."""


async def prune_payloads(db: Database, before: str, limit: int) -> int:
    """Drop the payload of up to `limit` done or skipped events that finished before `before`; how many."""
    return await _pruning(db, STATEMENTS["payload"][db.backend], before, limit)


async def delete_dead(db: Database, before: str, limit: int) -> int:
    """Delete up to `limit` dead events that died before `before`; how many."""
    return await _pruning(db, STATEMENTS["dead"][db.backend], before, limit)


async def _pruning(db: Database, sql: str, before: str, limit: int) -> int:
    """Run a pruning statement and delete the rows `FOLLOWING` of the events it pruned, in one transaction; how many
    it pruned."""
    async with db.transaction() as tx:
        ids = [str(row["id"]) for row in await tx.fetch(sql, {"before": before, "limit": limit})]
        if ids:
            params = {f"id{index}": event_id for index, event_id in enumerate(ids)}
            marks = ", ".join(f":{name}" for name in params)
            for table, column in FOLLOWING:
                await tx.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", params)
    return len(ids)
