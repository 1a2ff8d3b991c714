"""The store as handlers see it (`ctx.store`, the `handlers.Store` protocol), over the dispatcher's `Database`.

Handlers get statements, not the connection: what every backend offers alike (named parameters, one statement per
call, rows as dicts), and one object per pipeline run, the place where the writes of a run whose lease was lost can
be refused. Each call runs its statement to the end, so a statement never stays open across an await while other
pipelines use the database.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from receiver.store.errors import StoreError
from receiver.store.interface import Database


class HandlerStore:
    """`handlers.Store`: one per pipeline run (and one for the handlers' `start`)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.dialect: str = db.backend

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return await self._db.execute(sql, params)

    async def execute_many(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None:
        await self._db.execute_many(sql, rows)

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return await self._db.fetch(sql, params)

    @property
    def conn(self) -> Any:
        """Deprecated: the raw aiosqlite connection that `ctx.store.conn` was before `execute`/`fetch`. It exists
        only while the store is SQLite, and bypasses what the dispatcher does with a run's writes."""
        warnings.warn(
            "ctx.store.conn is deprecated: use ctx.store.execute/execute_many/fetch (docs/handlers.md)",
            DeprecationWarning,
            stacklevel=2,
        )
        conn = getattr(self._db, "conn", None)
        if conn is None:
            raise StoreError(f"ctx.store.conn exists only on SQLite, the store is {self.dialect}", transient=False)
        return conn
