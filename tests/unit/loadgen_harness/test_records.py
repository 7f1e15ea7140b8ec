"""Per-query record storage: grows with what was issued, never with the plan; success-only figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import QUERY_RECORD_DTYPE, format_summary, load_query_records, success_stats
from loadgen_harness._records import MAX_CHUNK_ROWS, MIN_CHUNK_ROWS, QueryRecords
from loadgen_harness._results import Percentiles, RunResult


def test_a_huge_expected_count_allocates_nothing_up_front() -> None:
    rec = QueryRecords(capacity=10**12)  # what qps 1e9 x duration 1e3 would have preallocated
    assert rec.nbytes == 0
    rec.slot(0, 0)
    assert rec.chunk_rows == MAX_CHUNK_ROWS
    assert rec.nbytes == MAX_CHUNK_ROWS * QUERY_RECORD_DTYPE.itemsize  # one chunk, ~6 MB


def test_chunks_are_appended_on_demand_and_rows_keep_their_values(tmp_path: Path) -> None:
    rec = QueryRecords(capacity=10)
    assert rec.chunk_rows == MIN_CHUNK_ROWS
    n = 3 * MIN_CHUNK_ROWS + 5
    for i in range(n):
        chunk, j = rec.slot_ref(i % 97, 10 * i)
        chunk.done_ns[j] = 10 * i + 7
        chunk.status[j] = i % 3
    assert rec.capacity == 4 * MIN_CHUNK_ROWS  # four chunks, nothing copied to grow
    rec.n_tokens[n - 1] = 42  # the global-row view reaches the last chunk
    assert rec.n_tokens[n - 1] == 42
    with pytest.raises(IndexError):
        rec.n_tokens[n] = 1
    rec.save(tmp_path)
    arr = load_query_records(tmp_path)
    assert arr.dtype == QUERY_RECORD_DTYPE and arr.shape == (n,)
    assert arr["sample_index"].tolist() == [i % 97 for i in range(n)]
    assert arr["done_ns"].tolist() == [10 * i + 7 for i in range(n)]
    assert arr["first_token_ns"].tolist() == [-1] * n
    assert arr["n_tokens"][-1] == 42 and arr["n_tokens"][-2] == -1
    assert np.array_equal(arr, rec.to_array())
    assert not list(tmp_path.glob("*.tmp*"))


def test_empty_records_save_and_load(tmp_path: Path) -> None:
    QueryRecords().save(tmp_path)
    assert load_query_records(tmp_path).shape == (0,)


def _planted(n_ok: int = 100, n_failed: int = 300) -> np.ndarray:
    """Successful queries of 100 ms (TTFT 20 ms, 9 tokens) issued at 10/s, then failed ones done in 1 ms."""
    arr = np.zeros(n_ok + n_failed, dtype=QUERY_RECORD_DTYPE)
    t = np.arange(n_ok + n_failed, dtype=np.int64) * 100_000_000  # one query every 100 ms
    arr["issue_ns"] = t
    arr["status"][:n_ok] = 0
    arr["first_token_ns"][:n_ok] = t[:n_ok] + 20_000_000
    arr["done_ns"][:n_ok] = t[:n_ok] + 100_000_000
    arr["n_tokens"][:n_ok] = 9
    arr["status"][n_ok:] = 14
    arr["first_token_ns"][n_ok:] = -1
    arr["done_ns"][n_ok:] = t[n_ok:] + 1_000_000
    arr["n_tokens"][n_ok:] = 2
    return arr


def test_success_stats_exclude_failed_queries() -> None:
    arr = _planted()
    s = success_stats(arr)
    assert (s.n_queries, s.n_failed) == (100, 300)
    # The planted fault: over every query (LoadGen's view) the median latency is the failures' 1 ms.
    every = (arr["done_ns"] - arr["issue_ns"]) / 1e6
    assert np.median(every) == pytest.approx(1.0)
    assert s.latency_ms.p50 == pytest.approx(100.0)
    assert s.ttft_ms.p99 == pytest.approx(20.0)
    assert s.tpot_ms.p50 == pytest.approx(10.0)  # (100 - 20) ms / (9 - 1)
    # The window is LoadGen's (first issue to last completion), only successes count in it.
    window = (399 * 100 + 1) / 1000
    assert s.window_s == pytest.approx(window)
    assert s.qps == pytest.approx(100 / window, rel=1e-3)
    assert s.tokens_per_second == pytest.approx(900 / window, rel=1e-3)
    assert s.qps < 0.3 * (400 / window)  # well below the all-query rate LoadGen would headline


def test_success_stats_with_no_success_or_no_query() -> None:
    s = success_stats(_planted(n_ok=0, n_failed=5))
    assert s.n_queries == 0 and s.qps == 0 and s.latency_ms.p50 is None
    empty = success_stats(np.zeros(0, dtype=QUERY_RECORD_DTYPE))
    assert empty.n_queries == 0 and empty.qps is None and empty.window_s is None


def test_records_success_stats_match_the_saved_array(tmp_path: Path) -> None:
    planted = _planted(10, 5)
    rec = QueryRecords(4)
    for row in planted:
        chunk, j = rec.slot_ref(0, int(row["issue_ns"]))
        for name in ("first_token_ns", "done_ns", "n_tokens", "status"):
            chunk.column(name)[j] = row[name]
    assert rec.success_stats() == success_stats(planted)


def test_summary_headlines_successful_rate_not_loadgens() -> None:
    arr = _planted()
    res = RunResult(
        run_id="r",
        scenario="Server",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        completed_qps=10.0,
        scheduled_qps=10.0,
        tokens_per_second=30.0,
        ttft_ms=Percentiles(p50=1.0, p90=1.0, p99=20.0),
        latency_ms=Percentiles(p50=1.0, p90=1.0, p99=100.0),
        n_queries=400,
        n_errors=300,
        errors_by_status={"UNAVAILABLE": 300},
        successful=success_stats(arr),
    )
    text = format_summary(res)
    assert "QPS completed" not in text  # LoadGen's rate counts the 300 failures
    assert "successful QPS 2.51 (LoadGen completed 10.00 incl. 300 failed)" in text
    assert "TTFT     p50 20.00" in text and "latency  p50 100.00" in text
    assert "100 succeeded (figures above), 300 failed (UNAVAILABLE 300)" in text
    # Without per-query success figures no rate is headlined either.
    old = format_summary(res.model_copy(update={"successful": None}))
    assert "QPS completed" not in old and "incl. 300 failed (successful rate unknown)" in old


def test_summary_of_an_abandoned_run_uses_the_records() -> None:
    ok_only = _planted(n_ok=50, n_failed=0)
    res = RunResult(
        run_id="r",
        scenario="Server",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        state="interrupted",
        interrupted_by="SIGINT",
        loadgen_finished=False,  # LoadGen wrote no result: its rates are unknown
        n_queries=50,
        successful=success_stats(ok_only),
    )
    text = format_summary(res)
    assert "INTERRUPTED by SIGINT" in text
    assert "successful QPS 10.00" in text and "latency  p50 100.00" in text


def test_goodput_counts_queries_within_both_limits_over_the_success_window() -> None:
    from loadgen_harness._records import goodput
    from loadgen_harness._results import LatencyLimits

    arr = _planted(n_ok=100, n_failed=300)  # TTFT 20 ms, TPOT 10 ms on every success
    arr["first_token_ns"][:10] += 50_000_000  # 10 queries: TTFT 70 ms (TPOT 3.75 ms)
    arr["done_ns"][10:30] += 100_000_000  # 20 queries: TPOT 22.5 ms (TTFT 20 ms)
    g = goodput(arr, LatencyLimits(ttft_ms=50.0, tpot_ms=20.0))
    assert g is not None
    assert (g.n_good_queries, g.n_queries) == (70, 400)  # failed queries are never good
    assert g.fraction == pytest.approx(70 / 400)
    s = success_stats(arr)
    assert s.window_s is not None and g.qps == pytest.approx(70 / s.window_s, rel=1e-3)
    assert (g.ttft_limit_ms, g.tpot_limit_ms) == (50.0, 20.0)
    # Limits generous enough for everything: goodput equals the successful queries.
    loose = goodput(arr, LatencyLimits(ttft_ms=1e3, tpot_ms=1e3))
    assert loose is not None and loose.n_good_queries == s.n_queries == 100
    assert goodput(arr, None) is None and goodput(arr, LatencyLimits()) is None


def test_inter_token_latency_per_query_and_longest_gap() -> None:
    from loadgen_harness._records import inter_token_latency

    arr = _planted(n_ok=100, n_failed=10)
    ok = slice(0, 100)
    arr["first_chunk_tokens"][ok] = 1
    arr["n_streamed"][ok] = 9
    arr["last_msg_ns"][ok] = arr["first_token_ns"][ok] + 80_000_000  # 8 tokens in 80 ms: 10 ms each
    arr["max_gap_ns"][ok] = 10_000_000
    arr["max_gap_ns"][99] = 500_000_000  # one stall
    arr["last_msg_ns"][100:] = 5  # failed queries do not count
    itl = inter_token_latency(arr)
    assert itl is not None and itl.n_queries == 100
    assert itl.itl_ms.p50 == pytest.approx(10.0) and itl.itl_ms.p99 == pytest.approx(10.0)
    # The one stalled query shows in the longest-gap tail, not in the mean per-token ITL.
    assert itl.max_gap_ms.p90 == pytest.approx(10.0) and itl.max_gap_ms.p99 == pytest.approx(500.0)


def test_records_written_before_the_itl_columns_still_load(tmp_path: Path) -> None:
    old_names = [n for n in QUERY_RECORD_DTYPE.names or () if n not in ("last_msg_ns", "max_gap_ns")]
    old = np.zeros(3, dtype=[(n, QUERY_RECORD_DTYPE.fields[n][0]) for n in old_names])  # type: ignore[index]
    old["done_ns"] = [7, 8, 9]
    np.savez(tmp_path / "queries.npz", records=old)
    arr = load_query_records(tmp_path)
    assert arr.dtype == QUERY_RECORD_DTYPE and arr["done_ns"].tolist() == [7, 8, 9]
    assert arr["max_gap_ns"].tolist() == [-1, -1, -1]
    bad = np.zeros(2, dtype=[("done_ns", "i8"), ("bogus", "i8")])
    np.savez(tmp_path / "queries.npz", records=bad)
    with pytest.raises(ValueError, match="unexpected dtype"):
        load_query_records(tmp_path)
