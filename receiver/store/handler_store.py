"""The store as handlers see it (`ctx.store`, the `handlers.Store` protocol), over the dispatcher's `Database`.

Handlers get statements, not the connection: what every backend offers alike (named parameters, one statement per
call, rows as dicts), and one object per pipeline run, the place where the writes of a run whose lease was lost are
refused. Each call runs its statement to the end, so a statement never stays open across an await while other
pipelines use the database.

A run's store (`FencedHandlerStore`) runs each statement in a transaction that first checks that the run's claim
still holds (`queue.FENCE`, through `Database.guarded`): a run whose lease ran out and was taken over by another
worker writes nothing, and its handler gets `LeaseLost`. No statement of another pipeline runs in between (on
SQLite the check, the statement and the commit are one step of the connection's thread; on PostgreSQL the check
locks the event's row until the commit).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from receiver.store.errors import StoreError
from receiver.store.interface import Call, Database
from receiver.store.queue import FENCE, LeaseLost


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


@dataclass(frozen=True)
class Claim:
    """The claim a run holds, which its writes are fenced by: the event (`seq`, `event_id`) and the claim's token
    (`lease_owner`)."""

    seq: int
    token: str
    event_id: str


class FencedHandlerStore(HandlerStore):
    """`ctx.store` for one run: each statement runs only while the run's claim holds. When it does not, the handler
    gets LeaseLost (nothing done) and `on_lost` is called, for the dispatcher to end the run."""

    def __init__(self, db: Database, claim: Claim, on_lost: Callable[[], None]) -> None:
        super().__init__(db)
        self._claim = claim
        self._on_lost = on_lost

    async def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return int(await self._fenced("execute", sql, params))

    async def execute_many(self, sql: str, rows: Iterable[Mapping[str, Any]]) -> None:
        await self._fenced("execute_many", sql, [dict(row) for row in rows])

    async def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._fenced("fetch", sql, params)
        return rows

    async def _fenced(self, call: Call, sql: str, params: Any) -> Any:
        claim = {"seq": self._claim.seq, "token": self._claim.token}
        try:
            held, result = await self._db.guarded(FENCE[self._db.backend], claim, call, sql, params)
        except StoreError:
            # The server may have ended a transaction this process left idle past its lease (paused), and the
            # claim been taken over meanwhile: that is the run's lease lost, not a store failure.
            if await self._db.fetch(FENCE[self._db.backend], claim):
                raise
            held = False
        if not held:
            self._on_lost()
            raise LeaseLost(self._claim.event_id)
        return result
