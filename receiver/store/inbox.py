"""The inbox table: every received event, keyed on its CloudEvent id, and the validation handshakes beside it.

Reads and single inserts work on any backend's `Database`; `InboxWriter` is SQLite's group-commit writer (the
`Writer` of receiver/store/interface.py for a store file).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from receiver.store.db import BUSY_TIMEOUT_MS, StoreError, connect_sync, describe
from receiver.store.interface import Database
from receiver.store.records import CHANNELS, InboxRecord, NewEvent
from receiver.timeutil import now_iso

log = logging.getLogger(__name__)

INSERT_COLUMNS = ("id", "type", "source", "subject", "resource", "resourceinstance", "time", "raw", "received_at",
                  "channel", "updated_at")  # fmt: skip
"""The columns an insert sets besides `status` ('pending'), in the order of `insert_params`."""

INSERT_EVENT = f"""
    INSERT INTO inbox ({", ".join(INSERT_COLUMNS)}, status)
    VALUES ({", ".join(f":{column}" for column in INSERT_COLUMNS)}, 'pending')
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


def event_job(event: NewEvent, channel: str) -> tuple[NewEvent, str]:
    """A writer's job for an event (`Writer.insert_event`); ValueError for an unknown channel."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    return event, channel


def validation_job(event_id: str, subscription_id: str, source: str) -> Callable[[str], tuple[str, dict[str, str]]]:
    """A writer's job for a validation handshake (`Writer.record_validation`): the statement for a commit stamp."""
    return lambda stamp: (INSERT_VALIDATION, validation_row(event_id, subscription_id, source, stamp))


async def insert_event(db: Database, event: NewEvent, channel: str) -> bool:
    """Store one event and commit; False when its id was already there (nothing changes then)."""
    return await db.execute(INSERT_EVENT, event_row(*event_job(event, channel), now_iso())) == 1


PROBE_STATE = """
    INSERT INTO receiver_state (key, value, updated_at) VALUES ('inbox.writer.probe', ?1, ?1)
    ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""

INSERT_EVENTS = """
    INSERT INTO inbox (id, type, source, subject, resource, resourceinstance, time, raw,
                       received_at, channel, status, updated_at)
    VALUES {rows}
    ON CONFLICT(id) DO NOTHING
"""
INSERT_EVENTS_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)"

# Work for the writer thread: an event to insert (with its channel), or a statement built from the batch's
# commit timestamp.
_Statement = Callable[[str], tuple[str, Any]]
_Work = tuple[NewEvent, str] | _Statement
_T = TypeVar("_T")


class InboxWriter:
    """Durable inserts for the webhook: one thread with its own sqlite3 connection, committing in groups.

    Callers on the event loop get an asyncio future per insert. The thread takes everything queued, stores it in one
    transaction (one fsync for the batch), then resolves every future of the batch at once: True for a new row, False
    for a repeated id. If the commit fails, each future of the batch gets a `StoreError` and nothing of the batch is
    kept, so a caller never learns "stored" for something that is not on disk.

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
        # The writer waits for the write lock itself (see _locked): SQLite's own busy handler sleeps in steps of up
        # to 100 ms, so a push could wait that long after the dispatcher's short write had already ended.
        self._conn.execute("PRAGMA busy_timeout=0")
        self._busy_timeout = busy_timeout_ms / 1000
        self._loop = loop
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[tuple[_Work, asyncio.Future[bool]] | None] = queue.SimpleQueue()
        self._insert_sql: dict[int, str] = {}
        self.last_error = ""
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

    def insert_event(self, event: NewEvent, channel: str) -> asyncio.Future[bool]:
        """Store one event; the future says True when it is new and committed, False for a repeated id."""
        return self._submit(event_job(event, channel))

    def record_validation(self, event_id: str, subscription_id: str, source: str) -> asyncio.Future[bool]:
        """Record Altinn's validation handshake; False for a repeated event id."""
        return self._submit(validation_job(event_id, subscription_id, source))

    def probe(self) -> asyncio.Future[bool]:
        """Whether a write can commit now: takes the write lock, and after a failed commit really writes once."""
        return self._submit(self._probe_statement)

    def _probe_statement(self, stamp: str) -> tuple[str, Any]:
        if self.last_error:
            return PROBE_STATE, (stamp,)
        return "", ()

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

    def _commit(self, batch: list[tuple[_Work, asyncio.Future[bool]]]) -> list[tuple[asyncio.Future[bool], Any]]:
        stamp = now_iso()
        events = [work for work, _ in batch if isinstance(work, tuple)]
        try:
            if len(events) == len(batch):
                inserted = self._insert_events(events, stamp)
                outcomes = _event_outcomes(batch, inserted)
            else:
                outcomes = self._commit_mixed(batch, events, stamp)
        except Exception as exc:  # every failure of the store: no future of this batch may say "stored"
            reason = describe(exc)
            if reason != self.last_error:
                log.error("inbox commit failed", extra={"reason": reason, "batch": len(batch)})
            self.last_error = reason
            error = StoreError(reason)
            return [(future, error) for _, future in batch]
        if self.last_error:
            log.info("inbox commits work again", extra={"after": self.last_error})
            self.last_error = ""
        return outcomes

    def _commit_mixed(
        self, batch: list[tuple[_Work, asyncio.Future[bool]]], events: list[tuple[NewEvent, str]], stamp: str
    ) -> list[tuple[asyncio.Future[bool], Any]]:
        """Events and other statements (validations, probes) in one explicit transaction."""
        conn = self._conn
        self._locked(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            inserted = self._insert_events(events, stamp) if events else set()
            outcomes = _event_outcomes(batch, inserted)
            for work, future in batch:
                if not isinstance(work, tuple):
                    sql, params = work(stamp)
                    outcomes.append((future, conn.execute(sql, params).rowcount == 1 if sql else True))
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

    def _insert_events(self, events: list[tuple[NewEvent, str]], stamp: str) -> set[str]:
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
        params = [value for event, channel in events for value in insert_params(event, channel, stamp)]
        cursor = self._locked(lambda: self._conn.execute(sql, params))
        added = cursor.rowcount
        if added == count:
            return {event.id for event, _ in events}
        if added == 0:
            return set()
        ids = [event.id for event, _ in events]
        marks = ", ".join("?" * count)
        newest_first = f"SELECT id FROM inbox WHERE id IN ({marks}) AND seq <= ? ORDER BY seq DESC LIMIT ?"
        return {row[0] for row in self._conn.execute(newest_first, [*ids, cursor.lastrowid, added])}


def _event_outcomes(
    batch: list[tuple[_Work, asyncio.Future[bool]]], inserted: set[str]
) -> list[tuple[asyncio.Future[bool], Any]]:
    """True for the first of each new id in the batch, False for repeated ids."""
    outcomes: list[tuple[asyncio.Future[bool], Any]] = []
    for work, future in batch:
        if isinstance(work, tuple):
            event_id = work[0].id
            outcomes.append((future, event_id in inserted))
            inserted.discard(event_id)
    return outcomes


def _settle(outcomes: list[tuple[asyncio.Future[bool], Any]]) -> None:
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


def glob_to_like(pattern: str) -> str:
    """A shell-style glob (`no.altinn.correspondence.*`) as a SQL LIKE pattern with `\\` as escape."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


@dataclass(frozen=True)
class EventFilter:
    """The selection the operator commands share: status, type glob, resource, received at or after `since`."""

    status: str | None = None
    type_glob: str | None = None
    resource: str | None = None
    since: str | None = None

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
        if self.resource:
            where.append("resource = :resource")
            params["resource"] = self.resource
        if self.since:
            where.append("received_at >= :since")
            params["since"] = self.since
        return where, params


async def list_events(
    db: Database, selection: EventFilter = EventFilter(), *, limit: int = 100, newest_first: bool = True
) -> list[InboxRecord]:
    """The first `limit` events of `selection`, newest first unless `newest_first` is False."""
    where, params = selection.sql()
    sql = "SELECT * FROM inbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT :limit"
    rows = await db.fetch(sql, {**params, "limit": int(limit)})
    return [InboxRecord.from_row(row) for row in rows]


async def count_by_status(db: Database) -> dict[str, int]:
    rows = await db.fetch("SELECT status, COUNT(*) AS n FROM inbox GROUP BY status")
    return {str(row["status"]): int(row["n"]) for row in rows}
