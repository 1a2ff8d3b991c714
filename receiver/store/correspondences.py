"""The tables agency systems read (docs/store.md): `correspondence_events`, one row per event,
`correspondences`, the latest known state of each correspondence, and `correspondence_attachments`, its attachments.
Written by the `store` handler.

Every write is a single idempotent statement keyed on primary keys (one round trip to the connection's thread each),
so an event that is run again after a crash (or replayed) changes nothing twice: its event row is inserted once, its
correspondence's rows are brought up to date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
    has_content: bool
    """False when Altinn left the content out (a sender after publishing): the content stored earlier is kept."""


@dataclass(frozen=True)
class AttachmentRow:
    correspondence_id: str
    attachment_id: str
    file_name: str
    checksum: str
    status: str
    expiration_time: str
    path: str = ""
    """Where the file is on disk; empty when it is not (then the path stored earlier, if any, is kept)."""
    size: int | None = None
    """The file's size in bytes, with `path`."""


INSERT_EVENT = """
    INSERT INTO correspondence_events (event_id, correspondence_id, resourceinstance, type, time, received_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT(event_id) DO NOTHING
    RETURNING event_id
"""

# An answer without content (:has_content false) keeps the title and `details.content` stored before.
UPSERT_CORRESPONDENCE = """
    INSERT INTO correspondences (correspondence_id, resource_id, sender, recipient, status, message_title, details,
                                 first_event_at, updated_at)
    VALUES (:correspondence_id, :resource_id, :sender, :recipient, :status, :message_title, :details, :event_at,
            :updated_at)
    ON CONFLICT(correspondence_id) DO UPDATE SET
        resource_id = excluded.resource_id, sender = excluded.sender, recipient = excluded.recipient,
        status = excluded.status,
        message_title = CASE WHEN :has_content THEN excluded.message_title ELSE message_title END,
        details = CASE WHEN :has_content THEN excluded.details
                       ELSE json_set(excluded.details, '$.content', json_extract(details, '$.content')) END,
        first_event_at = MIN(first_event_at, excluded.first_event_at), updated_at = excluded.updated_at
"""

# Altinn never serves an expired or purged attachment again, but an `attachmentexpired` event and its
# correspondence's events run side by side: a fetch from before the expiry may be stored after it.
FINAL_ATTACHMENT_STATUSES = "('Expired', 'Purged')"

UPSERT_ATTACHMENT = f"""
    INSERT INTO correspondence_attachments (correspondence_id, attachment_id, file_name, size, checksum, status,
                                            expiration_time, path, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(correspondence_id, attachment_id) DO UPDATE SET
        file_name = excluded.file_name, checksum = excluded.checksum, expiration_time = excluded.expiration_time,
        status = CASE WHEN status IN {FINAL_ATTACHMENT_STATUSES} AND excluded.status NOT IN {FINAL_ATTACHMENT_STATUSES}
                      THEN status ELSE excluded.status END,
        size = CASE WHEN excluded.path <> '' THEN excluded.size ELSE size END,
        path = CASE WHEN excluded.path <> '' THEN excluded.path ELSE path END,
        updated_at = excluded.updated_at
"""

EXPIRE_ATTACHMENT = f"""
    UPDATE correspondence_attachments SET status = 'Expired', updated_at = ?
    WHERE attachment_id = ? AND status NOT IN {FINAL_ATTACHMENT_STATUSES}
    RETURNING correspondence_id
"""


class CorrespondenceStore:
    """The three tables over a connection to the store file (the inbox's file: `[store] path`)."""

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
        await self.conn.execute_fetchall(
            UPSERT_CORRESPONDENCE,
            {
                "correspondence_id": row.correspondence_id,
                "resource_id": row.resource_id,
                "sender": row.sender,
                "recipient": row.recipient,
                "status": row.status,
                "message_title": row.message_title,
                "details": json.dumps(row.details, ensure_ascii=False, separators=(",", ":")),
                "event_at": row.event_at,
                "updated_at": now_iso(),
                "has_content": row.has_content,
            },
        )

    async def upsert_attachments(self, rows: Sequence[AttachmentRow]) -> None:
        """Insert or bring up to date one row per attachment (each row its own idempotent statement)."""
        updated_at = now_iso()
        await self.conn.executemany(
            UPSERT_ATTACHMENT,
            [(row.correspondence_id, row.attachment_id, row.file_name, row.size, row.checksum, row.status,
              row.expiration_time, row.path, updated_at) for row in rows],
        )  # fmt: skip

    async def expire_attachment(self, attachment_id: str) -> list[str]:
        """Mark the attachment `Expired` in every correspondence that has it (adding no rows); the ids of those
        whose row changed."""
        changed = await self.conn.execute_fetchall(EXPIRE_ATTACHMENT, (now_iso(), attachment_id))
        return [str(row[0]) for row in changed]
