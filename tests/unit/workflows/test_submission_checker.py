"""Submission tree and checker on hand-written MLPerf logs: each rule fails on its planted problem.

The seeds and durations in the clean logs are LoadGen's own (read from its mlperf.conf), so the
clean case passes only if the checker agrees with LoadGen. Real-run coverage lives in
tests/integration/test_workflows_submission.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from workflows._submission import (
    MAX_ACCURACY_LOG_BYTES,
    SubmissionConfig,
    SubmissionError,
    build_submission,
    mlperf_rules,
    read_detail_log,
)
from workflows._submission_check import check_submission

BENCH = "llama3_1-8b"


def _detail(**over: Any) -> str:
    rules = mlperf_rules(BENCH, "Server")
    values: dict[str, Any] = {
        "effective_qsl_rng_seed": rules.qsl_rng_seed,
        "effective_sample_index_rng_seed": rules.sample_index_rng_seed,
        "effective_schedule_rng_seed": rules.schedule_rng_seed,
        "effective_min_duration_ms": 600000,
        "requested_use_token_latencies": True,
        "result_validity": "VALID",
        "result_first_token_99.00_percentile_latency_ns": 900_000_000,
        "result_time_per_output_token_99.00_percentile_ns": 40_000_000,
        # llama3.1-8b's dataset, whole: the performance sample count and the accuracy run's coverage.
        "effective_performance_sample_count": 13368,
        "qsl_reported_total_count": 13368,
        "effective_samples_per_query": 13368,
    }
    values.update(over)
    return "".join(
        ":::MLLOG " + json.dumps({"key": k, "value": v, "time_ms": 1.0, "namespace": "mlperf::logging"}) + "\n"
        for k, v in values.items()
    )


def make_runs(
    tmp: Path, preset: str = "submission", test06_ok: bool = True, scenario: str = "Server", **detail: Any
) -> dict[str, Path]:
    perf, acc, t06 = tmp / "run" / scenario / "performance", tmp / "run" / scenario / "accuracy", tmp / "TEST06"
    for d in (perf, acc, t06 / "accuracy"):
        d.mkdir(parents=True)
    results = {
        "run_id": "run",
        "scenario": scenario,
        "mode": "performance",
        "benchmark": BENCH,
        "preset": preset,
        "submittable": preset == "submission",
        "valid": True,
        "artifact": {"artifact_id": "sim-fp32", "model": "m", "precision": "fp32", "target": "sim-lpu", "max_batch": 8},
    }
    (perf / "results.json").write_text(json.dumps(results))
    for d in (perf, acc):
        (d / "mlperf_log_detail.txt").write_text(_detail(**detail))
        (d / "mlperf_log_summary.txt").write_text("Result is : VALID\n")
    log = json.dumps([{"seq_id": i, "qsl_idx": i, "data": "0A000000" * 40} for i in range(200)])
    (acc / "mlperf_log_accuracy.json").write_text(log)
    (acc / "accuracy.txt").write_text(
        "{'rouge1': 44.4, 'rouge2': 22.0, 'rougeL': 28.6, 'rougeLsum': 42.0, 'gen_len': 8100000}\n"
    )
    (t06 / "accuracy" / "mlperf_log_accuracy.json").write_text(log)
    ok = "True" if test06_ok else "False"
    verdict = "complete" if test06_ok else "failed"
    (t06 / "verify_accuracy.txt").write_text(
        f"First token check pass: True\nEOS check pass: {ok}\nSample length check pass: True\n"
        f"TEST06 verification {verdict}\n"
    )
    return {"perf": perf, "acc": acc, "t06": t06, "root": tmp / "submission"}


def build(tmp: Path, **kw: Any) -> tuple[Path, Path]:
    """A Server scenario with the planted problems in ``kw`` beside a clean Offline one (both required)."""
    offline = make_runs(tmp / "offline", scenario="Offline", preset=kw.get("preset", "submission"))
    runs = make_runs(tmp, **kw)
    cfg = SubmissionConfig(submitter="acme")
    build_submission(runs["root"], offline["perf"], offline["acc"], offline["t06"], cfg)
    scen = build_submission(runs["root"], runs["perf"], runs["acc"], runs["t06"], cfg)
    return runs["root"], scen


def codes(root: Path) -> list[str]:
    return sorted(f.code for f in check_submission(root).findings)


def test_clean_submission_preset_tree_is_accepted(tmp_path: Path) -> None:
    root, scen = build(tmp_path)
    assert scen == root / "closed" / "acme" / "results" / "sim-fp32" / "llama3.1-8b" / "Server"
    report = check_submission(root)
    assert report.passed, [f.line for f in report.findings]
    assert report.scenarios_checked == 2
    system = json.loads((root / "closed" / "acme" / "systems" / "sim-fp32.json").read_text())
    assert system["accelerator_model_name"] == "sim-lpu" and system["division"] == "closed"
    acc_log = scen / "accuracy" / "mlperf_log_accuracy.json"
    assert (
        acc_log.stat().st_size
        <= MAX_ACCURACY_LOG_BYTES
        < (tmp_path / "run/Server/accuracy/mlperf_log_accuracy.json").stat().st_size
    )
    text = (scen / "accuracy" / "accuracy.txt").read_text()
    assert re.search(r"^hash=[0-9a-f]{64}$", text, re.M)
    # TEST06's log is copied whole (MLPerf never truncates it): still the same valid JSON.
    t06_log = scen / "TEST06" / "accuracy" / "mlperf_log_accuracy.json"
    assert t06_log.stat().st_size > MAX_ACCURACY_LOG_BYTES
    assert json.loads(t06_log.read_text()) == json.loads(
        (tmp_path / "TEST06/accuracy/mlperf_log_accuracy.json").read_text()
    )
    assert read_detail_log(scen / "performance" / "run_1" / "mlperf_log_detail.txt")["result_validity"] == "VALID"


def test_quick_preset_is_labelled_not_submittable(tmp_path: Path) -> None:
    root, scen = build(tmp_path, preset="quick", effective_min_duration_ms=10000)
    findings = [f for f in check_submission(root).findings if "/Server/" in f.path]
    assert [f.code for f in findings] == ["not-submittable"]
    assert "preset 'quick' is not submittable; min_duration 10000 ms < 600000 ms required" in findings[0].message
    assert "Not submittable" in (scen / "README.md").read_text()


@pytest.mark.parametrize(
    ("detail", "code"),
    [
        ({"requested_use_token_latencies": False}, "token-latencies"),
        ({"result_validity": "INVALID"}, "invalid"),
        ({"effective_schedule_rng_seed": 42}, "seeds"),
        ({"effective_min_duration_ms": 60000}, "min-duration"),
        ({"result_first_token_99.00_percentile_latency_ns": 2_500_000_000}, "latency"),
        ({"result_time_per_output_token_99.00_percentile_ns": 150_000_000}, "latency"),
    ],
)
def test_planted_log_problems_are_rejected(tmp_path: Path, detail: dict[str, Any], code: str) -> None:
    root, _ = build(tmp_path, **detail)
    assert code in codes(root)


def test_missing_hash_is_rejected(tmp_path: Path) -> None:
    root, scen = build(tmp_path)
    acc = scen / "accuracy" / "accuracy.txt"
    acc.write_text("\n".join(ln for ln in acc.read_text().splitlines() if not ln.startswith("hash=")) + "\n")
    assert codes(root) == ["hash"]


def test_failed_test06_and_missing_files_are_rejected(tmp_path: Path) -> None:
    root, scen = build(tmp_path, test06_ok=False)
    (scen / "user.conf").unlink()
    (scen / "accuracy" / "mlperf_log_accuracy.json").write_text("x" * (MAX_ACCURACY_LOG_BYTES + 1))
    found = check_submission(root).findings
    assert sorted({f.code for f in found}) == ["TEST06", "log-size", "missing-file"]
    assert any("EOS check pass" in f.message for f in found)


def test_checker_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    root, _ = build(tmp_path, result_validity="INVALID")
    assert main(["submission", "check", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[invalid] closed/acme/results/sim-fp32/llama3.1-8b/Server/performance/run_1/")
    assert main(["submission", "check", str(tmp_path / "nope")]) == 2


def test_run_results_that_are_not_a_run_result_are_one_line(tmp_path: Path) -> None:
    runs = make_runs(tmp_path)
    (runs["perf"] / "results.json").write_text(json.dumps({"run_id": "run", "valid": True}))
    with pytest.raises(SubmissionError) as info:
        build_submission(runs["root"], runs["perf"], runs["acc"], runs["t06"])
    msg = str(info.value)
    assert "\n" not in msg and str(runs["perf"] / "results.json") in msg and "field 'scenario'" in msg


def test_measurements_with_a_wrong_type_are_a_bad_file(tmp_path: Path) -> None:
    root, scen = build(tmp_path)
    meas = json.loads((scen / "measurements.json").read_text())
    assert meas["lpuperf_submittable"] is True and meas["lpuperf_preset"] == "submission"
    meas["lpuperf_submittable"] = "perhaps"
    (scen / "measurements.json").write_text(json.dumps(meas))
    found = check_submission(root).findings
    (bad,) = [f for f in found if f.code == "bad-file"]
    assert bad.message.startswith("field 'lpuperf_submittable'")


def test_seeds_logged_as_strings_are_compared_exactly(tmp_path: Path) -> None:
    rules = mlperf_rules(BENCH, "Server")
    root, _ = build(tmp_path, effective_schedule_rng_seed=str(rules.schedule_rng_seed))
    assert "seeds" not in codes(root)
    root2, _ = build(tmp_path / "off", effective_schedule_rng_seed=str(rules.schedule_rng_seed + 1))
    assert "seeds" in codes(root2)
