"""The overview's chart of events received and processed per minute, drawn as inline SVG on the server (no script,
nothing fetched): this module computes the geometry, `templates/overview.html` draws it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from receiver.store.overview import Minute

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 20, 10, 24
"""Margins: the left one holds the counts, the bottom one the times."""
LABEL_EVERY = 10
"""Minutes between two time labels, counted back from the newest."""


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Bar:
    """One minute's count of one kind (`received` or `processed`); `title` is its tooltip."""

    kind: str
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    """Two bars per minute over a grid: `ticks_y` the counts, `ticks_x` the minutes (HH:MM, UTC)."""

    width: int
    height: int
    left: int
    right: int
    bars: tuple[Bar, ...]
    ticks_y: tuple[Tick, ...]
    ticks_x: tuple[Tick, ...]
    total_received: int
    total_processed: int
    peak: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … at least `value` (at least 1): a round top for the count axis."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def minute_chart(minutes: Sequence[Minute]) -> Chart:
    """The chart of `minutes` (oldest first, one per minute)."""
    peak = max((max(m.received, m.processed) for m in minutes), default=0)
    top_value = nice_ceiling(peak)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(minutes), 1)
    bar_width = round(slot * 0.4, 2)

    def y(count: int) -> float:
        return round(TOP + plot_h * (1 - count / top_value), 1)

    bars = []
    for i, minute in enumerate(minutes):
        start = LEFT + i * slot + slot * 0.1
        for offset, kind, count in ((0.0, "received", minute.received), (bar_width, "processed", minute.processed)):
            if count:
                title = f"{minute.minute[11:16]} UTC: {count} {kind}"
                bars.append(Bar(kind, round(start + offset, 2), y(count), bar_width, round(y(0) - y(count), 1), title))
    ticks_y = tuple(Tick(LEFT, y(value), str(value)) for value in sorted({0, top_value // 2, top_value}))
    last = len(minutes) - 1
    ticks_x = tuple(
        Tick(round(LEFT + (i + 0.5) * slot, 1), HEIGHT - 6, m.minute[11:16])
        for i, m in enumerate(minutes)
        if (last - i) % LABEL_EVERY == 0
    )
    return Chart(
        WIDTH, HEIGHT, LEFT, RIGHT, tuple(bars), ticks_y, ticks_x,
        sum(m.received for m in minutes), sum(m.processed for m in minutes), peak,
    )  # fmt: skip
