"""The store's own error types (both backends), and SQLite's failures: a short operator-facing reason, and whether
one is the whole store's or one row's."""

from __future__ import annotations

import sqlite3

from receiver.store.integrity import RECOVERY, is_damage


class StoreError(Exception):
    """The store could not do what was asked; `transient` says whether trying again later may work."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class EventRefused(StoreError):
    """The store refused this one event for its own values (text the database cannot encode, say): sending it again
    will not help, and the events committed beside it are not affected."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"this event cannot be stored ({reason})", transient=False)


def describe(error: BaseException) -> str:
    """A short operator-facing reason for a failed SQLite operation."""
    if is_damage(error):
        return f"the store file is damaged (SQLite: {error}): {RECOVERY}"
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


STORE_WIDE = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_INTERRUPT,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOLFS,
        sqlite3.SQLITE_NOTADB,
    }
)
"""SQLite's result codes for a failure of the store as a whole, which any write would meet now."""


def store_wide(error: BaseException) -> bool:
    """The store as a whole failed (the write lock, the disk, a damaged or read-only file), not one row's values:
    anything else (a value SQLite's encoder refuses, a constraint) is the row's own."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.Error) and isinstance(code, int) and code & 0xFF in STORE_WIDE
