"""The dispatcher's view of the inbox: claims with leases, then done, retrying, dead, skipped or released.

Every function here is one SQL statement and one round trip to the connection's thread, so it is atomic on its own
(SQLite serialises writers, across processes too), safe on a connection that other tasks use at the same time, and
holds the write lock no longer than one statement (the webhook's writer waits for it).

A claim takes the earliest open events that may run now, several in one statement: each one's `resourceinstance`
has no other event running, and no other runnable event of that instance comes before it in `time` order (then
arrival order; events without `time` by their arrival time), so one claim never takes two events of one instance. A
`retrying` event that is not yet due does not hold back later ones. The claim walks only the events that may be next
of their instance (`inbox_heads`, kept by triggers), in that same order, so its cost grows neither with the backlog
nor with how many events one busy instance holds: a few look-ups per instance that is busy or waiting for a retry.
Each finishing statement checks that the lease is still ours, so a worker whose lease expired and was taken over
cannot overwrite the new owner's outcome.
"""

from __future__ import annotations

from receiver.store.interface import Database
from receiver.store.records import InboxRecord
from receiver.timeutil import iso_after, now_iso

OPEN = "status IN ('pending', 'retrying', 'processing')"


def _due(alias: str) -> str:
    """The event may start now: new, due for a retry, or claimed by a worker whose lease ran out."""
    return (
        f"({alias}.status = 'pending'"
        f" OR ({alias}.status = 'retrying' AND {alias}.next_attempt_at <= :now)"
        f" OR ({alias}.status = 'processing' AND {alias}.lease_until <= :now))"
    )


def _order_key(alias: str) -> str:
    """When the event happened, as a number: Altinn's `time` (any precision, Z or offset), else when it arrived."""
    return f"COALESCE(julianday(NULLIF({alias}.time, '')), julianday({alias}.received_at))"


def _none_before(index: str, alias: str, condition: str) -> str:
    """No event of the head `h`'s instance (that of its event `c`) in `index` that meets `condition` comes before it.

    Two look-ups, each a range the index stops at: earlier in time, then as early but earlier in arrival (an
    instance's events within one millisecond share their key). `+` takes the REAL affinity off `order_key`, which
    would keep SQLite from using the expression index.
    """
    key = _order_key(alias)
    same_instance = f"FROM inbox AS {alias} INDEXED BY {index} WHERE {alias}.resourceinstance = c.resourceinstance"
    return (
        f"NOT EXISTS (SELECT 1 {same_instance} AND {condition} AND {key} < +h.order_key)"
        f" AND NOT EXISTS (SELECT 1 {same_instance} AND {condition} AND {key} = +h.order_key AND {alias}.seq < h.seq)"
    )


# Candidates are the heads (receiver/store/migrations/m0003_inbox_heads.py), in the order they may run: an instance's
# first blocker (pending or processing) and the retrying events before it. A head may start when it is due, no event
# of its instance is running, and no blocker and no due retrying event of its instance comes before it (a former
# head left behind a newer blocker fails the second look-up).
CLAIM = f"""
    UPDATE inbox
    SET status = 'processing', attempts = attempts + 1, lease_until = :lease_until, lease_owner = :owner,
        updated_at = :now
    WHERE seq IN (
        SELECT h.seq FROM inbox_heads AS h CROSS JOIN inbox AS c ON c.seq = h.seq
        WHERE {_due("c")}
          AND (c.resourceinstance = '' OR (
                NOT EXISTS (
                    SELECT 1 FROM inbox AS running
                    WHERE running.resourceinstance = c.resourceinstance
                      AND running.status = 'processing' AND running.lease_until > :now)
            AND {_none_before("inbox_blocking", "b", "b.status IN ('pending', 'processing')")}
            AND {_none_before("inbox_retrying", "r", "r.status = 'retrying' AND r.next_attempt_at <= :now")}))
        ORDER BY h.order_key, h.seq
        LIMIT :limit
    )
    RETURNING *
"""

_OURS = "seq = :seq AND status = 'processing' AND lease_owner = :owner"

EXTEND = """
    UPDATE inbox SET lease_until = :lease_until WHERE status = 'processing' AND lease_owner = :owner RETURNING seq
"""

# Attempts are counted when claimed; :give_back 1 takes this run's back (a handler's pause, RetryLater(attempt=False)).
FINISH = f"""
    UPDATE inbox
    SET status = :status, last_error = :error, next_attempt_at = :next_attempt_at, lease_until = '', lease_owner = '',
        attempts = MAX(attempts - :give_back, 0), updated_at = :now
    WHERE {_OURS}
    RETURNING seq
"""

# A run cut short by our own shutdown is not the event's fault: its attempt is given back.
RELEASE = """
    UPDATE inbox
    SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, attempts = MAX(attempts - 1, 0),
        next_attempt_at = :now, lease_until = '', lease_owner = '', updated_at = :now
    WHERE status = 'processing' AND lease_owner = :owner
    RETURNING seq
"""


async def claim(db: Database, owner: str, lease: float, limit: int = 1) -> list[InboxRecord]:
    """Claim up to `limit` events that may run now (each of another instance) for `lease` seconds; [] if none is."""
    params = {"now": now_iso(), "lease_until": iso_after(lease), "owner": owner, "limit": limit}
    return [InboxRecord.from_row(row) for row in await db.fetch(CLAIM, params)]


async def _update(db: Database, sql: str, params: dict[str, object]) -> int:
    """Run one UPDATE ... RETURNING seq; how many rows it changed."""
    return len(await db.fetch(sql, {"now": now_iso(), **params}))


async def extend_leases(db: Database, owner: str, lease: float) -> set[int]:
    """Keep the claims of `owner`'s long runs for `lease` seconds more; the seqs still ours (the others were taken
    over by another worker after our lease ran out)."""
    rows = await db.fetch(EXTEND, {"owner": owner, "lease_until": iso_after(lease)})
    return {int(row["seq"]) for row in rows}


async def finish(
    db: Database,
    seq: int,
    owner: str,
    status: str,
    error: str = "",
    next_attempt_at: str = "",
    *,
    count_attempt: bool = True,
) -> bool:
    """End our claim as `done`, `skipped`, `dead` or `retrying` (with `next_attempt_at`); False if no longer ours.
    `count_attempt=False` (only with `retrying`) gives back the attempt the claim counted: the run was a pause."""
    if status not in ("done", "skipped", "dead", "retrying"):
        raise ValueError(f"cannot finish a claim as {status!r}")
    if (status == "retrying") != bool(next_attempt_at):
        raise ValueError("next_attempt_at goes with status 'retrying' and only with it")
    if not count_attempt and status != "retrying":
        raise ValueError("only a retry can leave its attempt uncounted")
    params = {"seq": seq, "owner": owner, "status": status, "error": error, "next_attempt_at": next_attempt_at,
              "give_back": 0 if count_attempt else 1}  # fmt: skip
    return await _update(db, FINISH, params) == 1


async def release_claims(db: Database, owner: str) -> int:
    """Give back every unfinished claim of `owner` (pending, or retrying if it had failed before), due at once."""
    return await _update(db, RELEASE, {"owner": owner})
