"""The detail-log parser and RunResult, on logs produced by a real LoadGen run inside the test.

The run uses an in-process SUT that answers every query from LoadGen's issue thread with four
tokens (first token first), so LoadGen writes genuine logs in about a second.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadgen_harness import RunResult, load_query_records, load_results, parse_detail_log
from loadgen_harness._records import QueryRecords
from loadgen_harness._results import fill_from_detail, parse_summary_token_latencies, save_results
from scenarios import SettingsOverrides, plan_settings


def _real_loadgen_run(out: Path, qps: float, duration_s: float) -> Path:
    import mlperf_loadgen as lg

    tokens = np.array([5, 6, 7, 1], dtype=np.int32)

    def issue(samples: list[Any]) -> None:
        for s in samples:
            lg.FirstTokenComplete([lg.QuerySampleResponse(s.id, tokens.ctypes.data, 4)])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, tokens.ctypes.data, tokens.nbytes, 4)])

    plan = plan_settings("Server", "embedded", "quick", overrides=SettingsOverrides(qps=qps, duration_s=duration_s))
    settings = plan.to_test_settings()
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(16, 16, lambda _i: None, lambda _i: None)
    out.mkdir(parents=True, exist_ok=True)
    log_out = lg.LogOutputSettings()
    log_out.outdir = str(out)
    log_out.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_out
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings, "/nonexistent/audit.config")
    finally:
        lg.DestroySUT(sut)
        lg.DestroyQSL(qsl)
    return out


@pytest.fixture(scope="module")
def real_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _real_loadgen_run(tmp_path_factory.mktemp("lglog"), qps=1000, duration_s=1.0)


def _result(mode: str = "performance") -> RunResult:
    return RunResult(run_id="r", scenario="Server", mode=mode, benchmark="embedded", preset="quick")


def _edited(real_log: Path, tmp_path: Path, old: str, new: str) -> Path:
    d = tmp_path / "edited"
    shutil.copytree(real_log, d)
    detail = d / "mlperf_log_detail.txt"
    text = detail.read_text()
    assert old in text, f"fixture log lacks {old!r}"
    detail.write_text(text.replace(old, new))
    return d


def test_valid_run_parses(real_log: Path) -> None:
    res = _result()
    fill_from_detail(res, parse_detail_log(real_log), parse_summary_token_latencies(real_log))
    assert res.valid, res.validity_reasons
    assert res.loadgen_valid is True
    assert res.validity_reasons == []
    assert res.scheduled_qps is not None and 900 < res.scheduled_qps < 1100
    assert res.completed_qps is not None and res.completed_qps > 0.95 * res.scheduled_qps
    assert res.tokens_per_second is not None and res.tokens_per_second > 0
    for p in (res.ttft_ms, res.tpot_ms, res.latency_ms):
        assert p.p50 is not None and p.p99 is not None and 0 <= p.p50 <= p.p99
    assert res.settings["effective_target_qps"] == 1000
    assert res.settings["requested_use_token_latencies"] is True


def test_invalid_verdict_is_reported(real_log: Path, tmp_path: Path) -> None:
    d = _edited(
        real_log, tmp_path, '"key": "result_validity", "value": "VALID"', '"key": "result_validity", "value": "INVALID"'
    )
    text = (d / "mlperf_log_detail.txt").read_text()
    (d / "mlperf_log_detail.txt").write_text(
        text.replace(
            '"key": "result_perf_constraints_met", "value": true',
            '"key": "result_perf_constraints_met", "value": false',
        )
    )
    res = _result()
    fill_from_detail(res, parse_detail_log(d))
    assert res.valid is False
    assert res.loadgen_valid is False
    assert "LoadGen: INVALID" in res.validity_reasons
    assert any("latency limits" in r for r in res.validity_reasons)


def test_completed_far_below_scheduled_is_flagged(real_log: Path) -> None:
    detail = parse_detail_log(real_log)
    scheduled = detail.values["result_scheduled_samples_per_sec"]
    detail.values["result_completed_samples_per_sec"] = scheduled * 0.5
    res = _result()
    fill_from_detail(res, detail)
    # LoadGen said VALID; the overload is reported as a warning next to the reasons.
    assert res.loadgen_valid is True
    assert len(res.warnings) == 1 and "overloaded" in res.warnings[0]
    assert res.warnings[0] in res.validity_reasons


def test_drain_tail_alone_is_not_overload(real_log: Path) -> None:
    """A SUT that keeps up still finishes one median latency after the last issue; no warning for that."""
    detail = parse_detail_log(real_log)
    scheduled = detail.values["result_scheduled_samples_per_sec"]
    n = detail.values["result_query_count"]
    span = n / scheduled
    median_s = 0.25 * span
    detail.values["result_50.00_percentile_latency_ns"] = median_s * 1e9
    detail.values["result_completed_samples_per_sec"] = n / (span + median_s)
    res = _result()
    fill_from_detail(res, detail)
    assert res.valid and res.warnings == []
    # The same completed rate with a negligible median latency is a backlog: warned.
    detail.values["result_50.00_percentile_latency_ns"] = 1e6
    res = _result()
    fill_from_detail(res, detail)
    assert res.warnings


def test_query_errors_make_the_run_not_valid(real_log: Path) -> None:
    res = _result()
    res.n_queries, res.n_errors, res.errors_by_status = 100, 3, {"UNAVAILABLE": 3}
    fill_from_detail(res, parse_detail_log(real_log))
    assert res.valid is False
    assert "3 of 100 queries failed (UNAVAILABLE: 3)" in res.validity_reasons


def test_loadgen_errors_are_counted(real_log: Path, tmp_path: Path) -> None:
    d = _edited(real_log, tmp_path, '"key": "num_errors", "value": 0, ', '"key": "num_errors", "value": 0, ')
    with (d / "mlperf_log_detail.txt").open("a") as fh:
        fh.write(':::MLLOG {"key": "error_runtime", "value": "planted", "metadata": {"is_error": true}}\n')
    res = _result()
    fill_from_detail(res, parse_detail_log(d))
    assert res.loadgen_errors == 1
    assert res.valid is False


def test_truncated_last_line_and_missing_verdict(real_log: Path, tmp_path: Path) -> None:
    d = tmp_path / "cut"
    shutil.copytree(real_log, d)
    lines = (d / "mlperf_log_detail.txt").read_text().splitlines()
    kept = [ln for ln in lines if "result_validity" not in ln]
    (d / "mlperf_log_detail.txt").write_text("\n".join(kept) + '\n:::MLLOG {"key": "cut', encoding="utf-8")
    res = _result()
    fill_from_detail(res, parse_detail_log(d))
    assert res.valid is False
    assert any("no result_validity" in r for r in res.validity_reasons)


@pytest.mark.parametrize("label", ["time to output token", "time per output token"])
def test_summary_accepts_both_tpot_labels(real_log: Path, tmp_path: Path, label: str) -> None:
    text = (real_log / "mlperf_log_summary.txt").read_text()
    text = text.replace("time to output token", label).replace("time per output token", label)
    p = tmp_path / "mlperf_log_summary.txt"
    p.write_text(text)
    got = parse_summary_token_latencies(p)
    assert set(got["tpot"]) >= {"50.00", "90.00", "99.00"}
    assert set(got["ttft"]) >= {"50.00", "90.00", "99.00"}
    # Detail-less fallback: with the detail's TPOT keys gone the summary supplies them.
    detail = parse_detail_log(real_log)
    for k in [k for k in detail.values if k.startswith("result_time_per_output_token")]:
        del detail.values[k]
    res = _result()
    fill_from_detail(res, detail, got)
    assert res.tpot_ms.p99 == pytest.approx(got["tpot"]["99.00"] / 1e6, abs=1e-4)


def test_results_round_trip(tmp_path: Path) -> None:
    res = _result()
    res.valid, res.completed_qps = True, 12.5
    save_results(res, tmp_path)
    assert load_results(tmp_path) == res
    assert load_results(tmp_path / "results.json") == res
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "nope")


def test_query_records_grow_and_round_trip(tmp_path: Path) -> None:
    rec = QueryRecords(capacity=16)
    for i in range(40):  # forces two doublings
        slot = rec.slot(i % 7, 1000 + i)
        rec.done_ns[slot] = 2000 + i
        rec.stream_matches_output[slot] = i % 2 == 0
    rec.save(tmp_path)
    arr = load_query_records(tmp_path)
    assert arr.shape == (40,)
    assert arr["sample_index"].tolist() == [i % 7 for i in range(40)]
    assert arr["done_ns"].tolist() == [2000 + i for i in range(40)]
    assert arr["first_token_ns"].tolist() == [-1] * 40
    assert arr["stream_matches_output"].sum() == 20
    np.savez_compressed(tmp_path / "bad.npz", records=np.zeros(3))
    with pytest.raises(ValueError, match="unexpected dtype"):
        load_query_records(tmp_path / "bad.npz")


def test_limits_and_early_stopping_need_of_a_real_short_run(tmp_path: Path) -> None:
    """A run too short for early stopping (LoadGen's own wording): the summary names the count it needs."""
    from loadgen_harness import format_summary
    from loadgen_harness._console import verdict_basis
    from loadgen_harness._results import LatencyLimits
    from scenarios import get_benchmark

    d = _real_loadgen_run(tmp_path / "short", qps=20, duration_s=1.0)
    res = _result()
    res.scheduled_qps = 20.0
    fill_from_detail(res, parse_detail_log(d), parse_summary_token_latencies(d))
    prof = get_benchmark("embedded")
    assert res.limits == LatencyLimits(ttft_ms=prof.ttft_ms, tpot_ms=prof.tpot_ms, percentile=99.0)
    assert res.valid is False and res.early_stopping, res.validity_reasons
    processed = int(parse_detail_log(d).values["result_query_count"])  # type: ignore[arg-type]
    for need in res.early_stopping:
        assert need.processed_queries == processed < need.needed_queries
    need = res.early_stopping[0]
    text = format_summary(res)
    assert f"LoadGen needs at least {need.needed_queries}" in text
    assert f"limit p99 <= {prof.ttft_ms:.0f} ms" in text and f"limit p99 <= {prof.tpot_ms:.0f} ms" in text
    assert any(b.startswith("decided by: ") and "early stopping" in b for b in verdict_basis(res))


def test_valid_run_states_its_limits_and_an_exceeded_limit_decides(real_log: Path) -> None:
    from loadgen_harness._console import verdict_basis

    res = _result()
    fill_from_detail(res, parse_detail_log(real_log))
    assert res.early_stopping == []
    (basis,) = verdict_basis(res)
    assert basis.startswith("within limits: TTFT p99 ") and "TPOT p99 " in basis
    assert res.limits is not None and res.limits.ttft_ms is not None
    over = res.model_copy(update={"valid": False, "ttft_ms": res.ttft_ms.model_copy(update={"p99": 2e3})})
    assert verdict_basis(over) == [f"decided by: TTFT p99 2000.0 ms > {res.limits.ttft_ms:.0f} ms limit"]
