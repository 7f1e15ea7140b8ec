"""The report's replica section: per-replica figures, the imbalance and each replica's outages."""

from __future__ import annotations

import html

from loadgen_harness import PartStats, RunResult


def table_cell(v: object, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def has_fleet(r: RunResult) -> bool:
    """A section only when there is something to break down: several replicas, an outage or unnamed queries."""
    f = r.fleet
    return f is not None and (len(f.replicas) > 1 or bool(f.events) or f.unattributed is not None)


def fleet_section(r: RunResult) -> str:
    f = r.fleet
    if f is None:
        return ""
    e = html.escape
    imb = "—" if f.imbalance is None else f"{f.imbalance:.2f}"
    parts = [
        f'<p id="fleet-summary">{len(f.replicas)} replicas behind <code>{e(f.target)}</code>, balanced by gRPC\'s '
        f"round_robin; imbalance (largest over smallest share of successful queries): <b>{imb}</b>. Rates are over "
        "the whole run's window, so the rows add up to the run's figures.</p>"
    ]
    header = ("replica", "address", "share", "ok", "failed", "QPS", "tokens/s", "TTFT p50", "TTFT p99", "TPOT p50",
              "TPOT p99")  # fmt: skip
    rows = []
    named: list[tuple[str, str, PartStats]] = [(x.replica_id, x.address, x) for x in f.replicas]
    if f.unattributed is not None:
        named.append(("(no replica)", "", f.unattributed))
    for name, address, p in named:
        share = None if p.share is None else f"{100 * p.share:.1f}%"
        cells = (name, address or "—", share, p.n_queries, p.n_failed, p.qps, p.tokens_per_second, p.ttft_p50_ms,
                 p.ttft_p99_ms, p.tpot_p50_ms, p.tpot_p99_ms)  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{table_cell(c)}</td>" for c in cells) + "</tr>")
    parts.append(
        '<table id="replica-table"><tr>'
        + "".join(f"<th>{e(h)}</th>" for h in header)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    if f.by_artifact:
        art = [
            f"<tr><td><code>{e(d[:12])}</code></td><td>{p.n_queries}</td><td>{p.n_failed}</td><td>{table_cell(p.qps)}</td>"
            f"<td>{table_cell(p.ttft_p99_ms)}</td><td>{table_cell(p.tpot_p99_ms)}</td></tr>"
            for d, p in f.by_artifact.items()
        ]
        parts.append(
            '<p>Mixed artifacts, split by manifest sha256:</p><table id="artifact-split"><tr><th>artifact</th>'
            "<th>ok</th><th>failed</th><th>QPS</th><th>TTFT p99</th><th>TPOT p99</th></tr>" + "".join(art) + "</table>"
        )
    outages = [(x.replica_id, o) for x in f.replicas for o in x.outages]
    if outages:
        items = []
        for rid, o in outages:
            back = "did not come back" if o.recovered_at_s is None else f"back in rotation at {o.recovered_at_s:.2f} s"
            routed = (
                "no query was sent to it afterwards"
                if not o.last_routed_after_ms
                else f"queries were still sent to it for {o.last_routed_after_ms:.0f} ms"
            )
            items.append(
                f"<li><b>{e(rid)}</b> failed at {o.failed_at_s:.2f} s ({e(o.detail or 'unavailable')}), {back}; "
                f"{o.queries_failed} of its queries failed; {routed}.</li>"
            )
        parts.append('<ul id="replica-outages">' + "".join(items) + "</ul>")
    return "".join(parts)
