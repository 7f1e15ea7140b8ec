"""``lpuperf history report``: one self-contained HTML page of the store's trends over builds.

Plots (inline SVG, no plotting library): TTFT p99, TPOT p99, tokens/s, ROUGE-L and the per-category
exact match against FP32, one point per build (its newest run of each kind), a bar for each point's
confidence interval where one was recorded, and a red ring on every build whose comparison with the
last good build flagged that metric. The regressions table lists every flagged change.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from common import write_atomic
from history._models import StoredRun
from history._regressions import BuildComparison
from history._trend import TrendPoint, trend_points

PALETTE = ("#1f6fb4", "#d9661a", "#2e8b57", "#7b3fa0", "#8c6d1f", "#c2185b", "#00838f", "#5d4037")
REGRESSION_RED = "#d62728"
W, H = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 30, 58


class PlotSpec(BaseModel):
    plot_id: str
    title: str
    metrics: list[str] = Field(description="metric names; more than one draws one series per name")
    y_label: str
    scale: float = 1.0  # fractions shown as percent


def _plot_specs(runs: Sequence[StoredRun]) -> list[PlotSpec]:
    categories = sorted({m.name for r in runs for m in r.metrics if m.name.startswith("fidelity.exact_match[")})
    return [
        PlotSpec(plot_id="ttft-p99", title="TTFT p99", metrics=["ttft_ms.p99"], y_label="ms"),
        PlotSpec(plot_id="tpot-p99", title="TPOT p99", metrics=["tpot_ms.p99"], y_label="ms"),
        PlotSpec(plot_id="tokens-per-second", title="tokens/s", metrics=["tokens_per_second"], y_label="tok/s"),
        PlotSpec(plot_id="rouge-l", title="ROUGE-L (accuracy)", metrics=["accuracy.rougeL"], y_label="ROUGE-L (%)"),
        PlotSpec(
            plot_id="fidelity",
            title="exact match vs FP32, per category",
            metrics=categories or ["fidelity.exact_match[all]"],
            y_label="% of samples",
            scale=100.0,
        ),
        *_energy_specs(runs),
    ]


def _energy_specs(runs: Sequence[StoredRun]) -> list[PlotSpec]:
    """Energy per output token, where any run measured energy (a store without any keeps its page as it was)."""
    if not any(r.metric("energy.joules_per_token") is not None for r in runs):
        return []
    return [
        PlotSpec(
            plot_id="joules-per-token",
            title="energy per output token",
            metrics=["energy.joules_per_token"],
            y_label="J/token",
        )
    ]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _series_label(p: TrendPoint, metric: str, spec: PlotSpec, n_artifacts: int) -> str:
    if len(spec.metrics) == 1:
        return p.run.artifact.name or "?"
    tag = metric[metric.index("[") + 1 : -1] if "[" in metric else metric
    return f"{p.run.artifact.name} {tag}" if n_artifacts > 1 else tag


def _build_key(r: StoredRun) -> tuple[str, str]:
    return (r.artifact.name, r.artifact.manifest_sha256)


def trend_chart(
    spec: PlotSpec,
    runs: Sequence[StoredRun],
    builds: list[tuple[str, str]],
    labels: list[str],
    flagged: set[tuple[int, str]],
) -> str:
    """One SVG: x is the build's position in ``builds`` (labelled by ``labels``), one ``<polyline
    class="series">`` per series, and a ``<circle class="regression">`` on each flagged (record, metric)."""
    n_artifacts = len({b[0] for b in builds})
    series: dict[str, list[tuple[int, TrendPoint, str]]] = {}
    for metric in spec.metrics:
        for p in trend_points(list(runs), metric, by="build"):
            series.setdefault(_series_label(p, metric, spec, n_artifacts), []).append(
                (builds.index(_build_key(p.run)), p, metric)
            )
    n_points = sum(len(s) for s in series.values())
    head = (
        f'<svg class="plot" data-plot="{spec.plot_id}" data-points="{n_points}" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(spec.title)}">'
        f'<text x="{LEFT}" y="18" class="title">{html.escape(spec.title)}</text>'
    )
    if not n_points:
        return head + f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" class="empty">no data recorded</text></svg>'
    values = [
        v * spec.scale
        for pts in series.values()
        for _, p, _ in pts
        for v in (p.value.value, p.value.ci_low, p.value.ci_high)
        if v is not None
    ]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = (lo - pad if lo - pad > 0 or lo < 0 else 0.0), hi + pad
    n = max(len(builds), 2)

    def x(i: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * (i / (n - 1) if len(builds) > 1 else 0.5)

    def y(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (hi - lo))

    parts = [head]
    for t in _ticks(lo, hi):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_num(t)}</text>')
    step = max(1, math.ceil(len(builds) / 12))
    for i in range(0, len(builds), step):
        label = html.escape(labels[i][:14])
        parts.append(
            f'<text x="{x(i):.1f}" y="{H - BOTTOM + 14}" text-anchor="end" '
            f'transform="rotate(-35 {x(i):.1f} {H - BOTTOM + 14})">{label}</text>'
        )
    parts.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" text-anchor="middle">build (oldest first)</text>')
    parts.append(
        f'<text x="14" y="{TOP + (H - TOP - BOTTOM) / 2}" transform="rotate(-90 14 {TOP + (H - TOP - BOTTOM) / 2})" text-anchor="middle">{html.escape(spec.y_label)}</text>'
    )
    for k, (label, pts) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        coords = " ".join(f"{x(i):.1f},{y(p.value.value * spec.scale):.1f}" for i, p, _ in pts)
        parts.append(
            f'<polyline class="series" data-series="{html.escape(label)}" data-n="{len(pts)}" fill="none" '
            f'stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        for i, p, metric in pts:
            v = p.value
            cx, cy = x(i), y(v.value * spec.scale)
            if v.ci_low is not None and v.ci_high is not None:
                parts.append(
                    f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(v.ci_low * spec.scale):.1f}" '
                    f'y2="{y(v.ci_high * spec.scale):.1f}" stroke="{colour}" stroke-width="1.5"/>'
                )
            tip = f"#{p.run.id} {p.run.run_id} {p.run.artifact.build_key}: {_num(v.value * spec.scale)}"
            parts.append(
                f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}"><title>{html.escape(tip)}</title></circle>'
            )
            if (p.run.id, metric) in flagged:
                parts.append(
                    f'<circle class="regression" data-run="{p.run.id}" cx="{cx:.1f}" cy="{cy:.1f}" r="10" fill="none" '
                    f'stroke="{REGRESSION_RED}" stroke-width="4"/>'
                )
    if len(series) > 1:
        for k, label in enumerate(series):
            lx, ly = W - RIGHT - 170, TOP + 4 + 14 * k
            parts.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>')
            parts.append(f'<text x="{lx + 14}" y="{ly + 9}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr"
        + (' class="bad"' if "REGRESSION" in r[-1] else "")
        + ">"
        + "".join(f"<td>{html.escape(c)}</td>" for c in r)
        + "</tr>"
        for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:22px 0 8px} p.meta{color:#555;margin:0 0 12px}
.plots{display:flex;flex-wrap:wrap;gap:12px} svg.plot{border:1px solid #ddd;background:#fff}
svg text{font-size:11px;fill:#333} svg text.title{font-size:13px;font-weight:600} svg text.empty{fill:#888}
line.grid{stroke:#eee} table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
tr.bad td{background:#fdecea} #verdict.bad{color:#a00000} #verdict.ok{color:#2e7d32}
"""


def render_history(runs: Sequence[StoredRun], comparisons: Sequence[BuildComparison], where: str) -> str:
    builds: list[tuple[str, str]] = []
    for r in sorted(runs, key=lambda r: (r.run_at, r.id)):
        if _build_key(r) not in builds:
            builds.append(_build_key(r))
    labels = [next(r.artifact.build_key for r in runs if _build_key(r) == b) or "?" for b in builds]
    flagged = {(c.candidate.id, m.name) for c in comparisons if c.comparison for m in c.comparison.regressions}
    plots = "".join(trend_chart(spec, runs, builds, labels, flagged) for spec in _plot_specs(runs))
    regressed = [c for c in comparisons if c.regressed]
    verdict = (
        f'<p id="verdict" class="bad">{len(regressed)} build(s) regressed against the last good build</p>'
        if regressed
        else '<p id="verdict" class="ok">no regression against the last good build</p>'
    )
    reg_rows = [
        (
            c.candidate.artifact.name,
            c.candidate.artifact.build_key,
            f"#{c.candidate.id}",
            f"#{c.baseline.id} {c.baseline.artifact.build_key}" if c.baseline else "-",
            "; ".join(m.line for m in c.comparison.regressions) if c.comparison else c.note,
            "REGRESSION" if c.regressed else "ok" if c.comparison else "no baseline",
        )
        for c in comparisons
    ]
    first = {b: min(r.run_at for r in runs if _build_key(r) == b) for b in builds}
    good = {_build_key(r) for r in runs if r.good}
    build_rows = [
        (
            str(i + 1),
            name,
            labels[i],
            first[(name, h)].astimezone().strftime("%Y-%m-%d %H:%M"),
            str(sum(1 for r in runs if _build_key(r) == (name, h))),
            "good" if (name, h) in good else "",
        )
        for i, (name, h) in enumerate(builds)
    ]
    now = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>lpuperf history</title><style>{_CSS}</style></head><body>"
        f"<h1>lpuperf: builds over time</h1><p class='meta'>{html.escape(where)} · {len(runs)} records · "
        f"{len(builds)} builds · generated {now}</p>{verdict}"
        f"<h2>Trends</h2><div class='plots'>{plots}</div>"
        f"<h2>Against the last good build</h2>"
        + _table(("artifact", "build", "run", "last good", "changes", "result"), reg_rows, "regressions")
        + "<h2>Builds</h2>"
        + _table(("#", "artifact", "build", "first run", "records", "marked"), build_rows, "builds")
        + "</body></html>\n"
    )


def write_history_report(
    path: str | Path, runs: Sequence[StoredRun], comparisons: Sequence[BuildComparison], where: str
) -> Path:
    return write_atomic(path, render_history(runs, comparisons, where))
