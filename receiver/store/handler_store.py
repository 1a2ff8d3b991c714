"""The store as handlers see it (`ctx.store`, the `handlers.Store` protocol), over the dispatcher's connection.

Handlers get statements, not the connection: what a second store backend can offer too (named parameters, one
statement per call, rows as dicts), and one object per pipeline run, the place where the writes of a run whose
lease was lost are refused. Each call is one round trip to the connection's thread and runs its statement to the
end there, so a statement never stays open across an await while other pipelines use the connection.

A run's store (`FencedHandlerStore`) runs each statement in a transaction that first checks that the run's claim
still holds (`queue.FENCE`): a run whose lease ran out and was taken over by another worker writes nothing, and its
handler gets `LeaseLost`. The check, the statement and the commit are one step of the connection's thread, so that
no statement of another pipeline can run in between.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

from receiver.store import db
from receiver.store.queue import FENCE, LeaseLost

T = TypeVar("T")


class HandlerStore:
    """`handlers.Store` on SQLite: one per pipeline run (and one for the handlers' `start`)."""

    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        async with self._conn.execute(sql, dict(params or {})) as cursor:
            return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None:
        await self._conn.executemany(sql, [dict(row) for row in rows])

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows: Iterable[sqlite3.Row] = await self._conn.execute_fetchall(sql, dict(params or {}))
        return [{key: row[key] for key in row.keys()} for row in rows]  # noqa: SIM118 (Row iterates values)

    @property
    def conn(self) -> aiosqlite.Connection:
        """Deprecated: the raw connection that `ctx.store.conn` was before `execute`/`fetch`. It exists only while
        the store is SQLite, and bypasses what the dispatcher does with a run's writes."""
        warnings.warn(
            "ctx.store.conn is deprecated: use ctx.store.execute/execute_many/fetch (docs/handlers.md)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._conn


@dataclass(frozen=True)
class Claim:
    """The claim a run holds, which its writes are fenced by: the event (`seq`, `event_id`) and the claim's token
    (`lease_owner`)."""

    seq: int
    token: str
    event_id: str


def fenced(conn: sqlite3.Connection, claim: Claim, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work` in a transaction that does it only while `claim` holds; LeaseLost, with nothing done, when not."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(FENCE, {"seq": claim.seq, "token": claim.token}).fetchone() is None:
            raise LeaseLost(claim.event_id)
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class FencedHandlerStore(HandlerStore):
    """`ctx.store` for one run: each statement runs only while the run's claim holds (`fenced`). When it does not,
    the handler gets LeaseLost and `on_lost` is called, for the dispatcher to end the run."""

    def __init__(self, conn: aiosqlite.Connection, claim: Claim, on_lost: Callable[[], None]) -> None:
        super().__init__(conn)
        self._claim = claim
        self._on_lost = on_lost

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        values = dict(params or {})
        return await self._fenced(lambda conn: conn.execute(sql, values).rowcount)

    async def execute_many(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None:
        values = [dict(row) for row in rows]
        await self._fenced(lambda conn: conn.executemany(sql, values))

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        values = dict(params or {})
        return await self._fenced(lambda conn: [db.row_fields(row) for row in conn.execute(sql, values)])

    async def _fenced(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await db.in_connection_thread(self._conn, lambda conn: fenced(conn, self._claim, work))
        except LeaseLost:
            self._on_lost()
            raise
