"""What a sweep shows: the console table (a row as each point finishes) and sweep.html.

The page is self-contained (inline SVG drawn with the run report's frame, no scripts or fonts from
elsewhere): TTFT p99 and TPOT p99 against throughput with their limits, per-user output tokens/s against
throughput (the interactivity-throughput curve), throughput against the load with the knee, and the
table of points. On every chart a point's colour is its verdict (green meets the SLO, red misses it,
grey interrupted or client-limited) and the best point carries a ring and a label.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workflows._charts import _H, _PAD_B, _PAD_L, _PAD_R, _PAD_T, _W, _fmt, _Frame, _svg_open
from workflows._report import _CSS, _table
from workflows._sweep import SweepPoint, SweepResult, fmt_load

_MEETS, _MISSES, _OTHER, _LINE = "#2e8540", "#b3262c", "#8a8a8a", "#1f6fb4"
# The y axis reaches at most this multiple of a limit; points above are drawn at the top edge, marked clipped.
_Y_LIMIT_SPAN = 3.0


# ---- console ---------------------------------------------------------------------------------

_COLUMNS = (
    ("point", 22),
    ("load", 9),
    ("qps", 8),
    ("out tok/s", 10),
    ("tok/s/user", 10),
    ("TTFT p50/p99 ms", 17),
    ("TPOT p50/p99 ms", 16),
    ("lat p99 ms", 10),
    ("lag p99 ms", 10),
)


def _num(x: float | None) -> str:
    return "-" if x is None else _fmt(float(x)) if abs(x) >= 10 else f"{x:.3g}"


def _pair(a: float | None, b: float | None) -> str:
    return f"{_num(a)}/{_num(b)}"


def load_text(p: SweepPoint) -> str:
    return f"c={p.concurrency}" if p.concurrency is not None else f"{fmt_load(p.rate_qps or 0.0)}/s"


def verdict(p: SweepPoint) -> str:
    if p.state != "complete":
        return "INTERRUPTED"
    if p.client_limited:
        return "CLIENT-LIMITED"
    return "meets SLO" if p.meets_slo else "misses SLO"


def table_header(kind: str) -> str:
    head = "  ".join(name.rjust(width) if i > 1 else name.ljust(width) for i, (name, width) in enumerate(_COLUMNS))
    return f"{head}  SLO"


def format_row(p: SweepPoint) -> str:
    cells = (
        p.label,
        load_text(p),
        _num(p.completed_qps),
        _num(p.output_tokens_per_s),
        _num(p.per_user_output_tokens_per_s),
        _pair(p.ttft_p50_ms, p.ttft_p99_ms),
        _pair(p.tpot_p50_ms, p.tpot_p99_ms),
        _num(p.latency_p99_ms),
        _num(p.dispatch_lag_p99_ms),
    )
    row = "  ".join(
        c.rjust(width) if i > 1 else c.ljust(width)
        for i, (c, (_, width)) in enumerate(zip(cells, _COLUMNS, strict=True))
    )
    why = f" ({p.slo_violations[0]})" if p.slo_violations and not p.meets_slo else ""
    return f"{row}  {verdict(p)}{why}"


def point_figures(p: SweepPoint) -> str:
    parts = [
        f"{_num(p.completed_qps)} qps",
        f"{_num(p.output_tokens_per_s)} output tok/s",
        f"{_num(p.per_user_output_tokens_per_s)} tok/s per user",
        f"TTFT p99 {_num(p.ttft_p99_ms)} ms",
        f"TPOT p99 {_num(p.tpot_p99_ms)} ms",
    ]
    return ", ".join(parts)


# ---- charts ----------------------------------------------------------------------------------


def _color(p: SweepPoint) -> str:
    if p.state != "complete" or p.client_limited:
        return _OTHER
    return _MEETS if p.meets_slo else _MISSES


def curve_chart(
    plot_id: str,
    title: str,
    result: SweepResult,
    x: Callable[[SweepPoint], float | None],
    y: Callable[[SweepPoint], float | None],
    labels: tuple[str, str],
    limit: float | None = None,
    marker: tuple[str, float] | None = None,
) -> str:
    """SVG: one line through the points (lightest load first), a dot per point by verdict, the best ringed,
    ``limit`` as a dashed horizontal line (a point far over it clipped to the top edge), ``marker`` (label, x)
    as a dashed vertical one."""
    pts = [
        (xv, yv, p)
        for p in sorted(result.points, key=lambda q: q.load_value)
        if (xv := x(p)) is not None and (yv := y(p)) is not None
    ]
    ys = [v for _, v, _ in pts]
    top = max([*ys, limit or 0.0, 1e-3]) * 1.1
    if limit:
        top = min(top, _Y_LIMIT_SPAN * limit)
    frame = _Frame(0.0, max([v for v, _, _ in pts], default=1.0) * 1.05, 0.0, top)
    parts = [_svg_open(plot_id, title, len(pts)), *frame.axes(*labels)]
    if limit:
        ly = frame.y(limit)
        parts.append(
            f'<line class="limit" data-limit="{limit:g}" x1="{_PAD_L}" y1="{ly:.1f}" x2="{_W - _PAD_R}" y2="{ly:.1f}" '
            f'stroke="{_MISSES}" stroke-width="2" stroke-dasharray="8 4"/><text class="limit-label" x="{_PAD_L + 4}" '
            f'y="{ly - 4:.1f}" fill="{_MISSES}">limit {_fmt(limit)} ms</text>'
        )
    if marker is not None:
        mx = frame.x(marker[1])
        parts.append(
            f'<line class="marker" data-x="{marker[1]:.6g}" x1="{mx:.1f}" y1="{_PAD_T}" x2="{mx:.1f}" '
            f'y2="{_H - _PAD_B}" stroke="#555" stroke-dasharray="3 3"/><text class="marker-label" x="{mx + 3:.1f}" '
            f'y="{_H - _PAD_B - 6}">{html.escape(marker[0])}</text>'
        )
    coords = [(frame.x(xv), frame.y(min(yv, frame.y_hi))) for xv, yv, _ in pts]
    if len(coords) > 1:
        line = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        parts.append(f'<polyline class="series" fill="none" stroke="{_LINE}" stroke-width="2" points="{line}"/>')
    for (cx, cy), (xv, yv, p) in zip(coords, pts, strict=True):
        tip = html.escape(f"{p.load}: {labels[0]} {_num(xv)}, {labels[1]} {_num(yv)}; {verdict(p)}")
        parts.append(
            f'<circle class="point" data-label="{html.escape(p.label)}" data-verdict="{html.escape(verdict(p))}" '
            f'data-x="{xv:.6g}" data-y="{yv:.6g}" data-clipped="{int(yv > frame.y_hi)}" cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="5" fill="{_color(p)}"><title>{tip}</title></circle>'
        )
        if p.label == result.best:
            parts.append(_best_mark(cx, cy, p))
    parts.append("</svg>")
    return "".join(parts)


def _best_mark(cx: float, cy: float, p: SweepPoint) -> str:
    text = f"best: {load_text(p)}"
    # Left of the ring when the label would run past the plot's right edge.
    fits_right = cx + 12 + 7 * len(text) <= _W - _PAD_R
    lx, anchor = (cx + 11, "start") if fits_right else (cx - 11, "end")
    ly = max(cy - 10, _PAD_T + 12)
    return (
        f'<circle class="best" data-label="{html.escape(p.label)}" cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="none" '
        f'stroke="{_MEETS}" stroke-width="2"/><text class="best-label" x="{lx:.1f}" y="{ly:.1f}" '
        f'text-anchor="{anchor}" fill="{_MEETS}">{html.escape(text)}</text>'
    )


def charts(result: SweepResult) -> list[str]:
    def throughput(p: SweepPoint) -> float | None:
        return p.output_tokens_per_s

    tput = "output tokens/s"
    load_name = "concurrency" if result.kind == "concurrency" else "target rate (requests/s)"
    knee = result.point(result.saturation.knee if result.saturation else None)
    marker = None if knee is None else (f"knee {load_text(knee)}", knee.load_value)
    return [
        curve_chart(
            "ttft", "TTFT p99 vs throughput", result, throughput, lambda p: p.ttft_p99_ms, (tput, "TTFT p99 (ms)"),
            limit=result.ttft_limit_ms,
        ),
        curve_chart(
            "tpot", "TPOT p99 vs throughput", result, throughput, lambda p: p.tpot_p99_ms, (tput, "TPOT p99 (ms)"),
            limit=result.tpot_limit_ms,
        ),
        curve_chart(
            "per-user", "Per-user output tokens/s vs throughput", result, throughput,
            lambda p: p.per_user_output_tokens_per_s, (tput, "tokens/s per user"),
        ),
        curve_chart(
            "load", f"Throughput vs {load_name}", result, lambda p: p.load_value, throughput, (load_name, tput),
            marker=marker,
        ),
    ]  # fmt: skip


# ---- page ------------------------------------------------------------------------------------


def _head(result: SweepResult) -> tuple[str, str]:
    best = result.point(result.best)
    if result.state == "interrupted":
        cls = "interrupted"
    elif result.state == "failed":
        cls = "failed"
    else:
        cls = "valid" if best is not None else "invalid"
    text = f"best: {best.load} ({point_figures(best)})" if best is not None else "no point meets the SLO"
    if result.state != "complete":
        text = f"{result.state.upper()}: {text}"
    return cls, text


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_sweep_page(result: SweepResult) -> str:
    e = html.escape
    cls, head = _head(result)
    rows: list[tuple[Any, ...]] = [
        (
            p.label + (" (best)" if p.label == result.best else ""),
            p.load,
            p.completed_qps,
            p.output_tokens_per_s,
            p.per_user_output_tokens_per_s,
            p.mean_in_flight,
            p.ttft_p50_ms,
            p.ttft_p99_ms,
            p.tpot_p50_ms,
            p.tpot_p99_ms,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.dispatch_lag_p99_ms,
            p.n_queries,
            p.n_errors,
            verdict(p),
            "; ".join(p.slo_violations),
            p.run_dir,
        )
        for p in result.points
    ]
    header = (
        "point", "load", "qps", "output tok/s", "tok/s per user", "in flight", "TTFT p50 ms", "TTFT p99 ms",
        "TPOT p50 ms", "TPOT p99 ms", "latency p50 ms", "latency p99 ms", "lag p99 ms", "queries", "errors",
        "verdict", "why", "run",
    )  # fmt: skip
    facts = [
        f"Judged on {result.slo}. Best: {result.best_reason}.",
        f"Knee: {result.saturation.reason}." if result.saturation else "No knee: throughput rose at every step.",
        f"Stopped: {result.stop_reason}." if result.stop_reason else "",
        f"{_sentence(result.throughput_definition)}; {result.per_user_definition}.",
        f"{_sentence(result.note)}. Each point ran {result.point_duration_s:g} s; the sweep took "
        f"{result.elapsed_s:.0f} s against {result.sut_address or 'the endpoint'} ({result.artifact_id or 'artifact unknown'}).",
    ]
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>lpuperf sweep {e(result.sweep_id)}</title><style>{_CSS}</style></head><body>",
            f"<h1>lpuperf sweep {e(result.sweep_id)}</h1>",
            f'<div class="verdict {cls}" id="verdict">{e(head)}</div>',
            "".join(f'<p class="note">{e(f)}</p>' for f in facts if f),
            '<h2 id="curves">Curves</h2><div class="plots">',
            *charts(result),
            "</div>",
            '<p class="note">Green: meets the SLO; red: misses it; grey: interrupted or client-limited. '
            "The ring marks the best point; a point far over a limit is drawn at the top edge.</p>",
            '<h2 id="points">Points</h2>',
            _table(rows, header=header, table_id="points-table"),
            "</body></html>\n",
        ]
    )


def write_sweep_page(result: SweepResult, path: str | Path) -> Path:
    from common import write_atomic

    out = write_atomic(path, render_sweep_page(result))
    out.chmod(0o644)  # a page to share
    return out
