"""Per-replica figures of a run against a fleet: who served what, how fast, and what failed when.

Each query's replica comes from its stream (``replica`` column of ``queries.npz``, set once per query
by the bridge: the final chunk's replica id, or for a failed stream its first chunk's). A stream that
failed before its first token (queued on a replica that died, or sent to it in the instant it died)
has no id; when exactly one replica failed within :data:`ATTRIBUTION_WINDOW_S` of that query's
failure, the query is attributed to it here, after the run (:func:`attribute_by_outage`).

The breakdown rates every part over the whole run's window (LoadGen's: first issue to last
completion), so per-replica QPS and tokens/s add up to the run's. ``imbalance`` is the largest
replica's share of successful queries over the smallest one's (1.0 = perfectly even).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from loadgen_harness._fleet import Fleet
    from loadgen_harness._records import QueryRecords

# A failed stream without a replica id is attributed to the replica that failed this close to it.
ATTRIBUTION_WINDOW_S = 2.0
# gRPC's UNAVAILABLE: what a stream on a connection that broke under it ends with.
_UNAVAILABLE = 14
# gRPC's CANCELLED: what a query the harness stopped (a signal, an overload stop) is recorded with.
_CANCELLED = 1


class ReplicaEvent(BaseModel):
    """A replica leaving or rejoining service, as its health watch saw it (seconds on the run's clock)."""

    model_config = ConfigDict(extra="forbid")

    replica_id: str
    address: str
    event: Literal["failed", "recovered"]
    t_s: float
    detail: str = ""


class ReplicaOutage(BaseModel):
    """One period a replica was out of service during the run."""

    model_config = ConfigDict(extra="forbid")

    failed_at_s: float = Field(description="seconds since the run started (queries.npz's clock)")
    detail: str = ""
    recovered_at_s: float | None = None
    queries_failed: int = Field(default=0, description="this replica's queries that failed within the outage")
    last_routed_after_ms: float | None = Field(
        default=None,
        description="the last query sent to this replica while it was down (a failed one) was issued this "
        "long after the failure (0: none was); how long the client kept routing to it",
    )


class PartStats(BaseModel):
    """Figures over part of a run's queries (one replica's, one artifact's), rated over the run's window."""

    model_config = ConfigDict(extra="forbid")

    n_queries: int = Field(default=0, description="successful queries")
    n_failed: int = 0
    errors_by_status: dict[str, int] = Field(default_factory=dict)
    share: float | None = Field(default=None, description="of the run's successful queries, 0..1")
    qps: float | None = None
    tokens_per_second: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p99_ms: float | None = None


class ReplicaStats(PartStats):
    replica_id: str
    address: str = Field(default="", description="empty for a replica first seen in a stream (e.g. a new pod)")
    artifact_sha256: str = ""
    outages: list[ReplicaOutage] = Field(default_factory=list)


class FleetResult(BaseModel):
    """The per-replica breakdown in results.json (``fleet``)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    replicas: list[ReplicaStats] = Field(description="index i is queries.npz's replica value i")
    unattributed: PartStats | None = Field(default=None, description="queries no replica can be named for")
    stopped_queries: int = Field(
        default=0,
        description="queries the harness itself stopped (a signal or an overload stop), counted under no replica",
    )
    stopped_at_s: float | None = Field(default=None, description="when the harness began stopping the run")
    imbalance: float | None = Field(
        default=None, description="max/min share of successful queries; None if one got none"
    )
    mixed_artifacts: bool = False
    by_artifact: dict[str, PartStats] = Field(default_factory=dict, description="sha256 -> figures (mixed only)")
    events: list[ReplicaEvent] = Field(default_factory=list)


def _status_name(code: int) -> str:
    import grpc

    for sc in grpc.StatusCode:
        if sc.value[0] == code:
            return str(sc.name)
    return f"CODE_{code}"


def attribute_by_outage(records: np.ndarray, events: Sequence[ReplicaEvent], replica_ids: Sequence[str]) -> int:
    """Name the replica of failed streams that carry none (in place); returns how many were attributed."""
    failures = [(e.t_s, e.replica_id) for e in events if e.event == "failed"]
    if not failures or records.size == 0:
        return 0
    index = {rid: i for i, rid in enumerate(replica_ids)}
    orphan = np.flatnonzero((records["replica"] < 0) & (records["status"] == _UNAVAILABLE) & (records["done_ns"] >= 0))
    n = 0
    for row in orphan:
        t = records["done_ns"][row] / 1e9
        near = {rid for t_fail, rid in failures if abs(t - t_fail) <= ATTRIBUTION_WINDOW_S and rid in index}
        if len(near) == 1:
            records["replica"][row] = index[near.pop()]
            n += 1
    return n


def _part(rec: np.ndarray, mask: np.ndarray, window_s: float | None, n_ok_total: int) -> PartStats:
    from loadgen_harness._records import success_stats

    sub = rec[mask]
    stats = success_stats(sub, window_s=window_s)
    errors: dict[str, int] = {}
    failed = sub["status"][(sub["done_ns"] >= 0) & (sub["status"] != 0)]
    for code, count in zip(*np.unique(failed, return_counts=True), strict=True):
        errors[_status_name(int(code))] = int(count)
    return PartStats(
        n_queries=stats.n_queries,
        n_failed=stats.n_failed,
        errors_by_status=errors,
        share=round(stats.n_queries / n_ok_total, 6) if n_ok_total else None,
        qps=stats.qps,
        tokens_per_second=stats.tokens_per_second,
        ttft_p50_ms=stats.ttft_ms.p50,
        ttft_p99_ms=stats.ttft_ms.p99,
        tpot_p50_ms=stats.tpot_ms.p50,
        tpot_p99_ms=stats.tpot_ms.p99,
    )


def _outages(replica_id: str, events: Sequence[ReplicaEvent], rec: np.ndarray, mine: np.ndarray) -> list[ReplicaOutage]:
    out: list[ReplicaOutage] = []
    for e in events:
        if e.replica_id != replica_id:
            continue
        if e.event == "failed":
            out.append(ReplicaOutage(failed_at_s=round(e.t_s, 4), detail=e.detail))
        elif out and out[-1].recovered_at_s is None:
            out[-1].recovered_at_s = round(e.t_s, 4)
    done, issue = rec["done_ns"], rec["issue_ns"]
    for o in out:
        start_ns = (o.failed_at_s - ATTRIBUTION_WINDOW_S) * 1e9
        end_ns = np.inf if o.recovered_at_s is None else o.recovered_at_s * 1e9
        failed = mine & (rec["status"] != 0) & (done >= start_ns) & (done <= end_ns)
        o.queries_failed = int(failed.sum())
        # The streams it held broke the moment it died; its health watch may say so a little later.
        broke = done[failed & (rec["status"] == _UNAVAILABLE)]
        if broke.size and broke.min() / 1e9 < o.failed_at_s:
            o.failed_at_s = round(float(broke.min()) / 1e9, 4)
        # Only failed queries count: the client can reconnect to a restarted replica a little before its
        # health watch reports it SERVING, and a query it answered then was routed to a live replica.
        after = issue[mine & (rec["status"] != 0) & (issue >= o.failed_at_s * 1e9) & (issue <= end_ns)]
        o.last_routed_after_ms = round(float(after.max() / 1e6 - o.failed_at_s * 1e3), 3) if after.size else 0.0
    return out


def fleet_breakdown(
    records: np.ndarray,
    target: str,
    replica_ids: Sequence[str],
    addresses: Sequence[str] = (),
    artifacts: Sequence[str] = (),
    events: Sequence[ReplicaEvent] = (),
    mixed: bool = False,
    stopped_ns: int | None = None,
) -> FleetResult:
    """Per-replica (and with mixed artifacts per-artifact) figures from a run's records.

    ``replica_ids[i]`` names records' replica value i; ``addresses``/``artifacts`` (sha256) are known
    for the replicas resolved before the run and empty for ones first seen in a stream. Queries failed
    as CANCELLED from ``stopped_ns`` on were stopped by the harness (a signal, an overload stop): they
    are counted apart, against no replica.
    """
    from loadgen_harness._records import success_stats

    total = success_stats(records)
    window_s, n_ok = total.window_s, total.n_queries
    stopped = (
        (records["status"] == _CANCELLED) & (records["done_ns"] >= stopped_ns)
        if stopped_ns is not None
        else np.zeros(records.shape, dtype=bool)
    )
    replicas: list[ReplicaStats] = []
    for i, rid in enumerate(replica_ids):
        mine = (records["replica"] == i) & ~stopped
        part = _part(records, mine, window_s, n_ok)
        replicas.append(
            ReplicaStats(
                **part.model_dump(),
                replica_id=rid,
                address=addresses[i] if i < len(addresses) else "",
                artifact_sha256=artifacts[i] if i < len(artifacts) else "",
                outages=_outages(rid, events, records, mine),
            )
        )
    unknown = (records["replica"] < 0) & ~stopped
    unattributed = _part(records, unknown, window_s, n_ok) if unknown.any() else None
    shares = [r.n_queries for r in replicas]
    imbalance = round(max(shares) / min(shares), 4) if shares and min(shares) > 0 else None
    by_artifact: dict[str, PartStats] = {}
    if mixed:
        for digest in dict.fromkeys(a for a in artifacts if a):
            idx = [i for i, a in enumerate(artifacts) if a == digest]
            by_artifact[digest] = _part(records, np.isin(records["replica"], idx), window_s, n_ok)
    return FleetResult(
        target=target,
        replicas=replicas,
        unattributed=unattributed,
        imbalance=imbalance,
        mixed_artifacts=mixed,
        by_artifact=by_artifact,
        events=list(events),
        stopped_queries=int(stopped.sum()),
        stopped_at_s=round(stopped_ns / 1e9, 4) if stopped_ns is not None else None,
    )


# ---- console ----


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def fleet_summary_lines(fleet: FleetResult) -> list[str]:
    """The per-replica table of the console summary (and the outages under it)."""
    rows: list[tuple[str, PartStats]] = [(r.replica_id, r) for r in fleet.replicas]
    if fleet.unattributed is not None:
        rows.append(("(no replica)", fleet.unattributed))
    width = max(12, *(len(name) for name, _ in rows))
    imb = "-" if fleet.imbalance is None else f"{fleet.imbalance:.2f}"
    lines = [
        f"  replicas: {len(fleet.replicas)} behind {fleet.target}; imbalance (max/min share) {imb}",
        "    ok, qps and tokens/s count successful queries, rated over the run's window (first issue to last "
        "completion): the rows add up to the total",
        f"    {'replica':<{width}}  share    ok  failed     qps  tokens/s  TTFT p50/p99 ms  TPOT p50/p99 ms",
    ]
    for name, p in rows:
        share = "-" if p.share is None else f"{100 * p.share:.1f}%"
        lines.append(
            f"    {name:<{width}}  {share:>5} {p.n_queries:>5} {p.n_failed:>7} {_f(p.qps, '.2f'):>7} "
            f"{_f(p.tokens_per_second):>9}  {_f(p.ttft_p50_ms):>7}/{_f(p.ttft_p99_ms):<7}  "
            f"{_f(p.tpot_p50_ms):>7}/{_f(p.tpot_p99_ms):<7}"
        )
    qps = sum(p.qps or 0.0 for _, p in rows)
    tokens = sum(p.tokens_per_second or 0.0 for _, p in rows)
    lines.append(
        f"    {'total':<{width}}  {'':>5} {sum(p.n_queries for _, p in rows):>5} "
        f"{sum(p.n_failed for _, p in rows):>7} {qps:>7.2f} {tokens:>9.1f}"
    )
    for digest, p in fleet.by_artifact.items():
        lines.append(
            f"    artifact sha256 {digest[:12]}: {p.n_queries} ok, {p.n_failed} failed, {_f(p.qps, '.2f')} qps, "
            f"TTFT p99 {_f(p.ttft_p99_ms)} ms, TPOT p99 {_f(p.tpot_p99_ms)} ms"
        )
    if fleet.stopped_queries:
        lines.append(
            f"  {fleet.stopped_queries} queries stopped by lpuperf itself from {fleet.stopped_at_s or 0:.2f} s "
            "(interrupt or overload stop), counted under no replica"
        )
    for r in fleet.replicas:
        for o in r.outages:
            back = "not back" if o.recovered_at_s is None else f"back at {o.recovered_at_s:.2f} s"
            routed = (
                "no query sent to it after that"
                if not o.last_routed_after_ms
                else f"queries sent to it until {o.last_routed_after_ms:.0f} ms after"
            )
            lines.append(
                f"  replica {r.replica_id} failed at {o.failed_at_s:.2f} s ({o.detail or 'unavailable'}), {back}; "
                f"{o.queries_failed} of its queries failed; {routed}"
            )
    return lines


_BREAKDOWN_FIELDS = ("issue_ns", "first_token_ns", "done_ns", "n_tokens", "status", "replica")


def records_breakdown(
    records: QueryRecords,
    fleet: Fleet,
    replica_ids: Sequence[str],
    events: Sequence[ReplicaEvent],
    stopped_ns: int | None = None,
) -> FleetResult:
    """The run's :class:`FleetResult` from the bridge's records; attributes orphaned failures in the records too."""
    cols = np.empty(records.n, dtype=[(name, np.int64) for name in _BREAKDOWN_FIELDS])
    for name in _BREAKDOWN_FIELDS:
        cols[name] = records.column(name)
    before = cols["replica"].copy()
    attribute_by_outage(cols, events, replica_ids)
    for row in np.flatnonzero(cols["replica"] != before):
        records.replica[int(row)] = int(cols["replica"][row])
    known = {r.replica_id: r for r in fleet.replicas}
    return fleet_breakdown(
        cols,
        fleet.target,
        replica_ids,
        addresses=[known[rid].address if rid in known else "" for rid in replica_ids],
        artifacts=[known[rid].artifact_sha256 if rid in known else "" for rid in replica_ids],
        events=events,
        mixed=fleet.mixed,
        stopped_ns=stopped_ns,
    )
