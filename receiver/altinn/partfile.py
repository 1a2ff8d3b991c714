"""The temporary file a download is written to: `.NAME.part` beside its destination `NAME`, renamed over it when
complete (same folder, so the rename is atomic and a file under its final name is always whole).

The name is the same at every attempt, so a `.part` left by a process that was killed mid-download is overwritten
by the next download of that file, and nothing has to sweep a folder that other replicas may share. Two processes
(replicas on a shared volume, or a worker whose lease ran out) could download the same file at once: the `.part` is
locked (`flock`) while it is written, and a download that finds it locked gives way with a TransientError.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from receiver.altinn.errors import TransientError

if sys.platform != "win32":
    import fcntl

NAME_MAX = 255
"""Bytes in a file name on the filesystems a receiver runs on (ext4, XFS, btrfs, overlayfs; NTFS counts 255 UTF-16
units, which 255 UTF-8 bytes never exceed)."""
PREFIX, SUFFIX = ".", ".part"
MAX_DOWNLOAD_NAME_BYTES = NAME_MAX - len(PREFIX) - len(SUFFIX)
"""The longest name (in UTF-8 bytes) a download's destination may have: its `.part` must fit too."""
RETRY_AFTER = 5.0


def part_path(dest: Path) -> Path:
    return dest.with_name(f"{PREFIX}{dest.name}{SUFFIX}")


@contextlib.contextmanager
def part_file(dest: Path, what: str) -> Iterator[BinaryIO]:
    """`dest`'s `.part`, created or emptied, open for writing and locked; `os.replace(part_path(dest), dest)` inside
    makes it the file. Removed on the way out unless it was renamed. TransientError if another process holds it."""
    part = part_path(dest)
    fd = _lock(part, what)
    try:
        os.ftruncate(fd, 0)
        with os.fdopen(os.dup(fd), "wb") as file:
            yield file
    finally:
        if _names(part, fd):  # not renamed: what is there is incomplete
            part.unlink(missing_ok=True)
        os.close(fd)  # releases the lock


def _lock(part: Path, what: str) -> int:
    """An open descriptor of the file at `part`, locked. The file a lock was waited for may have been renamed to its
    destination (or removed) by the process that held it: then it is the new file at `part` that is locked."""
    while True:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TransientError(
                f"{what}: another process is downloading this attachment ({part.name} is locked); trying again later",
                retry_after=RETRY_AFTER,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if _names(part, fd):
            return fd
        os.close(fd)


def _names(path: Path, fd: int) -> bool:
    """Whether `path` is the file open as `fd`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False
