"""Inline SVG charts for the project's HTML pages (run report, find-peak chart, capacity plan): line charts,
histograms and CDF points, drawn here with no scripts, stylesheets or fonts from elsewhere."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A CDF is drawn from at most this many quantiles: enough for a smooth curve, small enough that a
# 600 s run at high QPS still gives a page of a few hundred KB.
_CDF_POINTS = 400
_HIST_BINS = 40
_W, _H = 640, 300
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 64, 16, 40, 44
_COLORS = ("#1f6fb4", "#d9661a", "#2e9c48", "#b3262c", "#7b4fa8")


@dataclass
class _Series:
    label: str
    xs: np.ndarray
    ys: np.ndarray
    dashed: bool = False


def _nice_step(span: float, n: int) -> float:
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        hi = lo + 1.0
    step = _nice_step(hi - lo, n)
    start = math.floor(lo / step) * step
    out: list[float] = []
    v = start
    while v <= hi + step * 1e-9 and len(out) < 4 * n:
        if v >= lo - step * 1e-9:
            out.append(round(v, 10))
        v += step
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"
    return f"{v:.3g}"


class _Frame:
    """Maps data coordinates onto the plot area of one SVG."""

    def __init__(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        self.xt = _ticks(x_lo, x_hi)
        self.yt = _ticks(y_lo, y_hi)
        self.x_lo, self.x_hi = min(self.xt[0], x_lo), max(self.xt[-1], x_hi)
        self.y_lo, self.y_hi = min(self.yt[0], y_lo), max(self.yt[-1], y_hi)

    def x(self, v: float) -> float:
        return _PAD_L + (v - self.x_lo) / (self.x_hi - self.x_lo) * (_W - _PAD_L - _PAD_R)

    def y(self, v: float) -> float:
        return _H - _PAD_B - (v - self.y_lo) / (self.y_hi - self.y_lo) * (_H - _PAD_T - _PAD_B)

    def axes(self, x_label: str, y_label: str) -> list[str]:
        e = html.escape
        out = [f'<rect class="area" x="{_PAD_L}" y="{_PAD_T}" width="{_W - _PAD_L - _PAD_R}" '
               f'height="{_H - _PAD_T - _PAD_B}" fill="#fafafa" stroke="#999"/>']  # fmt: skip
        for t in self.xt:
            x = self.x(t)
            out.append(f'<line x1="{x:.1f}" y1="{_PAD_T}" x2="{x:.1f}" y2="{_H - _PAD_B}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{x:.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle">{_fmt(t)}</text>')
        for t in self.yt:
            y = self.y(t)
            out.append(f'<line x1="{_PAD_L}" y1="{y:.1f}" x2="{_W - _PAD_R}" y2="{y:.1f}" stroke="#e3e3e3"/>')
            out.append(f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
        out.append(f'<text x="{(_PAD_L + _W - _PAD_R) / 2:.0f}" y="{_H - 8}" text-anchor="middle">{e(x_label)}</text>')
        out.append(
            f'<text x="14" y="{(_PAD_T + _H - _PAD_B) / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {(_PAD_T + _H - _PAD_B) / 2:.0f})">{e(y_label)}</text>'
        )
        return out


def _svg_open(plot_id: str, title: str, n_points: int) -> str:
    e = html.escape
    return (
        f'<svg class="plot" id="plot-{plot_id}" data-plot="{plot_id}" data-points="{n_points}" '
        f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{e(title)}">'
        f'<title>{e(title)}</title><text class="title" x="{_PAD_L}" y="18">{e(title)}</text>'
    )


def _legend(labels: Sequence[str]) -> list[str]:
    out = []
    x = _W - _PAD_R - 8
    for i, label in reversed(list(enumerate(labels))):
        width = 16 + 7 * len(label)
        x -= width
        color = _COLORS[i % len(_COLORS)]
        out.append(f'<rect x="{x}" y="24" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{x + 14}" y="33">{html.escape(label)}</text>')
        x -= 8
    return out


def line_chart(
    plot_id: str,
    title: str,
    series: Sequence[_Series],
    x_label: str,
    y_label: str,
    markers: Sequence[tuple[str, float]] = (),
    y_range: tuple[float, float] | None = None,
    limit: float | None = None,
) -> str:
    """An SVG line chart; each series is one ``<polyline class="series">`` with its points.

    ``limit`` is drawn as a dashed red ``<line class="limit">`` at that x. A limit far beyond the
    data (more than 3x) would squash the curve into a corner: it is then shown at the right edge,
    labelled as off the scale.
    """
    xs = np.concatenate([s.xs for s in series])
    ys = np.concatenate([s.ys for s in series])
    y_lo, y_hi = y_range if y_range is not None else (0.0, float(ys.max()) * 1.05 if ys.size else 1.0)
    # LoadGen's own percentiles widen the x range: a marker off the curve shows a disagreement.
    x_hi = max([float(xs.max()), *(v for _, v in markers)])
    on_scale = limit is not None and limit <= 3 * x_hi
    if on_scale and limit is not None:
        x_hi = max(x_hi, limit)
    frame = _Frame(min(0.0, float(xs.min())), x_hi, y_lo, y_hi)
    parts = [_svg_open(plot_id, title, int(xs.size)), *frame.axes(x_label, y_label)]
    if limit is not None:
        x = frame.x(limit) if on_scale else float(_W - _PAD_R)
        text = f"limit {_fmt(limit)} {x_label}" + ("" if on_scale else " (off scale)")
        parts.append(
            f'<line class="limit" data-limit="{limit:g}" x1="{x:.1f}" y1="{_PAD_T}" x2="{x:.1f}" y2="{_H - _PAD_B}" '
            f'stroke="#b3262c" stroke-width="2" stroke-dasharray="8 4"/><text class="limit-label" '
            f'x="{x - 4:.1f}" y="{_H - _PAD_B - 6}" text-anchor="end" fill="#b3262c">{html.escape(text)}</text>'
        )
    for i, (name, value) in enumerate(markers):
        x = frame.x(value)
        parts.append(
            f'<line class="marker" x1="{x:.1f}" y1="{_PAD_T}" x2="{x:.1f}" y2="{_H - _PAD_B}" '
            f'stroke="#555" stroke-dasharray="3 3"/><text class="marker-label" x="{x + 3:.1f}" '
            f'y="{_PAD_T + 12 + 12 * i}">{html.escape(name)}</text>'
        )
    for i, s in enumerate(series):
        pts = " ".join(f"{frame.x(float(a)):.1f},{frame.y(float(b)):.1f}" for a, b in zip(s.xs, s.ys, strict=True))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<polyline class="series" data-series="{html.escape(s.label)}" data-n="{s.xs.size}" fill="none" '
            f'stroke="{_COLORS[i % len(_COLORS)]}" stroke-width="2"{dash} points="{pts}"/>'
        )
    if len(series) > 1:
        parts += _legend([s.label for s in series])
    parts.append("</svg>")
    return "".join(parts)


def histogram_chart(plot_id: str, title: str, values: np.ndarray, x_label: str) -> str:
    """An SVG histogram: one ``<rect class="bar">`` per bin."""
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        hi = lo + max(abs(lo) * 0.01, 1e-3)
    counts, edges = np.histogram(values, bins=_HIST_BINS, range=(lo, hi))
    frame = _Frame(lo, hi, 0.0, float(counts.max()) * 1.05)
    parts = [_svg_open(plot_id, title, int(values.size)), *frame.axes(x_label, "queries")]
    for c, a, b in zip(counts, edges[:-1], edges[1:], strict=True):
        x0, x1, y = frame.x(float(a)), frame.x(float(b)), frame.y(float(c))
        parts.append(
            f'<rect class="bar" data-count="{int(c)}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
            f'height="{_H - _PAD_B - y:.1f}" fill="{_COLORS[0]}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def cdf_points(values: np.ndarray, max_points: int = _CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(latency, cumulative fraction) pairs; quantiles at evenly spaced fractions for large runs."""
    v = np.sort(values)
    if v.size <= max_points:
        return v, np.arange(1, v.size + 1) / v.size
    probs = np.linspace(0.0, 1.0, max_points)
    return np.quantile(v, probs), probs


def rate_series(times_s: np.ndarray, t_end: float, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Events per second in consecutive bins of ``bin_s``; x is each bin's midpoint."""
    n_bins = max(1, math.ceil(t_end / bin_s))
    counts, edges = np.histogram(times_s, bins=n_bins, range=(0.0, n_bins * bin_s))
    return (edges[:-1] + edges[1:]) / 2, counts / bin_s
