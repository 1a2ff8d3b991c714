"""The tables agency systems read (docs/store.md): `correspondence_events`, one row per event, and
`correspondences`, the latest known state of each correspondence. Written by the `store` handler.

Both writes are single idempotent statements keyed on primary keys (one round trip to the connection's thread each),
so an event that is run again after a crash (or replayed) changes nothing twice: its event row is inserted once, its
correspondence row is brought up to date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from receiver.timeutil import now_iso


@dataclass(frozen=True)
class EventRow:
    event_id: str
    correspondence_id: str
    resourceinstance: str
    type: str
    time: str
    received_at: str


@dataclass(frozen=True)
class CorrespondenceRow:
    correspondence_id: str
    resource_id: str
    sender: str
    recipient: str
    status: str
    message_title: str
    details: dict[str, Any]
    event_at: str
    """When the event that brought this state happened: `first_event_at` keeps the earliest."""


INSERT_EVENT = """
    INSERT INTO correspondence_events (event_id, correspondence_id, resourceinstance, type, time, received_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT(event_id) DO NOTHING
    RETURNING event_id
"""

UPSERT_CORRESPONDENCE = """
    INSERT INTO correspondences (correspondence_id, resource_id, sender, recipient, status, message_title, details,
                                 first_event_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(correspondence_id) DO UPDATE SET
        resource_id = excluded.resource_id, sender = excluded.sender, recipient = excluded.recipient,
        status = excluded.status, message_title = excluded.message_title, details = excluded.details,
        first_event_at = MIN(first_event_at, excluded.first_event_at), updated_at = excluded.updated_at
"""


class CorrespondenceStore:
    """The two tables over a connection to the store file (the inbox's file: `[store] path`)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def record_event(self, row: EventRow) -> bool:
        """Add the event's row; False when it was already there."""
        inserted = await self.conn.execute_fetchall(
            INSERT_EVENT,
            (row.event_id, row.correspondence_id, row.resourceinstance, row.type, row.time, row.received_at),
        )
        return bool(list(inserted))

    async def upsert_correspondence(self, row: CorrespondenceRow) -> None:
        """Insert or bring up to date the correspondence's row with freshly fetched details."""
        details = json.dumps(row.details, ensure_ascii=False, separators=(",", ":"))
        await self.conn.execute_fetchall(
            UPSERT_CORRESPONDENCE,
            (row.correspondence_id, row.resource_id, row.sender, row.recipient, row.status, row.message_title,
             details, row.event_at, now_iso()),
        )  # fmt: skip
