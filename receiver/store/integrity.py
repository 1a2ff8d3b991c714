"""Whether a store file is whole: SQLite's quick_check, a damaged file's errors, an empty file, and what an operator
does about each. Nothing here knows the rest of the receiver; the store's modules turn these into `StoreError`s."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

RECOVERY = (
    "restore the latest backup (made by `altinn-receiver store backup`), or save what SQLite can still read with"
    " `sqlite3 DAMAGED.db .recover | sqlite3 NEW.db` (docs/operations.md#a-damaged-or-empty-store)"
)
DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# SQLite's own words for those codes, for errors that arrive without their code.
DAMAGE_WORDS = ("database disk image is malformed", "file is not a database")
MAX_PROBLEMS = 10


def is_damage(error: BaseException) -> bool:
    """SQLite found the file damaged (SQLITE_CORRUPT) or not a database at all (SQLITE_NOTADB)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in DAMAGE_CODES:
        return True
    text = str(error)
    return any(words in text for words in DAMAGE_WORDS)


def quick_check(path: Path) -> list[str]:
    """SQLite's `PRAGMA quick_check` of the existing store at `path`, read-only: [] when it is whole, else the first
    problems it names. Other errors (cannot open, locked) are raised as they are."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return quick_check_on(conn)


def quick_check_on(conn: sqlite3.Connection) -> list[str]:
    """`quick_check` of the database open on `conn`."""
    try:
        rows = conn.execute(f"PRAGMA quick_check({MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return [str(exc)]
        raise
    problems = [line for row in rows for line in str(row[0]).splitlines() if line and not line.startswith("***")]
    return [] if problems == ["ok"] else problems


def damaged(path: Path, problems: list[str]) -> str:
    """The refusal of a damaged store, in one line."""
    found = f"{len(problems)} problems, the first: {problems[0]}" if len(problems) > 1 else problems[0]
    return f"store {path} is damaged (SQLite's quick_check: {found}): {RECOVERY}"


def empty_store(path: Path) -> bool:
    """A file is there, and it is empty: not a store (SQLite would take it for a new, empty database)."""
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def empty(path: Path) -> str:
    """The refusal of an empty store file, in one line."""
    return (
        f"store {path} is an empty file, not a store: it is refused rather than started as a new store without its"
        " events, cursors and subscriptions. Restore the store from a backup (docs/operations.md#backup-and-restore);"
        " if there never was one at this path, delete the empty file and `serve` creates the store"
    )
