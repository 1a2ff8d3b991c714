"""The inbox writer on PostgreSQL: the webhook's and catch-up's inserts, committed in groups on a connection of its
own, each insert answered only once its row is committed (`synchronous_commit = on`).

One task takes everything queued and stores the events in one multi-row `INSERT … ON CONFLICT (id) DO NOTHING
RETURNING id`, a transaction of its own: the pushes that arrive while a commit waits for the disk share the next
one. The ids it returns are the new ones; the others were there before. If that statement fails for a row's data (a
value PostgreSQL refuses, such as a NUL character in text), the batch's events are stored one statement each, so a
bad row fails alone and its neighbours are acknowledged; any other failure (the server gone, the disk full) fails
the whole batch, of which nothing is kept. A lost connection is opened again for the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from receiver.store.errors import StoreError
from receiver.store.inbox import INSERT_COLUMNS, event_job, insert_params, validation_job
from receiver.store.postgres.connection import Row, connect, describe, translate
from receiver.store.postgres.migrate import SERVE
from receiver.store.records import NewEvent
from receiver.timeutil import now_iso

log = logging.getLogger(__name__)

MAX_BATCH = 512
INSERT_ROWS = "INSERT INTO inbox ({columns}, status) VALUES {rows} ON CONFLICT (id) DO NOTHING RETURNING id"
PROBE = """
    INSERT INTO receiver_state (key, value, updated_at) VALUES ('inbox.writer.probe', :stamp, :stamp)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""

_Job = tuple[NewEvent, str] | Callable[[str], tuple[str, dict[str, Any]]]


class PostgresWriter:
    """`Writer` (receiver/store/interface.py) on its own connection to the database at `url`."""

    def __init__(self, url: str, *, max_batch: int = MAX_BATCH) -> None:
        self._url = url
        self._max_batch = max_batch
        self._conn: psycopg.AsyncConnection[Row] | None = None
        self._jobs: list[tuple[_Job, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._statements: dict[int, str] = {}
        self._closing = False
        self.last_error = ""
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    def _submit(self, job: _Job) -> asyncio.Future[bool]:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._closing or self._task.done():
            future.set_exception(StoreError("the inbox writer has stopped"))
            return future
        self._jobs.append((job, future))
        self._wake.set()
        return future

    def insert_event(self, event: NewEvent, channel: str) -> asyncio.Future[bool]:
        return self._submit(event_job(event, channel))

    def record_validation(self, event_id: str, subscription_id: str, source: str) -> asyncio.Future[bool]:
        return self._submit(validation_job(event_id, subscription_id, source))

    def probe(self) -> asyncio.Future[bool]:
        """A real write and commit: the store accepts writes now."""
        return self._submit(lambda stamp: (PROBE, {"stamp": stamp}))

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
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[_Job, asyncio.Future[bool]]]) -> None:
        stamp = now_iso()
        events = [(job, future) for job, future in batch if isinstance(job, tuple)]
        others = [(job, future) for job, future in batch if not isinstance(job, tuple)]
        try:
            conn = await self._connection()
            if events:
                await self._store_events(conn, events, stamp)
            for job, future in others:
                sql, params = job(stamp)
                cursor = await conn.execute(translate(sql), params)
                _settle(future, cursor.rowcount == 1 or sql is PROBE)
        except Exception as exc:  # every failure of the store: no future of this batch may say "stored"
            reason = str(exc) if isinstance(exc, StoreError) else describe(exc)
            if not isinstance(exc, StoreError | psycopg.DataError | psycopg.IntegrityError):
                await self._drop_connection()  # lost, or in a state nobody knows: the next batch opens a new one
            if reason != self.last_error:
                log.error("inbox commit failed", extra={"reason": reason, "batch": len(batch)})
            self.last_error = reason
            for _, future in batch:
                _settle(future, StoreError(reason))
            return
        if self.last_error:
            log.info("inbox commits work again", extra={"after": self.last_error})
            self.last_error = ""

    async def _store_events(
        self, conn: psycopg.AsyncConnection[Row], events: list[tuple[Any, asyncio.Future[bool]]], stamp: str
    ) -> None:
        rows = [insert_params(event, channel, stamp) for (event, channel), _ in events]
        try:
            new = await self._insert(conn, rows)
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError):
            if len(rows) == 1:
                raise
            new = set()
            for row, (_, future) in zip(rows, events, strict=True):
                try:
                    new |= await self._insert(conn, [row])
                except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
                    _settle(future, StoreError(f"the event was refused: {describe(exc)}", transient=False))
        for (event, _), future in events:
            _settle(future, event.id in new)
            new.discard(event.id)  # a repeated id later in the same batch is a duplicate

    async def _insert(self, conn: psycopg.AsyncConnection[Row], rows: list[tuple[str, ...]]) -> set[str]:
        sql = self._statements.get(len(rows))
        if sql is None:
            width = len(INSERT_COLUMNS)
            row = "(" + ", ".join(["%s"] * width) + ", 'pending')"
            sql = INSERT_ROWS.format(columns=", ".join(INSERT_COLUMNS), rows=", ".join([row] * len(rows)))
            self._statements[len(rows)] = sql
        cursor = await conn.execute(sql, [value for row in rows for value in row])
        return {str(found["id"]) for found in await cursor.fetchall()}

    async def _connection(self) -> psycopg.AsyncConnection[Row]:
        """The writer's connection, holding the lock that says a receiver writes to this store (`store copy`
        refuses the store meanwhile, and this refuses to write while a copy holds it)."""
        if self._conn is None or self._conn.closed:
            conn = await connect(self._url)
            row = await (await conn.execute(SERVE)).fetchone()
            if not (row and row["free"]):
                await conn.close()
                raise StoreError("a store copy is running from or into this store: wait for it to finish")
            self._conn = conn
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _settle(future: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
