"""The store's tables. Agency systems read `correspondences`, `correspondence_attachments` and
`correspondence_events`: see docs/store.md.

Statements are idempotent (IF NOT EXISTS) and run on every open; `SCHEMA_VERSION` goes into PRAGMA user_version.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

INBOX_STATUSES = ("pending", "processing", "retrying", "done", "dead", "skipped")

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
    # One row per attachment of a stored correspondence (an attachment shared by several has a row in each), written
    # by the `store` handler; `path` is where `download_attachments` put the file, empty when it is not on disk.
    """
    CREATE TABLE IF NOT EXISTS correspondence_attachments (
        correspondence_id TEXT NOT NULL,
        attachment_id     TEXT NOT NULL,
        file_name         TEXT NOT NULL DEFAULT '',
        size              INTEGER,
        checksum          TEXT NOT NULL DEFAULT '',
        status            TEXT NOT NULL DEFAULT '',
        expiration_time   TEXT NOT NULL DEFAULT '',
        path              TEXT NOT NULL DEFAULT '',
        updated_at        TEXT NOT NULL,
        PRIMARY KEY (correspondence_id, attachment_id)
    )
    """,
    # An `attachmentexpired` event names only the attachment.
    "CREATE INDEX IF NOT EXISTS correspondence_attachments_by_attachment ON correspondence_attachments (attachment_id)",
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
