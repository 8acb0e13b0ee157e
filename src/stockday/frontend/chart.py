"""A price chart as inline SVG geometry, computed on the server: no script, no chart library.

The SVG draws only the line and the area under it and is stretched to the width of the page
(``preserveAspectRatio="none"``, strokes that do not scale); the labels around it are HTML text,
so they stay readable on a phone instead of shrinking with the drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from stockday.domain.prices import Interval

INTERVALS: tuple[Interval, ...] = tuple(Interval)
DEFAULT_INTERVAL = Interval.DAILY
INTERVAL_LABELS: dict[Interval, str] = {
    Interval.DAILY: "Daily",
    Interval.WEEKLY: "Weekly",
    Interval.MONTHLY: "Monthly",
}
BAR_NAMES: dict[Interval, str] = {
    Interval.DAILY: "trading days",
    Interval.WEEKLY: "weeks",
    Interval.MONTHLY: "months",
}

# The drawing's own coordinate system; CSS decides the size on the page.
VIEW_WIDTH = 1000
VIEW_HEIGHT = 300
# Room above the highest and below the lowest close, so the line is never cut by the edge.
VERTICAL_PADDING = 12


def parse_interval(raw: str | None) -> Interval:
    """The interval a visitor asked for; the default for anything else (pages never 422)."""
    for interval in INTERVALS:
        if raw == interval:
            return interval
    return DEFAULT_INTERVAL


@dataclass(frozen=True)
class ChartTab:
    """A link switching the chart to another interval."""

    interval: Interval
    label: str
    url: str
    current: bool


@dataclass(frozen=True, slots=True)
class Chart:
    interval: Interval
    line: str  # the points of an SVG <polyline>
    area: str  # the d of an SVG <path> filling the area under the line
    gridlines: tuple[float, ...]  # y of the high, middle and low lines
    first_day: date
    last_day: date
    first: float
    last: float
    low: float
    high: float
    count: int

    @property
    def width(self) -> int:
        return VIEW_WIDTH

    @property
    def height(self) -> int:
        return VIEW_HEIGHT

    @property
    def change_percent(self) -> float:
        return (self.last - self.first) / self.first * 100 if self.first else 0.0

    @property
    def direction(self) -> Literal["up", "down", "flat"]:
        cents = round(self.last - self.first, 2)
        return "up" if cents > 0 else "down" if cents < 0 else "flat"

    @property
    def bar_name(self) -> str:
        return BAR_NAMES[self.interval]


def build_chart(interval: Interval, points: Sequence[tuple[date, float]]) -> Chart | None:
    """The chart of ``points`` (oldest first), or None when there is too little to draw."""
    if len(points) < 2:
        return None
    closes = [close for _, close in points]
    low, high = min(closes), max(closes)
    plot_height = VIEW_HEIGHT - 2 * VERTICAL_PADDING
    step = VIEW_WIDTH / (len(points) - 1)
    # Whole units are finer than a pixel at any likely size; a flat series runs mid-height.
    scale = plot_height / (high - low) if high > low else 0.0
    top = VERTICAL_PADDING if high > low else VIEW_HEIGHT / 2
    vertices = [
        f"{round(i * step)},{round(top + (high - c) * scale)}" for i, c in enumerate(closes)
    ]
    line = " ".join(vertices)
    area = f"M0,{VIEW_HEIGHT} L{' L'.join(vertices)} L{VIEW_WIDTH},{VIEW_HEIGHT} Z"
    middle = VERTICAL_PADDING + plot_height / 2
    return Chart(
        interval=interval,
        line=line,
        area=area,
        gridlines=(VERTICAL_PADDING, middle, VIEW_HEIGHT - VERTICAL_PADDING),
        first_day=points[0][0],
        last_day=points[-1][0],
        first=closes[0],
        last=closes[-1],
        low=low,
        high=high,
        count=len(points),
    )
