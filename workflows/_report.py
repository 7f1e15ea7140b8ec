"""Run report: one self-contained HTML page per run directory.

The page carries the validity verdict with its reasons and what decided it (the TTFT/TPOT limits
or LoadGen's early-stopping minimum), the headline figures with goodput, latency CDFs (TTFT, TPOT,
end-to-end) with each limit drawn as a dashed line, an end-to-end latency histogram and QPS over
time, then, folded away, the effective LoadGen settings and the artifact manifest. Plots are inline SVG drawn here: no scripts, no stylesheets
or fonts from elsewhere, so the file can be mailed, archived or opened offline.

Per-query timings come from ``queries.npz``. Runs that lack it fall back to LoadGen's
``mlperf_log_trace.json``, which has issue/completion times and TTFT but no token counts (so no
TPOT curve).

A run beside LoadGen (``--load``) says first that it is not an MLPerf LoadGen run, with its load and
validity basis, and adds its client's dispatch lag, its sessions and the SUT's prefix-cache hits
(:mod:`workflows._report_load`).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common import UsageError
from loadgen_harness import LatencyLimits, Percentiles, RunResult, latency_limits, verdict_basis
from workflows._charts import _fmt, _nice_step, _Series, cdf_points, histogram_chart, line_chart, rate_series
from workflows._compare import latencies_from_records

REPORT_FILE = "report.html"
TRACE_FILE = "mlperf_log_trace.json"
_LATENCY_KINDS: tuple[tuple[str, str], ...] = (
    ("ttft_ms", "Time to first token"),
    ("tpot_ms", "Time per output token"),
    ("latency_ms", "End-to-end latency"),
)


class ReportError(ValueError):
    """The run directory cannot be reported on; the message names the file and what was expected."""


@dataclass
class Timeline:
    """Per-query event times in seconds from the run start; the source file is named in the page."""

    issue_s: np.ndarray
    done_s: np.ndarray
    error_s: np.ndarray
    source: str


@dataclass
class ReportInputs:
    result: RunResult
    latencies_ms: dict[str, np.ndarray] = field(default_factory=dict)
    timeline: Timeline | None = None
    notes: list[str] = field(default_factory=list)  # what the page cannot show, and why
    reasoning: dict[str, np.ndarray] = field(default_factory=dict)  # workflows._report_reasoning's arrays
    load: dict[str, np.ndarray] = field(default_factory=dict)  # workflows._report_load's arrays (--load runs)
    telemetry: Any = None  # workflows._report_telemetry.TelemetryView when the run scraped its servers
    telemetry_note: str = ""
    eval_under_load: Any = None  # workflows._report_evals: the run's --eval-during result, if any


# ----------------------------------------------------------------------------------------------
# Inputs


def load_report_inputs(run_dir: str | Path) -> ReportInputs:
    """results.json plus per-query timings (queries.npz, else the LoadGen trace) of one run."""
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import MLPERF_LOGS_PRESET, QUERIES_FILE, load_query_records, load_results

    d = Path(run_dir)
    try:
        result = load_results(d)
    except FileNotFoundError:
        raise ReportError(
            f"{d}: no results.json (expected a run directory OUT/<run-id>/<scenario>/<mode>/, "
            "or an MLPerf result directory <scenario>/performance/run_1/ with mlperf_log_detail.txt)"
        ) from None
    except ValidationError as exc:
        raise ReportError(first_error_line(exc, str(d / "results.json"))) from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{d / 'results.json'}: cannot read run results ({exc})") from None
    inputs = ReportInputs(result=result)
    from workflows._report_evals import read_eval_under_load

    try:
        inputs.eval_under_load = read_eval_under_load(d)
    except UsageError as exc:
        raise ReportError(str(exc)) from None
    if result.preset == MLPERF_LOGS_PRESET:
        d = Path(result.log_dir)  # LoadGen's own log directory (e.g. performance/run_1/ of a scenario)
    if (d / QUERIES_FILE).is_file():
        try:
            records = load_query_records(d)
        except (OSError, ValueError) as exc:
            raise ReportError(f"{d / QUERIES_FILE}: cannot read per-query records ({exc})") from None
        from workflows._report_reasoning import reasoning_arrays

        inputs.latencies_ms = latencies_from_records(records)
        inputs.timeline = _records_timeline(records)
        inputs.reasoning = reasoning_arrays(records)
        if result.load is not None:
            from workflows._report_load import load_arrays

            inputs.load = load_arrays(records)
        from loadgen_harness import goodput, inter_token_latency, success_stats

        # A run saved before these figures existed: derive them from its records here.
        if result.successful is None:
            result.successful = success_stats(records)
        if result.goodput is None:
            result.goodput = goodput(records, run_limits(result))
        if result.itl is None:
            result.itl = inter_token_latency(records)
        from workflows._report_telemetry import load_telemetry_view

        inputs.telemetry, inputs.telemetry_note = load_telemetry_view(d, records)
    elif (d / TRACE_FILE).is_file():
        try:
            inputs.latencies_ms, inputs.timeline = trace_timings(d / TRACE_FILE)
        except OSError as exc:
            raise ReportError(f"{d / TRACE_FILE}: cannot read the LoadGen trace ({exc})") from None
    else:  # e.g. a published MLPerf result: LoadGen's figures only
        inputs.notes.append(
            f"No per-query timings in {d} ({QUERIES_FILE} or {TRACE_FILE}): no curves; LoadGen's figures above."
        )
    return inputs


def _records_timeline(records: np.ndarray) -> Timeline:
    issue, done, status = records["issue_ns"], records["done_ns"], records["status"]
    return Timeline(
        issue_s=issue[issue >= 0] / 1e9,
        done_s=done[(done >= 0) & (status == 0)] / 1e9,
        error_s=done[(done >= 0) & (status != 0)] / 1e9,
        source="queries.npz",
    )


# LoadGen writes the trace one event per line, and not always as valid JSON (some LogDetail args
# are double-quoted twice), so events are picked out line by line.
_TRACE_SAMPLE = re.compile(r'"name":"Sample".*?"ph":"b".*?"ts":([0-9.]+).*?"issue_start_ns":(\d+),"complete_ns":(\d+)')
_TRACE_COUNTER = re.compile(r'"name":"(Token_Latency|Latency)","ph": ?"C".*?"issue_delay":(\d+),"issue_to_done":(\d+)')


def trace_timings(path: str | Path) -> tuple[dict[str, np.ndarray], Timeline]:
    """TTFT and end-to-end latency (ms) and the issue/completion timeline from a LoadGen trace.

    LoadGen measures latency from a query's scheduled time: ``ts`` is that time (us) and a
    sample's ``issue_start_ns`` / ``complete_ns`` are offsets from it.
    """
    issue: list[float] = []
    done: list[float] = []
    lat: dict[str, list[float]] = {"Token_Latency": [], "Latency": []}
    p = Path(path)
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"Sample"' in line:
                m = _TRACE_SAMPLE.search(line)
                if m:
                    ts_ns = float(m.group(1)) * 1e3
                    issue.append((ts_ns + int(m.group(2))) / 1e9)
                    done.append((ts_ns + int(m.group(3))) / 1e9)
            elif "Latency" in line:
                c = _TRACE_COUNTER.search(line)
                if c:
                    lat[c.group(1)].append((int(c.group(2)) + int(c.group(3))) / 1e6)
    if not done:
        raise ReportError(f"{p}: no Sample events (expected a LoadGen trace written with enable_trace)")
    latencies = {"latency_ms": np.asarray(lat["Latency"], dtype=np.float64)}
    if lat["Token_Latency"]:
        latencies["ttft_ms"] = np.asarray(lat["Token_Latency"], dtype=np.float64)
    t0 = min(issue)
    timeline = Timeline(
        issue_s=np.asarray(issue) - t0, done_s=np.asarray(done) - t0, error_s=np.zeros(0), source=TRACE_FILE
    )
    return latencies, timeline


def _qps_chart(timeline: Timeline, target_qps: float | None) -> str:
    t_end = float(max(timeline.issue_s.max(initial=0.0), timeline.done_s.max(initial=0.0)))
    # About 40 bins across the run, never under 0.5 s: a bin must hold several queries to be a rate.
    bin_s = max(0.5, _nice_step(max(t_end, 1e-3), 40))
    series = []
    for label, times in (("issued", timeline.issue_s), ("completed", timeline.done_s), ("errors", timeline.error_s)):
        if times.size or label != "errors":
            xs, ys = rate_series(times, t_end, bin_s)
            series.append(_Series(label, xs, ys))
    if target_qps:
        series.append(_Series("target", np.array([0.0, t_end]), np.array([target_qps, target_qps]), dashed=True))
    return line_chart(
        "qps", f"Queries per second over time ({_fmt(bin_s)} s bins, {timeline.source})", series, "seconds", "queries/s"
    )


# ----------------------------------------------------------------------------------------------
# Page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1340px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;font-weight:700;color:#fff;margin:8px 0}
.valid{background:#2e8540} .invalid{background:#b3262c} .interrupted{background:#8a5a00} .failed{background:#6b6b6b}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(640px,1fr));gap:12px}
svg.plot{background:#fff;border:1px solid #ddd;font-size:11px;max-width:100%;height:auto}
svg.plot text.title{font-size:13px;font-weight:600}
table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px} .note{color:#666}
"""


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, table_id: str = "") -> str:
    e = html.escape
    out = [f'<table id="{table_id}">' if table_id else "<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for c in row:
            cls = ' class="num"' if isinstance(c, int | float) and not isinstance(c, bool) else ""
            text = "—" if c is None else (_fmt(float(c)) if cls and isinstance(c, float) else str(c))
            cells.append(f"<td{cls}>{e(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _verdict(r: RunResult) -> str:
    if r.state == "interrupted":
        return "INTERRUPTED"
    if r.state == "failed":
        return "FAILED"
    return "VALID" if r.valid else "INVALID"


def _summary_section(r: RunResult) -> str:
    e = html.escape
    verdict = _verdict(r)
    parts = [f'<div class="verdict {verdict.lower()}" id="verdict">{verdict}</div>']
    if r.state == "interrupted":
        finished = "LoadGen ended its test" if r.loadgen_finished else "LoadGen's test was abandoned (partial logs)"
        parts.append(
            f'<p id="run-state">Stopped by {e(r.interrupted_by or "a signal")}: the queries outstanding then were '
            f"completed as failed; {e(finished)}. The figures cover what ran until then.</p>"
        )
    basis = verdict_basis(r.model_copy(update={"limits": run_limits(r)}))
    if basis:
        parts.append('<p id="verdict-basis"><b>' + "<br>".join(e(b) for b in basis) + "</b></p>")
    if r.validity_reasons:
        parts.append('<ul id="validity-reasons">' + "".join(f"<li>{e(x)}</li>" for x in r.validity_reasons) + "</ul>")
    else:
        parts.append('<p class="note" id="validity-reasons">No validity problems reported.</p>')
    if r.warnings:
        parts.append("<p>Warnings:</p><ul>" + "".join(f"<li>{e(w)}</li>" for w in r.warnings) + "</ul>")
    ok = r.successful
    figures: list[tuple[str, Any]]
    if r.load is not None:
        figures = _load_figures(r)
    elif r.n_errors and ok is not None:
        # LoadGen counts a failed query as completed (fast): its rates and percentiles are shown
        # only as such, the headline figures are over successful queries.
        figures = [
            ("scheduled QPS", r.scheduled_qps),
            ("successful QPS", ok.qps),
            ("successful tokens/s", ok.tokens_per_second),
            (f"LoadGen completed QPS (incl. {r.n_errors} failed)", r.completed_qps),
            ("LoadGen tokens/s (incl. failed)", r.tokens_per_second),
        ]
    elif r.n_errors:
        figures = [
            ("scheduled QPS", r.scheduled_qps),
            (f"LoadGen completed QPS (incl. {r.n_errors} failed; successful rate unknown)", r.completed_qps),
        ]
    else:
        figures = [
            ("scheduled QPS", r.scheduled_qps),
            ("completed QPS", r.completed_qps),
            ("tokens/s", r.tokens_per_second),
        ]
    g = r.goodput
    if g is not None and g.fraction is not None:
        within = " and ".join(
            f"{name} ≤ {_fmt(v)} ms"
            for name, v in (("TTFT", g.ttft_limit_ms), ("TPOT", g.tpot_limit_ms), ("latency", g.latency_limit_ms))
            if v is not None
        )
        figures += [
            (f"goodput: queries with {within}", f"{g.fraction:.1%} ({g.n_good_queries} of {g.n_queries})"),
            ("goodput QPS", g.qps),
        ]
    figures += [
        ("queries", r.n_queries),
        ("successful", ok.n_queries if ok is not None else r.n_queries - r.n_errors),
        ("errors", r.n_errors),
        ("duration (s)", r.duration_s),
    ]
    parts.append(_table([(k, v) for k, v in figures], table_id="figures"))
    if r.errors_by_status:
        parts.append(_table(sorted(r.errors_by_status.items()), header=("status", "queries")))

    def rows(t: Percentiles, p: Percentiles, e2e: Percentiles) -> list[tuple[str, Any, Any, Any]]:
        return [(label, x.p50, x.p90, x.p99) for label, x in (("TTFT", t), ("TPOT", p), ("end-to-end", e2e))]

    header = ("latency", "p50", "p90", "p99")
    if r.load is not None:
        # No LoadGen here: the run's own percentiles are the successful queries', from each query's due time.
        parts.append("<p>Percentiles (ms, successful queries, latency from each query's due time):</p>")
        parts.append(_table(rows(r.ttft_ms, r.tpot_ms, r.latency_ms), header=header, table_id="percentiles"))
    else:
        if r.n_errors and ok is not None:
            parts.append(
                "<p>Successful queries' percentiles (ms, from the per-query records):</p>"
                + _table(rows(ok.ttft_ms, ok.tpot_ms, ok.latency_ms), header=header, table_id="successful-percentiles")
            )
            parts.append("<p>LoadGen's percentiles (ms), failed queries included:</p>")
        else:
            parts.append("<p>LoadGen's percentiles (ms):</p>")
        parts.append(_table(rows(r.ttft_ms, r.tpot_ms, r.latency_ms), header=header, table_id="loadgen-percentiles"))
    if r.itl is not None and r.itl.n_queries:
        itl_rows = [
            ("ITL: mean per token after the first message", r.itl.itl_ms.p50, r.itl.itl_ms.p90, r.itl.itl_ms.p99),
            ("longest gap between two stream messages", *(r.itl.max_gap_ms.at(p) for p in ("p50", "p90", "p99"))),
        ]
        parts.append(
            f"<p>Inter-token latency (ms, per query over {r.itl.n_queries} successful queries; a message may "
            "carry several tokens):</p>" + _table(itl_rows, header=("per query", "p50", "p90", "p99"), table_id="itl")
        )
    return "".join(parts)


def _load_figures(r: RunResult) -> list[tuple[str, Any]]:
    """A run beside LoadGen: its rates are the successful queries' already (no LoadGen count to set apart)."""
    which = " (successful queries)" if r.n_errors else ""
    target = r.load.rate_qps if r.load is not None else None
    figures: list[tuple[str, Any]] = [("target QPS", target)] if target else []
    return [*figures, (f"completed QPS{which}", r.completed_qps), (f"tokens/s{which}", r.tokens_per_second)]


def run_limits(r: RunResult) -> LatencyLimits | None:
    """The limits LoadGen judged the run by: results.json's, else read from its recorded settings."""
    return r.limits if r.limits is not None else latency_limits(r.settings)


def _plots_section(inputs: ReportInputs) -> str:
    r = inputs.result
    plots: list[str] = []
    notes: list[str] = []
    # The curves are successful queries only; with failures LoadGen's percentiles include them, so
    # the markers are the successful queries' own (a load run's own figures are those already).
    marked = r.successful if r.n_errors and r.successful is not None and r.load is None else r
    loadgen_pcts = {"ttft_ms": marked.ttft_ms, "tpot_ms": marked.tpot_ms, "latency_ms": marked.latency_ms}
    lim = run_limits(r)
    limit_of = {"ttft_ms": lim.ttft_ms, "tpot_ms": lim.tpot_ms, "latency_ms": lim.latency_ms} if lim else {}
    for key, label in _LATENCY_KINDS:
        values = inputs.latencies_ms.get(key)
        if values is None or values.size == 0:
            src = inputs.timeline.source if inputs.timeline else "the run"
            notes.append(f"{label}: no per-query values in {src}.")
            continue
        xs, ys = cdf_points(values)
        pct = loadgen_pcts[key]
        markers = [(n, v) for n, v in (("p50", pct.p50), ("p90", pct.p90), ("p99", pct.p99)) if v is not None]
        slug = key.removesuffix("_ms").replace("latency", "e2e")
        title = f"{label} CDF ({values.size} queries)"
        limit = limit_of.get(key)
        if limit is not None:
            title += f", p{lim.percentile if lim else 99:g} limit {_fmt(limit)} ms"
        plots.append(
            line_chart(f"{slug}-cdf", title, [_Series(label, xs, ys)], "ms", "fraction", markers, (0, 1), limit)
        )
    e2e = inputs.latencies_ms.get("latency_ms")
    if e2e is not None and e2e.size:
        plots.append(histogram_chart("e2e-hist", "End-to-end latency histogram", e2e, "ms"))
    if inputs.timeline is not None and (inputs.timeline.issue_s.size or inputs.timeline.done_s.size):
        target = r.scheduled_qps if r.load is None else r.load.rate_qps
        plots.append(_qps_chart(inputs.timeline, target))
    out = '<div class="plots">' + "".join(plots) + "</div>"
    if notes:
        out += "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    if inputs.timeline is not None and r.load is not None:
        out += f'<p class="note">Per-query timings from {html.escape(inputs.timeline.source)}, latency from each '
        out += "query's due time; grey dashed lines mark the run's p50/p90/p99 (successful queries)"
        out += "; a red dashed line is the limit the run was judged against (not LoadGen's).</p>" if lim else ".</p>"
    elif inputs.timeline is not None:
        out += f'<p class="note">Per-query timings from {html.escape(inputs.timeline.source)}; grey dashed lines mark '
        out += "the successful queries' p50/p90/p99" if marked is not r else "LoadGen's own p50/p90/p99"
        out += "; a red dashed line is the limit LoadGen judged the p99 against.</p>" if lim else ".</p>"
    return out


def _telemetry_section(inputs: ReportInputs) -> str:
    from workflows._report_telemetry import telemetry_section

    return telemetry_section(inputs.telemetry, inputs.result.energy, inputs.telemetry_note)


def _reasoning_section(inputs: ReportInputs) -> str:
    from workflows._report_reasoning import reasoning_section

    return reasoning_section(inputs)


def _evals_section(inputs: ReportInputs) -> str:
    from workflows._report_evals import eval_section

    return eval_section(inputs.eval_under_load)


def _load_banner(r: RunResult) -> str:
    from workflows._report_load import load_banner

    return load_banner(r)


def _load_sections(inputs: ReportInputs) -> str:
    from workflows._report_load import load_sections

    return load_sections(inputs.result, inputs.load)


def _replicas_section(r: RunResult) -> str:
    from workflows._report_fleet import fleet_section, has_fleet

    return '<h2 id="replicas">Replicas</h2>' + fleet_section(r) if has_fleet(r) else ""


def _shards_section(r: RunResult) -> str:
    from workflows._report_shards import shards_section

    return shards_section(r)


def render_report(inputs: ReportInputs) -> str:
    """The whole page as one string."""
    e = html.escape
    r = inputs.result
    title = f"lpuperf {r.scenario} {r.mode} — {r.run_id}"
    settings_rows = sorted((k, json.dumps(v) if not isinstance(v, str) else v) for k, v in r.settings.items())
    settings_label = "Effective LoadGen settings" if r.load is None else "Run settings"
    head = (
        f"<p>benchmark <b>{e(r.benchmark)}</b> · preset <b>{e(r.preset)}</b> · "
        f"submittable <b>{'yes' if r.submittable else 'no'}</b> · {e(r.harness_version)}</p>"
    )
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{e(title)}</h1>",
            head,
            _load_banner(r),
            '<h2 id="validity">Validity</h2>',
            _summary_section(r),
            _replicas_section(r),
            _shards_section(r),
            _load_sections(inputs),
            '<h2 id="plots-heading">Latency and throughput</h2>',
            "".join(f'<p class="note" id="input-note-{i}">{e(n)}</p>' for i, n in enumerate(inputs.notes)),
            _plots_section(inputs),
            _telemetry_section(inputs),
            _reasoning_section(inputs),
            _evals_section(inputs),
            '<h2 id="settings">Settings and artifact</h2>',
            # LoadGen's raw settings are reference, not the verdict: folded away so they do not bury it.
            f'<details id="settings-details"><summary>{settings_label} ({len(settings_rows)})</summary>'
            + (
                _table(settings_rows, header=("key", "value"), table_id="settings-table")
                if settings_rows
                else '<p class="note">none recorded</p>'
            )
            + "</details>",
            '<details id="artifact"><summary>Artifact manifest</summary>',
            f'<pre id="artifact-manifest">{e(json.dumps(r.artifact, indent=2, sort_keys=True))}</pre></details>',
            "</body></html>\n",
        ]
    )


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``), atomically."""
    from common import write_atomic

    inputs = load_report_inputs(run_dir)
    target = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    path = write_atomic(target, render_report(inputs))
    path.chmod(0o644)  # a page to share, not a secret (the temp file it was renamed from is 0600)
    return path
