"""Per-replica figures from per-query records (synthetic records with known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen_harness import QUERY_RECORD_DTYPE
from loadgen_harness._replicas import ReplicaEvent, attribute_by_outage, fleet_breakdown, fleet_summary_lines

MS = 1_000_000
UNAVAILABLE = 14


def _records(replicas: list[int], status: list[int] | None = None, tokens: int = 11) -> np.ndarray:
    """Query i issued at i*10 ms, first token 20 ms later, done 120 ms after issue, ``tokens`` tokens."""
    n = len(replicas)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    rec["issue_ns"] = np.arange(n) * 10 * MS
    rec["first_token_ns"] = rec["issue_ns"] + 20 * MS
    rec["done_ns"] = rec["issue_ns"] + 120 * MS
    rec["n_tokens"] = tokens
    rec["status"] = 0 if status is None else status
    rec["replica"] = replicas
    return rec


def test_per_replica_figures_add_up_to_the_run() -> None:
    from loadgen_harness import success_stats

    rec = _records([i % 3 for i in range(300)])
    fleet = fleet_breakdown(rec, "ipv4:x", ["a", "b", "c"], ["h:1", "h:2", "h:3"])
    total = success_stats(rec)
    assert sum(r.n_queries for r in fleet.replicas) == total.n_queries == 300
    assert sum(r.qps or 0 for r in fleet.replicas) == pytest.approx(total.qps, rel=1e-3)
    assert sum(r.tokens_per_second or 0 for r in fleet.replicas) == pytest.approx(total.tokens_per_second, rel=1e-3)
    assert [r.share for r in fleet.replicas] == [pytest.approx(1 / 3)] * 3
    assert fleet.imbalance == 1.0 and fleet.unattributed is None
    assert all(r.ttft_p50_ms == 20.0 and r.tpot_p99_ms == 10.0 for r in fleet.replicas)  # (120-20)/(11-1)


def test_the_console_table_says_what_its_rows_count_and_shows_their_total() -> None:
    from loadgen_harness import success_stats

    rec = _records([i % 3 for i in range(300)], [UNAVAILABLE if i % 50 == 7 else 0 for i in range(300)])
    fleet = fleet_breakdown(rec, "ipv4:x", ["a", "b", "c"], ["h:1", "h:2", "h:3"])
    lines = fleet_summary_lines(fleet)
    assert any("count successful queries" in ln and "add up to the total" in ln for ln in lines)
    (total,) = [ln.split() for ln in lines if ln.split()[:1] == ["total"]]
    ok = success_stats(rec)
    assert int(total[1]) == ok.n_queries == 294 and int(total[2]) == 6
    assert float(total[3]) == pytest.approx(ok.qps, abs=0.02)
    assert float(total[4]) == pytest.approx(ok.tokens_per_second, abs=0.2)
    rows = [ln.split() for ln in lines if ln.split()[:1] in (["a"], ["b"], ["c"])]
    assert sum(float(r[4]) for r in rows) == pytest.approx(float(total[3]), abs=0.02)


def test_queries_the_run_stopped_itself_belong_to_no_replica() -> None:
    # The run was interrupted at 1.5 s: queries failed as CANCELLED from then on are its own doing. One
    # CANCELLED failure before that (a real one) still counts against its replica.
    cancelled = 1
    rec = _records([i % 3 for i in range(200)])
    late = rec["issue_ns"] >= 1400 * MS
    rec["status"][late] = cancelled
    rec["done_ns"][late] = 1500 * MS
    rec["replica"][late & (np.arange(200) % 2 == 0)] = -1  # some had no first chunk yet
    rec["status"][10] = cancelled
    fleet = fleet_breakdown(rec, "t", ["a", "b", "c"], stopped_ns=1500 * MS)
    assert fleet.stopped_queries == int(late.sum()) and fleet.stopped_at_s == 1.5
    assert fleet.unattributed is None
    assert sum(r.n_failed for r in fleet.replicas) == 1 and fleet.replicas[1].n_failed == 1
    assert any("stopped by lpuperf itself from 1.50 s" in ln for ln in fleet_summary_lines(fleet))
    # Without the stop time every one of them would be a replica's failure or a "(no replica)" row.
    plain = fleet_breakdown(rec, "t", ["a", "b", "c"])
    assert plain.unattributed is not None and plain.stopped_queries == 0


def test_imbalance_is_max_over_min_share() -> None:
    rec = _records([0] * 60 + [1] * 30 + [2] * 30)
    fleet = fleet_breakdown(rec, "t", ["a", "b", "c"])
    assert fleet.imbalance == 2.0
    # A replica that served nothing makes the ratio unbounded: None, not a number that looks fine.
    assert fleet_breakdown(_records([0] * 10 + [1] * 10), "t", ["a", "b", "c"]).imbalance is None


def test_failed_queries_count_against_their_replica() -> None:
    status = [0] * 9 + [UNAVAILABLE]
    fleet = fleet_breakdown(_records([0] * 5 + [1] * 5, status), "t", ["a", "b"])
    a, b = fleet.replicas
    assert (a.n_queries, a.n_failed, b.n_queries, b.n_failed) == (5, 0, 4, 1)
    assert b.errors_by_status == {"UNAVAILABLE": 1} and a.errors_by_status == {}


def test_orphaned_failure_is_attributed_to_the_replica_that_failed_then() -> None:
    # Query 50 failed without headers (sent to a replica in the instant it died), done at 620 ms.
    rec = _records([i % 3 for i in range(100)], [UNAVAILABLE if i == 50 else 0 for i in range(100)])
    rec["replica"][50] = -1
    events = [ReplicaEvent(replica_id="b", address="h:2", event="failed", t_s=0.63)]
    assert attribute_by_outage(rec, events, ["a", "b", "c"]) == 1
    assert rec["replica"][50] == 1
    # Planted fault: an orphan far from any outage, or near two, stays unknown.
    rec["replica"][50] = -1
    far = [ReplicaEvent(replica_id="b", address="h:2", event="failed", t_s=30.0)]
    assert attribute_by_outage(rec, far, ["a", "b", "c"]) == 0
    two = [*events, ReplicaEvent(replica_id="c", address="h:3", event="failed", t_s=0.6)]
    assert attribute_by_outage(rec, two, ["a", "b", "c"]) == 0 and rec["replica"][50] == -1
    fleet = fleet_breakdown(rec, "t", ["a", "b", "c"], events=two)
    assert fleet.unattributed is not None and fleet.unattributed.n_failed == 1


def test_outage_says_when_and_how_long_queries_still_went_there() -> None:
    # Replica b dies at 1.0 s: its streams break then; one more query issued at 1.03 s was still sent to it.
    n = 200
    replicas = [i % 3 for i in range(n)]
    status = [0] * n
    rec = _records(replicas, status)
    in_flight = [i for i in range(n) if replicas[i] == 1 and 880 * MS < rec["issue_ns"][i] <= 1000 * MS]
    for i in in_flight:
        rec["status"][i] = UNAVAILABLE
        rec["done_ns"][i] = 1000 * MS
    late = 103  # issued at 1.03 s, replica 1 by round robin
    assert replicas[late] == 1
    rec["status"][late] = UNAVAILABLE
    rec["done_ns"][late] = 1031 * MS
    after = [i for i in range(late + 1, n) if replicas[i] == 1]
    rec["replica"][after] = 0  # the client stopped sending there
    events = [
        ReplicaEvent(replica_id="b", address="h:2", event="failed", t_s=1.002, detail="UNAVAILABLE"),
        ReplicaEvent(replica_id="b", address="h:2", event="recovered", t_s=1.5),
    ]
    fleet = fleet_breakdown(rec, "t", ["a", "b", "c"], events=events)
    (outage,) = fleet.replicas[1].outages
    assert outage.failed_at_s == 1.0  # the streams broke before the health watch said so
    assert outage.recovered_at_s == 1.5 and outage.detail == "UNAVAILABLE"
    assert outage.queries_failed == len(in_flight) + 1
    assert outage.last_routed_after_ms == pytest.approx(30.0)
    text = "\n".join(fleet_summary_lines(fleet))
    assert "replica b failed at 1.00 s (UNAVAILABLE), back at 1.50 s" in text
    assert "until 30 ms after" in text


def test_a_query_the_restarted_replica_answers_before_its_health_watch_is_not_routing_to_a_dead_one() -> None:
    # Replica b dies at 1.0 s and is back at 1.48 s; the health watch reports SERVING only at 1.5 s. The
    # query issued to it at 1.48 s succeeded, so it went to a live replica: the client stopped routing
    # to the dead one right after the failure (nothing failed after it).
    n = 200
    replicas = [i % 3 for i in range(n)]
    rec = _records(replicas)
    dead = [i for i in range(n) if replicas[i] == 1 and 880 * MS < rec["issue_ns"][i] <= 1000 * MS]
    rec["status"][dead] = UNAVAILABLE
    rec["done_ns"][dead] = 1000 * MS
    down = [i for i in range(n) if replicas[i] == 1 and 1000 * MS < rec["issue_ns"][i] < 1480 * MS]
    rec["replica"][down] = 0
    back = 148  # issued at 1.48 s to b, answered
    assert replicas[back] == 1 and rec["status"][back] == 0
    events = [
        ReplicaEvent(replica_id="b", address="h:2", event="failed", t_s=1.002, detail="UNAVAILABLE"),
        ReplicaEvent(replica_id="b", address="h:2", event="recovered", t_s=1.5),
    ]
    (outage,) = fleet_breakdown(rec, "t", ["a", "b", "c"], events=events).replicas[1].outages
    assert outage.queries_failed == len(dead)
    assert outage.last_routed_after_ms == 0.0  # the 1.48 s query would read as 480 ms of routing to a dead one


def test_mixed_artifacts_split_the_figures() -> None:
    rec = _records([i % 3 for i in range(90)])
    fleet = fleet_breakdown(rec, "t", ["a", "b", "c"], artifacts=["x", "y", "x"], mixed=True)
    assert set(fleet.by_artifact) == {"x", "y"}
    assert fleet.by_artifact["x"].n_queries == 60 and fleet.by_artifact["y"].n_queries == 30
    assert fleet_breakdown(rec, "t", ["a", "b", "c"], artifacts=["x", "y", "x"]).by_artifact == {}


def test_old_records_without_the_replica_column_load_as_unknown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from loadgen_harness import load_query_records

    rec = _records([0, 1, 2])
    names = [n for n in QUERY_RECORD_DTYPE.names or () if n != "replica"]
    old = np.empty(3, dtype=[(n, QUERY_RECORD_DTYPE.fields[n][0]) for n in names])  # type: ignore[index]
    for n in names:
        old[n] = rec[n]
    np.savez(tmp_path / "queries.npz", records=old)
    loaded = load_query_records(tmp_path)
    assert loaded.dtype == QUERY_RECORD_DTYPE and (loaded["replica"] == -1).all()
    assert (loaded["issue_ns"] == rec["issue_ns"]).all()
