"""The benchmark reports' SVG line charts: round ticks, one polyline per series, text escaped,
a document any XML parser reads."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from paycell.bench.svgchart import Chart, Series, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


@given(st.floats(min_value=1e-3, max_value=1e9, allow_nan=False))
def test_ticks_are_round_and_cover_the_top(top: float) -> None:
    ticks = nice_ticks(top)
    assert ticks[0] == 0 and ticks[-1] >= top * (1 - 1e-9)
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5, 10)
    assert 2 <= len(ticks) <= 12


def test_ticks_of_nothing() -> None:
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(float("nan")) == [0.0, 1.0]


def test_chart_is_svg_with_a_line_per_series() -> None:
    chart = Chart("Payments <per> second & more", "seconds", "payments/s", [
        Series("sqlite", [(1, 400), (2, 450), (3, 470)]),
        Series("postgresql", [(1, 600), (2, 700), (3, 690)]),
        Series("empty", []),
    ], marks=[(1.5, "ANALYZE")])
    root = ET.fromstring(line_chart(chart))
    assert root.tag == f"{SVG}svg"
    lines = root.findall(f"{SVG}polyline")
    assert [p.find(f"{SVG}title").text for p in lines] == ["sqlite", "postgresql"]  # type: ignore[union-attr]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Payments <per> second & more" in texts and "ANALYZE" in texts
    assert "800" in texts  # the y axis ends at a round tick above the top value
    # every point inside the plotting area
    for p in lines:
        for xy in (p.get("points") or "").split():
            x, y = map(float, xy.split(","))
            assert 64 <= x <= 760 - 200 and 36 <= y <= 320 - 48


def test_a_long_name_widens_the_picture_not_the_plot() -> None:
    name = "postgresql at 1,000/s: order-create"
    root = ET.fromstring(line_chart(Chart("t", "x", "y", [Series(name, [(1, 1), (9, 2)])])))
    width = float(root.get("width") or 0)
    [label] = [t for t in root.iter(f"{SVG}text") if t.text == name]
    assert float(label.get("x") or 0) + 7 * len(name) <= width
    [line] = root.findall(f"{SVG}polyline")
    assert max(float(xy.split(",")[0]) for xy in (line.get("points") or "").split()) <= 560


def test_y_axis_can_end_where_told() -> None:
    chart = Chart("share", "ms", "percent", [Series("all", [(10, 50), (20, 100)])], y_max=100)
    texts = [t.text for t in ET.fromstring(line_chart(chart)).iter(f"{SVG}text")]
    assert "100" in texts and "120" not in texts and "150" not in texts


def test_chart_of_nothing_still_draws() -> None:
    root = ET.fromstring(line_chart(Chart("empty", "x", "y", [])))
    assert root.findall(f"{SVG}polyline") == []


def test_named_x_positions() -> None:
    """Levels on a log scale (1, 32, 1,024 submitters) sit one step apart, labelled."""
    chart = Chart("ledger", "submitters", "payments/s",
                  [Series("postgresql", [(1, 500), (2, 6000), (3, 12000)])],
                  x_labels=[(1, "1"), (2, "32"), (3, "1,024")])
    root = ET.fromstring(line_chart(chart))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "1,024" in texts and "32" in texts
    xs = [float(xy.split(",")[0])
          for xy in (root.find(f"{SVG}polyline").get("points") or "").split()]  # type: ignore[union-attr]
    assert xs[1] - xs[0] == xs[2] - xs[1] and xs[0] > 64  # evenly spaced, off the axis
