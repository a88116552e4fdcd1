"""A small step chart of one feature's change points, as inline SVG (no chart library:
the page fetches nothing from anywhere)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from itertools import pairwise
from typing import Any

WIDTH, HEIGHT, PAD = 640, 180, 36


def numeric(value: Any) -> float | None:
    """The value as a number to plot (timestamps as epoch seconds), or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    return None


def step_chart(points: Sequence[tuple[datetime, Any]], now: datetime, title: str) -> str:
    """SVG of a value that holds from each point until the next (and until `now`)."""
    plotted: list[tuple[float, float]] = []
    for moment, value in points:
        number = numeric(value)
        if number is not None:
            plotted.append((moment.timestamp(), number))
    if not plotted:
        return f'<p class="muted">no numeric history for {escape(title)}</p>'
    t0, t1 = plotted[0][0], max(now.timestamp(), plotted[-1][0])
    values = [v for _, v in plotted]
    lo, hi = min(0.0, *values), max(values)
    span_t, span_v = max(t1 - t0, 1e-9), max(hi - lo, 1e-9)

    def x(t: float) -> float:
        return PAD + (t - t0) / span_t * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD - (v - lo) / span_v * (HEIGHT - 2 * PAD)

    path = [f"M{x(plotted[0][0]):.1f},{y(plotted[0][1]):.1f}"]
    for (_, v_prev), (t, v) in pairwise(plotted):
        path.append(f"L{x(t):.1f},{y(v_prev):.1f} L{x(t):.1f},{y(v):.1f}")
    path.append(f"L{x(t1):.1f},{y(plotted[-1][1]):.1f}")
    dots = "".join(
        f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5"><title>{_fmt(v)} from '
        f"{datetime.fromtimestamp(t, tz=now.tzinfo):%Y-%m-%d %H:%M:%S}</title></circle>"
        for t, v in plotted
    )
    start = datetime.fromtimestamp(t0, tz=now.tzinfo)
    end = datetime.fromtimestamp(t1, tz=now.tzinfo)
    labels = (
        f'<text x="{PAD}" y="{HEIGHT - 8}">{start:%m-%d %H:%M}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">{end:%m-%d %H:%M}</text>'
        f'<text x="4" y="{y(hi) + 4:.1f}">{_fmt(hi)}</text>'
        f'<text x="4" y="{y(lo) + 4:.1f}">{_fmt(lo)}</text>'
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}"><path d="{" ".join(path)}"/>{dots}{labels}</svg>'
    )


def _fmt(value: float) -> str:
    return f"{value:.4g}"
