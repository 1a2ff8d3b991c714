"""Reading the correspondences the `store` handler wrote (docs/store.md), for the console's `/correspondences`
pages: a page of them, one with its attachments, and the events that concern it.

The `store` handler owns the writes (handlers/store.py); nothing here writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from receiver.store.interface import Database, Row

# Newest change first; ties (one store commit) by id, so that pages never overlap.
LIST = """
    SELECT c.correspondence_id, c.resource_id, c.sender, c.recipient, c.status, c.message_title,
           c.first_event_at, c.updated_at,
           (SELECT COUNT(*) FROM correspondence_attachments AS a
            WHERE a.correspondence_id = c.correspondence_id) AS attachments,
           (SELECT COUNT(*) FROM correspondence_events AS e
            WHERE e.correspondence_id = c.correspondence_id) AS events
    FROM correspondences AS c {where}
    ORDER BY c.updated_at DESC, c.correspondence_id LIMIT :limit OFFSET :offset
"""
ONE = "SELECT * FROM correspondences WHERE correspondence_id = :id"
ATTACHMENTS = "SELECT * FROM correspondence_attachments WHERE correspondence_id = :id ORDER BY file_name, attachment_id"
ATTACHMENT = "SELECT * FROM correspondence_attachments WHERE correspondence_id = :id AND attachment_id = :attachment_id"
# The events stored for it, with their status in the inbox (gone when retention deleted a dead one), and the inbox's
# events about it that `store` has not (yet) written: pending, retrying, dead, or handled by a pipeline without it.
STORED_EVENTS = """
    SELECT e.event_id, e.type, e.time, e.received_at, COALESCE(i.status, '') AS status
    FROM correspondence_events AS e LEFT JOIN inbox AS i ON i.id = e.event_id
    WHERE e.correspondence_id = :id
"""
INBOX_EVENTS = "SELECT id AS event_id, type, time, received_at, status FROM inbox WHERE resourceinstance = :id"


@dataclass(frozen=True)
class CorrespondenceSummary:
    """One row of the list: the `correspondences` row (without `details`) and how many attachments and events."""

    correspondence_id: str
    resource_id: str
    sender: str
    recipient: str
    status: str
    message_title: str
    first_event_at: str
    updated_at: str
    attachments: int
    events: int


@dataclass(frozen=True)
class TimelineEvent:
    """An event about a correspondence: when it happened at Altinn (`time`, empty if the event had none), when the
    receiver got it, and its status in the inbox ("" when it is no longer there)."""

    event_id: str
    type: str
    time: str
    received_at: str
    status: str

    @property
    def when(self) -> str:
        return self.time or self.received_at


@dataclass(frozen=True)
class Correspondence:
    """One correspondence: its row, Altinn's answer (`details`, parsed), its attachments and its events in time
    order."""

    row: Row
    details: dict[str, Any]
    attachments: list[Row] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)

    @property
    def status_history(self) -> list[dict[str, Any]]:
        """Altinn's `statusHistory` (the statuses the caller may see), oldest first; [] when Altinn gave none."""
        history = self.details.get("statusHistory")
        entries = [entry for entry in history if isinstance(entry, dict)] if isinstance(history, list) else []
        return sorted(entries, key=lambda entry: str(entry.get("statusChanged", "")))


async def list_correspondences(
    db: Database, *, status: str = "", q: str = "", limit: int = 50, offset: int = 0
) -> list[CorrespondenceSummary]:
    """A page of correspondences, newest change first: those with `status` (when given) whose id, sender, recipient
    or title contains `q` (when given)."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": int(limit), "offset": int(offset)}
    if status:
        where.append("c.status = :status")
        params["status"] = status
    if q:
        columns = ("c.correspondence_id", "c.sender", "c.recipient", "c.message_title")
        where.append("(" + " OR ".join(f"{column} LIKE :q ESCAPE '\\'" for column in columns) + ")")
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    sql = LIST.format(where="WHERE " + " AND ".join(where) if where else "")
    return [CorrespondenceSummary(**row) for row in await db.fetch(sql, params)]


async def get_correspondence(db: Database, correspondence_id: str) -> Correspondence | None:
    """The correspondence with its attachments and events; None when the store has no row for it."""
    rows = await db.fetch(ONE, {"id": correspondence_id})
    if not rows:
        return None
    row = rows[0]
    try:
        details = json.loads(row.pop("details") or "{}")
    except ValueError:
        details = {}
    attachments = await db.fetch(ATTACHMENTS, {"id": correspondence_id})
    return Correspondence(row, details if isinstance(details, dict) else {}, attachments,
                          await timeline(db, correspondence_id))  # fmt: skip


async def timeline(db: Database, correspondence_id: str) -> list[TimelineEvent]:
    """Every event about the correspondence, stored or still in the inbox only, in the order they happened."""
    found: dict[str, TimelineEvent] = {}
    for sql in (STORED_EVENTS, INBOX_EVENTS):
        for row in await db.fetch(sql, {"id": correspondence_id}):
            found.setdefault(str(row["event_id"]), TimelineEvent(**{k: str(v) for k, v in row.items()}))
    return sorted(found.values(), key=lambda event: (event.when, event.received_at, event.event_id))


async def get_attachment(db: Database, correspondence_id: str, attachment_id: str) -> Row | None:
    """One `correspondence_attachments` row; None when there is none."""
    rows = await db.fetch(ATTACHMENT, {"id": correspondence_id, "attachment_id": attachment_id})
    return rows[0] if rows else None
