"""Dispatch lag, session and prefix-cache figures of runs beside LoadGen, and their verdict (planted faults fail)."""

from __future__ import annotations

import numpy as np

from loadgen_harness import LatencyLimits, LoadInfo, RunResult
from loadgen_harness._load_stats import (
    dispatch_lag,
    judge_load_run,
    prefix_cache_stats,
    session_stats,
)
from loadgen_harness._records import QueryRecords

MS = 1_000_000


def _records(rows: list[dict[str, int]]) -> QueryRecords:
    rec = QueryRecords(16)
    for row in rows:
        r = rec.slot(row.get("sample_index", 0), row["issue_ns"])
        for name, value in row.items():
            getattr(rec, name)[r] = value
    return rec


def _cols(rec: QueryRecords) -> dict[str, np.ndarray]:
    return {name: rec.column(name) for name in rec.to_array().dtype.names or ()}


def test_dispatch_lag_is_send_minus_due_and_a_late_client_is_flagged() -> None:
    on_time = _records([{"issue_ns": i * MS, "sent_ns": i * MS + 200_000} for i in range(100)])
    lag = dispatch_lag(_cols(on_time), bound_ms=10.0)
    assert lag is not None and lag.p50_ms == 0.2 and lag.p99_ms == 0.2 and not lag.client_limited
    # Planted: a client that fell 50 ms behind on 5 % of its sends.
    late = _records([{"issue_ns": i * MS, "sent_ns": i * MS + (50 * MS if i % 20 == 0 else 0)} for i in range(100)])
    lag = dispatch_lag(_cols(late), bound_ms=10.0)
    assert lag is not None and lag.p99_ms == 50.0 and lag.max_ms == 50.0 and lag.client_limited
    assert dispatch_lag(_cols(_records([{"issue_ns": 0}])), 10.0) is None  # nothing was sent


def _result(**kw: object) -> RunResult:
    res = RunResult(run_id="r", scenario="Concurrency", mode="performance", benchmark="b", preset="quick")
    res.load = LoadInfo(kind="concurrency", spec="concurrency:2")
    for k, v in kw.items():
        setattr(res, k, v)
    return res


def _judged(rec: QueryRecords, limits: LatencyLimits | None, bound_ms: float = 10.0) -> RunResult:
    res = _result(n_queries=rec.n, n_errors=int((rec.column("status") != 0).sum()))
    res.successful = rec.success_stats()
    res.dispatch_lag = dispatch_lag(_cols(rec), bound_ms)
    judge_load_run(res, limits, "test limits")
    return res


def _query(i: int, ttft_ms: float, n_tokens: int = 11, tpot_ms: float = 10.0, lag_ns: int = 0) -> dict[str, int]:
    issue = i * 1000 * MS
    first = issue + int(ttft_ms * MS)
    return {
        "issue_ns": issue,
        "sent_ns": issue + lag_ns,
        "first_token_ns": first,
        "done_ns": first + int(tpot_ms * MS) * (n_tokens - 1),
        "n_tokens": n_tokens,
        "status": 0,
    }


def test_a_run_within_its_limits_is_valid_and_each_planted_fault_makes_it_invalid() -> None:
    limits = LatencyLimits(ttft_ms=100.0, tpot_ms=20.0)
    good = _judged(_records([_query(i, 50.0) for i in range(50)]), limits)
    assert good.valid and good.validity_reasons == [] and good.load is not None
    assert good.load.validity_basis == "test limits"
    slow_first = _judged(_records([_query(i, 50.0 if i else 900.0) for i in range(50)]), limits)
    assert not slow_first.valid and any(r.startswith("TTFT p99 900") for r in slow_first.validity_reasons)
    slow_tokens = _judged(_records([_query(i, 50.0, tpot_ms=35.0) for i in range(50)]), limits)
    assert not slow_tokens.valid and any(r.startswith("TPOT p99") for r in slow_tokens.validity_reasons)
    failed = _records([_query(i, 50.0) for i in range(50)])
    failed.status[3] = 14
    assert not _judged(failed, limits).valid
    late = _judged(_records([_query(i, 50.0, lag_ns=30 * MS) for i in range(50)]), limits)
    assert not late.valid and late.validity_reasons[-1].startswith("client-limited: dispatch lag p99 30")


def test_without_limits_only_failures_and_the_client_decide() -> None:
    assert _judged(_records([_query(i, 5000.0) for i in range(10)]), None).valid


def test_session_figures_group_by_session_and_turn() -> None:
    rows = []
    # Two sessions of three turns; session 1's last turn failed; turn k's TTFT is 10 * (k + 1) ms.
    for s in range(2):
        for t in range(3):
            q = _query(s * 10 + t, 10.0 * (t + 1))
            q |= {"session": s, "turn": t, "n_prompt": 100 * (t + 1), "cached_tokens": 50 * t}
            if s == 1 and t == 2:
                q["status"] = 14
            rows.append(q)
    tool = _query(30, 5.0) | {"session": 0, "turn": 0, "tool_step": 1, "finish_reason": 4, "n_prompt": 10}
    stats = session_stats(_cols(_records([*rows, tool])), n_sessions=2)
    assert stats is not None
    assert (stats.n_sessions, stats.completed_sessions, stats.failed_sessions) == (2, 1, 1)
    assert stats.n_requests == 7 and stats.tool_calls == 1
    # Turn TTFT over the user's messages only (tool step 0), successful ones.
    assert [(t.turn, t.n_queries, t.ttft_ms.p50) for t in stats.turns] == [(0, 2, 10.0), (1, 2, 20.0), (2, 1, 30.0)]
    assert [t.cached_fraction for t in stats.turns] == [0.0, 0.25, round(100 / 300, 6)]
    # Session 0 runs from its first due time to its last answer (the tool step at 30 s).
    assert stats.session_latency_ms.p50 == (30 * 1000 + 5 + 100) - 0.0
    assert session_stats(_cols(_records([_query(0, 1.0)])), 0) is None  # no sessions: no figures


def test_prefix_cache_share_is_over_successful_queries_with_a_known_prompt() -> None:
    rows = [
        _query(0, 1.0) | {"n_prompt": 1000, "cached_tokens": 0},
        _query(1, 1.0) | {"n_prompt": 1000, "cached_tokens": 768},
        _query(2, 1.0) | {"n_prompt": 1000, "cached_tokens": 512, "status": 14},  # failed: not counted
        _query(3, 1.0) | {"n_prompt": -1, "cached_tokens": 0},  # a LoadGen query: prompt length unknown
    ]
    stats = prefix_cache_stats(_cols(_records(rows)))
    assert stats is not None
    assert (stats.n_queries, stats.prompt_tokens, stats.cached_tokens, stats.queries_with_hit) == (2, 2000, 768, 1)
    assert stats.hit_fraction == 0.384
