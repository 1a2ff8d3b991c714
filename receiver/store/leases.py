"""Leases on jobs that must run on one process at a time among all that share the store (`runner_leases`,
migration 7): take one, renew it, release it, and read who holds it.

A lease is a row with an expiry. A process takes it when it is free (no row, or `expires_at` passed) and renews it
while it holds it, each in one statement that answers only if it now holds it; a holder that dies, even by SIGKILL,
stops renewing, and another process takes the lease once it expires. The time is the database's on PostgreSQL
(processes on other hosts share no clock, the server is one) and the process's own on SQLite (one host, one
clock). Every time is ISO-8601 UTC text of fixed width, so the comparisons are text comparisons on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from receiver.store.interface import POSTGRESQL, Database
from receiver.timeutil import iso_after, now_iso

_PG_TIME = "to_char((now() + make_interval(secs => {seconds})) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

_TAKE = """
INSERT INTO runner_leases (name, holder, term, since, renewed_at, expires_at)
VALUES (:name, :holder, 1, {now}, {now}, {expires})
ON CONFLICT (name) DO UPDATE SET
    term = CASE WHEN runner_leases.holder = excluded.holder AND runner_leases.expires_at > excluded.renewed_at
                THEN runner_leases.term ELSE runner_leases.term + 1 END,
    since = CASE WHEN runner_leases.holder = excluded.holder AND runner_leases.expires_at > excluded.renewed_at
                 THEN runner_leases.since ELSE excluded.since END,
    holder = excluded.holder, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
WHERE runner_leases.holder = excluded.holder OR runner_leases.expires_at <= excluded.renewed_at
RETURNING name, holder, term, since, renewed_at, expires_at
"""
"""Take or renew: answers the lease when `holder` holds it now. A holder whose own lease had expired takes it anew
(a new term, a new `since`): another process may have run the job meanwhile and released it."""

_RELEASE = "UPDATE runner_leases SET expires_at = {now} WHERE name = :name AND holder = :holder"


@dataclass(frozen=True)
class Lease:
    """A lease as the store has it."""

    name: str
    holder: str
    term: int
    since: str
    renewed_at: str
    expires_at: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Lease:
        return cls(**{**row, "term": int(row["term"])})

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _times(db: Database, seconds: float) -> tuple[dict[str, str], dict[str, Any]]:
    """The SQL for now and for `seconds` from now in the database's dialect, and the parameters it needs."""
    if db.backend == POSTGRESQL:
        sql = {"now": _PG_TIME.format(seconds=0), "expires": _PG_TIME.format(seconds=":seconds")}
        return sql, {"seconds": seconds}
    return {"now": ":now", "expires": ":expires"}, {"now": now_iso(), "expires": iso_after(seconds)}


async def take(db: Database, name: str, holder: str, ttl: float) -> Lease | None:
    """Take the lease `name` for `holder` for `ttl` seconds, or renew it if `holder` holds it; None when another
    process holds it."""
    sql, params = _times(db, ttl)
    found = await db.fetch(_TAKE.format(**sql), {"name": name, "holder": holder, **params})
    return Lease.from_row(found[0]) if found else None


async def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up now, if `holder` holds it: the next process that asks takes it at once."""
    sql, params = _times(db, 0)
    await db.execute(_RELEASE.format(**sql), {"name": name, "holder": holder, **params})


async def current(db: Database, name: str) -> Lease | None:
    """The lease `name` as the store has it (held or expired), None when nobody has taken it yet."""
    found = await db.fetch("SELECT * FROM runner_leases WHERE name = :name", {"name": name})
    return Lease.from_row(found[0]) if found else None
