"""The report's server side: scraped telemetry on the run's time axis, energy figures, and one correlation line.

Panels (one per canonical series the run scraped, in a fixed order: queue depth, batch occupancy,
KV/cache usage, power, then the rest) share the x axis of the QPS plot: seconds from the run's start
on the records' clock. A counter is drawn as its rate. Each target is one line.

The correlation line asks whether client latency followed the server's queue: per time bin (the
scrape interval, at least 1 s) the TTFT p99 of the queries issued in it and the queue depth summed
over the targets; for each threshold N seen, the median of the bins' p99 above N against at or below
it. The threshold with the largest rise (at least 1.5x, with two bins on each side) is the line
("TTFT p99 rose from A ms to B ms when queue depth exceeded N"); otherwise it says it did not.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loadgen_harness import CANONICAL_INFO, TELEMETRY_FILE, CanonicalSeries, EnergyStats, Telemetry
from workflows._charts import _Series, line_chart

_PANEL_ORDER = ("queue_depth", "running", "kv_cache_usage", "power_watts")
_MIN_RISE = 1.5
_MIN_BIN_QUERIES = 3


@dataclass
class TelemetryView:
    """What the report reads of a run's telemetry.npz, with the per-query TTFT it is correlated with."""

    series: list[CanonicalSeries] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    raw_series: int = 0
    interval_s: float = 1.0
    ttft_issue_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ttft_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    failed_scrapes: dict[str, int] = field(default_factory=dict)


def load_telemetry_view(run_dir: Path, records: np.ndarray | None) -> tuple[TelemetryView | None, str]:
    """(view, note): the view when telemetry.npz is readable, else None and why (empty: the run scraped nothing)."""
    if not (run_dir / TELEMETRY_FILE).is_file():
        return None, ""
    try:
        tel = Telemetry.load(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        return None, f"{run_dir / TELEMETRY_FILE}: cannot read the scraped telemetry ({exc})"
    view = TelemetryView(
        series=tel.canonical(), targets=tel.targets, raw_series=len(tel.series_name), interval_s=tel.interval_s
    )
    for i, name in enumerate(tel.targets):
        n_bad = int(((tel.scrape_target == i) & ~tel.scrape_ok).sum())
        if n_bad:
            view.failed_scrapes[name] = n_bad
    if records is not None:
        issue, first, status = records["issue_ns"], records["first_token_ns"], records["status"]
        ok = (status == 0) & (issue >= 0) & (first >= issue)
        view.ttft_issue_s = issue[ok] / 1e9
        view.ttft_ms = (first[ok] - issue[ok]) / 1e6
    return view, ""


def _panel_series(view: TelemetryView, canonical: str) -> list[_Series]:
    out = []
    for s in view.series:
        if s.canonical != canonical:
            continue
        xs, ys = s.rate() if s.is_counter else (s.t_s, s.values)
        if xs.size:
            out.append(_Series(f"replica {s.replica_id}" if s.replica_id else _short(s.target), xs, ys))
    return out


def _short(target: str) -> str:
    """A target's legend label: host:port (or the RAPL root), not the whole URL."""
    rest = target.split("://", 1)[-1]
    return rest.split("/", 1)[0] or target


def telemetry_panels(view: TelemetryView) -> list[str]:
    present = [c for c in CANONICAL_INFO if any(s.canonical == c for s in view.series)]
    ordered = [c for c in _PANEL_ORDER if c in present] + [c for c in present if c not in _PANEL_ORDER]
    plots = []
    for canonical in ordered:
        title, unit, _ = CANONICAL_INFO[canonical]
        series = _panel_series(view, canonical)
        if series:
            plot_id = "server-" + canonical.replace("_", "-")
            plots.append(line_chart(plot_id, f"{title} (server side)", series, "seconds", unit))
    return plots


def _summed_at(view: TelemetryView, canonical: str, ts: np.ndarray) -> np.ndarray | None:
    parts = [np.interp(ts, s.t_s, s.values) for s in view.series if s.canonical == canonical and s.t_s.size]
    return np.sum(parts, axis=0) if parts else None


def correlation_line(view: TelemetryView) -> str:
    """One sentence on TTFT p99 against queue depth (empty when there is nothing to compare)."""
    if view.ttft_ms.size == 0:
        return ""
    bin_s = max(view.interval_s, 1.0)
    edges = np.arange(0.0, float(view.ttft_issue_s.max()) + bin_s, bin_s)
    which = np.digitize(view.ttft_issue_s, edges) - 1
    centers, p99 = [], []
    for b in range(len(edges)):
        sel = view.ttft_ms[which == b]
        if sel.size >= _MIN_BIN_QUERIES:
            centers.append(edges[b] + bin_s / 2)
            p99.append(float(np.percentile(sel, 99)))
    queue = _summed_at(view, "queue_depth", np.asarray(centers))
    if queue is None:
        return ""
    if len(centers) < 4:
        return f"Too few {bin_s:g} s bins with queries ({len(centers)}) to relate TTFT p99 to queue depth."
    p99s = np.asarray(p99)
    best: tuple[float, float, float, float, int] | None = None  # (rise, N, below, above, bins above)
    for n in np.unique(np.floor(queue)):
        above = queue > n
        if above.sum() < 2 or (~above).sum() < 2:
            continue
        lo, hi = float(np.median(p99s[~above])), float(np.median(p99s[above]))
        rise = hi / lo if lo > 0 else float("inf")
        if best is None or rise > best[0]:
            best = (rise, float(n), lo, hi, int(above.sum()))
    peak = float(queue.max())
    if best is None or best[0] < _MIN_RISE:
        return f"TTFT p99 did not rise with queue depth (queue depth at most {peak:.3g} over {len(centers)} bins)."
    rise, n, lo, hi, n_above = best
    return (
        f"TTFT p99 rose from {lo:.1f} ms to {hi:.1f} ms ({rise:.1f}x) when queue depth exceeded {n:g} "
        f"({n_above} of {len(centers)} {bin_s:g} s bins; queue depth at most {peak:.3g})."
    )


def _energy_table(e: EnergyStats) -> str:
    def cell(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = [
        ("source", f"{e.source} ({e.replicas} replica{'s' if e.replicas != 1 else ''})"),
        ("measured window", f"{e.window_s:.2f} s"),
        ("energy", f"{e.joules:,.1f} J"),
        ("average power", f"{e.average_watts:,.1f} W"),
        ("joules per query", cell(e.joules_per_query, ".4g")),
        ("joules per output token", cell(e.joules_per_token, ".4g")),
        ("output tokens per joule", cell(e.tokens_per_joule, ".4g")),
        ("performance per watt (QPS/W)", cell(e.queries_per_second_per_watt, ".4g")),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td class='num'>{html.escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="energy-table">{body}</table>'


def telemetry_section(view: TelemetryView | None, energy: EnergyStats | None, note: str) -> str:
    """The "Server side" section: energy table, correlation line, panels; empty when the run scraped nothing."""
    if view is None and energy is None and not note:
        return ""
    out = ['<h2 id="server-side">Server side</h2>']
    if note:
        out.append(f'<p class="note">{html.escape(note)}</p>')
    if energy is not None:
        out.append(_energy_table(energy))
    if view is not None:
        line = correlation_line(view)
        if line:
            out.append(f'<p id="correlation">{html.escape(line)}</p>')
        out.append('<div class="plots">' + "".join(telemetry_panels(view)) + "</div>")
        scraped = ", ".join(html.escape(t) for t in view.targets)
        failed = "".join(
            f"; {html.escape(t)} failed {n} scrape{'s' if n != 1 else ''}" for t, n in view.failed_scrapes.items()
        )
        out.append(
            f'<p class="note">Scraped every {view.interval_s:g} s: {scraped} ({view.raw_series} series kept in '
            f"{TELEMETRY_FILE}){failed}. Times are seconds from the run's start, as in the QPS plot.</p>"
        )
    return "".join(out)
