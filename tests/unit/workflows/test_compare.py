"""Run comparison: planted regressions are flagged with actionable lines; equal runs are not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from loadgen_harness import RunResult
from workflows._compare import (
    CompareConfig,
    RunData,
    bootstrap_rel_change,
    compare_runs,
    latencies_from_records,
    load_run_data,
)

# Fewer resamples than the CLI default keep these tests quick; intervals stay far from the planted 30%.
FAST = CompareConfig(resamples=300)


def _pcts(a: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)}


def make_run(name: str, ttft_scale: float = 1.0, tps: float = 2000.0, seed: int = 1, **over: Any) -> RunData:
    rng = np.random.default_rng(seed)
    ttft = rng.lognormal(np.log(300.0), 0.5, 3000) * ttft_scale
    tpot = rng.normal(20.0, 2.0, 3000).clip(5)
    lat = ttft + tpot * 100
    results: dict[str, Any] = {
        "run_id": name,
        "mode": "performance",
        "benchmark": "embedded",
        "preset": "quick",
        "scenario": "Server",
        "valid": True,
        "validity_reasons": [],
        "ttft_ms": _pcts(ttft),
        "tpot_ms": _pcts(tpot),
        "latency_ms": _pcts(lat),
        "tokens_per_second": tps,
        "completed_qps": 20.0,
        "n_queries": 3000,
        "n_errors": 0,
    }
    results.update(over)
    return RunData(
        name=name,
        results=RunResult.model_validate(results),
        latencies_ms={"ttft_ms": ttft, "tpot_ms": tpot, "latency_ms": lat},
    )


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


def test_same_distribution_is_not_a_regression() -> None:
    cmp = compare_runs(make_run("a", seed=1), make_run("b", seed=2), FAST)
    assert cmp.passed, [m.line for m in cmp.regressions]
    ttft99 = next(m for m in cmp.metrics if m.name == "ttft_ms.p99")
    assert ttft99.ci_low is not None and ttft99.ci_high is not None and ttft99.ci_low < 0 < ttft99.ci_high


def test_planted_ttft_regression_is_flagged_with_actionable_line() -> None:
    base, cand = make_run("a", seed=1), make_run("b", ttft_scale=1.3, seed=2)
    cmp = compare_runs(base, cand, FAST)
    names = {m.name for m in cmp.regressions}
    assert {"ttft_ms.p50", "ttft_ms.p99"} <= names
    assert "tpot_ms.p99" not in names
    m = next(m for m in cmp.regressions if m.name == "ttft_ms.p99")
    b, c = base.results.ttft_ms.p99, cand.results.ttft_ms.p99
    assert b is not None and c is not None
    pct = round(abs(c / b - 1) * 100)
    assert c > 1000 > b  # the line switches units at one second
    assert m.line.startswith(f"TTFT p99 regressed {pct}% ({b:.1f} ms -> {c / 1000:.2f} s) [CI +")
    assert m.significant is True and m.ci_low is not None and m.ci_low > 0


def test_tolerance_is_configurable() -> None:
    cmp = compare_runs(
        make_run("a", seed=1), make_run("b", ttft_scale=1.3, seed=2), CompareConfig(tolerance=0.6, resamples=300)
    )
    assert cmp.passed


def test_throughput_drop_and_invalid_result_are_regressions() -> None:
    cand = make_run("b", tps=1500.0, valid=False, validity_reasons=["TTFT p99 over limit"])
    cmp = compare_runs(make_run("a"), cand, FAST)
    lines = {m.name: m.line for m in cmp.regressions}
    assert lines["tokens_per_second"] == "tokens/s regressed 25% (2000.0 tok/s -> 1500.0 tok/s)"
    assert lines["valid"] == "LoadGen result regressed (VALID -> INVALID): TTFT p99 over limit"


def test_accuracy_and_fidelity_regressions() -> None:
    base, cand = make_run("a"), make_run("b")
    base.accuracy = AccuracyReport(scores_percent={"rougeL": 28.6, "rouge1": 44.4})
    cand.accuracy = AccuracyReport(scores_percent={"rougeL": 27.9, "rouge1": 44.3})
    base.fidelity, cand.fidelity = fidelity(1.0, qa=1.0), fidelity(0.97, qa=0.9)
    cmp = compare_runs(base, cand, FAST)
    lines = {m.name: m.line for m in cmp.regressions}
    assert set(lines) == {"accuracy.rougeL", "fidelity.exact_match[all]", "fidelity.exact_match[qa]"}
    assert lines["accuracy.rougeL"] == "accuracy rougeL regressed 2% (28.6 -> 27.9)"
    assert lines["fidelity.exact_match[qa]"] == "exact match vs FP32 [qa] regressed 10.0 points (100.0% -> 90.0%)"


def test_error_rate_increase_is_a_regression() -> None:
    cmp = compare_runs(make_run("a"), make_run("b", n_errors=30), FAST)
    (m,) = cmp.regressions
    assert m.line == "error rate regressed 1.0 points (0.0% -> 1.0%)"


def test_bootstrap_is_seeded_and_bounded() -> None:
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    x = np.random.default_rng(0).exponential(1.0, 50_000)
    y = x * 1.1
    cfg = CompareConfig(resamples=200, max_queries=5000)
    ci_a = bootstrap_rel_change(x, y, 99.0, cfg, rng_a)
    ci_b = bootstrap_rel_change(x, y, 99.0, cfg, rng_b)
    assert ci_a == ci_b and ci_a is not None
    assert ci_a[0] < 0.1 < ci_a[1] or ci_a[0] > 0  # centred near +10%
    assert bootstrap_rel_change(x[:5], y[:5], 99.0, cfg, rng_a) is None


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


def test_load_run_data_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    dirs = []
    for name, run in (("base", make_run("a", seed=1)), ("cand", make_run("b", ttft_scale=1.3, seed=2))):
        d = tmp_path / name / "Server" / "performance"
        d.mkdir(parents=True)
        (d / "results.json").write_text(run.results.model_dump_json())
        dirs.append(d)
    data = load_run_data(dirs[0])
    assert data.results.tokens_per_second == 2000.0 and not data.latencies_ms and data.fidelity is None
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(dirs[0]), str(dirs[1]), "--resamples", "300", "--json", str(out_json)]) == 1
    out = capsys.readouterr().out
    assert "TTFT p99 regressed" in out and out.rstrip().endswith("regressions")
    assert json.loads(out_json.read_text())["metrics"]
    assert main(["compare", str(dirs[0]), str(dirs[0])]) == 0
    assert main(["compare", str(dirs[0]), str(dirs[1]), "--resamples", "5"]) == 2


def test_load_run_data_reads_reports_with_their_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    run = make_run("a")
    d = tmp_path / "base" / "Offline" / "accuracy"
    d.mkdir(parents=True)
    (d / "results.json").write_text(run.results.model_dump_json())
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
