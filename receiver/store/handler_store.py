"""The store as handlers see it (`ctx.store`, the `handlers.Store` protocol), over the dispatcher's connection.

Handlers get statements, not the connection: what a second store backend can offer too (named parameters, one
statement per call, rows as dicts), and one object per pipeline run, the place where the writes of a run whose
lease was lost can be refused. Each call is one round trip to the connection's thread and runs its statement to the
end there, so a statement never stays open across an await while other pipelines use the connection.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite


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
