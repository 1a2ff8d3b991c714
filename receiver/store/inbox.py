"""The inbox table: every received event, keyed on its CloudEvent id, and the validation handshakes beside it."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

import aiosqlite

from receiver.timeutil import now_iso

CHANNELS = ("push", "catchup", "replay")


@dataclass(frozen=True)
class NewEvent:
    """An event that passed validation at a door (push or catch-up), ready to be stored as sent."""

    id: str
    type: str
    source: str
    subject: str
    resource: str
    resourceinstance: str
    time: str
    raw: str


@dataclass(frozen=True)
class InboxRecord:
    seq: int
    id: str
    type: str
    source: str
    subject: str
    resource: str
    resourceinstance: str
    time: str
    raw: str
    received_at: str
    channel: str
    status: str
    attempts: int
    last_error: str
    next_attempt_at: str
    lease_until: str
    lease_owner: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InboxRecord:
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (sqlite3.Row has no __iter__ of keys)

    @property
    def event(self) -> dict[str, Any]:
        """The CloudEvent as it was received."""
        value = json.loads(self.raw)
        assert isinstance(value, dict)
        return value

    def to_json(self, *, with_event: bool = False) -> dict[str, Any]:
        """The public JSON shape of `events list/show --json` (the raw event only when asked)."""
        data = asdict(self)
        raw = data.pop("raw")
        for internal in ("seq", "lease_owner"):
            data.pop(internal)
        if with_event:
            data["event"] = json.loads(raw)
        return data


INSERT_EVENT = """
    INSERT INTO inbox (id, type, source, subject, resource, resourceinstance, time, raw,
                       received_at, channel, status, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
    ON CONFLICT(id) DO NOTHING
"""

INSERT_VALIDATION = """
    INSERT INTO validations (event_id, subscription_id, source, received_at) VALUES (?, ?, ?, ?)
    ON CONFLICT(event_id) DO NOTHING
"""


def insert_params(event: NewEvent, channel: str, received_at: str) -> tuple[str, ...]:
    return (
        event.id,
        event.type,
        event.source,
        event.subject,
        event.resource,
        event.resourceinstance,
        event.time,
        event.raw,
        received_at,
        channel,
        received_at,
    )


async def insert_event(conn: aiosqlite.Connection, event: NewEvent, channel: str) -> bool:
    """Store one event and commit; False when its id was already there (nothing changes then)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    stamp = now_iso()
    cursor = await conn.execute(INSERT_EVENT, insert_params(event, channel, stamp))
    await conn.commit()
    return cursor.rowcount == 1


async def record_validation(conn: aiosqlite.Connection, event_id: str, subscription_id: str, source: str) -> bool:
    """Record Altinn's validation handshake and commit; False for a repeated event id."""
    cursor = await conn.execute(INSERT_VALIDATION, (event_id, subscription_id, source, now_iso()))
    await conn.commit()
    return cursor.rowcount == 1


async def get_event(conn: aiosqlite.Connection, event_id: str) -> InboxRecord | None:
    async with conn.execute("SELECT * FROM inbox WHERE id = ?", (event_id,)) as cursor:
        row = await cursor.fetchone()
    return InboxRecord.from_row(row) if row is not None else None


def glob_to_like(pattern: str) -> str:
    """A shell-style glob (`no.altinn.correspondence.*`) as a SQL LIKE pattern with `\\` as escape."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


async def list_events(
    conn: aiosqlite.Connection,
    *,
    status: str | None = None,
    type_glob: str | None = None,
    resource: str | None = None,
    since: str | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[InboxRecord]:
    """Events filtered by status, type (glob), resource and `received_at >= since`."""
    where, params = [], []
    if status:
        where.append("status = ?")
        params.append(status)
    if type_glob:
        where.append("type LIKE ? ESCAPE '\\'")
        params.append(glob_to_like(type_glob))
    if resource:
        where.append("resource = ?")
        params.append(resource)
    if since:
        where.append("received_at >= ?")
        params.append(since)
    sql = "SELECT * FROM inbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?"
    params.append(str(int(limit)))
    async with conn.execute(sql, params) as cursor:
        rows = await cursor.fetchall()
    return [InboxRecord.from_row(row) for row in rows]


async def count_by_status(conn: aiosqlite.Connection) -> dict[str, int]:
    async with conn.execute("SELECT status, COUNT(*) FROM inbox GROUP BY status") as cursor:
        rows = await cursor.fetchall()
    return {str(row[0]): int(row[1]) for row in rows}
