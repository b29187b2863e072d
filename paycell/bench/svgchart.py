"""Line charts as standalone SVG text, for benchmark reports that are better seen than read.

No plotting library: a chart is a few dozen SVG elements (axes with round ticks, a polyline
per series, a legend, optional vertical marks such as "measuring starts"), written as text
that browsers, GitHub and editors show as an image. ``line_chart`` returns the document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22")
CHAR_PX = 7  # a generous width of one character of the 12 px sans-serif labels


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    colour: str = ""


@dataclass(frozen=True)
class Chart:
    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]
    marks: Sequence[tuple[float, str]] = field(default_factory=tuple)  # vertical lines
    y_max: float | None = None  # the y axis's end (e.g. 100 for percentages); else from data
    # Named x positions instead of numeric ticks (levels on a log scale, categories).
    x_labels: Sequence[tuple[float, str]] = field(default_factory=tuple)


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _label(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:g}"


def line_chart(chart: Chart, *, width: int = 760, height: int = 320) -> str:
    """The chart as an SVG document; axes start at 0 and end at a round tick a little above
    the highest value; the legend sits right of the plot, and the picture widens to fit its
    longest name."""
    left, right, top, bottom = 64, 200, 36, 48
    w, h = width - left - right, height - top - bottom
    legend = 38 + CHAR_PX * max((len(s.name) for s in chart.series), default=0) + 8
    if legend > right:
        width += legend - right
    xs = [x for s in chart.series for x, _ in s.points] + [x for x, _ in chart.marks]
    ys = [y for s in chart.series for _, y in s.points]
    # Named positions sit at 1..n, with a step of room on either side.
    x_ticks = ([0.0, max(x for x, _ in chart.x_labels) + 1.0] if chart.x_labels
               else nice_ticks(max(xs, default=1.0)))
    y_ticks = nice_ticks(chart.y_max or max(ys, default=1.0) * 1.05)
    x_top, y_top = x_ticks[-1] or 1.0, y_ticks[-1] or 1.0

    def px(x: float) -> float:
        return round(left + w * x / x_top, 1)

    def py(y: float) -> float:
        return round(top + h - h * y / y_top, 1)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14" font-weight="bold">'
           f'{escape(chart.title)}</text>']
    for t in y_ticks:
        out.append(f'<line x1="{left}" y1="{py(t)}" x2="{left + w}" y2="{py(t)}" '
                   'stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{py(t) + 4}" text-anchor="end">{_label(t)}</text>')
    for t, text in chart.x_labels or [(t, _label(t)) for t in x_ticks]:
        out.append(f'<text x="{px(t)}" y="{top + h + 16}" text-anchor="middle">'
                   f'{escape(text)}</text>')
    out.append(f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" '
               'stroke="#333"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#333"/>')
    out.append(f'<text x="{left + w / 2}" y="{height - 8}" text-anchor="middle">'
               f'{escape(chart.x_label)}</text>')
    out.append(f'<text x="14" y="{top + h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + h / 2})">{escape(chart.y_label)}</text>')
    for i, (x, name) in enumerate(chart.marks):  # labels on four lines in turn
        out.append(f'<line x1="{px(x)}" y1="{top}" x2="{px(x)}" y2="{top + h}" '
                   'stroke="#999" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{px(x) + 4}" y="{top + 12 + 14 * (i % 4)}" fill="#666">'
                   f'{escape(name)}</text>')
    for i, s in enumerate(chart.series):
        colour = s.colour or COLOURS[i % len(COLOURS)]
        if s.points:
            pts = " ".join(f"{px(x)},{py(y)}" for x, y in s.points)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                       f'points="{pts}"><title>{escape(s.name)}</title></polyline>')
        ly = top + 8 + 18 * i
        out.append(f'<line x1="{left + w + 12}" y1="{ly}" x2="{left + w + 32}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + w + 38}" y="{ly + 4}">{escape(s.name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
