"""`store`: the event into `correspondence_events` and, when `fetch_correspondence` ran before it, the
correspondence into `correspondences` and its attachments into `correspondence_attachments`, with what
`download_attachments` did with each (docs/store.md). An `attachmentexpired` event marks its attachment `Expired`
wherever it is stored.

The handler owns what it writes to these tables, through `ctx.store` like any plugin; the tables themselves are
the store's schema (the receiver's contract with agency systems, changed only by the store's migrations), and
`start` checks that they have what it writes. Every write is a single idempotent statement keyed on primary keys,
so an event run again after a crash (or replayed) changes nothing twice: its event row is inserted once, its
correspondence's rows are brought up to date.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from handlers import AttachmentFile, BaseHandler, Context, Event
from handlers import Store as Database  # the name Store is this handler's
from receiver.altinn import Correspondence
from receiver.timeutil import now_iso, parse_event_time, parse_iso, to_iso

ATTACHMENT_EXPIRED = "no.altinn.correspondence.attachmentexpired"

# Compiles only when every column written below exists; reads no rows.
CHECK_TABLES = """
    SELECT e.event_id, e.correspondence_id, e.resourceinstance, e.type, e.time, e.received_at,
           c.correspondence_id, c.resource_id, c.sender, c.recipient, c.status, c.message_title, c.details,
           c.first_event_at, c.updated_at,
           a.correspondence_id, a.attachment_id, a.file_name, a.size, a.checksum, a.status, a.expiration_time,
           a.path, a.updated_at
    FROM correspondence_events AS e, correspondences AS c, correspondence_attachments AS a
    LIMIT 0
"""

INSERT_EVENT = """
    INSERT INTO correspondence_events (event_id, correspondence_id, resourceinstance, type, time, received_at)
    VALUES (:event_id, :correspondence_id, :resourceinstance, :type, :time, :received_at)
    ON CONFLICT(event_id) DO NOTHING
"""

# An answer without content (:has_content false) keeps the title and `details.content` stored before. Each statement
# that needs a dialect's own functions is given per `ctx.store.dialect` ("sqlite", "postgresql").
_INSERT_CORRESPONDENCE = """
    INSERT INTO correspondences (correspondence_id, resource_id, sender, recipient, status, message_title, details,
                                 first_event_at, updated_at)
    VALUES (:correspondence_id, :resource_id, :sender, :recipient, :status, :message_title, :details, :event_at,
            :updated_at)
"""
UPSERT_CORRESPONDENCE = {
    "sqlite": _INSERT_CORRESPONDENCE
    + """
    ON CONFLICT(correspondence_id) DO UPDATE SET
        resource_id = excluded.resource_id, sender = excluded.sender, recipient = excluded.recipient,
        status = excluded.status,
        message_title = CASE WHEN :has_content THEN excluded.message_title ELSE message_title END,
        details = CASE WHEN :has_content THEN excluded.details
                       ELSE json_set(excluded.details, '$.content', json_extract(details, '$.content')) END,
        first_event_at = MIN(first_event_at, excluded.first_event_at), updated_at = excluded.updated_at
""",
    # The existing row by the table's name (a bare column would be ambiguous with `excluded`), JSON through jsonb
    # (`details` stays text; jsonb writes it with its own spacing and key order).
    "postgresql": _INSERT_CORRESPONDENCE
    + """
    ON CONFLICT (correspondence_id) DO UPDATE SET
        resource_id = excluded.resource_id, sender = excluded.sender, recipient = excluded.recipient,
        status = excluded.status,
        message_title = CASE WHEN :has_content THEN excluded.message_title ELSE correspondences.message_title END,
        details = CASE WHEN :has_content THEN excluded.details
                       ELSE jsonb_set(CAST(excluded.details AS jsonb), '{content}',
                                      COALESCE(CAST(correspondences.details AS jsonb) -> 'content', 'null'))::text
                  END,
        first_event_at = LEAST(correspondences.first_event_at, excluded.first_event_at),
        updated_at = excluded.updated_at
""",
}

# Altinn never serves an expired or purged attachment again, but an `attachmentexpired` event and its
# correspondence's events run side by side: a fetch from before the expiry may be stored after it.
FINAL_ATTACHMENT_STATUSES = "('Expired', 'Purged')"

# The stored row's columns are named by the table (`correspondence_attachments.status`): PostgreSQL needs it, SQLite
# takes it.
UPSERT_ATTACHMENT = f"""
    INSERT INTO correspondence_attachments (correspondence_id, attachment_id, file_name, size, checksum, status,
                                            expiration_time, path, updated_at)
    VALUES (:correspondence_id, :attachment_id, :file_name, :size, :checksum, :status, :expiration_time, :path,
            :updated_at)
    ON CONFLICT(correspondence_id, attachment_id) DO UPDATE SET
        file_name = excluded.file_name, checksum = excluded.checksum, expiration_time = excluded.expiration_time,
        status = CASE WHEN correspondence_attachments.status IN {FINAL_ATTACHMENT_STATUSES}
                           AND excluded.status NOT IN {FINAL_ATTACHMENT_STATUSES}
                      THEN correspondence_attachments.status ELSE excluded.status END,
        size = CASE WHEN excluded.path <> '' THEN excluded.size ELSE correspondence_attachments.size END,
        path = CASE WHEN excluded.path <> '' THEN excluded.path ELSE correspondence_attachments.path END,
        updated_at = excluded.updated_at
"""

EXPIRE_ATTACHMENT = f"""
    UPDATE correspondence_attachments SET status = 'Expired', updated_at = :updated_at
    WHERE attachment_id = :attachment_id AND status NOT IN {FINAL_ATTACHMENT_STATUSES}
    RETURNING correspondence_id
"""


def normalised_time(text: str) -> str:
    """An event's `time` in the store's fixed-width UTC form, read as the webhook read it when it accepted the event
    (`parse_event_time`); as is if odd (an event stored by a release that accepted more)."""
    try:
        return to_iso(parse_event_time(text)) if text else ""
    except ValueError:
        return text


def normalised_expiry(text: str) -> str:
    """An attachment's `expirationTime` from the Correspondence API (ISO-8601, UTC without an offset) in the
    store's form; as is if odd."""
    try:
        return to_iso(parse_iso(text)) if text else ""
    except ValueError:
        return text


def correspondence_row(fetched: Correspondence, event_at: str) -> dict[str, Any]:
    """The `correspondences` row of freshly fetched details; `event_at` is when the event that brought them
    happened (`first_event_at` keeps the earliest)."""
    return {
        "correspondence_id": fetched.correspondence_id,
        "resource_id": fetched.resource_id or "",
        "sender": fetched.sender or "",
        "recipient": fetched.recipient or "",
        "status": fetched.status or "",
        "message_title": fetched.message_title or "",
        "details": json.dumps(fetched.raw, ensure_ascii=False, separators=(",", ":")),
        "event_at": event_at,
        "updated_at": now_iso(),
        "has_content": fetched.has_content,
    }


def attachment_rows(fetched: Correspondence, downloads: Mapping[str, AttachmentFile]) -> list[dict[str, Any]]:
    """The fetched attachments as rows: Altinn's status, unless the download learnt that it has since expired or
    been purged; the file's path and size when `download_attachments` has it on disk (else empty, and the path
    stored earlier, if any, is kept)."""
    updated_at = now_iso()
    rows = []
    for attachment in fetched.attachments:
        done = downloads.get(attachment.id, AttachmentFile())
        rows.append(
            {
                "correspondence_id": fetched.correspondence_id,
                "attachment_id": attachment.id,
                "file_name": attachment.file_name or "",
                "checksum": attachment.checksum or "",
                "status": done.unavailable or attachment.status or "",
                "expiration_time": normalised_expiry(attachment.expiration_time or ""),
                "path": str(done.path) if done.path is not None else "",
                "size": done.size,
                "updated_at": updated_at,
            }
        )
    return rows


async def expire_attachment(store: Database, attachment_id: str) -> list[str]:
    """Mark the attachment `Expired` in every correspondence that has it (adding no rows); the ids of those whose
    row changed."""
    changed = await store.fetch(EXPIRE_ATTACHMENT, {"updated_at": now_iso(), "attachment_id": attachment_id})
    return [str(row["correspondence_id"]) for row in changed]


class Store(BaseHandler):
    name = "store"

    async def start(self, ctx: Context[None]) -> None:
        await ctx.store.fetch(CHECK_TABLES)

    async def handle(self, event: Event, ctx: Context[None]) -> None:
        fetched = ctx.correspondence
        if fetched is not None:
            correspondence_id = fetched.correspondence_id
        else:
            correspondence_id = event.resourceinstance if event.is_correspondence_event else ""
        time = normalised_time(event.time)
        if fetched is not None:
            upsert = UPSERT_CORRESPONDENCE[ctx.store.dialect]
            await ctx.store.execute(upsert, correspondence_row(fetched, time or event.received_at))
            await ctx.store.execute_many(UPSERT_ATTACHMENT, attachment_rows(fetched, ctx.attachments or {}))
        if event.type == ATTACHMENT_EXPIRED:
            expired_in = await expire_attachment(ctx.store, event.resourceinstance)
            ctx.log.info("attachment expired", extra={"attachment_id": event.resourceinstance,
                                                      "correspondences": expired_in})  # fmt: skip
        row = {"event_id": event.id, "correspondence_id": correspondence_id, "resourceinstance": event.resourceinstance,
               "type": event.type, "time": time, "received_at": event.received_at}  # fmt: skip
        if not await ctx.store.execute(INSERT_EVENT, row):
            ctx.log.info("event already stored (a repeated run)")
