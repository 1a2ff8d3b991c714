"""An event's attempt history (`attempts`, migration 6): one row per run of its pipeline, written by the dispatcher
with the run's outcome (`queue.finish`, `queue.release_claims`), read by `events show` and the console.

A run whose lease was lost writes no row: its outcome is refused, and the row goes with it. A run cut short by a
crash writes none either (the next run's `attempt` shows the gap). docs/store.md describes the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from receiver.store.interface import Database

RELEASED = "released"
"""The `outcome` of a run given back at shutdown: the event is `pending` or `retrying` again, its attempt uncounted."""


@dataclass(frozen=True)
class NewAttempt:
    """One run of an event's pipeline as the dispatcher records it. Times are ISO-8601 UTC (`receiver.timeutil`)."""

    event_id: str
    attempt: int
    """The event's attempt number during the run (`Event.attempt`): a pause or a run given back at shutdown leaves
    the next run the same number."""
    started_at: str
    finished_at: str
    step: str
    """The handler step the run reached: the one that failed or was running when the run was given back, the last
    one when it was done; "" when none ran."""
    outcome: str
    """What the run left the event: `done`, `skipped`, `retrying`, `dead`, or `released` (given back at shutdown)."""
    error: str
    """Why it did not end `done` (as `last_error` says it: secrets redacted, one line, bounded); "" when it did."""
    http_status: int | None
    """The HTTP status of the failing call, from Altinn or a forward target, when it had one."""


@dataclass(frozen=True)
class Attempt(NewAttempt):
    """A stored run: `seq` orders an event's runs, oldest first."""

    seq: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Attempt:
        status = row["http_status"]
        return cls(**{**row, "http_status": None if status is None else int(status)})

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape: one object of `events show --json`'s `history`, the table's column names."""
        return {"seq": self.seq, **{key: value for key, value in asdict(self).items() if key != "seq"}}


WRITTEN = ("event_id", "attempt", "started_at", "finished_at", "step", "outcome", "error", "http_status")
"""The columns a new row is written with (`seq` is the backend's)."""
INSERT_ATTEMPT = f"INSERT INTO attempts ({', '.join(WRITTEN)}) VALUES ({', '.join(f':{name}' for name in WRITTEN)})"

COLUMNS = "seq, event_id, attempt, started_at, finished_at, step, outcome, error, http_status"


def attempt_row(attempt: NewAttempt) -> dict[str, Any]:
    """`INSERT_ATTEMPT`'s parameters."""
    return asdict(attempt)


async def event_attempts(db: Database, event_id: str) -> list[Attempt]:
    """The runs of the event `event_id`, oldest first ([] for an unknown event, or one that never finished a run)."""
    rows = await db.fetch(f"SELECT {COLUMNS} FROM attempts WHERE event_id = :id ORDER BY seq", {"id": event_id})
    return [Attempt.from_row(row) for row in rows]
