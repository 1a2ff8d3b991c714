"""The store's own error type, and a short operator-facing reason for a failed SQLite operation."""

from __future__ import annotations

from receiver.store.integrity import RECOVERY, is_damage


class StoreError(Exception):
    """The store could not do what was asked; `transient` says whether trying again later may work."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


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
