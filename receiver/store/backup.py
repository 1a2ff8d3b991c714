"""A consistent copy of the store while it is in use: SQLite's online backup API, from a read-only connection.

The copy is taken in one step, inside one read transaction of the source: it is the store as of one moment, every
commit before it and none after (the WAL lets `serve` go on writing meanwhile). It is written to a hidden file beside
the target with the store's file mode (`[store] file_mode`), checked (`PRAGMA quick_check`), flushed to disk and only
then linked to the target's name, so the target is either a whole backup or absent, and an existing file is never
overwritten. A damaged store is not copied: its copy would fail the check.
"""

from __future__ import annotations

import contextlib
import sqlite3
from contextlib import closing
from pathlib import Path

from receiver.store.db import connect_sync
from receiver.store.errors import StoreError, describe
from receiver.store.files import DEFAULT_FILE_MODE, create_with_mode, flush, publish
from receiver.store.integrity import damaged, quick_check_on
from receiver.store.interface import Backup
from receiver.store.schema import read_state


def backup(store: Path, target: Path, *, mode: int = DEFAULT_FILE_MODE) -> Backup:
    """Copy the store at `store` to `target` (which must not exist), a file of `mode`."""
    if target.exists():
        raise StoreError(_exists(target), transient=False)
    if not target.parent.is_dir():
        raise StoreError(f"directory {target.parent} does not exist: create it first", transient=False)
    partial = target.with_name(f".{target.name}.partial")
    try:
        source = connect_sync(store, read_only=True, check=False)
        with closing(source):
            create_with_mode(partial, mode)
            with closing(sqlite3.connect(partial, isolation_level=None)) as copy:
                source.backup(copy)
                result = _verify(copy, store, target)
        flush(partial)
        if not publish(partial, target):
            raise StoreError(_exists(target), transient=False)
        flush(target.parent)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up {store} to {target}: {describe(exc)}", transient=False) from exc
    except OSError as exc:
        raise StoreError(f"cannot write the backup {target}: {exc.strerror}", transient=False) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return result


def _exists(target: Path) -> str:
    return f"{target} already exists: give a new file name (a backup never overwrites)"


def _verify(copy: sqlite3.Connection, store: Path, target: Path) -> Backup:
    """What the copy holds, once SQLite's quick_check finds it whole (a damaged store makes a damaged copy)."""
    problems = quick_check_on(copy)
    if problems:
        raise StoreError(damaged(store, problems), transient=False)
    state = read_state(copy, target)
    has_inbox = copy.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox'").fetchone()
    events = int(copy.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]) if has_inbox else 0
    (pages,) = copy.execute("PRAGMA page_count").fetchone()
    (page_size,) = copy.execute("PRAGMA page_size").fetchone()
    return Backup(target, int(pages) * int(page_size), state.version, events)
