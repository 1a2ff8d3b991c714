"""What the receiver remembers about Altinn between runs: the subscriptions it created, one pull-API cursor per
subscription key, and small facts in `receiver_state` (`last_catchup_at`).

A subscription key is the config's `SubscriptionConfig` (resource, subject, type); empty strings mean "no filter".
Every write is one statement, so it is safe on a connection other coroutines share.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from receiver.config import SubscriptionConfig
from receiver.store.db import fetch_rows, row_fields
from receiver.timeutil import now_iso

LAST_CATCHUP_AT = "last_catchup_at"


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription at Altinn as this receiver last saw it. `endpoint` has no query string: the code is never
    stored, only `code_fingerprint` (see `receiver.sync.subscriptions.fingerprint`)."""

    altinn_id: int
    resource: str
    subject: str
    type: str
    endpoint: str
    code_fingerprint: str
    state: str
    created_at: str
    validated_at: str
    superseded_at: str
    updated_at: str

    @property
    def key(self) -> SubscriptionConfig:
        return SubscriptionConfig(resource=self.resource, subject=self.subject, type=self.type)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SubscriptionRecord:
        return cls(**row_fields(row))


@dataclass(frozen=True)
class Cursor:
    """The pull-API position for one subscription key.

    `after` is the id of the last event read; `updated_at` is when it last moved. `stuck_since` is set while a run
    finds an empty page although `stuck_pushes` pushes for the key arrived after the last move.
    """

    resource: str
    subject: str
    type: str
    after: str
    updated_at: str
    last_success_at: str
    stuck_since: str
    stuck_pushes: int

    @property
    def key(self) -> SubscriptionConfig:
        return SubscriptionConfig(resource=self.resource, subject=self.subject, type=self.type)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Cursor:
        return cls(**row_fields(row))


# --- subscriptions ---


async def save_subscription(
    conn: aiosqlite.Connection,
    altinn_id: int,
    key: SubscriptionConfig,
    endpoint: str,
    code_fingerprint: str,
    *,
    validated: bool,
    superseded: bool = False,
) -> SubscriptionRecord:
    """Insert or refresh what Altinn said about a subscription.

    `validated_at` and `superseded_at` keep the moment they were first seen, so "validated for an hour" and
    "superseded since" survive restarts. A superseded subscription carries an old code in its endpoint.
    """
    stamp = now_iso()
    state = "superseded" if superseded else "validated" if validated else "unvalidated"
    await conn.execute(
        """
        INSERT INTO subscriptions (altinn_id, resource, subject, type, endpoint, code_fingerprint, state,
                                   created_at, validated_at, superseded_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(altinn_id) DO UPDATE SET
            resource = excluded.resource, subject = excluded.subject, type = excluded.type,
            endpoint = excluded.endpoint, code_fingerprint = excluded.code_fingerprint, state = excluded.state,
            validated_at = CASE WHEN excluded.validated_at = '' THEN ''
                                WHEN subscriptions.validated_at != '' THEN subscriptions.validated_at
                                ELSE excluded.validated_at END,
            superseded_at = CASE WHEN excluded.superseded_at = '' THEN ''
                                 WHEN subscriptions.superseded_at != '' THEN subscriptions.superseded_at
                                 ELSE excluded.superseded_at END,
            updated_at = excluded.updated_at
        """,
        (
            altinn_id,
            key.resource,
            key.subject,
            key.type,
            endpoint,
            code_fingerprint,
            state,
            stamp,
            stamp if validated else "",
            stamp if superseded else "",
            stamp,
        ),
    )
    await conn.commit()
    record = await get_subscription(conn, altinn_id)
    assert record is not None
    return record


async def forget_subscription(conn: aiosqlite.Connection, altinn_id: int) -> None:
    """Drop the record of a subscription that no longer exists at Altinn."""
    await conn.execute("DELETE FROM subscriptions WHERE altinn_id = ?", (altinn_id,))
    await conn.commit()


async def get_subscription(conn: aiosqlite.Connection, altinn_id: int) -> SubscriptionRecord | None:
    rows = await fetch_rows(conn, "SELECT * FROM subscriptions WHERE altinn_id = ?", (altinn_id,))
    return SubscriptionRecord.from_row(rows[0]) if rows else None


async def list_subscriptions(conn: aiosqlite.Connection) -> list[SubscriptionRecord]:
    rows = await fetch_rows(conn, "SELECT * FROM subscriptions ORDER BY altinn_id")
    return [SubscriptionRecord.from_row(row) for row in rows]


# --- catch-up cursors ---


async def get_cursor(conn: aiosqlite.Connection, key: SubscriptionConfig) -> Cursor | None:
    rows = await fetch_rows(
        conn,
        "SELECT * FROM catchup_cursors WHERE resource = ? AND subject = ? AND type = ?",
        (key.resource, key.subject, key.type),
    )
    return Cursor.from_row(rows[0]) if rows else None


async def move_cursor(conn: aiosqlite.Connection, key: SubscriptionConfig, after: str) -> None:
    """Record that every event up to and including `after` has been read; a moving cursor is not stuck."""
    stamp = now_iso()
    await conn.execute(
        """
        INSERT INTO catchup_cursors (resource, subject, type, after, updated_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT(resource, subject, type) DO UPDATE SET
            after = excluded.after, updated_at = excluded.updated_at, stuck_since = '', stuck_pushes = 0
        """,
        (key.resource, key.subject, key.type, after, stamp),
    )
    await conn.commit()


async def finish_run(conn: aiosqlite.Connection, key: SubscriptionConfig, *, stuck_pushes: int) -> None:
    """A run reached the end of the pull API: note the success, and whether the cursor looks stuck."""
    stamp = now_iso()
    await conn.execute(
        """
        UPDATE catchup_cursors SET last_success_at = ?, stuck_pushes = ?,
            stuck_since = CASE WHEN ? = 0 THEN '' WHEN stuck_since != '' THEN stuck_since ELSE ? END
        WHERE resource = ? AND subject = ? AND type = ?
        """,
        (stamp, stuck_pushes, stuck_pushes, stamp, key.resource, key.subject, key.type),
    )
    await conn.commit()


async def pushes_since(conn: aiosqlite.Connection, key: SubscriptionConfig, since: str, until: str) -> int:
    """Events for the key that arrived by push with `since < received_at <= until`."""
    sql = "SELECT COUNT(*) FROM inbox WHERE channel = 'push' AND resource = ? AND received_at > ? AND received_at <= ?"
    params = [key.resource, since, until]
    for column, value in (("subject", key.subject), ("type", key.type)):
        if value:
            sql += f" AND {column} = ?"
            params.append(value)
    [(count,)] = await fetch_rows(conn, sql, params)
    return int(count)


# --- receiver_state ---


async def set_fact(conn: aiosqlite.Connection, key: str, value: str) -> None:
    stamp = now_iso()
    await conn.execute(
        "INSERT INTO receiver_state (key, value, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (key, value, stamp),
    )
    await conn.commit()


async def get_fact(conn: aiosqlite.Connection, key: str) -> str | None:
    rows = await fetch_rows(conn, "SELECT value FROM receiver_state WHERE key = ?", (key,))
    return str(rows[0][0]) if rows else None
