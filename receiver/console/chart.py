"""The overview's chart of events received and processed per minute, drawn as inline SVG on the server (no script,
nothing fetched): this module computes the geometry, `templates/overview.html` draws it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from receiver.store.overview import Minute

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 24
"""Margins: the left one holds the counts, the bottom one the times."""


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    """Two polylines (SVG `points`) over a grid: `ticks_y` the counts, `ticks_x` the minutes (HH:MM, UTC)."""

    width: int
    height: int
    received: str
    processed: str
    ticks_y: tuple[Tick, ...]
    ticks_x: tuple[Tick, ...]
    left: int
    right: int
    top: int
    bottom: int
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
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(minutes) - 1, 1)

    def x(index: int) -> float:
        return round(LEFT + index * step, 1)

    def y(count: int) -> float:
        return round(TOP + plot_h * (1 - count / top_value), 1)

    def line(values: Sequence[int]) -> str:
        return " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))

    ticks_y = tuple(Tick(LEFT, y(value), str(value)) for value in sorted({0, top_value // 2, top_value}))
    every = 10
    last = len(minutes) - 1
    ticks_x = tuple(Tick(x(i), HEIGHT - 6, m.minute[11:16]) for i, m in enumerate(minutes) if (last - i) % every == 0)
    return Chart(
        WIDTH, HEIGHT, line([m.received for m in minutes]), line([m.processed for m in minutes]),
        ticks_y, ticks_x, LEFT, RIGHT, TOP, BOTTOM,
        sum(m.received for m in minutes), sum(m.processed for m in minutes), peak,
    )  # fmt: skip
