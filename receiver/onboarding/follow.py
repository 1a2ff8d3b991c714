"""Following one correspondence through a running receiver's store, read-only: the events Altinn pushed for it
(`inbox.resourceinstance` is its id, or a notification order id for `notificationcreated`) and the status the
`store` handler recorded (`correspondences.status` and the `statusHistory` in `details`, when that handler runs).

Altinn's top-level status is the highest in the history by its enum number, not the latest (correspondence contract
§7.4): once the recipient has downloaded an attachment it stays `AttachmentsDownloaded`, which outranks `Read` and
`Confirmed`. So whether it was read or confirmed is read from the history, never from the status alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from receiver.store.errors import StoreError
from receiver.store.interface import Backend, Database
from receiver.store.migrations import LATEST
from receiver.store.operations import in_list
from receiver.store.schema import StoreVersionError

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
STATUS = "SELECT status, updated_at, details FROM correspondences WHERE correspondence_id = :id"
"""The status the `store` handler recorded, with the details that hold its history."""


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
    """Polls the store of a running receiver for one correspondence, read-only, through the store's own interface (an
    SQLite file or a PostgreSQL schema alike): it never creates or changes the store, and until there is one to read
    at this code's schema it says what it awaits (`awaiting`)."""

    def __init__(self, backend: Backend, correspondence_id: str, related_ids: Sequence[str] = ()) -> None:
        self.backend = backend
        self.location = backend.location
        self.correspondence_id = correspondence_id
        self.ids = (correspondence_id, *related_ids)
        self.shown: set[int] = set()
        """The `seq` of each event shown."""
        self.last_status: tuple[str, tuple[str, ...]] = ("", ())
        self.awaiting = ""
        """What is missing before the store can be read ("" once it is open): the store itself (no SQLite file yet),
        its tables, or the migration to this code's schema, which `serve` does when it starts."""
        self._db: Database | None = None

    async def _open(self) -> Database | None:
        """The store, once it is there at this code's schema; None meanwhile. StoreError when it cannot be reached
        (PostgreSQL down, the URL wrong) or is newer than this code."""
        if self._db is not None:
            return self._db
        if not await asyncio.to_thread(self.backend.exists):
            self.awaiting = self.location
            return None
        try:
            self._db = await self.backend.connect(read_only=True)
        except StoreVersionError as exc:
            if exc.newer:
                raise
            have = exc.state.version
            self.awaiting = (
                f"the receiver's tables in {self.location}"
                if have == 0
                else f"{self.location} to be migrated from schema version {have} to {LATEST}"
            )
            return None
        self.awaiting = ""
        return self._db

    async def poll(self) -> list[Sighting]:
        """What arrived since the last poll: new events in arrival order, then the status if it changed."""
        db = await self._open()
        if db is None:
            return []
        try:
            seen = await self._events(db)
            status = await self._status(db)
        except StoreError as exc:
            raise StoreError(f"cannot read store {self.location}: {exc}", transient=exc.transient) from exc
        if status is not None and (status.name, status.reached) != self.last_status:
            self.last_status = (status.name, status.reached)
            seen.append(status)
        return seen

    async def _events(self, db: Database) -> list[Sighting]:
        # Every event of the correspondence each time, not those after the last seq shown: on PostgreSQL an event
        # can commit after one with a higher seq (two receivers on one store). A correspondence has a few events.
        listed, params = in_list("id", self.ids)
        rows = await db.fetch(
            f"SELECT seq, type, time, received_at, channel FROM inbox WHERE resourceinstance IN {listed} ORDER BY seq",
            params,
        )
        fresh = [row for row in rows if int(row["seq"]) not in self.shown]
        self.shown.update(int(row["seq"]) for row in fresh)
        return [
            Sighting("event", str(row["type"]), str(row["time"] or row["received_at"]), str(row["channel"]))
            for row in fresh
        ]

    async def _status(self, db: Database) -> Sighting | None:
        rows = await db.fetch(STATUS, {"id": self.correspondence_id})
        if not rows or not rows[0]["status"]:
            return None
        row = rows[0]
        return Sighting("status", str(row["status"]), str(row["updated_at"]), reached=reached_in(str(row["details"])))

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
