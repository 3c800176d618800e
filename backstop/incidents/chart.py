"""Customers affected over the incident as a small server-rendered SVG step chart: no script, no library."""

from __future__ import annotations

import datetime as dt

WIDTH = 560
HEIGHT = 160
LEFT = 36
RIGHT = 8
TOP = 12
BOTTOM = 24
COLOUR = "#c98a00"


def affected_chart(series: list[tuple[dt.datetime, int]], *, start: dt.datetime, end: dt.datetime) -> str:
    """Steps of the count of affected customers between ``start`` and ``end``, the peak written on the axis."""
    span = max((end - start).total_seconds(), 1.0)
    peak = max([1, *(count for _, count in series)])
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM

    def x(moment: dt.datetime) -> float:
        return LEFT + plot_w * min(max((moment - start).total_seconds() / span, 0.0), 1.0)

    def y(count: int) -> float:
        return TOP + plot_h * (1 - count / peak)

    points = [(x(start), y(0))]
    for moment, count in series:
        points += [(x(moment), points[-1][1]), (x(moment), y(count))]
    points.append((x(end), points[-1][1]))
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="affected-chart-title" class="affected-chart">'
        f'<title id="affected-chart-title">Customers affected over the incident (peak {peak})</title>'
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#9aa3b2"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#9aa3b2"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 10}" font-size="11" text-anchor="end">{peak}</text>'
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="11">{start:%H:%M:%S}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" font-size="11" text-anchor="end">{end:%H:%M:%S} UTC</text>'
        f'<polyline points="{path}" fill="none" stroke="{COLOUR}" stroke-width="2"/>'
        "</svg>"
    )
