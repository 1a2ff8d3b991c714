"""The inbox table: every received event, keyed on its CloudEvent id, and the validation handshakes beside it.

Reads and single inserts work on any backend's `Database`; `InboxWriter` is SQLite's group-commit writer (the
`Writer` of receiver/store/interface.py for a store file).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from receiver.store.db import BUSY_TIMEOUT_MS, StoreError, connect_sync, describe
from receiver.store.errors import EventRefused, store_wide
from receiver.store.files import OpenFiles
from receiver.store.integrity import is_damage
from receiver.store.interface import Database, Params
from receiver.store.records import CHANNELS, InboxRecord, NewEvent, RefusedEvent
from receiver.store.traces import INSERT_TRACE, trace_row
from receiver.timeutil import now_iso

log = logging.getLogger(__name__)

INSERT_COLUMNS = ("id", "type", "source", "subject", "resource", "resourceinstance", "time", "raw", "received_at",
                  "channel", "updated_at")  # fmt: skip
"""The columns an insert sets besides `status` ('pending'), in the order of `insert_params`."""

_NAMED = ", ".join(f":{column}" for column in INSERT_COLUMNS)

INSERT_EVENT = f"""
    INSERT INTO inbox ({", ".join(INSERT_COLUMNS)}, status)
    VALUES ({_NAMED}, 'pending')
    ON CONFLICT(id) DO NOTHING
"""

INSERT_REFUSED = f"""
    INSERT INTO inbox ({", ".join(INSERT_COLUMNS)}, status, last_error)
    VALUES ({_NAMED}, 'dead', :last_error)
    ON CONFLICT(id) DO NOTHING
"""

INSERT_VALIDATION = """
    INSERT INTO validations (event_id, subscription_id, source, received_at)
    VALUES (:event_id, :subscription_id, :source, :received_at)
    ON CONFLICT(event_id) DO NOTHING
"""


def insert_params(event: NewEvent, channel: str, received_at: str) -> tuple[str, ...]:
    return (
        event.id,
        event.type,
        event.source,
        event.subject,
        event.resource,
        event.resourceinstance,
        event.time,
        event.raw,
        received_at,
        channel,
        received_at,
    )


def event_row(event: NewEvent, channel: str, received_at: str) -> dict[str, str]:
    """`INSERT_EVENT`'s parameters."""
    return dict(zip(INSERT_COLUMNS, insert_params(event, channel, received_at), strict=True))


def validation_row(event_id: str, subscription_id: str, source: str, received_at: str) -> dict[str, str]:
    """`INSERT_VALIDATION`'s parameters."""
    return {"event_id": event_id, "subscription_id": subscription_id, "source": source, "received_at": received_at}


Outcome = tuple["asyncio.Future[bool]", Any]
"""A job's future and what to answer it with: True/False, or the exception it raises."""
EventJob = tuple[NewEvent, str, str]
"""A writer's job for an event: the event, its channel, and the traceparent it arrived with ("" for none)."""


def event_job(event: NewEvent, channel: str, traceparent: str = "") -> EventJob:
    """A writer's job for an event (`Writer.insert_event`); ValueError for an unknown channel."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    return event, channel, traceparent


def validation_job(event_id: str, subscription_id: str, source: str) -> Callable[[str], tuple[str, dict[str, str]]]:
    """A writer's job for a validation handshake (`Writer.record_validation`): the statement for a commit stamp."""
    return lambda stamp: (INSERT_VALIDATION, validation_row(event_id, subscription_id, source, stamp))


async def insert_event(db: Database, event: NewEvent, channel: str) -> bool:
    """Store one event and commit; False when its id was already there (nothing changes then)."""
    event, channel, _ = event_job(event, channel)
    return await db.execute(INSERT_EVENT, event_row(event, channel, now_iso())) == 1


async def insert_refused(db: Database, events: list[RefusedEvent], channel: str) -> int:
    """Store refused events as `dead` rows (attempts 0, the reason in `last_error`), each in its own statement;
    returns how many were new. A dead row is never claimed and holds back no event of its instance."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    stamp = now_iso()
    added = 0
    for event in events:
        added += await db.execute(INSERT_REFUSED, {**event_row(event, channel, stamp), "last_error": event.reason})
    return added


PROBE_TYPE = "altinn-receiver.readiness-probe"
PROBE_RAW = json.dumps({"specversion": "1.0", "type": PROBE_TYPE, "data": "p" * 900})
"""A probe row's payload: about the size of a correspondence event as Altinn pushes it, with room to spare."""
# A probe is an inbox row as a push makes one, inserted and deleted in one committed transaction: it goes through the
# pages and indexes a push writes, and adds their pages to the WAL, but nobody ever sees it. It is `skipped`, so the
# triggers that keep `inbox_heads` (migration 3) do not fire for it.
INSERT_PROBE = """
    INSERT INTO inbox (id, type, source, subject, resource, resourceinstance, time, raw,
                       received_at, channel, status, updated_at)
    VALUES (?, ?, 'altinn-receiver', '', '', '', '', ?, ?, 'push', 'skipped', ?)
"""

INSERT_EVENTS = """
    INSERT INTO inbox (id, type, source, subject, resource, resourceinstance, time, raw,
                       received_at, channel, status, updated_at)
    VALUES {rows}
    ON CONFLICT(id) DO NOTHING
"""
INSERT_EVENTS_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)"
MAX_BATCH = 1000
"""The most events a group-commit writer stores in one statement: a whole page of catch-up (1 000 events) commits as
one, which costs SQLite about a sixth less per event than two halves (its random-keyed indexes touch fewer pages)."""

WRITER_CACHE_KIB = 32 * 1024
"""The writer's page cache (SQLite's default is 2 MiB). A page of catch-up lands in the indexes keyed on random ids
(`id`, `inbox_instance`, `inbox_blocking`) on about a page each per event; with them cached, the writer reads back from
the file only what another connection changed since (any commit of another connection empties the cache, which is why
catch-up moves its cursor through the writer). Those three indexes take 16.6 MB at 100 000 events, so 32 MiB holds them
up to about 190 000; the cache fills only as pages are read (bench/README.md)."""

# Work for the writer thread: an event to insert (with its channel and the traceparent it arrived with, "" for none),
# or statements run inside the batch's transaction, given its commit timestamp, that say what came of them.
_Statements = Callable[[sqlite3.Connection, str], bool]


class _Unsynced:
    """`execute`'s statement: a batch of these only commits without waiting for the disk (`Writer.execute`)."""

    def __init__(self, sql: str, params: Params) -> None:
        self.sql = sql
        self.params = params

    def __call__(self, conn: sqlite3.Connection, stamp: str) -> bool:
        return conn.execute(self.sql, self.params).rowcount > 0


_Work = EventJob | _Statements
_Job = tuple[_Work, "asyncio.Future[bool]"]
_T = TypeVar("_T")


class CommitRecord:
    """What a group-commit writer remembers of its commits: why the last one failed (`last_error`, "" once one works
    again), and when one last wrote, so that `ready` can take a recent write's word for it."""

    last_error = ""
    _wrote_at: float | None = None

    def _committed(self, outcomes: list[Outcome]) -> list[Outcome]:
        """A batch committed with these outcomes."""
        if self.last_error:
            log.info("inbox commits work again", extra={"after": self.last_error})
            self.last_error = ""
        if any(outcome is True for _, outcome in outcomes):
            self._wrote_at = time.monotonic()
        return outcomes

    def _wrote_lately(self, fresh_for: float) -> bool:
        """A commit wrote within `fresh_for` seconds, with no failure since."""
        return not self.last_error and self._wrote_at is not None and time.monotonic() - self._wrote_at < fresh_for


class InboxWriter(CommitRecord):
    """Durable inserts for the webhook: one thread with its own sqlite3 connection, committing in groups.

    Callers on the event loop get an asyncio future per insert. The thread takes everything queued, stores it in one
    transaction (one fsync for the batch), then resolves every future of the batch at once: True for a new row, False
    for a repeated id. If the commit fails, each future of the batch gets a `StoreError` and nothing of the batch is
    kept, so a caller never learns "stored" for something that is not on disk. When the failure is one event's own
    (not the store's: the lock, the disk, a damaged file), the batch is written again one event at a time in one
    transaction, and only that event gets its error (`EventRefused`).

    After each commit, and before any future says "stored", the writer checks that the store's path still names the
    files it has open: a store deleted or moved away while serving would otherwise take commits nobody can read
    again. From then on, and after SQLite finds the file damaged, it refuses every write (`broken` says why): the
    store needs an operator, and a restart.

    A batch of events only is a single statement (SQLite commits it on its own): the thread gives up the GIL for one
    SQLite call and must win it back from the busy event loop once per batch, not once per BEGIN, INSERT and COMMIT.
    """

    def __init__(
        self,
        path: Path | str,
        loop: asyncio.AbstractEventLoop,
        *,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._conn = connect_sync(path, busy_timeout_ms=busy_timeout_ms)
        self._files = OpenFiles(Path(path))
        # The writer waits for the write lock itself (see _locked): SQLite's own busy handler sleeps in steps of up
        # to 100 ms, so a push could wait that long after the dispatcher's short write had already ended.
        self._conn.execute("PRAGMA busy_timeout=0")
        self._conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        self._busy_timeout = busy_timeout_ms / 1000
        self._loop = loop
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._insert_sql: dict[int, str] = {}
        self.broken = ""
        """Why the store can no longer be written at all (deleted, replaced or damaged); never cleared."""
        self._running = True
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _submit(self, work: _Work) -> asyncio.Future[bool]:
        return self._submit_together([work])[0]

    def _submit_together(self, works: Sequence[_Work]) -> list[asyncio.Future[bool]]:
        """Queue `works` as one item: the thread takes them into one batch (a page of catch-up put one event at a
        time was split into several commits whenever the thread woke up half-way through)."""
        futures: list[asyncio.Future[bool]] = [self._loop.create_future() for _ in works]
        if self._running:
            self._jobs.put(list(zip(works, futures, strict=True)))
        else:
            for future in futures:
                future.set_exception(StoreError("the inbox writer has stopped"))
        return futures

    def insert_event(self, event: NewEvent, channel: str, traceparent: str = "") -> asyncio.Future[bool]:
        """Store one event; the future says True when it is new and committed, False for a repeated id. A new event's
        `traceparent` (the span it arrived in) is stored with it, in the same commit."""
        return self._submit(event_job(event, channel, traceparent))

    def insert_events(
        self, events: Sequence[NewEvent], channel: str, traceparent: str = ""
    ) -> list[asyncio.Future[bool]]:
        """`insert_event` for each of `events`, committed together (one batch)."""
        return self._submit_together([event_job(event, channel, traceparent) for event in events])

    def record_validation(self, event_id: str, subscription_id: str, source: str) -> asyncio.Future[bool]:
        """Record Altinn's validation handshake; False for a repeated event id."""
        statement = validation_job(event_id, subscription_id, source)
        return self._submit(lambda conn, stamp: conn.execute(*statement(stamp)).rowcount == 1)

    def execute(self, sql: str, params: Params) -> asyncio.Future[bool]:
        return self._submit(_Unsynced(sql, params))

    def ready(self, fresh_for: float) -> asyncio.Future[bool]:
        """Whether a push would be stored now: True, or the StoreError it would get. A commit that wrote within
        `fresh_for` seconds, with no failure since, answers for itself; otherwise the writer makes a probe write."""
        if self.broken:
            return answered(self._loop, StoreError(self.broken))
        if self._wrote_lately(fresh_for):
            return answered(self._loop, True)
        return self._submit(_probe)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Commit what is queued, stop the thread and close the connection."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        try:
            self._commit_batches()
        finally:
            self._running = False

    def _commit_batches(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            batch = list(first)
            while len(batch) < self._max_batch:  # items are whole: a batch may pass the limit by its last one
                try:
                    jobs = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if jobs is None:
                    stopping = True
                    break
                batch += jobs
            try:
                self._loop.call_soon_threadsafe(settle, self._commit(batch))
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _commit(self, batch: list[_Job]) -> list[Outcome]:
        if self.broken:
            return failing(batch, StoreError(self.broken))
        stamp = now_iso()
        try:
            try:
                outcomes = self._write_together(batch, stamp)
            except Exception as exc:
                if store_wide(exc):
                    raise
                outcomes = self._write_one_by_one(batch, stamp)
            if self._files.replaced():
                self._break(self._replaced())
                raise StoreError(self.broken)
        except Exception as exc:  # every failure of the store: no future of this batch may say "stored"
            return self._failed(batch, exc)
        return self._committed(outcomes)

    def _failed(self, batch: list[_Job], exc: Exception) -> list[Outcome]:
        reason = str(exc) if isinstance(exc, StoreError) else describe(exc)
        if is_damage(exc):
            self._break(reason)
        elif not self.broken and reason != self.last_error:
            log.error("inbox commit failed", extra={"reason": reason, "batch": len(batch)})
        self.last_error = reason
        return failing(batch, StoreError(reason))

    def _break(self, reason: str) -> None:
        """From now on refuse every write, saying `reason` (logged once)."""
        if not self.broken:
            log.error("the store can no longer be written", extra={"store": str(self._files.path), "reason": reason})
            self.broken = reason

    def _replaced(self) -> str:
        return (
            f"store {self._files.path} was deleted or replaced while serving: it no longer names the file the receiver"
            " writes, so nothing written now could be read again and nothing is acknowledged. Put the store back"
            " and restart `serve` (docs/operations.md#backup-and-restore)"
        )

    def _write_together(self, batch: list[_Job], stamp: str) -> list[Outcome]:
        """The batch in one transaction: its events in one statement (which commits itself when they are all, and
        none carries a trace context), then the new events' trace contexts and the other jobs' statements."""
        events = [work for work, _ in batch if isinstance(work, tuple)]
        if len(events) == len(batch) and not any(traceparent for _, _, traceparent in events):
            return event_outcomes(batch, self._insert_events(events, stamp))

        def write() -> list[Outcome]:
            inserted = self._insert_events(events, stamp) if events else set()
            traces = [(event.id, parent) for event, _, parent in events if parent and event.id in inserted]
            if traces:
                self._conn.executemany(INSERT_TRACE, [trace_row(*trace) for trace in traces])
            outcomes = event_outcomes(batch, inserted)
            return outcomes + [
                (future, work(self._conn, stamp)) for work, future in batch if not isinstance(work, tuple)
            ]

        if all(isinstance(work, _Unsynced) for work, _ in batch):
            return self._unsynced(lambda: self._in_transaction(write))
        return self._in_transaction(write)

    def _unsynced(self, commit: Callable[[], list[Outcome]]) -> list[Outcome]:
        """`commit()` with `synchronous = NORMAL`: no fsync of its own. The WAL keeps commits in order, so whatever a
        crash keeps of it comes with everything committed before it, and the next commit with FULL makes it durable."""
        self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return commit()
        finally:
            self._conn.execute("PRAGMA synchronous=FULL")

    def _write_one_by_one(self, batch: list[_Job], stamp: str) -> list[Outcome]:
        """The batch again in one transaction, a statement per job: a job whose own values fail gets its error and
        leaves the others alone; an error of the whole store fails them all."""
        return self._in_transaction(lambda: [(future, self._write_one(work, stamp)) for work, future in batch])

    def _write_one(self, work: _Work, stamp: str) -> Any:
        """One job's statements in the open transaction: its outcome, or `EventRefused` for its own values (the
        failed statement changed nothing)."""
        try:
            if isinstance(work, tuple):
                event, channel, traceparent = work
                new = self._conn.execute(INSERT_EVENT, event_row(event, channel, stamp)).rowcount == 1
                if new and traceparent:
                    self._conn.execute(INSERT_TRACE, trace_row(event.id, traceparent))
                return new
            return work(self._conn, stamp)
        except Exception as exc:
            if store_wide(exc) or not self._conn.in_transaction:
                raise
            return EventRefused(describe(exc) if isinstance(exc, sqlite3.Error) else _named(exc))

    def _in_transaction(self, write: Callable[[], list[Outcome]]) -> list[Outcome]:
        """`write()` in one write transaction, committed; rolled back when it raises."""
        conn = self._conn
        self._locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            outcomes = write()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _locked(self, attempt: Callable[[], _T]) -> _T:
        """Run `attempt` (which takes the write lock), retrying every few hundred microseconds while another
        connection holds the lock, up to the busy timeout. A statement refused for the lock changed nothing."""
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.0002
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def _insert_events(self, events: list[EventJob], stamp: str) -> set[str]:
        """All events in one multi-row INSERT; returns the ids that were not there before.

        Outside a transaction the statement commits itself (a refusal for the lock is retried: it changed nothing).
        Only a batch with repeated ids needs a second statement to learn which ones were new: the statement's rows
        are the batch's rows with the highest `seq` up to its `lastrowid` (a row that was already there has a lower
        one; `seq` values are not consecutive, a skipped row uses one up). Per-row statements (or RETURNING, a step
        per row) would hand the GIL over and back once per event.
        """
        count = len(events)
        sql = self._insert_sql.get(count)
        if sql is None:
            sql = self._insert_sql[count] = INSERT_EVENTS.format(rows=", ".join([INSERT_EVENTS_ROW] * count))
        params = [value for event, channel, _ in events for value in insert_params(event, channel, stamp)]
        cursor = self._locked(lambda: self._conn.execute(sql, params))
        added = cursor.rowcount
        if added == count:
            return {event.id for event, _, _ in events}
        if added == 0:
            return set()
        ids = [event.id for event, _, _ in events]
        marks = ", ".join("?" * count)
        newest_first = f"SELECT id FROM inbox WHERE id IN ({marks}) AND seq <= ? ORDER BY seq DESC LIMIT ?"
        return {row[0] for row in self._conn.execute(newest_first, [*ids, cursor.lastrowid, added])}


def event_outcomes(batch: Sequence[tuple[object, asyncio.Future[bool]]], inserted: set[str]) -> list[Outcome]:
    """The outcomes of a batch's events (its jobs that are `EventJob`s): True for the first of each new id, False for
    repeated ids."""
    outcomes: list[Outcome] = []
    for work, future in batch:
        if isinstance(work, tuple):
            event_id = work[0].id
            outcomes.append((future, event_id in inserted))
            inserted.discard(event_id)
    return outcomes


def _probe(conn: sqlite3.Connection, stamp: str) -> bool:
    """A probe write (see INSERT_PROBE), inside the batch's transaction."""
    cursor = conn.execute(INSERT_PROBE, (f"readiness-probe-{uuid.uuid4()}", PROBE_TYPE, PROBE_RAW, stamp, stamp))
    conn.execute("DELETE FROM inbox WHERE seq = ?", (cursor.lastrowid,))
    return True


def _named(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def answered(loop: asyncio.AbstractEventLoop, outcome: bool | BaseException) -> asyncio.Future[bool]:
    """A future that already holds `outcome`."""
    future: asyncio.Future[bool] = loop.create_future()
    settle([(future, outcome)])
    return future


async def stored(futures: Sequence[asyncio.Future[bool]]) -> list[bool]:
    """What `Writer.insert_events`' futures say, in order; raises the first error among them (every error counts as
    retrieved, as with `asyncio.gather`). A writer never settles a future before one queued before it, so this waits for
    the last one only: gathering a page's 1 000 futures cost the event loop a callback each (4-5 µs an event)."""
    if futures:
        try:
            await asyncio.wait(futures[-1:])
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
    errors = [error for error in (future.exception() for future in futures) if error is not None]
    if errors:
        raise errors[0]
    return [future.result() for future in futures]


def failing(batch: Sequence[tuple[object, asyncio.Future[bool]]], error: StoreError) -> list[Outcome]:
    return [(future, error) for _, future in batch]


def settle(outcomes: list[Outcome]) -> None:
    """Answer each job's future with its outcome: a value, or an exception to raise (both writers' batches end so)."""
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


async def get_event(db: Database, event_id: str) -> InboxRecord | None:
    rows = await db.fetch("SELECT * FROM inbox WHERE id = :id", {"id": event_id})
    return InboxRecord.from_row(rows[0]) if rows else None


def escape_like(text: str) -> str:
    """`text` matched literally in a SQL LIKE pattern with `\\` as escape."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def glob_to_like(pattern: str) -> str:
    """A shell-style glob (`no.altinn.correspondence.*`) as a SQL LIKE pattern with `\\` as escape."""
    return escape_like(pattern).replace("*", "%").replace("?", "_")


@dataclass(frozen=True)
class EventFilter:
    """The selection the operator commands and the console share: status, type glob, resource, resource instance,
    received within [`since`, `until`], one event id, a last error (a LIKE pattern with `\\` as escape)."""

    status: str | None = None
    type_glob: str | None = None
    resource: str | None = None
    since: str | None = None
    resourceinstance: str | None = None
    until: str | None = None
    event_id: str | None = None
    last_error_like: str | None = None

    def sql(self) -> tuple[list[str], dict[str, Any]]:
        """The conditions (to join with AND) and their parameters."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if self.status:
            where.append("status = :status")
            params["status"] = self.status
        if self.type_glob:
            where.append("type LIKE :type_like ESCAPE '\\'")
            params["type_like"] = glob_to_like(self.type_glob)
        for column in ("resource", "resourceinstance"):
            if value := getattr(self, column):
                where.append(f"{column} = :{column}")
                params[column] = value
        if self.last_error_like:
            where.append("last_error LIKE :last_error_like ESCAPE '\\'")
            params["last_error_like"] = self.last_error_like
        if self.event_id:
            where.append("id = :event_id")
            params["event_id"] = self.event_id
        if self.since:
            where.append("received_at >= :since")
            params["since"] = self.since
        if self.until:
            where.append("received_at <= :until")
            params["until"] = self.until
        return where, params


async def list_events(
    db: Database,
    selection: EventFilter = EventFilter(),
    *,
    limit: int = 100,
    newest_first: bool = True,
    before: int | None = None,
) -> list[InboxRecord]:
    """The first `limit` events of `selection`, newest first unless `newest_first` is False; with `before`, only
    those that arrived before the event whose `seq` it is (the next page)."""
    where, params = selection.sql()
    if before is not None:
        where.append("seq < :before")
        params["before"] = int(before)
    sql = "SELECT * FROM inbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT :limit"
    rows = await db.fetch(sql, {**params, "limit": int(limit)})
    return [InboxRecord.from_row(row) for row in rows]


async def count_by_status(db: Database) -> dict[str, int]:
    rows = await db.fetch("SELECT status, COUNT(*) AS n FROM inbox GROUP BY status")
    return {str(row["status"]): int(row["n"]) for row in rows}
