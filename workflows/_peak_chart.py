"""find-peak's report: the sweep chart (each Server rate's TTFT/TPOT p99 and verdict against the limit).

One self-contained HTML page beside ``find_peak.json``, drawn with the run report's SVG frame: a
point per Server run (circles: search probes, squares: confirm runs; green PASS, red otherwise), the
limit as a dashed horizontal line and the confirmed peak as a vertical one. A point far above the
limit (an overloaded probe) is drawn at the top edge, marked clipped, so the region around the
limit stays readable.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflows._charts import _H, _PAD_B, _PAD_L, _PAD_R, _PAD_T, _W, _fmt, _Frame, _svg_open
from workflows._find_peak import fmt_rate
from workflows._report import _CSS, _table

if TYPE_CHECKING:
    from workflows._find_peak import FindPeakResult, Probe

_PASS, _FAIL = "#2e8540", "#b3262c"
# The y axis reaches at most this multiple of the limit; higher points are clipped to the top edge.
_Y_LIMIT_SPAN = 3.0
# The peak label: its gap from the peak line, and a generous width per character of the 11 px chart font.
_LABEL_GAP = 4.0
_LABEL_CHAR_W = 7.0


def sweep_chart(result: FindPeakResult, metric: str = "ttft") -> str:
    """SVG: rate (qps) against the runs' p99 of ``metric`` ("ttft" or "tpot"), verdict by colour."""
    runs = [p for p in result.trace if p.kind in ("probe", "confirm") and p.qps]
    limit = result.ttft_limit_ms if metric == "ttft" else result.tpot_limit_ms
    label = "TTFT" if metric == "ttft" else "TPOT"

    def value(p: Probe) -> float | None:
        return p.ttft_p99_ms if metric == "ttft" else p.tpot_p99_ms

    points = [(float(p.qps or 0.0), v, p) for p in runs if (v := value(p)) is not None]
    title = f"{label} p99 by scheduled rate ({len(points)} Server runs)"
    xs = [x for x, _, _ in points] + ([result.peak_qps] if result.peak_qps else [])
    ys = [y for _, y, _ in points]
    y_top = max([*ys, limit or 0.0, 1e-3]) * 1.1
    if limit:
        y_top = min(y_top, _Y_LIMIT_SPAN * limit)
    frame = _Frame(0.0, max(xs, default=1.0) * 1.05, 0.0, y_top)
    parts = [_svg_open(f"sweep-{metric}", title, len(points)), *frame.axes("scheduled rate (qps)", f"{label} p99 (ms)")]
    if limit:
        y = frame.y(limit)
        parts.append(
            f'<line class="limit" data-limit="{limit:g}" x1="{_PAD_L}" y1="{y:.1f}" x2="{_W - _PAD_R}" y2="{y:.1f}" '
            f'stroke="{_FAIL}" stroke-width="2" stroke-dasharray="8 4"/><text class="limit-label" x="{_PAD_L + 4}" '
            f'y="{y - 4:.1f}" fill="{_FAIL}">limit {_fmt(limit)} ms</text>'
        )
    if result.peak_qps:
        x = frame.x(result.peak_qps)
        text = f"peak {fmt_rate(result.peak_qps)} qps"
        # Right of the line where the label fits inside the plot area, else left of it (a peak at the
        # highest rate sits near the right edge, where the label would run past the frame).
        fits_right = x + _LABEL_GAP + _LABEL_CHAR_W * len(text) <= _W - _PAD_R
        lx, anchor = (x + _LABEL_GAP, "start") if fits_right else (x - _LABEL_GAP, "end")
        parts.append(
            f'<line class="peak" data-qps="{result.peak_qps:.4g}" x1="{x:.1f}" y1="{_PAD_T}" x2="{x:.1f}" '
            f'y2="{_H - _PAD_B}" stroke="{_PASS}" stroke-dasharray="3 3"/><text class="peak-label" x="{lx:.1f}" '
            f'y="{_PAD_T + 12}" text-anchor="{anchor}" fill="{_PASS}">{html.escape(text)}</text>'
        )
    for qps, v, p in points:
        clipped = v > frame.y_hi
        x, y = frame.x(qps), frame.y(min(v, frame.y_hi))
        color = _PASS if p.verdict == "PASS" else _FAIL
        attrs = (
            f'class="point" data-kind="{p.kind}" data-verdict="{p.verdict}" data-qps="{qps:.4g}" '
            f'data-p99-ms="{v:.4g}" data-clipped="{int(clipped)}" fill="{color}"'
        )
        tip = f"<title>{html.escape(f'{p.kind} {qps:.1f} qps: {p.verdict}, {label} p99 {v:.1f} ms')}</title>"
        if p.kind == "confirm":
            parts.append(f'<rect {attrs} x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10">{tip}</rect>')
        else:
            parts.append(f'<circle {attrs} cx="{x:.1f}" cy="{y:.1f}" r="5">{tip}</circle>')
    parts.append("</svg>")
    return "".join(parts)


def render_peak_report(result: FindPeakResult) -> str:
    e = html.escape
    if result.peak_qps is not None:
        head = f"peak {fmt_rate(result.peak_qps)} qps, confirmed"
        cls = "valid"
    else:
        lo, hi = result.bracket
        head = f"no rate confirmed (probes bracketed {fmt_rate(lo)}..{fmt_rate(hi)} qps)"
        cls = "invalid"
    rows: list[tuple[Any, ...]] = [
        (
            p.kind,
            None if p.qps is None else round(p.qps, 2),
            None if p.duration_s is None else round(p.duration_s, 1),
            p.verdict or "-",
            p.completed_qps,
            p.ttft_p99_ms,
            p.tpot_p99_ms,
            "; ".join(p.reasons),
            _relative(p.log_dir, result.out_dir),
        )
        for p in result.trace
    ]
    failures = "".join(f"<li>{e(f)}</li>" for f in result.confirm_failures)
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>lpuperf find-peak</title><style>{_CSS}</style></head><body>",
            "<h1>lpuperf find-peak</h1>",
            f'<div class="verdict {cls}" id="verdict">{e(head)}</div>',
            f'<p>Confirm runs that failed:</p><ul id="confirm-failures">{failures}</ul>' if failures else "",
            '<h2 id="sweep">Sweep</h2><div class="plots">',
            sweep_chart(result, "ttft"),
            sweep_chart(result, "tpot") if result.tpot_limit_ms else "",
            "</div>",
            '<p class="note">Circles: search probes; squares: confirm runs. Green: PASS; red: INVALID, OVERLOADED '
            "or ERRORS. A point far above the limit is drawn at the top edge.</p>",
            '<h2 id="trace">Runs</h2>',
            _table(
                rows,
                header=("kind", "qps", "s", "verdict", "completed qps", "TTFT p99 ms", "TPOT p99 ms", "why", "logs"),
                table_id="trace-table",
            ),
            f"<p class='note'>Search took {result.elapsed_s:.0f} s.</p></body></html>\n",
        ]
    )


def _relative(log_dir: str, base: str) -> str:
    try:
        return str(Path(log_dir).relative_to(base)) if base else log_dir
    except ValueError:
        return log_dir


def write_peak_report(result: FindPeakResult, path: str | Path) -> Path:
    from common import write_atomic

    out = write_atomic(path, render_peak_report(result))
    out.chmod(0o644)  # a page to share
    return out
