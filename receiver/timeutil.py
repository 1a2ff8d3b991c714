"""Timestamps as the store and the outputs write them: ISO-8601 UTC with a Z, fixed width (text order = time order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """`2026-11-30T10:31:17.123456Z`: always six fractional digits, always UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return to_iso(now())


def iso_after(seconds: float, start: datetime | None = None) -> str:
    return to_iso((start or now()) + timedelta(seconds=seconds))


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601 with up to 7 fractional digits (Altinn's .NET ticks) and Z or an offset."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def age_seconds(text: str, reference: datetime | None = None) -> float:
    return ((reference or now()) - parse_iso(text)).total_seconds()
