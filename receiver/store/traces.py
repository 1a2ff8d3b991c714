"""The trace context stored with an event (`inbox_traces`, migration 5): written by the inbox writer in the event's
own commit, read by the dispatcher to link each run of the event to the span it arrived in."""

from __future__ import annotations

from receiver.store.errors import StoreError
from receiver.store.interface import Database

INSERT_TRACE = "INSERT INTO inbox_traces (id, traceparent) VALUES (:id, :traceparent) ON CONFLICT(id) DO NOTHING"


def trace_row(event_id: str, traceparent: str) -> dict[str, str]:
    """`INSERT_TRACE`'s parameters."""
    return {"id": event_id, "traceparent": traceparent}


async def traceparent_of(db: Database, event_id: str) -> str:
    """The `traceparent` the event arrived with; "" when it came while traces were off (or cannot be read: a link is
    not worth failing a run for)."""
    try:
        rows = await db.fetch("SELECT traceparent FROM inbox_traces WHERE id = :id", {"id": event_id})
    except StoreError:
        return ""
    return str(rows[0]["traceparent"]) if rows else ""
