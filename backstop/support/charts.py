"""The week on the desk home as a small server-rendered SVG: no script, no external library."""

from __future__ import annotations

import datetime as dt
from html import escape

WIDTH = 560
HEIGHT = 180
TOP = 24
BOTTOM = 28
LEFT = 8
OPENED_COLOUR = "#2453d4"
RESOLVED_COLOUR = "#1e7f3a"


def week_chart(days: list[tuple[dt.date, int, int]]) -> str:
    """Grouped bars per day: cases opened and resolved, with each count written above its bar."""
    peak = max([1, *(max(opened, resolved) for _, opened, resolved in days)])
    slot = (WIDTH - LEFT * 2) / max(1, len(days))
    bar = slot * 0.32
    plot_height = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="week-chart-title" class="week-chart">',
        '<title id="week-chart-title">Cases opened and resolved per day, last 7 days</title>',
        f'<rect x="{LEFT}" y="4" width="10" height="10" fill="{OPENED_COLOUR}"/>'
        f'<text x="{LEFT + 14}" y="13" font-size="11">opened</text>',
        f'<rect x="{LEFT + 70}" y="4" width="10" height="10" fill="{RESOLVED_COLOUR}"/>'
        f'<text x="{LEFT + 84}" y="13" font-size="11">resolved</text>',
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#9aa3b2"/>',
    ]
    for index, (day, opened, resolved) in enumerate(days):
        x = LEFT + index * slot + slot * 0.14
        for offset, count, colour, label in ((0.0, opened, OPENED_COLOUR, "opened"),
                                             (bar + 2, resolved, RESOLVED_COLOUR, "resolved")):
            height = plot_height * count / peak
            y = HEIGHT - BOTTOM - height
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{colour}">'
                f'<title>{escape(f"{day:%a %-d %b}: {count} {label}")}</title></rect>'
                f'<text x="{x + offset + bar / 2:.1f}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="middle">{count}</text>'
            )
        parts.append(f'<text x="{x + bar:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" text-anchor="middle">'
                     f'{escape(f"{day:%a %-d}")}</text>')
    parts.append("</svg>")
    return "".join(parts)
