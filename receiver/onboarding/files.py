"""Writing what `init` creates: secrets readable by the owner only, and nothing overwritten unless asked."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def existing(paths: Iterable[Path]) -> list[Path]:
    return [path for path in paths if path.exists()]


def write_file(path: Path, text: str, *, mode: int, overwrite: bool = False) -> None:
    """Write `text` to `path` with `mode` from the first byte on (a temporary file renamed into place).

    Raises FileExistsError when `path` exists and `overwrite` is false.
    """
    if path.exists() and not overwrite:
        raise FileExistsError(str(path))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)  # the umask may have taken bits away from PUBLIC; never adds any to PRIVATE
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
