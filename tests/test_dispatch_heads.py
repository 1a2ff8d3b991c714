"""The claim under a hot correspondence: it walks `inbox_heads` (migration 3), so its cost does not grow with how many
open events one `resourceinstance` holds, and it takes exactly what docs/handlers.md's rule allows.

Cost is counted in SQLite virtual-machine steps (`set_progress_handler`), which do not depend on the machine or its
load: a claim, an insert into the busy instance and the end of its running event cost the same with 8 000 events
waiting behind it as with none. The rule is checked as a property over random histories of inserts, claims, outcomes,
releases, replays, deletions and rewritten times, against the rule written out in Python: each claim takes exactly
the events the rule allows, and `inbox_heads` always holds every event that may be next of its instance."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.store import queue
from receiver.store.db import connect_sync
from receiver.store.inbox import INSERT_EVENT, event_row
from receiver.store.interface import SQLITE
from receiver.store.migrate import migrate
from receiver.store.migrations import MIGRATIONS
from receiver.store.records import NewEvent

HOT = "0199c0de-0000-7000-8000-000000000001"
BACKLOG = 8000
OTHERS = 50
NOW = "2026-06-01T12:00:00.000000Z"
PAST = "2026-06-01T11:00:00.000000Z"
LATER = "2026-06-01T13:00:00.000000Z"
OPEN = ("pending", "retrying", "processing")
BLOCKING = ("pending", "processing")


def row(instance: str, time: str, received_at: str = NOW) -> dict[str, str]:
    event_id = str(uuid.uuid4())
    raw = json.dumps({"specversion": "1.0", "id": event_id, "type": "t", "source": "s"})
    return event_row(NewEvent(event_id, "t", "s", "", "r", instance, time, raw), "push", received_at)


def steps(conn: sqlite3.Connection, sql: str, params: dict[str, Any] | tuple[Any, ...]) -> tuple[int, list[Any]]:
    """SQLite virtual-machine steps one statement takes (counted in tens), and its rows."""
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    conn.set_progress_handler(tick, 10)
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.set_progress_handler(None, 10)
    return counted[0] * 10, rows


def claim_params(limit: int, owner: str = "worker", lease_until: str = LATER) -> dict[str, Any]:
    return {"now": NOW, "lease_until": lease_until, "owner": owner, "limit": limit}


@dataclass
class Costs:
    claim_head: int
    claim_busy: int
    insert_behind: int
    finish_head: int
    claimed: set[str]


def measure(path: Path, backlog: int) -> Costs:
    """A store with `backlog` events of one instance (plus one) before `OTHERS` events of other instances, and what
    each step of working through the busy instance costs."""
    migrate(path)
    with closing(connect_sync(path)) as conn:
        hot = [row(HOT, f"2026-01-05T09:00:00.{n:06d}Z") for n in range(backlog + 1)]
        others = [row(f"other-{n}", f"2026-01-05T10:00:{n:02d}Z") for n in range(OTHERS)]
        conn.execute("BEGIN")
        conn.executemany(INSERT_EVENT, hot + others)
        conn.execute("COMMIT")
        claim_head, [head] = steps(conn, queue.CLAIM, claim_params(1))
        claim_busy, busy = steps(conn, queue.CLAIM, claim_params(4))
        insert_behind, _ = steps(conn, INSERT_EVENT, row(HOT, "2026-01-05T09:30:00Z"))
        finish = {"seq": head["seq"], "token": "worker", "status": "done", "error": "", "next_attempt_at": "",
                  "give_back": 0}  # fmt: skip
        finish_head, _ = steps(conn, queue.FINISH[SQLITE], {**finish, "now": NOW})
    return Costs(claim_head, claim_busy, insert_behind, finish_head, {r["resourceinstance"] for r in [head, *busy]})


def test_claiming_past_a_busy_instance_costs_the_same_with_8000_events_behind_it_as_with_none(tmp_path: Path) -> None:
    """Before migration 3 the claim stepped through every open event of the busy instance, each with a look-up of
    the instance's other events: 169 410 steps to get past it with 8 000 waiting, 1 410 with none (bench/README.md)."""
    quiet = measure(tmp_path / "quiet.db", 0)
    hot = measure(tmp_path / "hot.db", BACKLOG)
    assert quiet.claimed == hot.claimed == {HOT, "other-0", "other-1", "other-2", "other-3"}
    for name in ("claim_head", "claim_busy", "insert_behind", "finish_head"):
        cost, baseline = getattr(hot, name), getattr(quiet, name)
        # A b-tree is a level or two deeper with 8 000 more rows: a few steps, never a step per waiting event.
        assert cost <= baseline * 1.25 + 50, f"{name}: {cost} steps with {BACKLOG} waiting, {baseline} with none"


# --- the rule, as a property ---

INSTANCES = ["a", "b", "c", ""]
TIMES = ["", "2026-01-05T10:00:00Z", "2026-01-05T10:00:00.5Z", "2026-01-05T11:00:00+02:00", "2026-01-05T10:00:01Z"]
RECEIVED = ["2026-01-05T08:00:00.000000Z", "2026-01-05T10:00:00.000000Z", "2026-01-05T12:00:00.000000Z"]


@contextmanager
def inbox() -> Iterator[sqlite3.Connection]:
    """An in-memory store with every migration's schema (the triggers are the subject here, not the file)."""
    with closing(sqlite3.connect(":memory:", isolation_level=None)) as conn:
        conn.row_factory = sqlite3.Row
        for migration in MIGRATIONS:
            for statement in migration.statements("sqlite"):
                conn.execute(statement)
        yield conn


def snapshot(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    key = "COALESCE(julianday(NULLIF(time, '')), julianday(received_at))"
    return [dict(r) for r in conn.execute(f"SELECT seq, resourceinstance AS ri, status, next_attempt_at, lease_until,"
                                          f" {key} AS key FROM inbox")]  # fmt: skip


def allowed(rows: list[dict[str, Any]], limit: int) -> set[int]:
    """docs/handlers.md's rule: a due event runs unless another event of its instance runs, or another due one comes
    before it (`time`, else arrival, then `seq`); events without an instance always may. The earliest `limit`."""

    def due(e: dict[str, Any]) -> bool:
        return (
            e["status"] == "pending"
            or (e["status"] == "retrying" and e["next_attempt_at"] <= NOW)
            or (e["status"] == "processing" and e["lease_until"] <= NOW)
        )

    open_rows = [e for e in rows if e["status"] in OPEN]
    may = []
    for c in open_rows:
        others = [e for e in open_rows if c["ri"] and e["ri"] == c["ri"] and e["seq"] != c["seq"]]
        if not due(c) or any(e["status"] == "processing" and e["lease_until"] > NOW for e in others):
            continue
        if any(due(e) and (e["key"], e["seq"]) < (c["key"], c["seq"]) for e in others):
            continue
        may.append(c)
    return {c["seq"] for c in sorted(may, key=lambda c: (c["key"], c["seq"]))[:limit]}


def check_heads(conn: sqlite3.Connection) -> None:
    """`inbox_heads` holds every open event with no blocker of its instance before it, only open events, and each
    with its order key."""
    rows = snapshot(conn)
    open_rows = {e["seq"]: e for e in rows if e["status"] in OPEN}
    required = {
        e["seq"]
        for e in open_rows.values()
        if e["ri"] == ""
        or not any(
            b["ri"] == e["ri"] and b["status"] in BLOCKING and (b["key"], b["seq"]) < (e["key"], e["seq"])
            for b in open_rows.values()
        )
    }
    heads = {r["seq"]: r["order_key"] for r in conn.execute("SELECT * FROM inbox_heads")}
    assert required <= set(heads), f"missing heads {required - set(heads)}"
    assert set(heads) <= set(open_rows), f"heads of closed events {set(heads) - set(open_rows)}"
    assert all(key == open_rows[seq]["key"] for seq, key in heads.items())


Step = tuple[str, int, int]
STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["insert", "insert", "insert", "claim", "claim", "finish", "finish", "release", "replay", "delete", "move"]
        ),
        st.integers(0, 20),
        st.integers(0, 20),
    ),
    max_size=40,
)
OUTCOMES = [("done", ""), ("dead", ""), ("skipped", ""), ("retrying", PAST), ("retrying", LATER)]


def apply(conn: sqlite3.Connection, step: Step) -> None:
    action, a, b = step
    seqs = [r["seq"] for r in conn.execute("SELECT seq FROM inbox ORDER BY seq")]
    pick = seqs[a % len(seqs)] if seqs else None
    if action == "insert":
        conn.execute(INSERT_EVENT, row(INSTANCES[a % 4], TIMES[b % 5], RECEIVED[(a + b) % 3]))
    elif action == "claim":
        owner, lease, limit = queue.claim_token(f"worker-{b % 2}", a), (LATER, PAST)[a % 3 == 0], 1 + b % 4  # some over
        expected = allowed(snapshot(conn), limit)
        claimed = {r["seq"] for r in conn.execute(queue.CLAIM, claim_params(limit, owner, lease))}
        assert claimed == expected
    elif action == "finish" and pick is not None:
        status, at = OUTCOMES[b % 5]
        owner = conn.execute("SELECT lease_owner FROM inbox WHERE seq = ?", (pick,)).fetchone()[0]
        params = {"seq": pick, "token": owner, "status": status, "error": "", "next_attempt_at": at, "now": NOW,
                  "give_back": 0}  # fmt: skip
        conn.execute(queue.FINISH[SQLITE], params).fetchall()
    elif action == "release":
        conn.execute(queue.RELEASE[SQLITE], {"prefix": f"worker-{b % 2}/", "now": NOW}).fetchall()
    elif action == "replay" and pick is not None:
        conn.execute("UPDATE inbox SET status = 'pending', attempts = 0, next_attempt_at = '', lease_until = '',"
                     " lease_owner = '' WHERE seq = ? AND status != 'processing'", (pick,))  # fmt: skip
    elif action == "delete" and pick is not None:
        conn.execute("DELETE FROM inbox WHERE seq = ?", (pick,))
    elif action == "move" and pick is not None:
        moved = (TIMES[b % 5], INSTANCES[b % 4], pick)
        conn.execute("UPDATE inbox SET time = ?, resourceinstance = ? WHERE seq = ?", moved)


@pytest.mark.fuzz
@given(STEPS)
def test_each_claim_takes_exactly_what_the_rule_allows_and_the_heads_stay_complete(history: list[Step]) -> None:
    with inbox() as conn:
        for step in history:
            apply(conn, step)
            check_heads(conn)
