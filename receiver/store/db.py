"""Opening the SQLite file: pragmas for durability, the schema, and the store's own error type."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from receiver.store.schema import SCHEMA_VERSION, STATEMENTS

BUSY_TIMEOUT_MS = 2000

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


class StoreError(Exception):
    """The store could not do what was asked; `transient` says whether trying again later may work."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def describe(error: BaseException) -> str:
    """A short operator-facing reason for a failed SQLite operation."""
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return "database is locked by another connection"
    if "full" in text or "too big" in text or "file too large" in text:
        return "disk or file size limit is full"
    if "readonly" in text or "read-only" in text:
        return "database is read-only"
    if "disk i/o error" in text:
        return "cannot write the database file (disk I/O error: disk full, file size limit or a failing disk)"
    return f"database error: {error}"


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


def connect_sync(path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A plain sqlite3 connection with the store's pragmas and schema (for threads and commands)."""
    make_folder(path)
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    conn.row_factory = sqlite3.Row
    try:
        for pragma in pragmas(busy_timeout_ms):
            conn.execute(pragma)
        conn.execute("BEGIN IMMEDIATE")
        for statement in STATEMENTS:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    return conn


async def connect(
    path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, synchronous: Synchronous = "FULL"
) -> aiosqlite.Connection:
    """An aiosqlite connection with the store's pragmas and schema."""
    make_folder(path)
    try:
        conn = await aiosqlite.connect(str(path), isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    conn.row_factory = sqlite3.Row
    try:
        for pragma in pragmas(busy_timeout_ms, synchronous):
            await conn.execute(pragma)
        await conn.execute("BEGIN IMMEDIATE")
        for statement in STATEMENTS:
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        await conn.execute("COMMIT")
    except sqlite3.Error as exc:
        await conn.close()
        raise StoreError(f"cannot open store {path}: {describe(exc)}") from exc
    except BaseException:
        conn.stop()  # cancelled: end the connection's thread without waiting, or the process could not exit
        raise
    return conn


async def fetch_rows(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """A query run to its end in one step of the connection's thread. Coroutines share connections: a read left
    open across an await would pin an old snapshot, and a write by another coroutine in that window would fail at
    once with "database is locked" (SQLite cannot upgrade a stale snapshot, and does not wait for it)."""
    return list(await conn.execute_fetchall(sql, params))


def row_fields(row: sqlite3.Row) -> dict[str, Any]:
    """A row as {column: value}, to build a record dataclass by keyword."""
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row iterates values, not keys)
