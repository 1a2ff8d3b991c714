"""Opening the SQLite file: pragmas for durability, the schema version check, read-only connections for readers,
and `SqliteDatabase`, the store's `Database` (receiver/store/interface.py) over one aiosqlite connection.

Opening never changes the schema: only `serve` and `altinn-receiver store migrate` do (receiver/store/migrate.py).
A connection opens an existing store and refuses one whose schema is older or newer than this code
(receiver/store/schema.py), and an empty file (receiver/store/integrity.py); `serve` checks a store's integrity
before it migrates it (`check_integrity`). A reading command's connection is read-only (`mode=ro`): it never takes the
write lock, so it opens and reads while `serve` writes.
"""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import aiosqlite

from receiver.store.errors import StoreError, describe
from receiver.store.integrity import damaged, empty, empty_store, quick_check
from receiver.store.interface import SQLITE, Call, Database, Params, Row
from receiver.store.schema import require_current

__all__ = [
    "BUSY_TIMEOUT_MS",
    "SqliteDatabase",
    "StoreError",
    "Synchronous",
    "check_integrity",
    "connect",
    "connect_sync",
    "describe",
    "in_connection_thread",
    "make_folder",
]

BUSY_TIMEOUT_MS = 2000
T = TypeVar("T")

Synchronous = Literal["FULL", "NORMAL"]
"""How a commit reaches the disk (the WAL journal either way).

`FULL`: the commit is on disk when it returns (an fsync each); what the webhook acknowledges and every connection
by default. `NORMAL`: no fsync of its own. A commit survives a crash of the process and never corrupts the file, but
the latest ones may roll back after a power loss or an OS crash, until the next `FULL` commit of any connection or a
checkpoint writes them down; what comes back is always a prefix of the commits, in order. The dispatcher's
connection uses it: an outcome lost that way means the event runs again, which handlers must allow anyway (a crash
before its outcome was recorded is the same), and an fsync per claim, stored row and outcome would make it both slow
and a holder of the write lock that the webhook waits for.
"""


def make_folder(path: Path | str) -> None:
    """Create the store's folder when it is missing; StoreError saying why it cannot be (no permission, a read-only
    filesystem, a file where a folder should be) instead of a traceback."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the store's folder {folder}: {exc.strerror or type(exc).__name__} (check store.path, and "
            "that the user the receiver runs as may write there)",
            transient=False,
        ) from None


def pragmas(busy_timeout_ms: int = BUSY_TIMEOUT_MS, synchronous: Synchronous = "FULL") -> tuple[str, ...]:
    return (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        "PRAGMA foreign_keys=ON",
    )


def _settings(read_only: bool, busy_timeout_ms: int, synchronous: Synchronous) -> tuple[str, ...]:
    # A read-only connection cannot set the journal mode (the store is in WAL mode since it was created).
    return (f"PRAGMA busy_timeout={int(busy_timeout_ms)}",) if read_only else pragmas(busy_timeout_ms, synchronous)


WAL_DMS_BYTE = 128
"""The byte of the `-shm` file on which every SQLite connection to a WAL database holds a shared lock while it is open
(SQLite's unix VFS: UNIX_SHM_DMS)."""


def held_by_another(path: Path) -> str:
    """Why the store at `path` is in use, "" when no other process has it open: SQLite's own lock on the `-shm`
    file, which every connection holds while open (it is gone with a process that died)."""
    shm = path.with_name(path.name + "-shm")
    try:
        with shm.open("rb+") as index:
            try:
                fcntl.lockf(index, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, WAL_DMS_BYTE)
            except OSError:
                return f"another process has the store {path} open (a running receiver?): stop it first"
            fcntl.lockf(index, fcntl.LOCK_UN, 1, WAL_DMS_BYTE)
    except FileNotFoundError:
        pass
    return ""


def missing_store(path: Path) -> str:
    return f"store {path} does not exist: check store.path in the config (the server creates it on first start)"


def _target(path: Path | str, read_only: bool) -> tuple[str, bool]:
    """What sqlite3 opens (a URI for read-only), and whether it is a URI. A missing store is an error, never a new
    empty file: `serve` (or `store migrate`) creates it. An empty file is refused: SQLite would take it for a new
    store."""
    store = Path(path)
    if not store.is_file():
        raise StoreError(missing_store(store), transient=False)
    if empty_store(store):
        raise StoreError(empty(store), transient=False)
    if read_only:
        return f"{store.resolve().as_uri()}?mode=ro", True
    return str(store), False


def connect_sync(
    path: Path | str,
    *,
    read_only: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    synchronous: Synchronous = "FULL",
    check: bool = True,
) -> sqlite3.Connection:
    """A plain sqlite3 connection (for threads and commands) to the existing store at `path`, at this code's schema
    version unless `check` is False (backup copies any version)."""
    target, uri = _target(path, read_only)
    try:
        conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    conn.row_factory = sqlite3.Row
    try:
        for pragma in _settings(read_only, busy_timeout_ms, synchronous):
            conn.execute(pragma)
        if check:
            require_current(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def check_integrity(path: Path) -> float:
    """Refuse the store at `path` (StoreError) when SQLite's quick_check finds it damaged; returns how long the check
    took, in seconds. It reads every page: minutes on a store of many gigabytes."""
    started = time.monotonic()
    try:
        problems = quick_check(path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot check store {path}: {describe(exc)}", transient=False) from exc
    if problems:
        raise StoreError(damaged(path, problems), transient=False)
    return time.monotonic() - started


def check_version(path: Path | str) -> None:
    """Refuse the store at `path` unless its schema is this code's (StoreVersionError), reading only."""
    with closing(connect_sync(path, read_only=True)):
        pass


async def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    synchronous: Synchronous = "FULL",
) -> SqliteDatabase:
    """The existing store at `path` as a `Database`, at this code's schema version (checked first, on a read-only
    connection of its own)."""
    await asyncio.to_thread(check_version, path)
    target, uri = _target(path, read_only)
    try:
        conn = await aiosqlite.connect(target, uri=uri, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    conn.row_factory = sqlite3.Row
    try:
        for pragma in _settings(read_only, busy_timeout_ms, synchronous):
            await conn.execute(pragma)
    except sqlite3.Error as exc:
        await conn.close()
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    except BaseException:
        conn.stop()  # cancelled: end the connection's thread without waiting, or the process could not exit
        raise
    return SqliteDatabase(conn)


async def in_connection_thread(conn: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work(connection)` on the aiosqlite connection's own thread, in one step, as aiosqlite runs each of its own
    statements: several statements with nothing of the coroutines that share the connection in between (a
    transaction), in one round trip. aiosqlite has no public call for it; this uses its `_execute` and `_conn`, there
    in every release this project allows (pyproject.toml). A caller cancelled meanwhile does not stop `work`."""
    return cast(T, await conn._execute(lambda: work(conn._conn)))


def _dict(row: sqlite3.Row) -> Row:
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row iterates values, not keys)


def _call(conn: sqlite3.Connection, call: Call, sql: str, params: Any) -> Any:
    """`Database.guarded`'s statement, on the connection's own thread."""
    if call == "execute_many":
        conn.executemany(sql, [dict(row) for row in params])
        return None
    cursor = conn.execute(sql, dict(params or {}))
    return cursor.rowcount if call == "execute" else [_dict(row) for row in cursor]


class SqliteDatabase:
    """`Database` on one aiosqlite connection, shared by the coroutines of a process part (the dispatcher, a command).

    Every statement runs to its end in one step of the connection's thread: a read left open across an await would
    pin an old snapshot, and a write by another coroutine in that window would fail at once with "database is
    locked" (SQLite cannot upgrade a stale snapshot, and does not wait for it). A transaction holds the connection
    (a lock the other callers wait on) from BEGIN IMMEDIATE to COMMIT.
    """

    backend = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        """The aiosqlite connection: for `ctx.store.conn`'s deprecated users only."""
        self._turn = asyncio.Lock()

    async def execute(self, sql: str, params: Params | None = None) -> int:
        async with self._turn:
            return await self._execute(sql, params)

    async def _execute(self, sql: str, params: Params | None) -> int:
        try:
            async with self.conn.execute(sql, dict(params or {})) as cursor:
                return cursor.rowcount
        except sqlite3.Error as exc:
            raise StoreError(describe(exc)) from exc

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._turn:
            try:
                await self.conn.executemany(sql, [dict(row) for row in rows])
            except sqlite3.Error as exc:
                raise StoreError(describe(exc)) from exc

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        async with self._turn:
            return await self._fetch(sql, params)

    async def _fetch(self, sql: str, params: Params | None) -> list[Row]:
        try:
            rows: Iterable[sqlite3.Row] = await self.conn.execute_fetchall(sql, dict(params or {}))
        except sqlite3.Error as exc:
            raise StoreError(describe(exc)) from exc
        return [_dict(row) for row in rows]

    async def guarded(self, guard: str, guard_params: Params, call: Call, sql: str, params: Any) -> tuple[bool, Any]:
        def work(conn: sqlite3.Connection) -> tuple[bool, Any]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                held = conn.execute(guard, dict(guard_params)).fetchone() is not None
                result = _call(conn, call, sql, params) if held else None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return held, result

        async with self._turn:
            try:
                return await in_connection_thread(self.conn, work)
            except sqlite3.Error as exc:
                raise StoreError(describe(exc)) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._turn:
            await self._execute("BEGIN IMMEDIATE", None)
            try:
                yield _InTransaction(self)
            except BaseException:
                await self.conn.rollback()
                raise
            await self._execute("COMMIT", None)

    async def close(self) -> None:
        await self.conn.close()


class _InTransaction:
    """The statements of a `SqliteDatabase.transaction()`: on its connection, without waiting for its own turn."""

    backend = SQLITE

    def __init__(self, outer: SqliteDatabase) -> None:
        self._outer = outer

    async def execute(self, sql: str, params: Params | None = None) -> int:
        return await self._outer._execute(sql, params)

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        for row in rows:
            await self._outer._execute(sql, row)

    async def fetch(self, sql: str, params: Params | None = None) -> list[Row]:
        return await self._outer._fetch(sql, params)

    async def guarded(self, guard: str, guard_params: Params, call: Call, sql: str, params: Any) -> tuple[bool, Any]:
        raise StoreError("transactions do not nest", transient=False)

    def transaction(self) -> Any:
        raise StoreError("transactions do not nest", transient=False)

    async def close(self) -> None:
        raise StoreError("close the database, not its transaction", transient=False)
