"""The report's shard section for a merged sharded run: one row per shard, the window and the clocks.

A merged run (``lpuperf merge``) is built from N harnesses' records; the page says so first, then shows
each shard's share, its rate over the common window (the rows add up to the run's rate), when it began
against the earliest shard, and its clock against the first shard's as measured through the SUT.
"""

from __future__ import annotations

import html

from loadgen_harness import RunResult, ShardRow
from workflows._report_fleet import table_cell


def _clock(row: ShardRow) -> str:
    if row.clock_offset_ms is None:
        return "not measured"
    bound = f" ± {row.clock_offset_error_ms:.3f}" if row.clock_offset_error_ms is not None else ""
    return f"{row.clock_offset_ms:+.3f}{bound}"


def shards_section(r: RunResult) -> str:
    """The section's HTML ('' for a run that was not merged from shards)."""
    s = r.sharded
    if s is None:
        return ""
    e = html.escape
    window = "none (the shards did not overlap)" if s.common_window_s is None else f"{s.common_window_s:.3f} s"
    spread = "" if s.clock_offset_spread_ms is None else f"; clocks within {s.clock_offset_spread_ms:g} ms"
    parts = [
        '<h2 id="shards">Shards</h2>',
        f'<p id="shards-summary"><b>{e(s.note)}</b>: merged from {s.count} harnesses. Percentiles are over '
        f"the union of their records; rates over the common window ({e(window)}), when every shard was "
        f"sending, so the rows add up to the run's rate. Timeline: {e(s.alignment)}{e(spread)}.</p>",
    ]
    header = ("shard", "host", "queries", "ok", "failed", "QPS", "tokens/s", "TTFT p50", "TTFT p99",
              "began +ms", "late vs --start-at ms", "clock vs shard 0 ms", "valid")  # fmt: skip
    rows = [
        (
            row.index,
            row.host,
            row.n_queries,
            row.n_succeeded,
            row.n_failed,
            row.qps,
            row.tokens_per_second,
            row.ttft_p50_ms,
            row.ttft_p99_ms,
            row.start_offset_ms,
            row.start_late_ms,
            _clock(row),
            "yes" if row.valid else "no",
        )
        for row in s.shards
    ]
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{table_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    parts.append(f'<table id="shards-table"><tr>{head}</tr>{body}</table>')
    return "".join(parts)
