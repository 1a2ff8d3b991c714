"""The inbox table: every received event, keyed on its CloudEvent id, and the validation handshakes beside it."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from receiver.store.db import BUSY_TIMEOUT_MS, StoreError, connect_sync, describe, fetch_rows, row_fields
from receiver.store.errors import store_wide
from receiver.store.files import OpenFiles
from receiver.store.integrity import is_damage
from receiver.store.traces import INSERT_TRACE
from receiver.timeutil import now_iso

log = logging.getLogger(__name__)

CHANNELS = ("push", "catchup")
PRUNED_RAW = '{"pruned":true}'
"""`raw` of an event whose payload retention has pruned (receiver/store/retention.py); its row and id stay. Valid
JSON, so that a release that does not know about retention still reads the row."""


@dataclass(frozen=True)
class NewEvent:
    """An event that passed validation at a door (push or catch-up), ready to be stored as sent."""

    id: str
    type: str
    source: str
    subject: str
    resource: str
    resourceinstance: str
    time: str
    raw: str


@dataclass(frozen=True)
class InboxRecord(NewEvent):
    """A stored event: what arrived, plus where it is in its life (status, attempts, lease)."""

    seq: int
    received_at: str
    channel: str
    status: str
    attempts: int
    last_error: str
    next_attempt_at: str
    lease_until: str
    lease_owner: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InboxRecord:
        return cls(**row_fields(row))

    @property
    def event(self) -> dict[str, Any]:
        """The CloudEvent as it was received (`PRUNED_RAW` once pruned)."""
        value = json.loads(self.raw)
        assert isinstance(value, dict)
        return value

    @property
    def pruned(self) -> bool:
        """Retention has dropped the event's payload: it can no longer run."""
        return self.raw == PRUNED_RAW

    def to_json(self, *, with_event: bool = False) -> dict[str, Any]:
        """The public JSON shape of `events list/show --json` (the raw event only when asked: null once pruned)."""
        data = asdict(self)
        raw = data.pop("raw")
        for internal in ("seq", "lease_owner"):
            data.pop(internal)
        data["pruned"] = self.pruned
        if with_event:
            data["event"] = None if self.pruned else json.loads(raw)
        return data


INSERT_EVENT = """
    INSERT INTO inbox (id, type, source, subject, resource, resourceinstance, time, raw,
                       received_at, channel, status, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
    ON CONFLICT(id) DO NOTHING
"""

INSERT_VALIDATION = """
    INSERT INTO validations (event_id, subscription_id, source, received_at) VALUES (?, ?, ?, ?)
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


async def insert_event(conn: aiosqlite.Connection, event: NewEvent, channel: str) -> bool:
    """Store one event and commit; False when its id was already there (nothing changes then)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    stamp = now_iso()
    cursor = await conn.execute(INSERT_EVENT, insert_params(event, channel, stamp))
    await conn.commit()
    return cursor.rowcount == 1


async def record_validation(conn: aiosqlite.Connection, event_id: str, subscription_id: str, source: str) -> bool:
    """Record Altinn's validation handshake and commit; False for a repeated event id."""
    cursor = await conn.execute(INSERT_VALIDATION, (event_id, subscription_id, source, now_iso()))
    await conn.commit()
    return cursor.rowcount == 1


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

# Work for the writer thread: an event to insert (with its channel and the traceparent it arrived with, "" for none),
# or statements run inside the batch's transaction, given its commit timestamp, that say what came of them.
_Statements = Callable[[sqlite3.Connection, str], bool]
_Insert = tuple[NewEvent, str, str]
_Work = _Insert | _Statements
_Job = tuple[_Work, "asyncio.Future[bool]"]
_Outcome = tuple["asyncio.Future[bool]", Any]
_T = TypeVar("_T")


class EventRefused(StoreError):
    """The store refused this one event for its own values (text SQLite cannot encode, say): sending it again will
    not help, and the events committed beside it are not affected."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"this event cannot be stored ({reason})", transient=False)


class InboxWriter:
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
        max_batch: int = 512,
    ) -> None:
        self._conn = connect_sync(path, busy_timeout_ms=busy_timeout_ms)
        self._files = OpenFiles(Path(path))
        # The writer waits for the write lock itself (see _locked): SQLite's own busy handler sleeps in steps of up
        # to 100 ms, so a push could wait that long after the dispatcher's short write had already ended.
        self._conn.execute("PRAGMA busy_timeout=0")
        self._busy_timeout = busy_timeout_ms / 1000
        self._loop = loop
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._insert_sql: dict[int, str] = {}
        self.last_error = ""
        """Why the last commit failed ("" once one succeeds again)."""
        self.broken = ""
        """Why the store can no longer be written at all (deleted, replaced or damaged); never cleared."""
        self._wrote_at: float | None = None
        self._running = True
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _submit(self, work: _Work) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = self._loop.create_future()
        if self._running:
            self._jobs.put((work, future))
        else:
            future.set_exception(StoreError("the inbox writer has stopped"))
        return future

    def insert_event(self, event: NewEvent, channel: str, traceparent: str = "") -> asyncio.Future[bool]:
        """Store one event; the future says True when it is new and committed, False for a repeated id. A new event's
        `traceparent` (the span it arrived in) is stored with it, in the same commit."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        return self._submit((event, channel, traceparent))

    def record_validation(self, event_id: str, subscription_id: str, source: str) -> asyncio.Future[bool]:
        """Record Altinn's validation handshake; False for a repeated event id."""
        return self._submit(
            lambda conn, stamp: (
                conn.execute(INSERT_VALIDATION, (event_id, subscription_id, source, stamp)).rowcount == 1
            )
        )

    def ready(self, fresh_for: float) -> asyncio.Future[bool]:
        """Whether a push would be stored now: True, or the StoreError it would get. A commit that wrote within
        `fresh_for` seconds, with no failure since, answers for itself; otherwise the writer makes a probe write."""
        if self.broken:
            refused: asyncio.Future[bool] = self._loop.create_future()
            refused.set_exception(StoreError(self.broken))
            return refused
        wrote_at = self._wrote_at
        if not self.last_error and wrote_at is not None and time.monotonic() - wrote_at < fresh_for:
            fresh: asyncio.Future[bool] = self._loop.create_future()
            fresh.set_result(True)
            return fresh
        return self._submit(_probe)

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
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            try:
                self._loop.call_soon_threadsafe(_settle, self._commit(batch))
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _commit(self, batch: list[_Job]) -> list[_Outcome]:
        if self.broken:
            return _failing(batch, StoreError(self.broken))
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
        if self.last_error:
            log.info("inbox commits work again", extra={"after": self.last_error})
            self.last_error = ""
        if any(outcome is True for _, outcome in outcomes):
            self._wrote_at = time.monotonic()
        return outcomes

    def _failed(self, batch: list[_Job], exc: Exception) -> list[_Outcome]:
        reason = str(exc) if isinstance(exc, StoreError) else describe(exc)
        if is_damage(exc):
            self._break(reason)
        elif not self.broken and reason != self.last_error:
            log.error("inbox commit failed", extra={"reason": reason, "batch": len(batch)})
        self.last_error = reason
        return _failing(batch, StoreError(reason))

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

    def _write_together(self, batch: list[_Job], stamp: str) -> list[_Outcome]:
        """The batch in one transaction: its events in one statement (which commits itself when they are all, and
        none carries a trace context), then the new events' trace contexts and the other jobs' statements."""
        events = [work for work, _ in batch if isinstance(work, tuple)]
        if len(events) == len(batch) and not any(traceparent for _, _, traceparent in events):
            return _event_outcomes(batch, self._insert_events(events, stamp))

        def write() -> list[_Outcome]:
            inserted = self._insert_events(events, stamp) if events else set()
            traces = [(event.id, parent) for event, _, parent in events if parent and event.id in inserted]
            if traces:
                self._conn.executemany(INSERT_TRACE, traces)
            outcomes = _event_outcomes(batch, inserted)
            return outcomes + [
                (future, work(self._conn, stamp)) for work, future in batch if not isinstance(work, tuple)
            ]

        return self._in_transaction(write)

    def _write_one_by_one(self, batch: list[_Job], stamp: str) -> list[_Outcome]:
        """The batch again in one transaction, a statement per job: a job whose own values fail gets its error and
        leaves the others alone; an error of the whole store fails them all."""
        return self._in_transaction(lambda: [(future, self._write_one(work, stamp)) for work, future in batch])

    def _write_one(self, work: _Work, stamp: str) -> Any:
        """One job's statements in the open transaction: its outcome, or `EventRefused` for its own values (the
        failed statement changed nothing)."""
        try:
            if isinstance(work, tuple):
                event, channel, traceparent = work
                new = self._conn.execute(INSERT_EVENT, insert_params(event, channel, stamp)).rowcount == 1
                if new and traceparent:
                    self._conn.execute(INSERT_TRACE, (event.id, traceparent))
                return new
            return work(self._conn, stamp)
        except Exception as exc:
            if store_wide(exc) or not self._conn.in_transaction:
                raise
            return EventRefused(describe(exc) if isinstance(exc, sqlite3.Error) else _named(exc))

    def _in_transaction(self, write: Callable[[], list[_Outcome]]) -> list[_Outcome]:
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

    def _insert_events(self, events: list[_Insert], stamp: str) -> set[str]:
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


def _event_outcomes(batch: list[_Job], inserted: set[str]) -> list[_Outcome]:
    """True for the first of each new id in the batch, False for repeated ids."""
    outcomes: list[_Outcome] = []
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


def _failing(batch: list[_Job], error: StoreError) -> list[_Outcome]:
    return [(future, error) for _, future in batch]


def _settle(outcomes: list[_Outcome]) -> None:
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


async def get_event(conn: aiosqlite.Connection, event_id: str) -> InboxRecord | None:
    rows = await fetch_rows(conn, "SELECT * FROM inbox WHERE id = ?", (event_id,))
    return InboxRecord.from_row(rows[0]) if rows else None


def glob_to_like(pattern: str) -> str:
    """A shell-style glob (`no.altinn.correspondence.*`) as a SQL LIKE pattern with `\\` as escape."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


async def list_events(
    conn: aiosqlite.Connection,
    *,
    status: str | None = None,
    type_glob: str | None = None,
    resource: str | None = None,
    since: str | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[InboxRecord]:
    """Events filtered by status, type (glob), resource and `received_at >= since`."""
    where, params = [], []
    if status:
        where.append("status = ?")
        params.append(status)
    if type_glob:
        where.append("type LIKE ? ESCAPE '\\'")
        params.append(glob_to_like(type_glob))
    if resource:
        where.append("resource = ?")
        params.append(resource)
    if since:
        where.append("received_at >= ?")
        params.append(since)
    sql = "SELECT * FROM inbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?"
    params.append(str(int(limit)))
    rows = await fetch_rows(conn, sql, params)
    return [InboxRecord.from_row(row) for row in rows]


async def count_by_status(conn: aiosqlite.Connection) -> dict[str, int]:
    rows = await fetch_rows(conn, "SELECT status, COUNT(*) FROM inbox GROUP BY status")
    return {str(row[0]): int(row[1]) for row in rows}
