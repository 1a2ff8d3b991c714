"""Migration 2: `correspondence_attachments`, one row per attachment of a stored correspondence (docs/store.md).

`path` is where `download_attachments` put the file, empty when it is not on disk; `size` is the file's size, NULL
when it is not on disk. The table as the builds between release 0.1.0 and migrations created it on every open
(`PRAGMA user_version` 2), statement for statement, so that a store of such a build and a migrated one are alike.
PostgreSQL's `size` is a `BIGINT` (SQLite's INTEGER is 64 bits already).
"""

from __future__ import annotations

from receiver.store.migrations.base import Migration

STATEMENTS: tuple[str, ...] = (
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
)

POSTGRESQL_STATEMENTS = (
    STATEMENTS[0].replace("size              INTEGER,", "size              BIGINT,"),
    *STATEMENTS[1:],
)

MIGRATION = Migration(2, "correspondence_attachments", {"sqlite": STATEMENTS, "postgresql": POSTGRESQL_STATEMENTS})
