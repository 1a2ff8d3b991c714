"""Reaching PostgreSQL with psycopg 3: the URL (libpq's, with its environment), the statements' parameter style, a
failure as one line, and `PostgresDatabase`, the store's `Database` over a small pool of connections.

libpq reads the URL and everything it leaves out from its own environment (`PGPASSWORD`, `PGPASSFILE`,
`PGSSLMODE`, `PGSERVICE`, …), so every libpq parameter works as documented for libpq, `sslmode` included. The
receiver's tables live in the first schema of the connection's `search_path` (`?options=-csearch_path%3Dname`
chooses another than `public`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from receiver.store.errors import StoreError
from receiver.store.interface import POSTGRESQL, Call, Database, Params, Row

CONNECT_TIMEOUT = 10
"""Seconds to wait for the server before a connection attempt fails (libpq's connect_timeout, unless the URL sets
one)."""

# A named parameter (`:name`, not the `::` of a cast), a quoted string or identifier (left as it is), or a `%`.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|(?<![:\w]):([A-Za-z_]\w*)|%")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The statement with `:name` parameters in psycopg's style, `%(name)s`, and every literal `%` doubled."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return f"%({match.group(1)})s"
        return match.group(0).replace("%", "%%")  # psycopg reads `%` inside quotes too

    return _TOKENS.sub(replace, sql)


def display(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def describe(error: BaseException) -> str:
    """One line saying why a PostgreSQL operation failed (the server's message, or why it could not be reached)."""
    if isinstance(error, PoolTimeout):
        return "no connection to PostgreSQL within the pool's timeout (is the server up and reachable?)"
    if isinstance(error, psycopg.OperationalError) and not getattr(error, "sqlstate", None):
        return f"cannot reach PostgreSQL: {' '.join(str(error).split())}"
    diagnostic = getattr(error, "diag", None)
    primary = getattr(diagnostic, "message_primary", None) if diagnostic is not None else None
    text = primary or str(error)
    return f"database error: {' '.join(text.split())}"


def store_error(error: BaseException, *, transient: bool = True) -> StoreError:
    return StoreError(describe(error), transient=transient)


def session(*, background: bool = False, read_only: bool = False, stalled_after: float | None = None) -> list[str]:
    """The settings of a connection: every commit waits for the disk (`synchronous_commit = on`, whatever the
    server's default), except the background work's, whose lost commit only means an event runs again. With
    `stalled_after`, the server ends the session of a transaction left idle that many seconds (the client paused or
    starved, e.g. between a claim's row lock and its commit), so that its locks do not outlast it."""
    settings = [f"SET synchronous_commit = {'off' if background else 'on'}"]
    if read_only:
        settings.append("SET default_transaction_read_only = on")
    if stalled_after is not None:
        settings.append(f"SET idle_in_transaction_session_timeout = {max(1, round(stalled_after * 1000))}")
    return settings


async def connect(url: str, *, background: bool = False, read_only: bool = False) -> psycopg.AsyncConnection[Row]:
    """One autocommit connection with rows as dicts."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot open store {display(url)}: {describe(exc)}") from exc
    try:
        for statement in session(background=background, read_only=read_only):
            await conn.execute(statement)
    except psycopg.Error as exc:
        await conn.close()
        raise store_error(exc) from exc
    return conn


class PostgresDatabase:
    """`Database` over a pool of autocommit connections: each statement takes one for as long as it runs, a
    transaction for as long as its block."""

    backend = POSTGRESQL

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]]) -> None:
        self._pool = pool

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        size: int = 4,
        background: bool = False,
        read_only: bool = False,
        stalled_after: float | None = None,
    ) -> Database:
        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            for statement in session(background=background, read_only=read_only, stalled_after=stalled_after):
                await conn.execute(statement)

        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT},
            configure=configure,
            open=False,
            timeout=30,
            name="altinn-receiver",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT + 5)
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise StoreError(f"cannot open store {display(url)}: {describe(exc)}") from exc
        except BaseException:
            # Cancelled while it connects (Ctrl-C in `send --follow`): the pool's tasks must not outlive the open.
            # A pool worker cancelled in the middle of a connection attempt takes that for the attempt's failure and
            # waits for more work, so asyncio.run's own cancelling of what is left would wait for it forever.
            await pool.close()
            raise
        return cls(pool)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            async with self._pool.connection() as conn:
                return await _execute(conn, sql, params)
        except (psycopg.Error, PoolTimeout) as exc:
            raise store_error(exc) from exc

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            async with self._pool.connection() as conn, conn.cursor() as cursor:
                await cursor.executemany(translate(sql), [dict(row) for row in rows])
        except (psycopg.Error, PoolTimeout) as exc:
            raise store_error(exc) from exc

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        try:
            async with self._pool.connection() as conn:
                return await _fetch(conn, sql, params)
        except (psycopg.Error, PoolTimeout) as exc:
            raise store_error(exc) from exc

    async def guarded(self, guard: str, guard_params: Params, call: Call, sql: str, params: Any) -> tuple[bool, Any]:
        try:
            async with self._pool.connection() as conn:
                return await OnConnection(conn).guarded(guard, guard_params, call, sql, params)
        except PoolTimeout as exc:
            raise store_error(exc) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield OnConnection(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise store_error(exc) from exc

    async def close(self) -> None:
        await self._pool.close()


async def _execute(conn: psycopg.AsyncConnection[Row], sql: str, params: Params | None) -> int:
    cursor = await conn.execute(translate(sql), dict(params or {}))
    return max(cursor.rowcount, 0)


async def _fetch(conn: psycopg.AsyncConnection[Row], sql: str, params: Params | None) -> list[Row]:
    cursor = await conn.execute(translate(sql), dict(params or {}))
    return await cursor.fetchall() if cursor.description is not None else []


class OnConnection:
    """`Database` on one connection (a transaction's, or a command's own): statements in turn, never at once."""

    backend = POSTGRESQL

    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            return await _execute(self.conn, sql, params)
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            async with self.conn.cursor() as cursor:
                await cursor.executemany(translate(sql), [dict(row) for row in rows])
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        try:
            return await _fetch(self.conn, sql, params)
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    async def guarded(self, guard: str, guard_params: Params, call: Call, sql: str, params: Any) -> tuple[bool, Any]:
        async with self.transaction() as tx:
            if not await tx.fetch(guard, guard_params):
                return False, None
            if call == "execute_many":
                await tx.execute_many(sql, params)
                return True, None
            return True, await (tx.execute(sql, params) if call == "execute" else tx.fetch(sql, params))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        try:
            async with self.conn.transaction():
                yield self
        except psycopg.Error as exc:
            raise store_error(exc) from exc

    async def close(self) -> None:
        await self.conn.close()
