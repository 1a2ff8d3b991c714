"""The operators' view of the inbox: following changes, putting events back in the queue, and the numbers behind
`stats` and the alerting metrics. Listing and counting by status live in `receiver/store/inbox.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import aiosqlite

from receiver.store.db import StoreError, describe, fetch_rows
from receiver.store.inbox import PRUNED_RAW, InboxRecord, glob_to_like
from receiver.timeutil import now_iso, parse_iso, to_iso

UNPROCESSED = ("pending", "retrying", "processing")
WAITING = ("pending", "retrying")
REPLAYABLE = ("dead", "skipped", "done", "retrying")

# A writer stamps `updated_at` just before it waits for SQLite's write lock (up to the busy timeout), so a row can
# become visible with a stamp older than one already seen. Each poll looks back this far and skips what it printed.
FOLLOW_OVERLAP_SECONDS = 3.0
# Rows per UPDATE when replaying: keeps each write transaction short while the server is running.
REPLAY_BATCH = 200


@dataclass(frozen=True)
class EventFilter:
    """The selection the operator commands share: status, type glob, resource, received at or after `since`."""

    status: str | None = None
    type_glob: str | None = None
    resource: str | None = None
    since: str | None = None

    def sql(self) -> tuple[list[str], list[str]]:
        where, params = [], []
        if self.status:
            where.append("status = ?")
            params.append(self.status)
        if self.type_glob:
            where.append("type LIKE ? ESCAPE '\\'")
            params.append(glob_to_like(self.type_glob))
        if self.resource:
            where.append("resource = ?")
            params.append(self.resource)
        if self.since:
            where.append("received_at >= ?")
            params.append(self.since)
        return where, params


class ChangeFeed:
    """New events and status changes, in `updated_at` order, through the `inbox_updated` index.

    Starts at the newest change in the store when created (see `start`); each `poll` returns what changed since.
    """

    def __init__(self, conn: aiosqlite.Connection, selection: EventFilter) -> None:
        self.conn = conn
        self.selection = selection
        self.cursor = ""
        self._printed: dict[tuple[int, str], str] = {}

    async def start(self, after: str | None = None) -> None:
        """Begin after `after`, or after the newest change now in the store."""
        if after is None:
            rows = await fetch_rows(self.conn, "SELECT MAX(updated_at) FROM inbox")
            after = str(rows[0][0]) if rows and rows[0][0] else ""
        self.cursor = after
        self._printed = {}
        if after:
            # What changed at the start point was already there: remember it so the look-back does not repeat it.
            for record in await self._changed_from(self._look_back_floor()):
                self._printed[(record.seq, record.updated_at)] = record.updated_at

    def _look_back_floor(self) -> str:
        if not self.cursor:
            return ""
        return to_iso(parse_iso(self.cursor) - timedelta(seconds=FOLLOW_OVERLAP_SECONDS))

    async def _changed_from(self, floor: str) -> list[InboxRecord]:
        where, params = self.selection.sql()
        where.insert(0, "updated_at >= ?")
        params.insert(0, floor)
        # Pinned to the time index: a status or type filter must not turn this into a scan of every dead event.
        sql = f"SELECT * FROM inbox INDEXED BY inbox_updated WHERE {' AND '.join(where)} ORDER BY updated_at, seq"
        rows = await fetch_rows(self.conn, sql, params)
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


async def select_events(
    conn: aiosqlite.Connection, selection: EventFilter, *, last: int | None = None
) -> list[InboxRecord]:
    """The events matching `selection` in arrival order: all of them, or only the `last` N."""
    where, params = selection.sql()
    sql = "SELECT * FROM inbox" + (" WHERE " + " AND ".join(where) if where else "")
    if last is not None:
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(str(int(last)))
    else:
        sql += " ORDER BY seq"
    rows = await fetch_rows(conn, sql, params)
    records = [InboxRecord.from_row(row) for row in rows]
    return records[::-1] if last is not None else records


async def events_by_id(conn: aiosqlite.Connection, ids: Sequence[str]) -> tuple[list[InboxRecord], list[str]]:
    """The events with these ids (in the order given) and the ids that are not in the store."""
    found: dict[str, InboxRecord] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), REPLAY_BATCH):
        chunk = unique[start : start + REPLAY_BATCH]
        sql = f"SELECT * FROM inbox WHERE id IN ({', '.join('?' * len(chunk))})"
        for row in await fetch_rows(conn, sql, chunk):
            record = InboxRecord.from_row(row)
            found[record.id] = record
    return [found[i] for i in unique if i in found], [i for i in unique if i not in found]


async def replay_events(conn: aiosqlite.Connection, ids: Sequence[str]) -> int:
    """Put these events back in the queue: `pending`, attempts 0, due now, no lease; `last_error` stays until they
    run again. An event a worker holds right now (`processing`), or one whose payload retention pruned, is left
    alone. Returns how many changed; commits."""
    if not ids:
        return 0
    sql = (
        "UPDATE inbox SET status = 'pending', attempts = 0, next_attempt_at = '', lease_until = '', lease_owner = '',"
        f" updated_at = ? WHERE status != 'processing' AND raw <> '{PRUNED_RAW}'"
        f" AND id IN ({', '.join('?' * len(ids))})"
    )
    try:
        cursor = await conn.execute(sql, [now_iso(), *ids])
    except sqlite3.Error as exc:
        raise StoreError(f"cannot replay events: {describe(exc)}") from exc
    return cursor.rowcount


# --- the numbers behind `stats` and the metrics ---


async def count_by_type(conn: aiosqlite.Connection) -> dict[str, dict[str, int]]:
    """Event type -> status -> count."""
    counts: dict[str, dict[str, int]] = {}
    for row in await fetch_rows(conn, "SELECT type, status, COUNT(*) FROM inbox GROUP BY type, status ORDER BY type"):
        counts.setdefault(str(row[0]), {})[str(row[1])] = int(row[2])
    return counts


async def oldest_event(conn: aiosqlite.Connection, statuses: Sequence[str]) -> InboxRecord | None:
    """The earliest received event in one of `statuses` (a search of the `inbox_status` index)."""
    marks = ", ".join("?" * len(statuses))
    sql = f"SELECT * FROM inbox WHERE status IN ({marks}) ORDER BY received_at, seq LIMIT 1"
    rows = await fetch_rows(conn, sql, list(statuses))
    return InboxRecord.from_row(rows[0]) if rows else None


async def last_push_at(conn: aiosqlite.Connection) -> str | None:
    """When Altinn last pushed to us: the newest pushed event or subscription validation handshake."""
    sql = (
        "SELECT MAX(stamp) FROM (SELECT MAX(received_at) AS stamp FROM inbox WHERE channel = 'push'"
        " UNION ALL SELECT MAX(received_at) FROM validations)"
    )
    rows = await fetch_rows(conn, sql)
    return str(rows[0][0]) if rows and rows[0][0] else None
