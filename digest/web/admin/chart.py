"""The small chart of the stats page, worked out here and drawn by the template as
inline SVG: no script, no library, nothing fetched (the CSP allows none of it).

Two panels share the x axis, one slot per edition, oldest on the left. The upper one
stacks each edition's sent and failed deliveries as bars; the lower one draws bounces,
complaints and unsubscribes as lines on their own scale, since they are a few where
deliveries are thousands. Colours come from classes in admin.css, so they follow the
light or dark scheme. The stats table next to it is the accessible fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digest.stats import EditionStats

WIDTH, LEFT, RIGHT = 640, 48, 8
TOP, BARS_HEIGHT, GAP, LINES_HEIGHT, BOTTOM = 8, 120, 22, 64, 22
HEIGHT = TOP + BARS_HEIGHT + GAP + LINES_HEIGHT + BOTTOM
LINES = ("bounced", "complained", "unsubscribed")


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    sent_y: float
    sent_height: float
    failed_y: float
    failed_height: float
    label: str  # the tooltip: "No. 4: 120 sent, 2 failed"


@dataclass(frozen=True)
class Line:
    name: str  # bounced | complained | unsubscribed: the CSS class too
    points: str  # "x,y x,y ..." for <polyline>
    dots: list[tuple[float, float, str]]  # x, y, tooltip


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    """What the template draws; `summary` is the SVG's <desc>."""

    width: int
    height: int
    bars: list[Bar]
    lines: list[Line]
    y_ticks: list[Tick]  # labels of both panels' scales
    x_ticks: list[Tick]  # edition numbers
    grid: list[float]  # y of the horizontal rules
    summary: str
    lines_top: float
    lines_bottom: float


def chart(rows: Sequence[EditionStats], list_name: str) -> Chart | None:
    """The chart of `rows` (any order); None without editions."""
    editions = sorted(rows, key=lambda r: r.send_started_at)
    if not editions:
        return None
    slot = (WIDTH - LEFT - RIGHT) / len(editions)
    bar_width = max(2.0, min(slot * 0.7, 40.0))
    bars_bottom = TOP + BARS_HEIGHT
    lines_top = bars_bottom + GAP
    lines_bottom = lines_top + LINES_HEIGHT
    top_value = _nice(max(r.sent + r.failed for r in editions))
    line_value = _nice(max(getattr(r, n) for r in editions for n in LINES))

    def centre(i: int) -> float:
        return round(LEFT + slot * (i + 0.5), 1)

    bars = []
    for i, r in enumerate(editions):
        sent_h = BARS_HEIGHT * r.sent / top_value
        failed_h = BARS_HEIGHT * r.failed / top_value
        bars.append(Bar(round(centre(i) - bar_width / 2, 1), round(bar_width, 1),
                        round(bars_bottom - sent_h, 1), round(sent_h, 1),
                        round(bars_bottom - sent_h - failed_h, 1), round(failed_h, 1),
                        f"No. {r.number}: {r.sent} sent, {r.failed} failed"))
    lines = []
    for name in LINES:
        dots = [(centre(i), round(lines_bottom - LINES_HEIGHT * getattr(r, name) / line_value,
                                  1), f"No. {r.number}: {getattr(r, name)} {name}")
                for i, r in enumerate(editions)]
        lines.append(Line(name, " ".join(f"{x},{y}" for x, y, _ in dots), dots))
    step = max(1, round(len(editions) / 10))  # at most about ten numbers under the axis
    x_ticks = [Tick(centre(i), lines_bottom + 16, str(r.number))
               for i, r in enumerate(editions) if i % step == 0 or i == len(editions) - 1]
    y_ticks = [Tick(LEFT - 6, bars_bottom + 4, "0"), Tick(LEFT - 6, TOP + 4, _short(top_value)),
               Tick(LEFT - 6, lines_bottom + 4, "0"), Tick(LEFT - 6, lines_top + 4,
                                                           _short(line_value))]
    return Chart(WIDTH, HEIGHT, bars, lines, y_ticks, x_ticks,
                 [TOP, bars_bottom, lines_top, lines_bottom], _summary(editions, list_name),
                 lines_top, lines_bottom)


def _nice(value: int) -> int:
    """A round top for a scale holding `value`: 1, 2, 5 times a power of ten."""
    top = 1
    while top < value:
        for factor in (2, 5 / 2, 2):
            top = int(top * factor)
            if top >= value:
                break
    return top


def _short(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return str(value)


def _summary(editions: Sequence[EditionStats], list_name: str) -> str:
    first, last = editions[0], editions[-1]
    sent = [r.sent for r in editions]
    totals = {n: sum(getattr(r, n) for r in editions) for n in ("failed", *LINES)}
    span = (f"edition {first.number}" if first is last
            else f"editions {first.number} to {last.number}")
    return (f"{list_name}, {span}: between {min(sent)} and {max(sent)} sent per edition; "
            f"in all {totals['failed']} failed, {totals['bounced']} bounced, "
            f"{totals['complained']} complained and {totals['unsubscribed']} unsubscribed.")
