"""The inbox writer on PostgreSQL: the webhook's and catch-up's inserts, committed in groups on a connection of its
own, each insert answered only once its row is committed (`synchronous_commit = on`).

One task takes everything queued and stores the events in one `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`: the
pushes that arrive while a commit waits for the disk share the next one. The ids it returns are the new ones; the others
were there before. A batch of `COPY_FROM` events or more (a page of catch-up) is first copied into a temporary table of
the connection's own (`COPY`) and inserted from there in their order: psycopg adapts a copied row in C, where a
multi-row `VALUES` costs it about 27 µs of Python per event (11 parameters each), and PostgreSQL takes a page about 30 %
faster (bench/README.md). A batch of events only, none with a trace context, is that one statement (it commits itself; a
copied batch, one transaction); otherwise the new events' trace contexts (`inbox_traces`) and the validations go into
the same transaction. If a statement fails for a row's data (a value PostgreSQL refuses, such as a NUL character in
text), the batch is written again in one transaction, each job under a savepoint of its own, so a bad row fails alone
(`EventRefused`) and its neighbours are acknowledged; any other failure (the server gone, the disk full) fails the whole
batch, of which nothing is kept. A lost connection is opened again for the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import psycopg

from receiver.store.errors import EventRefused, StoreError
from receiver.store.inbox import (
    INSERT_COLUMNS,
    MAX_BATCH,
    CommitRecord,
    EventJob,
    Outcome,
    answered,
    event_job,
    event_outcomes,
    failing,
    insert_params,
    settle,
    validation_job,
)
from receiver.store.interface import Params
from receiver.store.postgres.connection import Row, connect, describe, translate
from receiver.store.postgres.migrate import SERVE
from receiver.store.records import NewEvent
from receiver.store.traces import INSERT_TRACE, trace_row
from receiver.timeutil import now_iso

log = logging.getLogger(__name__)

INSERT_ROWS = "INSERT INTO inbox ({columns}, status) VALUES {rows} ON CONFLICT (id) DO NOTHING RETURNING id"
COPY_FROM = 100
"""The fewest events a batch copies (`COPY`) rather than lists in its statement. Copying takes three more round trips
(the transaction around it, the copy) than a statement, which a batch of a few pushes would wait for to save a few
µs; measured at 1 000 events (a page), not in between."""
_COLUMNS = ", ".join(INSERT_COLUMNS)
CREATE_PAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS inbox_page ON COMMIT DELETE ROWS"
    f" AS SELECT 0::bigint AS n, {_COLUMNS} FROM inbox WITH NO DATA"
)
"""Where a batch is copied: the connection's own, emptied by each commit (and by `INSERT_PAGE`)."""
COPY_PAGE = f"COPY inbox_page (n, {_COLUMNS}) FROM STDIN"
INSERT_PAGE = f"""
    WITH page AS (DELETE FROM inbox_page RETURNING *)
    INSERT INTO inbox ({_COLUMNS}, status) SELECT {_COLUMNS}, 'pending' FROM page ORDER BY n
    ON CONFLICT (id) DO NOTHING RETURNING id
"""
PROBE = """
    INSERT INTO receiver_state (key, value, updated_at) VALUES ('inbox.writer.probe', :stamp, :stamp)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""
ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)
"""What PostgreSQL (or psycopg, adapting a value) says about one row's values, not about the store."""

_Conn = psycopg.AsyncConnection[Row]
# Statements run inside the batch's transaction, given its commit timestamp, that say what came of them.
_Statements = Callable[[_Conn, str], Awaitable[bool]]
_Work = EventJob | _Statements
_Job = tuple[_Work, asyncio.Future[bool]]


class _Unsynced:
    """`execute`'s statement: a batch of these only commits without waiting for the disk (`Writer.execute`)."""

    def __init__(self, sql: str, params: Params) -> None:
        self.sql = sql
        self.params = params

    async def __call__(self, conn: _Conn, stamp: str) -> bool:
        return (await conn.execute(translate(self.sql), dict(self.params))).rowcount > 0


class PostgresWriter(CommitRecord):
    """`Writer` (receiver/store/interface.py) on its own connection to the database at `url`."""

    def __init__(self, url: str, *, max_batch: int = MAX_BATCH, copy_from: int = COPY_FROM) -> None:
        self._url = url
        self._max_batch = max_batch
        self._copy_from = copy_from
        self._conn: _Conn | None = None
        self._jobs: list[_Job] = []
        self._wake = asyncio.Event()
        self._statements: dict[int, str] = {}
        self._closing = False
        self.broken = ""  # a database is not a file that can be deleted underneath the writer
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    @property
    def alive(self) -> bool:
        return not self._task.done()

    def _submit(self, job: _Work) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        if self._closing or self._task.done():
            return answered(loop, StoreError("the inbox writer has stopped"))
        future: asyncio.Future[bool] = loop.create_future()
        self._jobs.append((job, future))
        self._wake.set()
        return future

    def insert_event(self, event: NewEvent, channel: str, traceparent: str = "") -> asyncio.Future[bool]:
        return self._submit(event_job(event, channel, traceparent))

    def insert_events(
        self, events: Sequence[NewEvent], channel: str, traceparent: str = ""
    ) -> list[asyncio.Future[bool]]:
        # Queued in one step of the event loop: the writer's task takes them into one batch.
        return [self.insert_event(event, channel, traceparent) for event in events]

    def record_validation(self, event_id: str, subscription_id: str, source: str) -> asyncio.Future[bool]:
        statement = validation_job(event_id, subscription_id, source)

        async def record(conn: _Conn, stamp: str) -> bool:
            sql, params = statement(stamp)
            return (await conn.execute(translate(sql), params)).rowcount == 1

        return self._submit(record)

    def execute(self, sql: str, params: Params) -> asyncio.Future[bool]:
        return self._submit(_Unsynced(sql, params))

    def ready(self, fresh_for: float) -> asyncio.Future[bool]:
        """A recent commit's word, else a real write and commit (`PROBE`): the store accepts writes now."""
        if self._wrote_lately(fresh_for):
            return answered(asyncio.get_running_loop(), True)
        return self._submit(_probe)

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._jobs:
                batch, self._jobs = self._jobs[: self._max_batch], self._jobs[self._max_batch :]
                settle(await self._commit(batch))
            if self._closing:
                return

    async def _commit(self, batch: list[_Job]) -> list[Outcome]:
        stamp = now_iso()
        try:
            conn = await self._connection()
            try:
                outcomes = await self._write_together(conn, batch, stamp)
            except ROW_ERRORS:
                outcomes = await self._write_one_by_one(conn, batch, stamp)
        except Exception as exc:  # every failure of the store: no future of this batch may say "stored"
            reason = str(exc) if isinstance(exc, StoreError) else describe(exc)
            if not isinstance(exc, StoreError | psycopg.DataError | psycopg.IntegrityError):
                await self._drop_connection()  # lost, or in a state nobody knows: the next batch opens a new one
            if reason != self.last_error:
                log.error("inbox commit failed", extra={"reason": reason, "batch": len(batch)})
            self.last_error = reason
            return failing(batch, StoreError(reason))
        return self._committed(outcomes)

    async def _write_together(self, conn: _Conn, batch: list[_Job], stamp: str) -> list[Outcome]:
        """The batch's events in one statement (committing itself when they are all the batch has, and none carries
        a trace context), else in one transaction with the new events' trace contexts and the other jobs."""
        events = [work for work, _ in batch if isinstance(work, tuple)]
        rows = [insert_params(event, channel, stamp) for event, channel, _ in events]
        if len(events) == len(batch) and not any(traceparent for _, _, traceparent in events):
            return event_outcomes(batch, await self._insert(conn, rows))
        async with conn.transaction():
            if all(isinstance(work, _Unsynced) for work, _ in batch):
                # No wait for the WAL's flush: PostgreSQL replays the WAL in order, so a crash that loses this commit
                # keeps nothing committed after it, and the next commit flushes it.
                await conn.execute("SET LOCAL synchronous_commit = off")
            inserted = await self._insert(conn, rows) if rows else set()
            traces = [trace_row(event.id, parent) for event, _, parent in events if parent and event.id in inserted]
            if traces:
                async with conn.cursor() as cursor:
                    await cursor.executemany(translate(INSERT_TRACE), traces)
            outcomes = event_outcomes(batch, inserted)
            for work, future in batch:
                if not isinstance(work, tuple):
                    outcomes.append((future, await work(conn, stamp)))
        return outcomes

    async def _write_one_by_one(self, conn: _Conn, batch: list[_Job], stamp: str) -> list[Outcome]:
        """The batch again in one transaction, each job under a savepoint: a job whose own values fail gets its
        `EventRefused` and leaves the others alone; any other error fails them all."""
        outcomes: list[Outcome] = []
        async with conn.transaction():
            for work, future in batch:
                try:
                    async with conn.transaction():
                        outcomes.append((future, await self._write_one(conn, work, stamp)))
                except ROW_ERRORS as exc:
                    outcomes.append((future, EventRefused(describe(exc))))
        return outcomes

    async def _write_one(self, conn: _Conn, work: _Work, stamp: str) -> bool:
        if not isinstance(work, tuple):
            return await work(conn, stamp)
        event, channel, traceparent = work
        new = bool(await self._insert(conn, [insert_params(event, channel, stamp)]))
        if new and traceparent:
            await conn.execute(translate(INSERT_TRACE), trace_row(event.id, traceparent))
        return new

    async def _insert(self, conn: _Conn, rows: list[tuple[str, ...]]) -> set[str]:
        """The rows in one statement, or copied first when there are `copy_from` or more; the ids that are new."""
        if len(rows) >= self._copy_from:
            return await self._copy(conn, rows)
        sql = self._statements.get(len(rows))
        if sql is None:
            width = len(INSERT_COLUMNS)
            row = "(" + ", ".join(["%s"] * width) + ", 'pending')"
            sql = INSERT_ROWS.format(columns=", ".join(INSERT_COLUMNS), rows=", ".join([row] * len(rows)))
            self._statements[len(rows)] = sql
        cursor = await conn.execute(sql, [value for row in rows for value in row])
        return {str(found["id"]) for found in await cursor.fetchall()}

    async def _copy(self, conn: _Conn, rows: list[tuple[str, ...]]) -> set[str]:
        """The rows copied into `inbox_page`, then inserted from it in their order, in one transaction (a savepoint
        inside the batch's own)."""
        async with conn.transaction():
            async with conn.cursor() as copying, copying.copy(COPY_PAGE) as copy:
                for n, row in enumerate(rows):
                    await copy.write_row((n, *row))
            cursor = await conn.execute(INSERT_PAGE)
            return {str(found["id"]) for found in await cursor.fetchall()}

    async def _connection(self) -> _Conn:
        """The writer's connection, holding the lock that says a receiver writes to this store (`store copy`
        refuses the store meanwhile, and this refuses to write while a copy holds it)."""
        if self._conn is None or self._conn.closed:
            conn = await connect(self._url)
            row = await (await conn.execute(SERVE)).fetchone()
            if not (row and row["free"]):
                await conn.close()
                raise StoreError("a store copy is running from or into this store: wait for it to finish")
            await conn.execute(CREATE_PAGE)
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def _probe(conn: _Conn, stamp: str) -> bool:
    """A probe write (`PROBE`) in the batch's transaction."""
    await conn.execute(translate(PROBE), {"stamp": stamp})
    return True
