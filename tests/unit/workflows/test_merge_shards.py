"""``merge_shards`` on shard run directories built here with known clocks: exact percentiles over the union,
rates over the common window, clock offsets measured through the SUT's timestamps, and every refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import (
    QUERY_RECORD_DTYPE,
    LoadInfo,
    RunResult,
    ShardInfo,
    load_query_records,
    load_results,
    success_stats,
)
from loadgen_harness._results import save_results
from workflows import ShardMergeError, merge_shards
from workflows._merge import wait_for_run_dirs
from workflows._merge_figures import clock_offset_ns, shifted

MS = 1_000_000
T0 = 1_900_000_000 * 1_000_000_000  # a Unix time, ns
ONE_WAY_NS = 400_000  # network delay each way


def _records(n: int, start_ns: int, wall_t0: int, sut_minus_shard_ns: int, latency_ms: float) -> np.ndarray:
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    for name in ("n_reasoning", "tool_step", "finish_reason", "cached_tokens"):
        rec[name] = 0
    k = np.arange(n, dtype=np.int64)
    rec["sample_index"] = k
    rec["issue_ns"] = start_ns + k * 10 * MS
    rec["sent_ns"] = rec["issue_ns"] + 100_000
    rec["first_token_ns"] = rec["issue_ns"] + 20 * MS + (k % 7) * MS
    rec["done_ns"] = rec["issue_ns"] + int(latency_ms * MS) + (k % 13) * MS
    rec["n_tokens"] = 10 + k % 5
    rec["status"] = 0
    rec["replica"] = 0
    # The SUT stamps arrival and first token on its own clock: shard clock + offset, one way delay apart.
    rec["sut_arrival_ns"] = wall_t0 + rec["sent_ns"] + sut_minus_shard_ns + ONE_WAY_NS
    rec["sut_first_token_ns"] = wall_t0 + rec["first_token_ns"] + sut_minus_shard_ns - ONE_WAY_NS
    return rec


def _shard(
    root: Path,
    i: int,
    n: int = 3,
    *,
    wall_t0: int = T0,
    skew_ns: int = 0,
    start_ns: int = 50 * MS,
    spec: str = "rate:30",
    latency_ms: float = 100.0,
) -> Path:
    """Shard i's run directory; its wall clock reads ``skew_ns`` ahead of the SUT's (which is true time)."""
    run_dir = root / f"shard-{i}" / "Rate" / "performance"
    run_dir.mkdir(parents=True)
    rec = _records(100 + 10 * i, start_ns, wall_t0 + skew_ns, -skew_ns, latency_ms)
    res = RunResult(
        run_id=f"shard-{i}",
        scenario="Rate",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=True,
        n_queries=rec.size,
        load=LoadInfo(kind="rate", spec=spec, rate_qps=10.0, arrival="poisson", sent_requests=rec.size),
        shard=ShardInfo(
            index=i, count=n, host=f"h{i}", wall_t0_unix_ns=wall_t0 + skew_ns, started_unix_ns=wall_t0 + skew_ns
        ),
    )
    save_results(res, run_dir)
    np.savez_compressed(run_dir / "queries.npz", records=rec)
    return run_dir


def test_merged_percentiles_are_those_of_the_concatenated_records_and_counts_add_up(tmp_path: Path) -> None:
    dirs = [_shard(tmp_path, i, latency_ms=100.0 + 150 * i) for i in range(3)]
    res = merge_shards(dirs, tmp_path / "out", "m")
    shards = [load_query_records(d) for d in dirs]
    union = success_stats(np.concatenate(shards))
    assert res.n_queries == sum(s.size for s in shards) == 330
    assert res.successful is not None
    assert (res.ttft_ms, res.tpot_ms, res.latency_ms) == (union.ttft_ms, union.tpot_ms, union.latency_ms)
    # Not the average of the shards' p99s: shard 2's slow queries dominate the union's tail.
    mean_p99 = np.mean([success_stats(s).latency_ms.p99 for s in shards])
    assert res.latency_ms.p99 is not None and res.latency_ms.p99 > mean_p99 + 50
    assert res.sharded is not None and [r.n_queries for r in res.sharded.shards] == [100, 110, 120]
    # Written as a run directory every later stage reads.
    back = load_results(tmp_path / "out" / "m" / "Rate" / "performance")
    assert back == res and back.load is not None
    assert back.load.note.startswith("sharded: not an MLPerf LoadGen run (3 shards merged)")
    assert back.load.rate_qps == 30.0 and back.load.sent_requests == 330
    assert load_query_records(back.log_dir).size == 330


def test_rates_are_summed_over_the_common_window(tmp_path: Path) -> None:
    # Shard 1 starts 200 ms later: the common window begins with it.
    dirs = [_shard(tmp_path, i, start_ns=(50 + 200 * (i == 1)) * MS) for i in range(3)]
    res = merge_shards(dirs, tmp_path / "out", "m")
    assert res.sharded is not None and res.successful is not None
    parts = [load_query_records(d) for d in dirs]
    lo = 250 * MS  # shard 1's first due query
    hi = min(int(p["done_ns"].max()) for p in parts)
    in_window = sum(int(((p["done_ns"] >= lo) & (p["done_ns"] <= hi)).sum()) for p in parts)
    assert res.sharded.common_window_s == pytest.approx((hi - lo) / 1e9)
    assert res.completed_qps == pytest.approx(in_window / ((hi - lo) / 1e9), rel=1e-4)
    assert sum(r.qps or 0 for r in res.sharded.shards) == pytest.approx(res.completed_qps, rel=1e-3)
    assert [r.start_offset_ms for r in res.sharded.shards] == [0.0, 0.0, 0.0]  # all began sending together


def test_a_skewed_shard_clock_is_measured_through_the_sut_and_corrected(tmp_path: Path) -> None:
    """The planted fault: shard 2's wall clock reads 300 ms ahead. Its wall clock alone would put its
    queries 300 ms late; the SUT's timestamps show the skew, and the merged timeline removes it."""
    dirs = [_shard(tmp_path, i, skew_ns=300 * MS if i == 2 else 0) for i in range(3)]
    res = merge_shards(dirs, tmp_path / "out", "m")
    assert res.sharded is not None
    rows = res.sharded.shards
    assert rows[2].clock_offset_ms == pytest.approx(300.0, abs=1e-3)
    assert rows[2].clock_offset_error_ms == pytest.approx(ONE_WAY_NS / 1e6, abs=1e-3)
    assert [r.clock_offset_ms for r in rows[:2]] == [0.0, 0.0]
    assert res.sharded.clock_offset_spread_ms == pytest.approx(300.0, abs=1e-3)
    assert "SUT's clock" in res.sharded.alignment
    assert rows[2].start_offset_ms == pytest.approx(0.0, abs=1e-3)  # corrected: it began with the others
    assert any("clocks differ by up to 300" in w for w in res.warnings)


def test_without_sut_timestamps_the_wall_clocks_align_and_say_so(tmp_path: Path) -> None:
    dirs = [_shard(tmp_path, i, skew_ns=300 * MS if i == 2 else 0) for i in range(3)]
    for d in dirs:
        rec = load_query_records(d)
        rec["sut_arrival_ns"] = -1
        np.savez_compressed(d / "queries.npz", records=rec)
    res = merge_shards(dirs, tmp_path / "out", "m")
    assert res.sharded is not None and "wall clocks" in res.sharded.alignment
    assert res.sharded.shards[2].start_offset_ms == pytest.approx(300.0)
    assert res.sharded.shards[2].clock_offset_ms is None


def test_clock_offset_picks_the_exchange_with_the_least_delay() -> None:
    rec = _records(50, 0, T0, 5 * MS, 100.0)
    rec["sut_arrival_ns"][:-1] += 3 * MS  # every exchange but the last one delayed 3 ms more on the way in
    offset, error = clock_offset_ns(rec, T0) or (None, None)
    assert offset == pytest.approx(5 * MS) and error == pytest.approx(ONE_WAY_NS)


def test_shifting_moves_reached_times_only() -> None:
    rec = _records(3, 0, T0, 0, 100.0)
    rec["first_token_ns"][1] = -1
    out = shifted(rec, 7)
    assert out["first_token_ns"][1] == -1 and out["issue_ns"][0] == rec["issue_ns"][0] + 7
    assert (out["sut_arrival_ns"] == rec["sut_arrival_ns"]).all()  # the SUT's clock is not the shard's


def test_a_failed_shard_makes_the_merged_run_not_valid(tmp_path: Path) -> None:
    dirs = [_shard(tmp_path, i) for i in range(3)]
    res1 = load_results(dirs[1]).model_copy(update={"valid": False, "validity_reasons": ["client-limited: x"]})
    save_results(res1, dirs[1])
    res = merge_shards(dirs, tmp_path / "out", "m")
    assert not res.valid and "shard 1: client-limited: x" in res.validity_reasons


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "shard 2/3 missing: 2 of 3 shards given"),
        ("twice", "shard 1/3 given 2 times"),
        ("other-load", "--load rate:40 differs"),
        ("not-a-shard", "field 'shard': not a shard run"),
        (
            "other-artifact",
            "artifact sim-int8 differs from .*'s sim-fp32 \\(the shards ran against different artifacts\\)",
        ),
        ("no-dir", r"nowhere: no results.json \(expected a shard.s run directory\)"),
        ("exists", "a run is already there"),
    ],
)
def test_shards_that_cannot_be_merged_are_one_line(tmp_path: Path, case: str, needle: str) -> None:
    dirs = [_shard(tmp_path, i) for i in range(3)]
    if case == "missing":
        dirs = dirs[:2]
    elif case == "twice":
        dirs = [dirs[0], dirs[1], _shard(tmp_path / "again", 1)]
    elif case == "other-load":
        dirs[2] = _shard(tmp_path / "other", 2, spec="rate:40")
    elif case == "not-a-shard":
        save_results(load_results(dirs[0]).model_copy(update={"shard": None}), dirs[0])
    elif case == "other-artifact":
        for i, d in enumerate(dirs):
            name = "sim-int8" if i == 2 else "sim-fp32"
            save_results(load_results(d).model_copy(update={"artifact": {"artifact_id": name}}), d)
    elif case == "no-dir":
        dirs[1] = tmp_path / "nowhere"
    elif case == "exists":
        merge_shards(dirs, tmp_path / "out", "m")
    with pytest.raises(ShardMergeError, match=needle) as err:
        merge_shards(dirs, tmp_path / "out", "m")
    assert "\n" not in str(err.value)


def test_waiting_for_shards_is_bounded(tmp_path: Path) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s
        if now[0] >= 4:  # the third shard finishes after 4 s
            _shard(tmp_path, 2) if not (tmp_path / "shard-2").exists() else None

    dirs = [_shard(tmp_path, i) for i in range(2)]
    found = wait_for_run_dirs([*dirs, tmp_path / "shard-2"], 10.0, sleep, lambda: now[0])
    assert found[2] == tmp_path / "shard-2" / "Rate" / "performance" and sum(slept) <= 6
    with pytest.raises(ShardMergeError, match="after waiting 3 s"):
        wait_for_run_dirs([tmp_path / "never"], 3.0, sleep, lambda: now[0])
