"""What the receiver remembers about Altinn between runs: the subscriptions it created, one pull-API cursor per
subscription key, and small facts in `receiver_state` (`last_catchup_at`).

A subscription key is the config's `SubscriptionConfig` (resource, subject, type); empty strings mean "no filter".
Every write is one statement, so it is safe on a connection other coroutines share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from receiver.config import SubscriptionConfig
from receiver.store.interface import Database, Executes
from receiver.timeutil import now_iso

LAST_CATCHUP_AT = "last_catchup_at"


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription at Altinn as this receiver last saw it. `endpoint` has no query string: the code is never
    stored, only `code_fingerprint` (see `receiver.sync.subscriptions.fingerprint`)."""

    altinn_id: int
    resource: str
    subject: str
    type: str
    endpoint: str
    code_fingerprint: str
    state: str
    created_at: str
    validated_at: str
    superseded_at: str
    updated_at: str

    @property
    def key(self) -> SubscriptionConfig:
        return SubscriptionConfig(resource=self.resource, subject=self.subject, type=self.type)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SubscriptionRecord:
        return cls(**row)


@dataclass(frozen=True)
class Cursor:
    """The pull-API position for one subscription key.

    `after` is the id of the last event read; `updated_at` is when it last moved. `stuck_since` is set while a run
    finds an empty page although `stuck_pushes` pushes for the key arrived after the last move.
    """

    resource: str
    subject: str
    type: str
    after: str
    updated_at: str
    last_success_at: str
    stuck_since: str
    stuck_pushes: int

    @property
    def key(self) -> SubscriptionConfig:
        return SubscriptionConfig(resource=self.resource, subject=self.subject, type=self.type)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Cursor:
        return cls(**row)


# --- subscriptions ---


async def save_subscription(
    db: Database,
    altinn_id: int,
    key: SubscriptionConfig,
    endpoint: str,
    code_fingerprint: str,
    *,
    validated: bool,
    superseded: bool = False,
) -> SubscriptionRecord:
    """Insert or refresh what Altinn said about a subscription.

    `validated_at` and `superseded_at` keep the moment they were first seen, so "validated for an hour" and
    "superseded since" survive restarts. A superseded subscription carries an old code in its endpoint.
    """
    stamp = now_iso()
    state = "superseded" if superseded else "validated" if validated else "unvalidated"
    await db.execute(
        """
        INSERT INTO subscriptions (altinn_id, resource, subject, type, endpoint, code_fingerprint, state,
                                   created_at, validated_at, superseded_at, updated_at)
        VALUES (:altinn_id, :resource, :subject, :type, :endpoint, :code_fingerprint, :state,
                :stamp, :validated_at, :superseded_at, :stamp)
        ON CONFLICT(altinn_id) DO UPDATE SET
            resource = excluded.resource, subject = excluded.subject, type = excluded.type,
            endpoint = excluded.endpoint, code_fingerprint = excluded.code_fingerprint, state = excluded.state,
            validated_at = CASE WHEN excluded.validated_at = '' THEN ''
                                WHEN subscriptions.validated_at != '' THEN subscriptions.validated_at
                                ELSE excluded.validated_at END,
            superseded_at = CASE WHEN excluded.superseded_at = '' THEN ''
                                 WHEN subscriptions.superseded_at != '' THEN subscriptions.superseded_at
                                 ELSE excluded.superseded_at END,
            updated_at = excluded.updated_at
        """,
        {
            "altinn_id": altinn_id,
            **_key(key),
            "endpoint": endpoint,
            "code_fingerprint": code_fingerprint,
            "state": state,
            "stamp": stamp,
            "validated_at": stamp if validated else "",
            "superseded_at": stamp if superseded else "",
        },
    )
    record = await get_subscription(db, altinn_id)
    assert record is not None
    return record


def _key(key: SubscriptionConfig) -> dict[str, str]:
    return {"resource": key.resource, "subject": key.subject, "type": key.type}


async def forget_subscription(db: Database, altinn_id: int) -> None:
    """Drop the record of a subscription that no longer exists at Altinn."""
    await db.execute("DELETE FROM subscriptions WHERE altinn_id = :altinn_id", {"altinn_id": altinn_id})


async def get_subscription(db: Database, altinn_id: int) -> SubscriptionRecord | None:
    rows = await db.fetch("SELECT * FROM subscriptions WHERE altinn_id = :altinn_id", {"altinn_id": altinn_id})
    return SubscriptionRecord.from_row(rows[0]) if rows else None


async def list_subscriptions(db: Database) -> list[SubscriptionRecord]:
    rows = await db.fetch("SELECT * FROM subscriptions ORDER BY altinn_id")
    return [SubscriptionRecord.from_row(row) for row in rows]


# --- catch-up cursors ---

_THE_KEY = "resource = :resource AND subject = :subject AND type = :type"


async def get_cursor(db: Database, key: SubscriptionConfig) -> Cursor | None:
    rows = await db.fetch(f"SELECT * FROM catchup_cursors WHERE {_THE_KEY}", _key(key))
    return Cursor.from_row(rows[0]) if rows else None


async def list_cursors(db: Database) -> list[Cursor]:
    rows = await db.fetch("SELECT * FROM catchup_cursors ORDER BY resource, subject, type")
    return [Cursor.from_row(row) for row in rows]


async def move_cursor(db: Executes, key: SubscriptionConfig, after: str) -> None:
    """Record that every event up to and including `after` has been read; a moving cursor is not stuck. `db` may be
    the inbox writer, which commits it after the events queued before it."""
    await db.execute(
        """
        INSERT INTO catchup_cursors (resource, subject, type, after, updated_at)
        VALUES (:resource, :subject, :type, :after, :stamp)
        ON CONFLICT(resource, subject, type) DO UPDATE SET
            after = excluded.after, updated_at = excluded.updated_at, stuck_since = '', stuck_pushes = 0
        """,
        {**_key(key), "after": after, "stamp": now_iso()},
    )


async def finish_run(db: Database, key: SubscriptionConfig, *, stuck_pushes: int) -> None:
    """A run reached the end of the pull API: note the success, and whether the cursor looks stuck."""
    await db.execute(
        f"""
        UPDATE catchup_cursors SET last_success_at = :stamp, stuck_pushes = :stuck_pushes,
            stuck_since = CASE WHEN :stuck_pushes = 0 THEN '' WHEN stuck_since != '' THEN stuck_since ELSE :stamp END
        WHERE {_THE_KEY}
        """,
        {**_key(key), "stamp": now_iso(), "stuck_pushes": stuck_pushes},
    )


async def pushes_since(db: Database, key: SubscriptionConfig, since: str, until: str) -> int:
    """Events for the key that arrived by push with `since < received_at <= until`."""
    sql = (
        "SELECT COUNT(*) AS n FROM inbox WHERE channel = 'push' AND resource = :resource"
        " AND received_at > :since AND received_at <= :until"
    )
    for column in ("subject", "type"):
        if getattr(key, column):
            sql += f" AND {column} = :{column}"
    [row] = await db.fetch(sql, {**_key(key), "since": since, "until": until})
    return int(row["n"])


# --- receiver_state ---


async def set_fact(db: Database, key: str, value: str) -> None:
    await db.execute(
        "INSERT INTO receiver_state (key, value, updated_at) VALUES (:key, :value, :stamp)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        {"key": key, "value": value, "stamp": now_iso()},
    )


async def get_fact(db: Database, key: str) -> str | None:
    rows = await db.fetch("SELECT value FROM receiver_state WHERE key = :key", {"key": key})
    return str(rows[0]["value"]) if rows else None
