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
Each claim statement writes a token of its own into `lease_owner` (`claim_token`: the worker's id, a slash, a
number the worker never uses twice), and a run's outcome and writes are fenced by it: `finish` and the handlers'
writes (`FENCE`, checked in the same transaction, store/handler_store.py) change nothing unless the event is still
`processing` under that very token. A worker whose lease ran out and was taken over, even by itself later, so
cannot overwrite the new owner's outcome or rows. Renewing and releasing cover every token of the worker.

On PostgreSQL several processes claim at once without SQLite's one writer at a time, and row locks alone cannot keep
an instance's order: two claimers whose snapshots both predate the other's claim could each take a different event
of one instance (say one sees a retry as due and the other, a moment earlier, does not). So a claim is one
transaction of two statements. The first walks the heads as above, locks the due candidates' rows `FOR UPDATE SKIP
LOCKED` (another claimer's are skipped, not waited for) and takes a transaction-level advisory lock on each
candidate's instance with `pg_try_advisory_xact_lock` (an instance another claimer holds is skipped). The second
starts after those locks are held, so its snapshot sees every claim committed before, and claims what of them may
run, with the same rules as on SQLite. An instance's claims are thus one after another, each seeing the last. The
fences hold there too: `finish` is one UPDATE whose condition PostgreSQL checks again on the row it locks, and
`FENCE` locks the event's row (`FOR SHARE`) until the handler's statement commits, so a claim that would take the
event over waits for it (or skips it). The dispatcher's sessions end a transaction left idle for a lease
(`stalled_after`): a process paused between its statements would otherwise keep those rows locked, and its events
skipped by every other claimer, until it resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from receiver.store.attempts import INSERT_ATTEMPT, WRITTEN, NewAttempt, attempt_row
from receiver.store.interface import POSTGRESQL, SQLITE, Database
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


def _may_start(before: Callable[[str, str, str], str]) -> str:
    """The due event `c` may start: no event of its instance is running, and no blocker and no due retrying event
    of its instance comes before it (`before(index, alias, condition)` says so for one kind)."""
    return f"""(c.resourceinstance = '' OR (
                NOT EXISTS (
                    SELECT 1 FROM inbox AS running
                    WHERE running.resourceinstance = c.resourceinstance
                      AND running.status = 'processing' AND running.lease_until > :now)
            AND {before("inbox_blocking", "b", "b.status IN ('pending', 'processing')")}
            AND {before("inbox_retrying", "r", "r.status = 'retrying' AND r.next_attempt_at <= :now")}))"""


def _pg_none_before(index: str, alias: str, condition: str) -> str:
    """`_none_before` on PostgreSQL: one look-up, a row comparison the `index` ranges over (the planner picks it)."""
    order = "receiver_event_order({0}.time, {0}.received_at)"
    return (
        f"NOT EXISTS (SELECT 1 FROM inbox AS {alias} WHERE {alias}.resourceinstance = c.resourceinstance"
        f" AND {condition} AND ({order.format(alias)}, {alias}.seq) < ({order.format('c')}, c.seq))"
    )


_CLAIMED = """
    UPDATE inbox
    SET status = 'processing', attempts = attempts + 1, lease_until = :lease_until, lease_owner = :owner,
        updated_at = :now"""

# Candidates are the heads (receiver/store/migrations/m0003_inbox_heads.py), in the order they may run: an instance's
# first blocker (pending or processing) and the retrying events before it. A head may start when it is due, no event
# of its instance is running, and no blocker and no due retrying event of its instance comes before it (a former
# head left behind a newer blocker fails the second look-up).
CLAIM = f"""
{_CLAIMED}
    WHERE seq IN (
        SELECT h.seq FROM inbox_heads AS h CROSS JOIN inbox AS c ON c.seq = h.seq
        WHERE {_due("c")}
          AND {_may_start(_none_before)}
        ORDER BY h.order_key, h.seq
        LIMIT :limit
    )
    RETURNING *
"""

INSTANCE_LOCKS = 0x41525357
"""The first key of the advisory locks on instances (receiver/store/postgres/migrate.py's is the one before)."""

# PostgreSQL's first statement: due heads in order, their rows locked, each with its instance locked (the lock's
# key is the schema's name and the instance's, so stores in two schemas of one database never meet).
PG_CANDIDATES = f"""
    WITH candidates AS MATERIALIZED (
        SELECT c.seq, c.resourceinstance FROM inbox_heads AS h JOIN inbox AS c ON c.seq = h.seq
        WHERE {_due("c")}
        ORDER BY h.order_key, h.seq
        LIMIT :scan
        FOR UPDATE OF c SKIP LOCKED
    )
    SELECT seq FROM candidates
    WHERE resourceinstance = ''
       OR pg_try_advisory_xact_lock({INSTANCE_LOCKS}, hashtext(current_schema() || '/' || resourceinstance))
"""

# And its second, in a new snapshot: those of the candidates that may start.
PG_CLAIM = f"""{_CLAIMED}
    WHERE seq IN (
        SELECT c.seq FROM inbox AS c
        WHERE c.seq = ANY(:candidates) AND {_due("c")} AND {_may_start(_pg_none_before)}
        ORDER BY receiver_event_order(c.time, c.received_at), c.seq
        LIMIT :limit
    )
    RETURNING *
"""
PG_SCAN = (4, 32)
"""The first statement looks at up to 4 * limit + 32 heads: some due heads cannot start (their instance runs)."""

_OURS = "seq = :seq AND status = 'processing' AND lease_owner = :token"

FENCE = {SQLITE: f"SELECT 1 FROM inbox WHERE {_OURS}", POSTGRESQL: f"SELECT 1 FROM inbox WHERE {_OURS} FOR SHARE"}
"""A row while the claim `:token` on event `:seq` still holds (its lease may have run out, but nobody took it); on
PostgreSQL the row stays locked until the transaction ends, so that nobody takes it meanwhile."""

_WORKERS = "status = 'processing' AND substr(lease_owner, 1, length(:prefix)) = :prefix"
"""The claims of every token of one worker (`:prefix` is its id and a slash)."""

HELD = {
    SQLITE: f"SELECT seq, lease_owner FROM inbox WHERE {_WORKERS}",
    POSTGRESQL: f"SELECT seq, lease_owner FROM inbox WHERE {_WORKERS} FOR UPDATE",
}
"""The claims of every token of one worker, locked on PostgreSQL until the transaction ends."""

EXTEND = f"UPDATE inbox SET lease_until = :lease_until WHERE {_WORKERS} RETURNING seq, lease_owner"

GREATEST = {SQLITE: "MAX", POSTGRESQL: "GREATEST"}
"""The larger of two values in each dialect."""

# Attempts are counted when claimed; :give_back 1 takes this run's back (a handler's pause, RetryLater(attempt=False)).
FINISH = {
    backend: f"""
    UPDATE inbox
    SET status = :status, last_error = :error, next_attempt_at = :next_attempt_at, lease_until = '', lease_owner = '',
        attempts = {greatest}(attempts - :give_back, 0), updated_at = :now
    WHERE {_OURS}
    RETURNING seq
"""
    for backend, greatest in GREATEST.items()
}

# PostgreSQL's FINISH with the run's row of `attempts` in one statement (one round trip, as FINISH alone): the row is
# written only when FINISH returns the event's, i.e. when the claim holds. The row's parameters are `attempt_*`.
# (A NULL http_status must be typed: a parameter in a SELECT list is taken for text.)
_ROW = ", ".join(f":attempt_{name}" for name in WRITTEN).replace(
    ":attempt_http_status", "CAST(:attempt_http_status AS INTEGER)"
)
PG_FINISH_RECORDED = (
    f"WITH finished AS ({FINISH[POSTGRESQL]}) INSERT INTO attempts ({', '.join(WRITTEN)}) SELECT {_ROW} FROM finished"
    " RETURNING seq"
)

# A run cut short by our own shutdown is not the event's fault: its attempt is given back.
RELEASE = {
    backend: f"""
    UPDATE inbox
    SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, attempts = {greatest}(attempts - 1, 0),
        next_attempt_at = :now, lease_until = '', lease_owner = '', updated_at = :now
    WHERE {_WORKERS}
    RETURNING seq
"""
    for backend, greatest in GREATEST.items()
}


class LeaseLost(Exception):
    """A run's claim was taken over by another worker after its lease ran out (the process was paused or too slow
    to renew it): what the run writes is refused, so it cannot overwrite the new owner's."""

    def __init__(self, event_id: str) -> None:
        super().__init__(
            f"the claim on event {event_id} was taken over by another worker after its lease ran out: this run's"
            " writes are refused and it is cancelled"
        )
        self.event_id = event_id


def claim_token(worker: str, number: int) -> str:
    """The token claim number `number` of `worker` writes into `lease_owner`: unique as long as the worker never
    uses a number twice."""
    return f"{worker}/{number}"


def _prefix(worker: str) -> str:
    return claim_token(worker, 0)[:-1]


async def claim(db: Database, token: str, lease: float, limit: int = 1) -> list[InboxRecord]:
    """Claim up to `limit` events that may run now (each of another instance) for `lease` seconds, under `token`
    (`claim_token`; each record's `lease_owner`); [] if none is."""
    params: dict[str, object] = {"now": now_iso(), "lease_until": iso_after(lease), "owner": token, "limit": limit}
    if db.backend == POSTGRESQL:
        async with db.transaction() as claiming:
            scan = PG_SCAN[0] * limit + PG_SCAN[1]
            candidates = [
                row["seq"] for row in await claiming.fetch(PG_CANDIDATES, {"now": params["now"], "scan": scan})
            ]
            rows = await claiming.fetch(PG_CLAIM, {**params, "candidates": candidates}) if candidates else []
    else:
        rows = await db.fetch(CLAIM, params)
    return [InboxRecord.from_row(row) for row in rows]


async def _update(db: Database, sql: str, params: dict[str, object]) -> int:
    """Run one UPDATE ... RETURNING seq; how many rows it changed."""
    return len(await db.fetch(sql, {"now": now_iso(), **params}))


async def extend_leases(db: Database, worker: str, lease: float) -> set[tuple[int, str]]:
    """Keep every claim of `worker` for `lease` seconds more; the claims still its own, as (seq, token) (the others
    were taken over by another worker after their lease ran out)."""
    rows = await db.fetch(EXTEND, {"prefix": _prefix(worker), "lease_until": iso_after(lease)})
    return {(int(row["seq"]), str(row["lease_owner"])) for row in rows}


async def finish(
    db: Database,
    seq: int,
    token: str,
    status: str,
    error: str = "",
    next_attempt_at: str = "",
    *,
    count_attempt: bool = True,
    history: NewAttempt | None = None,
) -> bool:
    """End the claim `token` as `done`, `skipped`, `dead` or `retrying` (with `next_attempt_at`); False if it no
    longer holds (taken over).
    `count_attempt=False` (only with `retrying`) gives back the attempt the claim counted: the run was a pause.
    `history`: the run's row of `attempts`, written in the same transaction, and only if the claim holds."""
    if status not in ("done", "skipped", "dead", "retrying"):
        raise ValueError(f"cannot finish a claim as {status!r}")
    if (status == "retrying") != bool(next_attempt_at):
        raise ValueError("next_attempt_at goes with status 'retrying' and only with it")
    if not count_attempt and status != "retrying":
        raise ValueError("only a retry can leave its attempt uncounted")
    params = {"seq": seq, "token": token, "status": status, "error": error, "next_attempt_at": next_attempt_at,
              "give_back": 0 if count_attempt else 1}  # fmt: skip
    if history is None:
        return await _update(db, FINISH[db.backend], params) == 1
    if db.backend == POSTGRESQL:
        row = {f"attempt_{name}": value for name, value in attempt_row(history).items()}
        return await _update(db, PG_FINISH_RECORDED, {**params, **row}) == 1
    # FINISH returns the event's row only when the claim holds: as the guard, it lets the insert follow only then.
    held, _ = await db.guarded(
        FINISH[db.backend], {"now": now_iso(), **params}, "execute", INSERT_ATTEMPT, attempt_row(history)
    )
    return held


async def release_claims(db: Database, worker: str, history: Mapping[tuple[int, str], NewAttempt] | None = None) -> int:
    """Give back every unfinished claim of `worker` (pending, or retrying if it had failed before), due at once; how
    many. `history`: the rows of `attempts` of the runs cut short, by claim (seq, token), written in the same
    transaction for the claims that still hold."""
    if not history:
        return await _update(db, RELEASE[db.backend], {"prefix": _prefix(worker)})
    async with db.transaction() as tx:
        held = {
            (int(row["seq"]), str(row["lease_owner"]))
            for row in await tx.fetch(HELD[db.backend], {"prefix": _prefix(worker)})
        }
        released = await _update(tx, RELEASE[db.backend], {"prefix": _prefix(worker)})
        rows = [attempt_row(attempt) for claim, attempt in history.items() if claim in held]
        if rows:
            await tx.execute_many(INSERT_ATTEMPT, rows)
    return released
