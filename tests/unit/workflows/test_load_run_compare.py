"""``lpuperf compare`` on runs beside LoadGen (``--load``): real runs compare without error, with dispatch lag,
session latency, TTFT by turn and the prefix-cache hit fraction as metrics; a candidate whose client fell
behind is a regression, a slower client alone is not; a load run and a LoadGen run compare only when forced.
Runs of many sessions, made with the harness's own record store, show the intervals' verdicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli import main
from loadgen_harness import DispatchLag, LoadInfo, Percentiles, RunResult, SessionStats, TurnStats
from loadgen_harness._records import QueryRecords
from loadgen_harness._results import save_results
from tests.load_runs import load_run, plant_lag, sessions_run
from tests.unit.workflows.test_report import make_run
from workflows import CompareConfig, compare_runs, load_run_data
from workflows._compare import CompareError


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("load-compare")
    return {
        "conc-a": load_run(out, "a", "concurrency:2"),
        "conc-b": load_run(out, "b", "concurrency:2"),
        "sessions": sessions_run(out, "sess"),
    }


def _compare(base: Path, cand: Path, **cfg: object) -> dict[str, object]:
    result = compare_runs(load_run_data(base), load_run_data(cand), CompareConfig.model_validate(cfg))
    return {m.name: m for m in result.metrics} | {"_notes": result.notes, "_passed": result.passed}


def test_two_real_load_runs_compare_with_dispatch_lag_as_a_metric(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c.json"
    code = main(["compare", str(runs["conc-a"]), str(runs["conc-b"]), "--json", str(out)])
    text = capsys.readouterr().out
    assert code in (0, 1)  # a real pair of short runs may differ; the comparison itself must work
    names = {m["name"] for m in json.loads(out.read_text())["metrics"]}
    assert {"dispatch_lag_ms.p50", "dispatch_lag_ms.p99", "ttft_ms.p99", "completed_qps"} <= names
    assert "dispatch lag p99" in text


def test_sessions_compare_on_session_latency_turn_ttft_and_cache_hits(runs: dict[str, Path]) -> None:
    got = _compare(runs["sessions"], runs["sessions"])
    for name in ("session_latency_ms.p50", "session_latency_ms.p99", "turn_ttft_ms.p50[turn=0]",
                 "turn_ttft_ms.p99[turn=2]", "prefix_cache.hit_fraction", "dispatch_lag_ms.p99"):  # fmt: skip
        assert name in got, name
    assert got["_passed"] is True  # a run against itself


def test_a_client_limited_candidate_is_a_regression_a_slower_client_alone_is_not(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cand = tmp_path / "b" / "Concurrency" / "performance"
    shutil.copytree(runs["conc-a"], cand)
    plant_lag(cand, p99_ms=30.0, bound_ms=10.0)
    assert main(["compare", str(runs["conc-a"]), str(cand)]) == 1
    text = capsys.readouterr().out
    assert "candidate client-limited: dispatch lag p99 30 ms > 10 ms" in text
    got = _compare(runs["conc-a"], cand)
    assert got["client_on_schedule"].regression  # type: ignore[union-attr]
    # The baseline's client fell behind instead: said in a note, and no regression of the candidate.
    got = _compare(cand, runs["conc-a"])
    assert "client_on_schedule" not in got
    assert any("baseline run was client-limited" in n for n in got["_notes"])  # type: ignore[union-attr]


def test_a_load_run_and_a_loadgen_run_compare_only_when_forced(runs: dict[str, Path], tmp_path: Path) -> None:
    loadgen = tmp_path / "lg" / "Server" / "performance"
    make_run(loadgen, n=200)
    pair = (load_run_data(loadgen), load_run_data(runs["conc-a"]))
    with pytest.raises(CompareError, match="scenario Server vs Concurrency"):
        compare_runs(*pair)
    got = _compare(loadgen, runs["conc-a"], force=True)
    notes = got["_notes"]
    assert any("candidate is not an MLPerf LoadGen run (concurrency:2)" in n for n in notes)  # type: ignore[union-attr]
    assert "dispatch_lag_ms.p99" not in got  # only one side has it


# ---- many sessions, from the harness's record store: intervals decide ----


def _sessions_dir(d: Path, slower: float, lag_ms: float, seed: int, hit: float = 0.5) -> Path:
    """60 sessions of 3 turns, one request per turn: TTFT ~20 ms x slower, answers ~100 ms x slower, a cached
    share of ``hit`` of each prompt, every send ``lag_ms`` late."""
    rng = np.random.default_rng(seed)
    rec = QueryRecords(256)
    t = 0
    for sess in range(60):
        due = t
        for turn in range(3):
            ttft = int(rng.gamma(8.0, 2.5) * 1e6 * slower)
            dur = int(rng.normal(100.0, 5.0) * 1e6 * slower)
            chunk, j = rec.slot_ref(-1, due)
            chunk.sent_ns[j] = due + int(lag_ms * 1e6)
            chunk.first_token_ns[j], chunk.done_ns[j] = due + ttft, due + dur
            chunk.n_tokens[j], chunk.status[j], chunk.finish_reason[j] = 8, 0, 2
            chunk.session[j], chunk.turn[j], chunk.tool_step[j] = sess, turn, 0
            chunk.n_prompt[j] = 100 * (turn + 1)
            chunk.cached_tokens[j] = int(hit * 100 * (turn + 1))
            due += dur + 10_000_000
        t += 50_000_000
    d.mkdir(parents=True, exist_ok=True)
    rec.save(d)
    arr = rec.to_array()
    from loadgen_harness._load_stats import dispatch_lag, prefix_cache_stats, session_stats

    cols = {k: arr[k] for k in arr.dtype.names or ()}
    res = RunResult(
        run_id=d.parent.parent.name,
        scenario="Sessions",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=True,
        n_queries=int(arr.size),
        load=LoadInfo(kind="sessions", spec="sessions:synthetic:sessions=60,turns=3"),
        dispatch_lag=dispatch_lag(cols, bound_ms=10.0),
        sessions=session_stats(cols, n_sessions=60),
        prefix_cache=prefix_cache_stats(cols),
    )
    save_results(res, d)
    return d


def test_slower_sessions_regress_a_later_client_is_only_shown(tmp_path: Path) -> None:
    base = _sessions_dir(tmp_path / "base" / "r" / "Sessions" / "performance", 1.0, 0.1, seed=1)
    same = _sessions_dir(tmp_path / "same" / "r" / "Sessions" / "performance", 1.0, 5.0, seed=1)  # the SUT's same
    slow = _sessions_dir(tmp_path / "slow" / "r" / "Sessions" / "performance", 1.5, 0.1, seed=3, hit=0.2)
    got = _compare(base, same)
    lag = got["dispatch_lag_ms.p99"]
    assert lag.direction == "worse" and not lag.regression  # type: ignore[union-attr]
    assert lag.ci_low is not None  # type: ignore[union-attr]  # 180 sends: an interval, and still no regression
    assert got["_passed"] is True
    got = _compare(base, slow)
    for name in ("session_latency_ms.p50", "turn_ttft_ms.p50[turn=1]", "prefix_cache.hit_fraction"):
        m = got[name]
        assert m.regression and m.ci_low is not None, name  # type: ignore[union-attr]
    assert got["prefix_cache.hit_fraction"].change == pytest.approx(-0.3)  # type: ignore[union-attr]
    assert got["_passed"] is False


def test_figures_from_results_alone_compare_without_intervals(tmp_path: Path) -> None:
    """A store that kept only results.json (no records): the figures are compared, with no verdict."""
    res = RunResult(
        run_id="x",
        scenario="Sessions",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        load=LoadInfo(kind="sessions", spec="sessions:f.jsonl"),
        dispatch_lag=DispatchLag(n_queries=10, p50_ms=0.1, p99_ms=0.5, max_ms=0.6, bound_ms=10.0),
        sessions=SessionStats(
            n_sessions=2,
            session_latency_ms=Percentiles(p50=900.0, p90=950.0, p99=990.0),
            turns=[TurnStats(turn=0, ttft_ms=Percentiles(p50=20.0, p90=25.0, p99=30.0))],
        ),
    )
    from workflows import RunData

    worse = res.model_copy(update={"sessions": res.sessions.model_copy(  # type: ignore[union-attr]
        update={"session_latency_ms": Percentiles(p50=1800.0, p90=1900.0, p99=2000.0)})})  # fmt: skip
    result = compare_runs(RunData(name="a", results=res), RunData(name="b", results=worse))
    m = {x.name: x for x in result.metrics}
    assert m["session_latency_ms.p50"].change == pytest.approx(1.0) and m["session_latency_ms.p50"].direction == "no CI"
    assert m["turn_ttft_ms.p99[turn=0]"].change == 0.0 and m["dispatch_lag_ms.p99"].source == "report"
