"""Run comparison: planted regressions are flagged with intervals; noise, schedules and mismatched runs are not.

Runs are synthetic per-query records (the records ``queries.npz`` holds), so latency and throughput
intervals come from the same code path as a real run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from loadgen_harness import QUERY_RECORD_DTYPE, RunResult
from workflows._compare import (
    CompareConfig,
    CompareError,
    RunData,
    compare_runs,
    latencies_from_records,
    load_run_data,
    records_samples,
)
from workflows._stats import percentile_change, proportion_change

# Fewer resamples than the CLI default keep these tests quick; intervals stay far from the planted 30%.
FAST = CompareConfig(resamples=300)


def make_records(
    n: int = 3000, qps: float = 20.0, ttft_scale: float = 1.0, tokens: int = 101, seed: int = 1
) -> np.ndarray:
    """Poisson arrivals at ``qps``, lognormal TTFT around 300 ms, TPOT around 20 ms, ``tokens`` per query."""
    rng = np.random.default_rng(seed)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    issue = np.cumsum(rng.exponential(1e9 / qps, n)).astype(np.int64)
    ttft = (rng.lognormal(np.log(300.0), 0.5, n) * ttft_scale * 1e6).astype(np.int64)
    tpot = (rng.normal(20.0, 2.0, n).clip(5) * 1e6).astype(np.int64)
    rec["sample_index"] = np.arange(n)
    rec["issue_ns"] = issue
    rec["first_token_ns"] = issue + ttft
    rec["done_ns"] = issue + ttft + tpot * (tokens - 1)
    rec["n_tokens"] = tokens
    rec["status"] = 0
    return rec


def _pcts(a: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)}


def make_run(name: str, with_records: bool = True, **kw: Any) -> RunData:
    over = {k: kw.pop(k) for k in list(kw) if k not in ("n", "qps", "ttft_scale", "tokens", "seed")}
    rec = make_records(**kw)
    lat, rates = records_samples(rec)
    window_s = (rec["done_ns"].max() - rec["issue_ns"].min()) / 1e9
    results: dict[str, Any] = {
        "run_id": name,
        "mode": "performance",
        "benchmark": "embedded",
        "preset": "quick",
        "scenario": "Server",
        "valid": True,
        "validity_reasons": [],
        "ttft_ms": _pcts(lat["ttft_ms"]),
        "tpot_ms": _pcts(lat["tpot_ms"]),
        "latency_ms": _pcts(lat["latency_ms"]),
        "scheduled_qps": rec.size / ((rec["issue_ns"].max() - rec["issue_ns"].min()) / 1e9),
        "tokens_per_second": float(rec["n_tokens"].sum()) / window_s,
        "completed_qps": rec.size / window_s,
        "n_queries": int(rec.size),
        "n_errors": 0,
    }
    results.update(over)
    run = RunData(name=name, results=RunResult.model_validate(results))
    if with_records:
        run.latencies_ms, run.rates = lat, rates
    return run


def fidelity(overall: float, **by_category: float) -> FidelityReport:
    def cat(exact: float) -> CategoryFidelity:
        return CategoryFidelity(n=100, exact_match_fraction=exact, rouge_l_percent=99.0, mean_first_divergence=None)

    return FidelityReport(
        candidate="c",
        reference="fp32",
        dataset="embedded",
        n_samples=100,
        overall=cat(overall),
        by_category={k: cat(v) for k, v in by_category.items()},
        worst=[],
    )


def test_same_distribution_is_not_a_regression_and_not_better() -> None:
    cmp = compare_runs(make_run("a", seed=1), make_run("b", seed=2), FAST)
    assert cmp.passed, [m.line for m in cmp.regressions]
    ttft99 = next(m for m in cmp.metrics if m.name == "ttft_ms.p99")
    assert ttft99.ci_low is not None and ttft99.ci_high is not None and ttft99.ci_low < 0 < ttft99.ci_high
    # Every figure of two equal runs has an interval, and none is called better or worse.
    for m in cmp.metrics:
        assert m.ci_low is not None, m.line
        assert m.direction == "same" or m.significant, m.line


def test_a_change_whose_interval_spans_zero_gets_no_direction() -> None:
    # 40 queries each and 10% lower TTFT: the runs' medians differ by 11%, beyond the tolerance, but
    # well within the noise of 40 queries.
    cmp = compare_runs(make_run("a", n=40, seed=2), make_run("b", n=40, ttft_scale=0.9, seed=13), FAST)
    p50 = next(m for m in cmp.metrics if m.name == "ttft_ms.p50")
    assert p50.change is not None and p50.change < -FAST.tolerance
    assert p50.ci_low is not None and p50.ci_high is not None and p50.ci_low < 0 < p50.ci_high
    assert p50.direction == "same" and "no significant change" in p50.line
    for m in cmp.metrics:
        if m.direction in ("better", "worse"):
            assert m.significant is True, m.line


def test_planted_ttft_regression_is_flagged_with_actionable_line() -> None:
    base, cand = make_run("a", seed=3), make_run("b", ttft_scale=1.3, seed=2)
    cmp = compare_runs(base, cand, FAST)
    names = {m.name for m in cmp.regressions}
    assert {"ttft_ms.p50", "ttft_ms.p99"} <= names
    assert "tpot_ms.p99" not in names
    m = next(m for m in cmp.regressions if m.name == "ttft_ms.p99")
    b = float(np.percentile(base.latencies_ms["ttft_ms"], 99, method="higher"))
    c = float(np.percentile(cand.latencies_ms["ttft_ms"], 99, method="higher"))
    pct = round(abs(c / b - 1) * 100)
    assert c > 1000 and b < 1000  # the line switches units at one second
    assert m.line.startswith(f"TTFT p99 regressed {pct}% ({b:.1f} ms -> {c / 1000:.2f} s) [CI +")
    assert m.significant is True and m.ci_low is not None and m.ci_low > 0
    assert m.source == "records" and m.loadgen_candidate == pytest.approx(cand.results.ttft_ms.p99)


def test_change_is_the_records_estimate_inside_its_interval_when_loadgen_disagrees() -> None:
    # LoadGen's p90 (scheduled-time clock) far from the records' p90: the change must still be the
    # records' and lie inside its interval (once: 'regressed 502% [CI +249%..+443%]').
    base, cand = make_run("a", seed=1), make_run("b", ttft_scale=1.3, seed=2, ttft_ms={"p90": 6000.0})
    m = next(m for m in compare_runs(base, cand, FAST).metrics if m.name == "ttft_ms.p90")
    assert m.change is not None and m.ci_low is not None and m.ci_high is not None
    assert m.ci_low <= m.change <= m.ci_high
    ratio = np.percentile(cand.latencies_ms["ttft_ms"], 90, method="higher") / np.percentile(
        base.latencies_ms["ttft_ms"], 90, method="higher"
    )
    assert m.change == pytest.approx(ratio - 1)
    assert m.loadgen_candidate == 6000.0 and m.candidate < 6000.0


def test_correlated_noise_widens_the_latency_interval() -> None:
    """A stall that slows a stretch of consecutive queries is one event, not many independent ones."""
    gen = np.random.default_rng(7)
    base = gen.lognormal(np.log(20.0), 0.2, 2000)
    cand = gen.lognormal(np.log(20.0), 0.2, 2000)
    for start in range(0, 2000, 400):  # five bursts of 60 consecutive queries, each slowed by its own stall
        cand[start : start + 60] *= gen.uniform(1.5, 3.0)
    kw = {"resamples": 400, "confidence": 0.95, "max_values": 20000}
    blocked = percentile_change(base, cand, 90.0, rng=np.random.default_rng(1), **kw)  # type: ignore[arg-type]
    shuffled = percentile_change(  # the same values with their order (the time structure) destroyed
        base,
        gen.permutation(cand),
        90.0,
        rng=np.random.default_rng(1),
        **kw,  # type: ignore[arg-type]
    )
    assert blocked is not None and shuffled is not None and blocked.ci and shuffled.ci
    assert blocked.value == shuffled.value
    assert blocked.ci[1] - blocked.ci[0] > 1.3 * (shuffled.ci[1] - shuffled.ci[0])


def test_point_estimate_is_always_inside_its_interval() -> None:
    """Property: over many seeded random runs (sizes, shapes, percentiles), every interval holds its estimate."""
    gen = np.random.default_rng(2024)
    shapes = (
        lambda r, n: r.lognormal(0, 1.5, n),
        lambda r, n: r.exponential(1.0, n),
        lambda r, n: np.where(r.random(n) < 0.97, r.normal(10, 1, n).clip(0.1), r.normal(200, 50, n).clip(1)),
        lambda r, n: r.integers(1, 5, n).astype(float),  # heavy ties
    )
    checked = 0
    for _ in range(120):
        nb, nc = (int(x) for x in gen.integers(20, 400, 2))
        base = shapes[int(gen.integers(len(shapes)))](gen, nb)
        cand = shapes[int(gen.integers(len(shapes)))](gen, nc) * float(gen.uniform(0.5, 2.0))
        q = float(gen.choice([50.0, 90.0, 99.0]))
        est = percentile_change(base, cand, q, resamples=200, confidence=0.95, rng=gen, max_values=300)
        assert est is not None and est.ci is not None
        assert est.ci[0] <= est.value <= est.ci[1], (nb, nc, q, est)
        k_b, k_c = int(gen.integers(0, nb + 1)), int(gen.integers(0, nc + 1))
        prop = proportion_change(k_b, nb, k_c, nc, resamples=200, confidence=0.95, rng=gen)
        assert prop is not None and prop.ci is not None and prop.ci[0] <= prop.value <= prop.ci[1]
        checked += 1
    assert checked == 120
    # And through compare_runs, for every metric that has an interval.
    for seed in range(6):
        cmp = compare_runs(make_run("a", n=200, seed=seed), make_run("b", n=150, ttft_scale=1.1, seed=seed + 50), FAST)
        for m in cmp.metrics:
            if m.ci_low is not None and m.ci_high is not None and m.change is not None:
                assert m.ci_low <= m.change <= m.ci_high, m.line


def test_tolerance_is_configurable() -> None:
    cmp = compare_runs(
        make_run("a", seed=1), make_run("b", ttft_scale=1.3, seed=2), CompareConfig(tolerance=0.6, resamples=300)
    )
    assert cmp.passed


def test_throughput_drop_and_invalid_result_are_regressions() -> None:
    cand = make_run("b", tokens=76, valid=False, validity_reasons=["TTFT p99 over limit"])
    cmp = compare_runs(make_run("a"), cand, FAST)
    lines = {m.name: m.line for m in cmp.regressions}
    assert lines["tokens_per_second"].startswith("tokens/s regressed 24% (2012.0 tok/s -> 1519.3 tok/s) [CI -")
    assert lines["valid"] == "LoadGen result regressed (VALID -> INVALID): TTFT p99 over limit"
    assert "completed_qps" not in lines  # the same schedule completed: no throughput loss in queries


def test_a_slower_schedule_is_not_a_throughput_regression() -> None:
    # Same SUT keeping up with both schedules; the candidate was only scheduled 6% slower.
    base, cand = make_run("a", qps=20.0, seed=1), make_run("b", qps=18.8, seed=2)
    cmp = compare_runs(base, cand, FAST)
    assert cmp.passed, [m.line for m in cmp.regressions]
    names = {m.name for m in cmp.metrics}
    assert "completed_per_scheduled" in names and "completed_qps" not in names
    ratio = next(m for m in cmp.metrics if m.name == "completed_per_scheduled")
    assert ratio.ci_low is not None and ratio.direction == "same"
    assert any("scheduled rates differ" in n for n in cmp.notes)


def test_accuracy_has_no_interval_and_no_verdict_fidelity_has_both() -> None:
    base, cand = make_run("a"), make_run("b")
    base.accuracy = AccuracyReport(scores_percent={"rougeL": 28.6, "rouge1": 44.4})
    cand.accuracy = AccuracyReport(scores_percent={"rougeL": 27.9, "rouge1": 44.3})
    base.fidelity, cand.fidelity = fidelity(1.0, qa=1.0), fidelity(0.80, qa=0.7)
    cmp = compare_runs(base, cand, FAST)
    lines = {m.name: m.line for m in cmp.regressions}
    assert set(lines) == {"fidelity.exact_match[all]", "fidelity.exact_match[qa]"}
    assert lines["fidelity.exact_match[qa]"].startswith(
        "exact match vs FP32 [qa] regressed 30.0 points (100.0% -> 70.0%) [CI -"
    )
    rouge = next(m for m in cmp.metrics if m.name == "accuracy.rougeL")
    assert rouge.direction == "no CI" and not rouge.regression
    assert rouge.line == "accuracy rougeL changed -2.4% (28.6 -> 27.9) [no CI: no verdict]"
    assert any("no CI" in n for n in cmp.notes)


def test_error_rate_increase_is_a_regression() -> None:
    cmp = compare_runs(make_run("a"), make_run("b", n_errors=30), FAST)
    (m,) = cmp.regressions
    assert m.line.startswith("error rate regressed 1.0 points (0.0% -> 1.0%) [CI +")


def test_different_mode_scenario_or_benchmark_is_refused_unless_forced() -> None:
    base = make_run("a")
    for over in ({"mode": "accuracy"}, {"scenario": "Offline"}, {"benchmark": "llama2-70b"}):
        cand = make_run("b", seed=2, **over)
        with pytest.raises(CompareError) as err:
            compare_runs(base, cand, FAST)
        what = next(iter(over))
        assert f"{what} {getattr(base.results, what)} vs {over[what]}" in str(err.value)
        assert "--force" in str(err.value) and "\n" not in str(err.value)
        forced = compare_runs(base, cand, FAST.model_copy(update={"force": True}))
        assert any(f"different {what}" in n for n in forced.notes)


def test_without_records_changes_are_shown_without_verdicts() -> None:
    cmp = compare_runs(make_run("a", with_records=False), make_run("b", ttft_scale=1.3, with_records=False), FAST)
    assert cmp.passed
    m = next(m for m in cmp.metrics if m.name == "ttft_ms.p99")
    assert m.direction == "no CI" and m.source == "loadgen" and "no CI" in m.line


def test_latencies_from_records_skip_failed_queries() -> None:
    dt = np.dtype(
        [("issue_ns", "i8"), ("first_token_ns", "i8"), ("done_ns", "i8"), ("n_tokens", "i4"), ("status", "i4")]
    )
    rec = np.array(
        [(0, 2_000_000, 12_000_000, 6, 0), (0, -1, 5_000_000, 0, 14), (1_000_000, 3_000_000, 3_000_000, 1, 0)], dt
    )
    lat = latencies_from_records(rec)
    assert lat["ttft_ms"].tolist() == [2.0, 2.0]
    assert lat["latency_ms"].tolist() == [12.0, 2.0]
    assert lat["tpot_ms"].tolist() == [2.0]


def _write_run(d: Path, run: RunData, records: np.ndarray | None) -> Path:
    d.mkdir(parents=True)
    (d / "results.json").write_text(run.results.model_dump_json())
    if records is not None:
        np.savez(d / "queries.npz", records=records)
    return d


def test_load_run_data_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    base_dir = _write_run(tmp_path / "base" / "Server" / "performance", make_run("a", seed=1), make_records(seed=1))
    cand_dir = _write_run(
        tmp_path / "cand" / "Server" / "performance",
        make_run("b", ttft_scale=1.3, seed=2),
        make_records(ttft_scale=1.3, seed=2),
    )
    data = load_run_data(base_dir)
    assert data.rates is not None and data.latencies_ms["ttft_ms"].size == 3000 and data.fidelity is None
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(base_dir), str(cand_dir), "--resamples", "300", "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    assert "TTFT p99 regressed" in out and out.rstrip().endswith("regressions")
    assert json.loads(out_json.read_text())["metrics"]
    assert main(["compare", str(base_dir), str(base_dir), "--resamples", "300"]) == 0
    assert main(["compare", str(base_dir), str(cand_dir), "--resamples", "5"]) == 2


def test_cli_refuses_an_accuracy_run_against_a_performance_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    perf = _write_run(tmp_path / "p" / "Offline" / "performance", make_run("a", scenario="Offline"), None)
    acc = _write_run(tmp_path / "a" / "Offline" / "accuracy", make_run("b", scenario="Offline", mode="accuracy"), None)
    capsys.readouterr()
    assert main(["compare", str(perf), str(acc)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mode performance vs accuracy" in err[0] and "--force" in err[0]
    assert main(["compare", str(perf), str(acc), "--force", "--resamples", "300"]) == 0
    assert "compared despite different mode" in capsys.readouterr().out


def test_load_run_data_reads_reports_with_their_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    run = make_run("a")
    d = _write_run(tmp_path / "base" / "Offline" / "accuracy", run, None)
    (d / "accuracy.json").write_text(AccuracyReport(scores_percent={"rougeL": 28.6}).model_dump_json())
    (d / "fidelity.json").write_text(fidelity(0.97, qa=0.9).model_dump_json())
    data = load_run_data(d)
    assert data.accuracy is not None and data.accuracy.scores_percent == {"rougeL": 28.6}
    assert data.fidelity is not None and data.fidelity.by_category["qa"].exact_match_fraction == 0.9
    # A fidelity report in the old spelling is refused with the file and field, not read as missing.
    (d / "fidelity.json").write_text(json.dumps({"overall": {"exact_match_rate": 0.97}}))
    assert main(["compare", str(d), str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(d / "fidelity.json") in err[0] and "field '" in err[0]
