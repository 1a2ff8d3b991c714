"""Files the store creates whole: with an exact file mode, written under a hidden name and only then given their
own, never over a file that is there (the store when `serve` first creates it, backups)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

DEFAULT_FILE_MODE = 0o600
"""The store, its WAL and its backups: the owner's alone unless `[store] file_mode` says otherwise."""


def create_with_mode(path: Path, mode: int) -> None:
    """An empty file with exactly `mode` (the umask does not apply); one left at `path` by a failed attempt is
    replaced. SQLite gives the `-wal` and `-shm` files it makes beside a database the database file's mode."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(descriptor, mode)
    finally:
        os.close(descriptor)


def publish(partial: Path, target: Path) -> bool:
    """Give the finished file `partial` the name `target`, unless a file appeared there meanwhile (False then): a
    hard link fails rather than overwrite; a file system without hard links gets a rename. `partial` stays."""
    try:
        os.link(partial, target)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if target.exists():
            return False
        os.replace(partial, target)
    return True


def flush(path: Path) -> None:
    """fsync a file or a directory (the new name in it)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class OpenFiles:
    """The store file and its `-wal` and `-shm` files, as a connection has them open (seen when it opened them):
    whether the store's path still names those files, or they were deleted or replaced underneath it."""

    SUFFIXES = ("", "-wal", "-shm")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._names = [Path(f"{path}{suffix}") for suffix in self.SUFFIXES]
        self._seen = [_identity(name) for name in self._names]

    def replaced(self) -> bool:
        """One of the files is gone from its name, or the name now holds another file: what is committed through the
        open files can no longer be read by anyone who opens the path. A stat per file."""
        for index, name in enumerate(self._names):
            now = _identity(name)
            if self._seen[index] is None and index:  # a -wal or -shm SQLite had not made yet when the store opened
                self._seen[index] = now
            elif now != self._seen[index]:
                return True
        return False


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file `path` names (device and inode), None when nothing is there."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino
