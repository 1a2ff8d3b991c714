"""`inbox_heads` on PostgreSQL when two transactions run at once (migration 8): a worker ends an instance's running
event while the webhook stores (or an operator replays) the instance's next one. Whichever of the two commits first,
the next event must be claimable afterwards; before migration 8 it stayed `pending` for good.

Each test holds one side's transaction open at the point where it has written, runs the other side on a second
connection, and lets the first commit only once the second has either finished or is waiting for a lock (read from
`pg_stat_activity`), so both interleavings are forced, not hoped for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from receiver.config import StoreConfig
from receiver.store import queue
from receiver.store.inbox import INSERT_EVENT, event_row
from receiver.store.interface import POSTGRESQL
from receiver.store.migrations import LATEST
from receiver.store.postgres.connection import translate
from receiver.store.records import InboxRecord
from receiver.timeutil import now_iso
from tests.store_backends import event, rows, run_on
from tests.support import wait_until

INSTANCE = "0199c0de-0000-7000-8000-00000000beef"
Statement = Callable[[psycopg.Connection], object]


@pytest.fixture
def store(store_url: str) -> StoreConfig:
    return StoreConfig(url=store_url)


def insert(*times: str) -> Statement:
    """The webhook's insert of events of `INSTANCE` at `times`, a statement each."""

    def run(conn: psycopg.Connection) -> object:
        for time in times:
            conn.execute(translate(INSERT_EVENT), event_row(event(INSTANCE, time), "push", now_iso()))
        return None

    return run


def finish(record: InboxRecord, status: str = "done") -> Statement:
    """The dispatcher's end of `record`'s run (`queue.finish`'s statement, under its claim's token)."""

    def run(conn: psycopg.Connection) -> object:
        params = {"seq": record.seq, "token": record.lease_owner, "status": status, "error": "", "next_attempt_at": "",
                  "give_back": 0, "now": now_iso()}  # fmt: skip
        return conn.execute(translate(queue.FINISH[POSTGRESQL]), params).fetchall()

    return run


def claim(store: StoreConfig, token: str) -> list[InboxRecord]:
    return run_on(store, lambda db: queue.claim(db, token, 600, limit=4))


def running_first(store: StoreConfig) -> InboxRecord:
    """The instance's first event, stored and claimed: running, the blocker of whatever comes after it."""
    run_on(store, lambda db: db.execute(INSERT_EVENT, event_row(event(INSTANCE, "2026-06-01T10:00:00Z"), "push",
                                                                 now_iso())))  # fmt: skip
    [first] = claim(store, "worker/1")
    return first


@contextmanager
def held(store: StoreConfig, statement: Statement) -> Iterator[None]:
    """`statement` run in a transaction that commits when the block ends."""
    with psycopg.connect(store.url) as conn, conn.transaction():
        statement(conn)
        yield


def meanwhile(store: StoreConfig, statement: Statement) -> Callable[[], None]:
    """`statement` on a connection of its own in a thread, once it has finished or waits for a lock; the function
    that joins it (and raises what it raised)."""
    conn = psycopg.connect(store.url, autocommit=True)
    pid = conn.info.backend_pid
    failed: list[BaseException] = []

    def work() -> None:
        try:
            statement(conn)
        except BaseException as exc:  # handed to the test's thread
            failed.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=work)
    thread.start()
    with psycopg.connect(store.url, autocommit=True) as watcher:
        query = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
        wait_until(lambda: not thread.is_alive() or watcher.execute(query, (pid,)).fetchone() == ("Lock",),
                   message="the second transaction to finish or wait for a lock")  # fmt: skip

    def join() -> None:
        thread.join(timeout=30)
        assert not thread.is_alive(), "the second transaction never finished"
        if failed:
            raise failed[0]

    return join


def test_an_event_stored_while_its_blocker_ends_uncommitted_is_claimable_after_both_commit(store: StoreConfig) -> None:
    first = running_first(store)
    with held(store, finish(first)):
        joined = meanwhile(store, insert("2026-06-01T10:00:01Z"))
    joined()
    assert [r.time for r in claim(store, "worker/2")] == ["2026-06-01T10:00:01Z"]


def test_a_blocker_that_ends_while_the_next_event_is_stored_uncommitted_lets_it_be_claimed(store: StoreConfig) -> None:
    first = running_first(store)
    with held(store, insert("2026-06-01T10:00:01Z", "2026-06-01T10:00:02Z")):
        joined = meanwhile(store, finish(first))
    joined()
    assert [r.time for r in claim(store, "worker/2")] == ["2026-06-01T10:00:01Z"], "one at a time, in order"


def test_an_event_replayed_while_its_blocker_ends_is_claimable(store: StoreConfig) -> None:
    first = running_first(store)
    run_on(store, lambda db: db.execute(INSERT_EVENT, event_row(event(INSTANCE, "2026-06-01T10:00:01Z"), "push",
                                                                 now_iso())))  # fmt: skip
    run_on(store, lambda db: db.execute("UPDATE inbox SET status = 'dead' WHERE time = '2026-06-01T10:00:01Z'"))
    replay = "UPDATE inbox SET status = 'pending' WHERE time = '2026-06-01T10:00:01Z'"
    with held(store, finish(first)):
        joined = meanwhile(store, lambda conn: conn.execute(replay))
    joined()
    assert [r.time for r in claim(store, "worker/2")] == ["2026-06-01T10:00:01Z"]


def test_migrating_makes_an_event_the_old_triggers_left_out_a_head_again(store: StoreConfig) -> None:
    first = running_first(store)
    run_on(store, lambda db: db.execute(INSERT_EVENT, event_row(event(INSTANCE, "2026-06-01T10:00:01Z"), "push",
                                                                 now_iso())))  # fmt: skip
    with psycopg.connect(store.url, autocommit=True) as conn:
        finish(first)(conn)
        # What the race left: the next event open, and not among the heads.
        conn.execute("DELETE FROM inbox_heads")
        conn.execute("DELETE FROM schema_migrations WHERE version >= 8")  # a store from before migration 8
    assert rows(store, "SELECT seq FROM inbox_heads") == []
    run_on(store, lambda db: db.execute("SELECT 1"))  # brought to this code's schema again, as `serve` does
    assert [r.time for r in claim(store, "worker/3")] == ["2026-06-01T10:00:01Z"]
    assert rows(store, "SELECT MAX(version) AS v FROM schema_migrations") == [{"v": LATEST}]
