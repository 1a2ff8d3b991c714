"""The operators' view of the inbox: following changes, putting events back in the queue, and the numbers behind
`stats` and the alerting metrics. Listing and counting by status live in `receiver/store/inbox.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from receiver.store.inbox import EventFilter
from receiver.store.interface import SQLITE, Database
from receiver.store.records import PRUNED_RAW, InboxRecord
from receiver.timeutil import now_iso, parse_iso, to_iso

UNPROCESSED = ("pending", "retrying", "processing")
WAITING = ("pending", "retrying")
REPLAYABLE = ("dead", "skipped", "done", "retrying")

# A writer stamps `updated_at` just before it waits for SQLite's write lock (up to the busy timeout), so a row can
# become visible with a stamp older than one already seen. Each poll looks back this far and skips what it printed.
FOLLOW_OVERLAP_SECONDS = 3.0
# Rows per UPDATE when replaying: keeps each write transaction short while the server is running.
REPLAY_BATCH = 200


class ChangeFeed:
    """New events and status changes, in `updated_at` order, through the `inbox_updated` index.

    Starts at the newest change in the store when created (see `start`); each `poll` returns what changed since.
    """

    def __init__(self, db: Database, selection: EventFilter) -> None:
        self.db = db
        self.selection = selection
        self.cursor = ""
        self._printed: dict[tuple[int, str], str] = {}

    async def start(self, after: str | None = None) -> None:
        """Begin after `after`, or after the newest change now in the store."""
        if after is None:
            after = await newest_change(self.db)
        self.cursor = after
        self._printed = {}
        if after:
            # What changed up to the start point was already seen: remember it so the look-back does not repeat it.
            for record in await self._changed_from(self._look_back_floor()):
                if record.updated_at <= after:
                    self._printed[(record.seq, record.updated_at)] = record.updated_at

    def _look_back_floor(self) -> str:
        if not self.cursor:
            return ""
        return to_iso(parse_iso(self.cursor) - timedelta(seconds=FOLLOW_OVERLAP_SECONDS))

    async def _changed_from(self, floor: str) -> list[InboxRecord]:
        where, params = self.selection.sql()
        where.insert(0, "updated_at >= :floor")
        # Pinned to the time index on SQLite: a status or type filter must not turn this into a scan of every dead
        # event.
        table = "inbox INDEXED BY inbox_updated" if self.db.backend == SQLITE else "inbox"
        sql = f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY updated_at, seq"
        rows = await self.db.fetch(sql, {**params, "floor": floor})
        return [InboxRecord.from_row(row) for row in rows]

    async def poll(self) -> list[InboxRecord]:
        """The rows that changed since the last poll (each change once)."""
        floor = self._look_back_floor()
        fresh = []
        for record in await self._changed_from(floor):
            key = (record.seq, record.updated_at)
            if key in self._printed:
                continue
            self._printed[key] = record.updated_at
            fresh.append(record)
            self.cursor = max(self.cursor, record.updated_at)
        floor = self._look_back_floor()
        self._printed = {key: stamp for key, stamp in self._printed.items() if stamp >= floor}
        return fresh


async def newest_change(db: Database) -> str:
    """When the inbox last changed: the newest `updated_at` ("" for an empty inbox)."""
    rows = await db.fetch("SELECT MAX(updated_at) AS newest FROM inbox")
    return str(rows[0]["newest"]) if rows and rows[0]["newest"] else ""


async def select_events(db: Database, selection: EventFilter, *, last: int | None = None) -> list[InboxRecord]:
    """The events matching `selection` in arrival order: all of them, or only the `last` N."""
    where, params = selection.sql()
    sql = "SELECT * FROM inbox" + (" WHERE " + " AND ".join(where) if where else "")
    if last is not None:
        sql += " ORDER BY seq DESC LIMIT :last"
        params["last"] = int(last)
    else:
        sql += " ORDER BY seq"
    records = [InboxRecord.from_row(row) for row in await db.fetch(sql, params)]
    return records[::-1] if last is not None else records


def in_list(name: str, values: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """`(:name0, :name1, …)` for an IN, and its parameters."""
    params = {f"{name}{n}": value for n, value in enumerate(values)}
    return "(" + ", ".join(f":{key}" for key in params) + ")", params


async def events_by_id(db: Database, ids: Sequence[str]) -> tuple[list[InboxRecord], list[str]]:
    """The events with these ids (in the order given) and the ids that are not in the store."""
    found: dict[str, InboxRecord] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), REPLAY_BATCH):
        listed, params = in_list("id", unique[start : start + REPLAY_BATCH])
        for row in await db.fetch(f"SELECT * FROM inbox WHERE id IN {listed}", params):
            record = InboxRecord.from_row(row)
            found[record.id] = record
    return [found[i] for i in unique if i in found], [i for i in unique if i not in found]


async def replay_events(db: Database, ids: Sequence[str]) -> int:
    """Put these events back in the queue: `pending`, attempts 0, due now, no lease; `last_error` stays until they
    run again. An event a worker holds right now (`processing`), or one whose payload retention pruned, is left
    alone. Returns how many changed; commits."""
    if not ids:
        return 0
    listed, params = in_list("id", ids)
    sql = (
        "UPDATE inbox SET status = 'pending', attempts = 0, next_attempt_at = '', lease_until = '', lease_owner = '',"
        f" updated_at = :now WHERE status != 'processing' AND raw <> '{PRUNED_RAW}' AND id IN {listed}"
    )
    return await db.execute(sql, {**params, "now": now_iso()})


# --- the numbers behind `stats`, the console and the metrics ---


async def count_events(db: Database, selection: EventFilter) -> int:
    """How many events `selection` matches."""
    where, params = selection.sql()
    sql = "SELECT COUNT(*) AS n FROM inbox" + (" WHERE " + " AND ".join(where) if where else "")
    rows = await db.fetch(sql, params)
    return int(rows[0]["n"])


async def count_by_error(db: Database, selection: EventFilter) -> list[tuple[str, int, str]]:
    """The events `selection` matches grouped by their last error, the largest group first: (error, how many, when
    the newest of them arrived)."""
    where, params = selection.sql()
    sql = (
        "SELECT last_error, COUNT(*) AS n, MAX(received_at) AS newest FROM inbox"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " GROUP BY last_error ORDER BY n DESC, newest DESC"
    )
    return [(str(row["last_error"]), int(row["n"]), str(row["newest"])) for row in await db.fetch(sql, params)]


async def count_by_type(db: Database) -> dict[str, dict[str, int]]:
    """Event type -> status -> count."""
    counts: dict[str, dict[str, int]] = {}
    sql = "SELECT type, status, COUNT(*) AS n FROM inbox GROUP BY type, status ORDER BY type"
    for row in await db.fetch(sql):
        counts.setdefault(str(row["type"]), {})[str(row["status"])] = int(row["n"])
    return counts


async def oldest_event(db: Database, statuses: Sequence[str]) -> InboxRecord | None:
    """The earliest received event in one of `statuses` (a search of the `inbox_status` index)."""
    listed, params = in_list("status", statuses)
    sql = f"SELECT * FROM inbox WHERE status IN {listed} ORDER BY received_at, seq LIMIT 1"
    rows = await db.fetch(sql, params)
    return InboxRecord.from_row(rows[0]) if rows else None


async def last_push_at(db: Database) -> str | None:
    """When Altinn last pushed to us: the newest pushed event or subscription validation handshake."""
    sql = (
        "SELECT MAX(stamp) AS newest FROM (SELECT MAX(received_at) AS stamp FROM inbox WHERE channel = 'push'"
        " UNION ALL SELECT MAX(received_at) FROM validations) AS pushes"
    )
    rows = await db.fetch(sql)
    return str(rows[0]["newest"]) if rows and rows[0]["newest"] else None
