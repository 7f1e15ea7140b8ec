"""The report's sections for a run beside LoadGen (``lpuperf run --load``).

Such a run is no MLPerf LoadGen run, and its page says so first: the load it sent and what its verdict
was judged by. Then how late its own client sent (dispatch lag: send time minus due time, per query,
with the bound past which the run is client-limited, in red when it was), its sessions (TTFT by turn
index, session latency, tool calls, sessions cut short) and the prefix-cache hits the SUT reported.
Per-query arrays come from ``queries.npz``; the figures from results.json.
"""

from __future__ import annotations

import html
from typing import Any, Literal

import numpy as np

from loadgen_harness import DispatchLag, LoadInfo, PrefixCacheStats, RunResult, SessionStats
from workflows._charts import _fmt, _Series, cdf_points, line_chart
from workflows._report import _table

_RED = "color:#b3262c;font-weight:700"


def load_arrays(records: np.ndarray) -> dict[str, np.ndarray]:
    """``dispatch_lag_ms`` per sent query (send minus due, ms) from per-query records; {} without a send column."""
    names = records.dtype.names or ()
    if "sent_ns" not in names:
        return {}
    due = records["issue_ns"].astype(np.int64)
    sent = records["sent_ns"].astype(np.int64)
    ok = (sent >= 0) & (due >= 0)
    return {"dispatch_lag_ms": np.clip(sent[ok] - due[ok], 0, None) / 1e6}


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.1%}"


def _load_rows(load: LoadInfo) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("load", load.spec), ("shape", load.kind)]
    optional: tuple[tuple[str, Any], ...] = (
        ("concurrency (in flight)", load.concurrency),
        ("ramp-up (s)", load.ramp_up_s or None),
        ("target rate (QPS)", load.rate_qps),
        ("arrivals", load.arrival),
        ("trace / session file", load.trace),
        ("format", load.trace_format),
        ("speed", load.speed),
        ("duration cap (s)", load.duration_s),
        ("request cap", load.max_requests),
        ("planned requests", load.planned_requests),
    )
    rows += [(k, v) for k, v in optional if v is not None]
    rows.append(("sent requests", load.sent_requests))
    return rows


def load_banner(r: RunResult) -> str:
    """What the run is (not LoadGen's), the load it sent and what its verdict was judged by; "" for a LoadGen run."""
    load = r.load
    if load is None:
        return ""
    e = html.escape
    basis = load.validity_basis or "no stated basis"
    return (
        f'<p id="load-note"><b>{e(load.note)}</b></p>'
        + _table(_load_rows(load), table_id="load-spec")
        + f'<p id="load-validity-basis">Validity basis: <b>{e(basis)}</b></p>'
    )


def _lag_verdict(lag: DispatchLag) -> str:
    p99 = "—" if lag.p99_ms is None else f"{lag.p99_ms:g} ms"
    if lag.client_limited:
        return (
            f'<p id="client-limited" style="{_RED}">Client-limited: dispatch lag p99 {p99} &gt; '
            f"{lag.bound_ms:g} ms bound. The client sent late, so the figures are not the SUT's own; "
            "the run is not valid.</p>"
        )
    return (
        f'<p id="client-on-schedule" class="note">The client kept its schedule: dispatch lag p99 {p99} '
        f"&le; {lag.bound_ms:g} ms bound.</p>"
    )


def dispatch_lag_section(lag: DispatchLag | None, lag_ms: np.ndarray | None) -> str:
    """Dispatch lag p50/p99/max against its bound, and its CDF with the bound drawn as a limit."""
    head = '<h2 id="dispatch-lag">Dispatch lag</h2>'
    if lag is None:
        return head + '<p class="note" id="dispatch-lag-none">No query was sent: no dispatch lag.</p>'
    parts = [
        head,
        '<p class="note">Actual send time minus due time, per sent query. Latency counts from the due time, '
        "so a late send is never hidden (no coordinated omission).</p>",
        _lag_verdict(lag),
        _table(
            [(lag.n_queries, lag.p50_ms, lag.p99_ms, lag.max_ms, lag.bound_ms)],
            header=("sent queries", "p50 ms", "p99 ms", "max ms", "bound (p99) ms"),
            table_id="dispatch-lag-table",
        ),
    ]
    if lag_ms is not None and lag_ms.size:
        xs, ys = cdf_points(lag_ms)
        markers = [(n, v) for n, v in (("p50", lag.p50_ms), ("p99", lag.p99_ms)) if v is not None]
        title = f"Dispatch lag CDF ({lag_ms.size} queries), p99 bound {_fmt(lag.bound_ms)} ms"
        chart = line_chart(
            "dispatch-lag-cdf", title, [_Series("lag", xs, ys)], "ms", "fraction", markers, (0, 1), lag.bound_ms
        )
        parts.append(f'<div class="plots">{chart}</div>')
    return "".join(parts)


def _session_rows(s: SessionStats) -> list[tuple[str, Any]]:
    lat = s.session_latency_ms
    return [
        ("sessions", s.n_sessions),
        ("completed", s.completed_sessions),
        ("failed (a turn failed; later turns not sent)", s.failed_sessions),
        ("cut: the next turn would not fit the context", s.cut_at_context),
        ("cut: later turns fell after the run's end", s.cut_at_end),
        ("requests", s.n_requests),
        ("tool calls", s.tool_calls),
        ("session latency p50 (ms)", lat.p50),
        ("session latency p90 (ms)", lat.p90),
        ("session latency p99 (ms)", lat.p99),
    ]


def _turn_chart(s: SessionStats) -> str:
    turns = [t for t in s.turns if t.ttft_ms.p50 is not None]
    if not turns:
        return ""
    xs = np.array([t.turn for t in turns], dtype=np.float64)
    pcts: tuple[tuple[str, Literal["p50", "p99"]], ...] = (("TTFT p50", "p50"), ("TTFT p99", "p99"))
    series = [
        _Series(label, xs, np.array([t.ttft_ms.at(pct) or 0.0 for t in turns], dtype=np.float64)) for label, pct in pcts
    ]
    return line_chart("turn-ttft", "TTFT by turn index", series, "turn index", "ms")


def sessions_section(s: SessionStats | None, cached: bool) -> str:
    """Sessions, session latency, tool calls, cut sessions, and TTFT (and cache share) by turn index."""
    if s is None:
        return ""
    e = html.escape
    header = ["turn", "requests", "TTFT p50 ms", "TTFT p90 ms", "TTFT p99 ms", "prompt tokens (mean)"]
    if cached:
        header.append("prompt tokens cached")
    rows = []
    for t in s.turns:
        row: list[Any] = [t.turn, t.n_queries, t.ttft_ms.p50, t.ttft_ms.p90, t.ttft_ms.p99, t.prompt_tokens_mean]
        if cached:
            row.append(_pct(t.cached_fraction))
        rows.append(row)
    chart = _turn_chart(s)
    return "".join(
        [
            '<h2 id="sessions">Sessions</h2>',
            _table(_session_rows(s), table_id="session-figures"),
            f"<p>TTFT by turn index ({e('user messages; tool results excluded')}): each turn's prompt carries the "
            "history of the turns before it.</p>",
            _table(rows, header=header, table_id="turn-table") if rows else '<p class="note">No turn answered.</p>',
            f'<div class="plots">{chart}</div>' if chart else "",
        ]
    )


def prefix_cache_section(p: PrefixCacheStats | None) -> str:
    """The share of prompt tokens the SUT served from its prefix cache, as it reported them."""
    if p is None:
        return ""
    share = _pct(p.hit_fraction) or "—"
    note = (
        ""
        if p.cached_tokens
        else '<p class="note" id="prefix-cache-none">The SUT reported no prefix-cache hit (no cache, or no '
        "shared prefix).</p>"
    )
    return (
        '<h2 id="prefix-cache">Prefix cache</h2>'
        + f'<p id="prefix-cache-summary">Hit fraction <b>{share}</b>: {p.cached_tokens} of {p.prompt_tokens} prompt '
        f"tokens served from the SUT's prefix cache, over {p.n_queries} successful queries ({p.queries_with_hit} "
        "with a hit). By turn: the sessions' turn table.</p>" + note
    )


def load_sections(r: RunResult, arrays: dict[str, np.ndarray]) -> str:
    """Every load section of the page; "" for a LoadGen run."""
    if r.load is None:
        return ""
    cached = r.prefix_cache is not None and r.prefix_cache.cached_tokens > 0
    return (
        dispatch_lag_section(r.dispatch_lag, arrays.get("dispatch_lag_ms"))
        + sessions_section(r.sessions, cached)
        + prefix_cache_section(r.prefix_cache)
    )
