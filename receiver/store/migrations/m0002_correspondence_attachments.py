"""Migration 2: `correspondence_attachments`, one row per attachment of a stored correspondence (docs/store.md).

`path` is where the file lies under the download directory, empty while it is not on disk. IF NOT EXISTS: a
development build created this table on open before migrations existed.
"""

from __future__ import annotations

from receiver.store.migrations.base import ANY_BACKEND, Migration

STATEMENTS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS correspondence_attachments (
        correspondence_id TEXT NOT NULL DEFAULT '',
        attachment_id     TEXT NOT NULL DEFAULT '',
        file_name         TEXT NOT NULL DEFAULT '',
        size              INTEGER NOT NULL DEFAULT 0,
        checksum          TEXT NOT NULL DEFAULT '',
        status            TEXT NOT NULL DEFAULT '',
        expiration_time   TEXT NOT NULL DEFAULT '',
        path              TEXT NOT NULL DEFAULT '',
        updated_at        TEXT NOT NULL,
        PRIMARY KEY (correspondence_id, attachment_id)
    )
    """,
    # Attachment events name the attachment, not its correspondence.
    "CREATE INDEX IF NOT EXISTS correspondence_attachments_by_attachment ON correspondence_attachments (attachment_id)",
)

MIGRATION = Migration(2, "correspondence_attachments", {ANY_BACKEND: STATEMENTS})
