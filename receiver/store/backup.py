"""A consistent copy of the store while it is in use: SQLite's online backup API, from a read-only connection.

The copy is taken in one step, inside one read transaction of the source: it is the store as of one moment, every
commit before it and none after (the WAL lets `serve` go on writing meanwhile). It is written to a hidden file beside
the target with the store's file mode, checked (`PRAGMA quick_check`), flushed to disk and only then linked to the
target's name, so the target is either a whole backup or absent, and an existing file is never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

from receiver.store.db import connect_sync
from receiver.store.errors import StoreError, describe
from receiver.store.interface import Backup
from receiver.store.schema import read_state


def backup(store: Path, target: Path) -> Backup:
    """Copy the store at `store` to `target` (which must not exist)."""
    if target.exists():
        raise StoreError(f"{target} already exists: give a new file name (a backup never overwrites)", transient=False)
    if not target.parent.is_dir():
        raise StoreError(f"directory {target.parent} does not exist: create it first", transient=False)
    partial = target.with_name(f".{target.name}.partial")
    try:
        source = connect_sync(store, read_only=True, check=False)
        with closing(source):
            mode = stat.S_IMODE(store.stat().st_mode)
            _create(partial, mode)
            with closing(sqlite3.connect(partial, isolation_level=None)) as copy:
                source.backup(copy)
                result = _verify(copy, target)
        _flush(partial)
        _publish(partial, target)
        _flush(target.parent)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up {store} to {target}: {describe(exc)}", transient=False) from exc
    except OSError as exc:
        raise StoreError(f"cannot write the backup {target}: {exc.strerror}", transient=False) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return result


def _create(path: Path, mode: int) -> None:
    """An empty file with exactly `mode` (the umask does not apply); one left by a failed backup is replaced."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def _verify(copy: sqlite3.Connection, target: Path) -> Backup:
    (check,) = copy.execute("PRAGMA quick_check").fetchone()
    if check != "ok":
        raise StoreError(f"the copy for {target} fails SQLite's quick_check: {check}", transient=False)
    state = read_state(copy, target)
    has_inbox = copy.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox'").fetchone()
    events = int(copy.execute("SELECT COUNT(*) FROM inbox").fetchone()[0]) if has_inbox else 0
    (pages,) = copy.execute("PRAGMA page_count").fetchone()
    (page_size,) = copy.execute("PRAGMA page_size").fetchone()
    return Backup(target, int(pages) * int(page_size), state.version, events)


def _publish(partial: Path, target: Path) -> None:
    """Give the finished copy its name: a hard link fails rather than overwrite a file that appeared meanwhile; a
    file system without hard links gets a rename."""
    try:
        os.link(partial, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        os.replace(partial, target)


def _flush(path: Path) -> None:
    """fsync a file or a directory (the new name in it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
