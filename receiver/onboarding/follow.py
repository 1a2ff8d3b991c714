"""Following one correspondence through a running receiver's store, read-only: the events Altinn pushed for it
(`inbox.resourceinstance` is its id, or a notification order id for `notificationcreated`) and the status the
`store` handler recorded (`correspondences.status`, when that handler runs).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EVENT_PREFIX = "no.altinn.correspondence."

# Where following ends: the event or the status that shows each outcome (correspondence contract §2).
CONFIRMED, READ, FAILED, PURGED = "Confirmed", "Read", "Failed", "Purged"
OUTCOME_EVENTS = {
    "correspondencereceiverconfirmed": CONFIRMED,
    "correspondencereceiverread": READ,
    "correspondencepublishfailed": FAILED,
    "correspondencepurged": PURGED,
}
OUTCOME_STATUSES = {
    "Confirmed": CONFIRMED,
    "Read": READ,
    "Failed": FAILED,
    "PurgedByRecipient": PURGED,
    "PurgedByAltinn": PURGED,
}


@dataclass(frozen=True)
class Sighting:
    """One thing seen in the store: an event (`kind` "event", `name` its type) or a new status ("status")."""

    kind: str
    name: str
    time: str
    channel: str = ""

    @property
    def label(self) -> str:
        """`published`, `notificationcreated`, ... for events; the status itself for statuses."""
        return self.name.removeprefix(EVENT_PREFIX).removeprefix("correspondence") or self.name

    @property
    def outcome(self) -> str | None:
        if self.kind == "event":
            return OUTCOME_EVENTS.get(self.name.removeprefix(EVENT_PREFIX))
        return OUTCOME_STATUSES.get(self.name)

    def to_json(self, correspondence_id: str) -> dict[str, str]:
        data = {"correspondenceId": correspondence_id, self.kind: self.name, "time": self.time}
        if self.channel:
            data["channel"] = self.channel
        return data


def is_final(outcome: str | None, *, confirmation_needed: bool) -> bool:
    """Confirmed ends it; Read ends it unless a confirmation is still to come; a failure or a purge ends it."""
    if outcome in (CONFIRMED, FAILED, PURGED):
        return True
    return outcome == READ and not confirmation_needed


class StoreWatch:
    """Polls the store for one correspondence. Opens the SQLite file read-only, so it never creates or changes it."""

    def __init__(self, path: Path, correspondence_id: str, related_ids: Sequence[str] = ()) -> None:
        self.path = path
        self.ids = (correspondence_id, *related_ids)
        self.last_seq = 0
        self.last_status = ""
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.is_file():
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            self._conn.execute("PRAGMA busy_timeout = 2000")
        return self._conn

    @property
    def store_exists(self) -> bool:
        return self.path.is_file()

    def poll(self) -> list[Sighting]:
        """What arrived since the last poll: new events in arrival order, then the status if it changed."""
        conn = self._connect()
        if conn is None:
            return []
        marks = ", ".join("?" * len(self.ids))
        rows = conn.execute(
            f"SELECT seq, type, time, received_at, channel FROM inbox WHERE resourceinstance IN ({marks})"
            " AND seq > ? ORDER BY seq",
            (*self.ids, self.last_seq),
        ).fetchall()
        seen = []
        for seq, type_, time, received_at, channel in rows:
            self.last_seq = max(self.last_seq, int(seq))
            seen.append(Sighting("event", str(type_), str(time or received_at), str(channel)))
        status = self._status(conn)
        if status is not None and status[0] != self.last_status:
            self.last_status = status[0]
            seen.append(Sighting("status", status[0], status[1]))
        return seen

    def _status(self, conn: sqlite3.Connection) -> tuple[str, str] | None:
        try:
            row = conn.execute(
                "SELECT status, updated_at FROM correspondences WHERE correspondence_id = ?", (self.ids[0],)
            ).fetchone()
        except sqlite3.OperationalError:  # a store from before the `store` handler's tables
            return None
        return (str(row[0]), str(row[1])) if row is not None and row[0] else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
