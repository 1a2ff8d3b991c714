"""The trace context stored with an event (`inbox_traces`, migration 5): written by the inbox writer in the event's
own commit, read by the dispatcher to link each run of the event to the span it arrived in."""

from __future__ import annotations

import sqlite3

import aiosqlite

from receiver.store.db import fetch_rows

INSERT_TRACE = "INSERT INTO inbox_traces (id, traceparent) VALUES (?, ?) ON CONFLICT(id) DO NOTHING"


async def traceparent_of(conn: aiosqlite.Connection, event_id: str) -> str:
    """The `traceparent` the event arrived with; "" when it came while traces were off (or cannot be read: a link is
    not worth failing a run for)."""
    try:
        rows = await fetch_rows(conn, "SELECT traceparent FROM inbox_traces WHERE id = ?", (event_id,))
    except sqlite3.Error:
        return ""
    return str(rows[0][0]) if rows else ""


def delete_traces_sql(count: int) -> str:
    """Delete the trace contexts of `count` events (their ids as parameters)."""
    return f"DELETE FROM inbox_traces WHERE id IN ({', '.join('?' * count)})"
