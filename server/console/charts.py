"""Charts drawn as SVG on the server: lines over time, each point carrying its value in `data-*`
attributes so a reader (or a test in a browser) can check the numbers the picture shows."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 720, 220, 48, 28, 12, 12
COLOURS = ("#2563eb", "#16a34a", "#dc2626", "#9333ea")


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]


def line_chart(labels: list[str], series: list[Series], *, title: str) -> Markup:
    """A line per series over `labels` (one point each), the y axis from 0 to the largest value."""
    top = max([1.0, *(value for line in series for value in line.values)])
    steps = max(len(labels) - 1, 1)

    def x(index: int) -> float:
        return LEFT + index * (WIDTH - LEFT - RIGHT) / steps

    def y(value: float) -> float:
        return TOP + (1 - value / top) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" stroke="#999"/>',
             f'<text x="4" y="{y(top) + 4:.1f}" font-size="11">{_number(top)}</text>',
             f'<text x="4" y="{y(0):.1f}" font-size="11">0</text>']
    for index in sorted({0, len(labels) - 1, len(labels) // 2}) if labels else ():
        anchor = "start" if index == 0 else "end" if index == len(labels) - 1 else "middle"
        parts.append(f'<text x="{x(index):.1f}" y="{HEIGHT - 8}" font-size="11" text-anchor="{anchor}">'
                     f'{escape(labels[index])}</text>')
    for number, line in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line.values))
        parts.append(f'<g class="series" data-series="{escape(line.name)}">')
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.extend(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}" data-label="{escape(labels[i])}" '
                     f'data-value="{_number(v)}"><title>{escape(labels[i])}: {_number(v)}</title></circle>'
                     for i, v in enumerate(line.values))
        parts.append("</g>")
    legend = "".join(f'<span class="key" style="color:{COLOURS[n % len(COLOURS)]}">&#9632; {escape(line.name)}</span>'
                     for n, line in enumerate(series))
    return Markup("".join(parts) + "</svg>" + f'<div class="legend">{legend}</div>')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
