"""Following one correspondence through a running receiver's store, read-only: the events Altinn pushed for it
(`inbox.resourceinstance` is its id, or a notification order id for `notificationcreated`) and the status the
`store` handler recorded (`correspondences.status` and the `statusHistory` in `details`, when that handler runs).

Altinn's top-level status is the highest in the history by its enum number, not the latest (correspondence contract
§7.4): once the recipient has downloaded an attachment it stays `AttachmentsDownloaded`, which outranks `Read` and
`Confirmed`. So whether it was read or confirmed is read from the history, never from the status alone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENT_PREFIX = "no.altinn.correspondence."

# Where following ends: the event or the status that shows each outcome (correspondence contract §2).
CONFIRMED, READ, FAILED, PURGED = "Confirmed", "Read", "Failed", "Purged"
OUTCOMES = (CONFIRMED, READ, FAILED, PURGED)
"""In the order they decide following: a correspondence confirmed (or read) and then purged was confirmed."""
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
    """One thing seen in the store: an event (`kind` "event", `name` its type) or a new status ("status"), with
    the outcomes its history shows (`reached`), which the status itself may hide."""

    kind: str
    name: str
    time: str
    channel: str = ""
    reached: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """`published`, `notificationcreated`, ... for events; the status itself for statuses."""
        return self.name.removeprefix(EVENT_PREFIX).removeprefix("correspondence") or self.name

    @property
    def outcomes(self) -> frozenset[str]:
        if self.kind == "event":
            found = OUTCOME_EVENTS.get(self.name.removeprefix(EVENT_PREFIX))
            return frozenset({found} if found else ())
        shown = OUTCOME_STATUSES.get(self.name)
        return frozenset({*self.reached, *({shown} if shown else ())})

    @property
    def hidden(self) -> tuple[str, ...]:
        """The outcomes in the history that the status does not show (Read behind AttachmentsDownloaded)."""
        return tuple(o for o in self.reached if o != OUTCOME_STATUSES.get(self.name))

    def to_json(self, correspondence_id: str) -> dict[str, Any]:
        data: dict[str, Any] = {"correspondenceId": correspondence_id, self.kind: self.name, "time": self.time}
        if self.channel:
            data["channel"] = self.channel
        if self.reached:
            data["reached"] = list(self.reached)
        return data


def final_outcome(outcomes: Collection[str], *, confirmation_needed: bool) -> str | None:
    """The outcome that ends following, if any: Confirmed; Read unless a confirmation is still to come; a failure
    or a purge."""
    for outcome in OUTCOMES:
        if outcome in outcomes and not (outcome == READ and confirmation_needed):
            return outcome
    return None


def reached_in(details: str) -> tuple[str, ...]:
    """The outcomes whose statuses are in the stored details' `statusHistory`, in `OUTCOMES` order."""
    try:
        history = json.loads(details).get("statusHistory") or []
    except (ValueError, AttributeError):
        return ()
    seen = {OUTCOME_STATUSES.get(str(entry.get("status"))) for entry in history if isinstance(entry, dict)}
    return tuple(outcome for outcome in OUTCOMES if outcome in seen)


class StoreWatch:
    """Polls the store for one correspondence. Opens the SQLite file read-only, so it never creates or changes it."""

    def __init__(self, path: Path, correspondence_id: str, related_ids: Sequence[str] = ()) -> None:
        self.path = path
        self.ids = (correspondence_id, *related_ids)
        self.last_seq = 0
        self.last_status: tuple[str, tuple[str, ...]] = ("", ())
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
        if status is not None and (status.name, status.reached) != self.last_status:
            self.last_status = (status.name, status.reached)
            seen.append(status)
        return seen

    def _status(self, conn: sqlite3.Connection) -> Sighting | None:
        try:
            row = conn.execute(
                "SELECT status, updated_at, details FROM correspondences WHERE correspondence_id = ?", (self.ids[0],)
            ).fetchone()
        except sqlite3.OperationalError:  # a store from before the `store` handler's tables
            return None
        if row is None or not row[0]:
            return None
        return Sighting("status", str(row[0]), str(row[1]), reached=reached_in(str(row[2])))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
