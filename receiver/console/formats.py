"""How the console's pages write sizes and ages."""

from __future__ import annotations

import math

from receiver.durations import format_duration
from receiver.timeutil import now, parse_iso


def human_size(size: int | None) -> str:
    """Bytes as people read them: 512 B, 1.5 kB, 2.0 MB; "" when unknown."""
    if size is None:
        return ""
    if size < 1000:
        return f"{size} B"
    exponent = min(int(math.log(size, 1000)), 4)
    return f"{size / 1000**exponent:.1f} {'kMGT'[exponent - 1]}B"


def age(stamp: str) -> str:
    """How long ago `stamp` (ISO-8601) was, as a duration ("3m", "2h5m"); "" for an empty or unreadable one."""
    try:
        return format_duration((now() - parse_iso(stamp)).total_seconds()) if stamp else ""
    except ValueError:
        return ""
