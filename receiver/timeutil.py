"""Timestamps as the store and the outputs write them: ISO-8601 UTC with a Z, fixed width (text order = time order)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)")
"""RFC 3339 as Altinn writes it: upper-case T and Z, up to 9 fractional digits (Altinn writes 7), an offset of at
most 14:59 (no place has more; SQLite's `julianday`, which orders an instance's events, reads no more)."""


def now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """`2026-11-30T10:31:17.123456Z`: always six fractional digits, always UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    # isoformat, not strftime: the C library's %Y writes the year 1 as "1", not "0001".
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def now_iso() -> str:
    return to_iso(now())


def iso_after(seconds: float, start: datetime | None = None) -> str:
    return to_iso((start or now()) + timedelta(seconds=seconds))


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601 with up to 7 fractional digits (Altinn's .NET ticks) and Z or an offset (UTC without one);
    ValueError if it is none, or out of range in UTC. An event's `time` is read by `parse_event_time`."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range in UTC") from None


def parse_event_time(text: str) -> datetime:
    """An event's `time` in UTC: the one reading of it. The webhook and catch-up accept an event only if this reads
    its `time`, and the handlers convert it with this, so nothing acknowledged fails on its time later.

    ValueError says what is wrong: not the form of EVENT_TIME, not a date (February 30th), or out of range when
    converted to UTC (`9999-12-31T23:59:59-14:00`). Fractional digits past the sixth are dropped (microseconds).
    """
    if not EVENT_TIME.fullmatch(text):
        raise ValueError(
            f"must be an RFC 3339 timestamp such as 2024-04-19T07:22:19.4380391Z (upper-case T and Z, an offset of"
            f" at most 14:59), got {text!r}"
        )
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"is not a valid date and time in the years 1 to 9999 (UTC), got {text!r}") from None


def age_seconds(text: str, reference: datetime | None = None) -> float:
    return ((reference or now()) - parse_iso(text)).total_seconds()
