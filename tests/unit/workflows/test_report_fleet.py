"""The HTML report's replica section: one row per replica, the imbalance, outages; absent for one plain SUT."""

from __future__ import annotations

import numpy as np

from loadgen_harness import QUERY_RECORD_DTYPE, RunResult
from loadgen_harness._replicas import ReplicaEvent, fleet_breakdown
from workflows._report import _replicas_section

MS = 1_000_000


def _result(replicas: list[int], ids: list[str], events: list[ReplicaEvent] | None = None) -> RunResult:
    n = len(replicas)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    rec["issue_ns"] = np.arange(n) * 10 * MS
    rec["first_token_ns"] = rec["issue_ns"] + 20 * MS
    rec["done_ns"] = rec["issue_ns"] + 120 * MS
    rec["n_tokens"] = 11
    rec["status"] = 0
    rec["replica"] = replicas
    res = RunResult(run_id="r", scenario="Server", mode="performance", benchmark="embedded", preset="quick")
    res.fleet = fleet_breakdown(rec, "ipv4:a,b", ids, events=events or [])
    return res


def test_replica_table_and_outages() -> None:
    events = [
        ReplicaEvent(replica_id="pod-b", address="b", event="failed", t_s=0.5, detail="UNAVAILABLE"),
        ReplicaEvent(replica_id="pod-b", address="b", event="recovered", t_s=0.9),
    ]
    html = _replicas_section(_result([0, 0, 1, 1, 1, 0], ["pod-a", "pod-b"], events))
    assert '<h2 id="replicas">' in html and 'id="replica-table"' in html
    assert html.count("<tr>") == 3 and "pod-a" in html and "pod-b" in html and "50.0%" in html
    assert "imbalance" in html and "<b>1.00</b>" in html
    assert 'id="replica-outages"' in html and "<b>pod-b</b> failed at 0.50 s (UNAVAILABLE)" in html


def test_no_section_for_a_single_sut_without_outages() -> None:
    assert _replicas_section(_result([0, 0, 0], ["127.0.0.1:5"])) == ""
    assert (
        _replicas_section(RunResult(run_id="r", scenario="Server", mode="performance", benchmark="e", preset="q")) == ""
    )
