"""Durations as the config and the command line write them: "30s", "5m", "48h", "250ms", or plain seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number (seconds) or a string of number+unit parts ("1h30m").

    Raises ValueError with a message that says what a duration looks like.
    """
    if isinstance(value, bool):
        raise ValueError(f'expected a duration such as "30s", "5m" or "48h", got {value!r}')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return float(text)
        if text and _PART.sub("", text) == "":
            return sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))
    raise ValueError(f'expected a duration such as "30s", "5m" or "48h", got {value!r}')


def format_duration(seconds: float) -> str:
    """A short human form: 42s, 5m, 1h30m, 2d3h."""
    total = round(seconds)
    if total < 60:
        return f"{max(total, 0)}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])


def exact_duration(seconds: float) -> str:
    """`seconds` as a duration the config reads back exactly: 48h, 1m30s, 20s, 250ms, and whole weeks or more in
    days (90d), the way people write a retention; shorter spans in hours, the way they write an age (48h)."""
    if seconds != int(seconds):
        return f"{seconds * 1000:g}ms"
    total = int(seconds)
    if total >= 7 * 86400 and total % 86400 == 0:
        return f"{total // 86400}d"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
