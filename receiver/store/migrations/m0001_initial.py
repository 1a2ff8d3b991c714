"""Migration 1: the schema of release 0.1.0, which created these tables on every open (PRAGMA user_version 1).

A store from that release has them without a `schema_migrations` table; the runner records it at version 1. Every
statement is idempotent (IF NOT EXISTS), so running them on such a store changes nothing.

On PostgreSQL the same tables with the same columns: `seq` is an identity column, Altinn's subscription ids are
`BIGINT`, the index for walking open events by time is left out (migration 3's heads replaced it before PostgreSQL
came), and a statement that adds events notifies `altinn_receiver_inbox` (the schema's name as payload), which wakes
the dispatchers of other processes (receiver/store/postgres/backend.py).
"""

from __future__ import annotations

from receiver.store.migrations.base import Migration

STATEMENTS: tuple[str, ...] = (
    # Every event received by push or catch-up, keyed on its CloudEvent id; `seq` is arrival order.
    """
    CREATE TABLE IF NOT EXISTS inbox (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        id               TEXT NOT NULL UNIQUE,
        type             TEXT NOT NULL,
        source           TEXT NOT NULL,
        subject          TEXT NOT NULL DEFAULT '',
        resource         TEXT NOT NULL DEFAULT '',
        resourceinstance TEXT NOT NULL DEFAULT '',
        time             TEXT NOT NULL DEFAULT '',
        raw              TEXT NOT NULL,
        received_at      TEXT NOT NULL,
        channel          TEXT NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT NOT NULL DEFAULT '',
        next_attempt_at  TEXT NOT NULL DEFAULT '',
        lease_until      TEXT NOT NULL DEFAULT '',
        lease_owner      TEXT NOT NULL DEFAULT '',
        updated_at       TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS inbox_status ON inbox (status, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS inbox_instance ON inbox (resourceinstance, status)",
    "CREATE INDEX IF NOT EXISTS inbox_updated ON inbox (updated_at)",
    # The last push, at every metrics scrape (observability/store_gauges.py), without reading the catch-up rows.
    "CREATE INDEX IF NOT EXISTS inbox_channel ON inbox (channel, received_at)",
    # The dispatcher's claim walks only the open events, in the order they may run: however many are done, and
    # without stepping over the later events of instances that wait for an earlier one (store/queue.py).
    "CREATE INDEX IF NOT EXISTS inbox_open_by_time ON inbox"
    " (COALESCE(julianday(NULLIF(time, '')), julianday(received_at)), seq)"
    " WHERE status IN ('pending', 'retrying', 'processing')",
    # Altinn's subscription validation handshakes: recorded, never dispatched.
    """
    CREATE TABLE IF NOT EXISTS validations (
        event_id        TEXT PRIMARY KEY,
        subscription_id TEXT NOT NULL DEFAULT '',
        source          TEXT NOT NULL,
        received_at     TEXT NOT NULL
    )
    """,
    # The latest known state of each correspondence, written by the `store` handler.
    """
    CREATE TABLE IF NOT EXISTS correspondences (
        correspondence_id TEXT PRIMARY KEY,
        resource_id       TEXT NOT NULL DEFAULT '',
        sender            TEXT NOT NULL DEFAULT '',
        recipient         TEXT NOT NULL DEFAULT '',
        status            TEXT NOT NULL DEFAULT '',
        message_title     TEXT NOT NULL DEFAULT '',
        details           TEXT NOT NULL DEFAULT '{}',
        first_event_at    TEXT NOT NULL,
        updated_at        TEXT NOT NULL
    )
    """,
    # One row per stored event: the history agency systems follow.
    """
    CREATE TABLE IF NOT EXISTS correspondence_events (
        event_id          TEXT PRIMARY KEY,
        correspondence_id TEXT NOT NULL DEFAULT '',
        resourceinstance  TEXT NOT NULL DEFAULT '',
        type              TEXT NOT NULL,
        time              TEXT NOT NULL DEFAULT '',
        received_at       TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS correspondence_events_by_correspondence"
    " ON correspondence_events (correspondence_id, time)",
    # The Altinn subscriptions this receiver created (see receiver/sync/subscriptions.py); never the code itself.
    """
    CREATE TABLE IF NOT EXISTS subscriptions (
        altinn_id        INTEGER PRIMARY KEY,
        resource         TEXT NOT NULL,
        subject          TEXT NOT NULL DEFAULT '',
        type             TEXT NOT NULL DEFAULT '',
        endpoint         TEXT NOT NULL,
        code_fingerprint TEXT NOT NULL DEFAULT '',
        state            TEXT NOT NULL,
        created_at       TEXT NOT NULL,
        validated_at     TEXT NOT NULL DEFAULT '',
        superseded_at    TEXT NOT NULL DEFAULT '',
        updated_at       TEXT NOT NULL
    )
    """,
    # One pull-API cursor per subscription key (see receiver/sync/catchup.py).
    """
    CREATE TABLE IF NOT EXISTS catchup_cursors (
        resource        TEXT NOT NULL,
        subject         TEXT NOT NULL DEFAULT '',
        type            TEXT NOT NULL DEFAULT '',
        after           TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        last_success_at TEXT NOT NULL DEFAULT '',
        stuck_since     TEXT NOT NULL DEFAULT '',
        stuck_pushes    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (resource, subject, type)
    )
    """,
    # Small facts the receiver keeps about itself (last push, last catch-up, ...).
    """
    CREATE TABLE IF NOT EXISTS receiver_state (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
)

POSTGRESQL_INBOX: tuple[str, ...] = (
    STATEMENTS[0].replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    *STATEMENTS[1:5],
    """
    CREATE OR REPLACE FUNCTION receiver_inbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('altinn_receiver_inbox', current_schema());
        RETURN NULL;
    END $$
    """,
    "CREATE OR REPLACE TRIGGER inbox_notify AFTER INSERT ON inbox FOR EACH STATEMENT"
    " EXECUTE FUNCTION receiver_inbox_notify()",
)
assert "INTEGER PRIMARY KEY AUTOINCREMENT" in STATEMENTS[0]
assert STATEMENTS[5].lstrip().startswith("CREATE INDEX IF NOT EXISTS inbox_open_by_time")
assert "altinn_id        INTEGER PRIMARY KEY" in STATEMENTS[10]

POSTGRESQL_STATEMENTS: tuple[str, ...] = (
    *POSTGRESQL_INBOX,
    *STATEMENTS[6:10],
    STATEMENTS[10].replace("altinn_id        INTEGER PRIMARY KEY", "altinn_id        BIGINT PRIMARY KEY"),
    *STATEMENTS[11:],
)

MIGRATION = Migration(1, "initial", {"sqlite": STATEMENTS, "postgresql": POSTGRESQL_STATEMENTS})
