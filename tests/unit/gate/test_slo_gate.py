"""SLO spec loading and the gate: each objective fails on a planted violation and passes clean."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from cli import main
from compliance import ComplianceOutcome
from gate import SLO_DIR, GateInputs, SloError, SloSpec, evaluate_slo, load_slo
from loadgen_harness import RunResult


def clean_results(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "run_id": "r1",
        "scenario": "Server",
        "mode": "performance",
        "benchmark": "embedded",
        "preset": "quick",
        "submittable": False,
        "valid": True,
        "validity_reasons": [],
        "scheduled_qps": 50.0,
        "completed_qps": 49.6,
        "tokens_per_second": 2400.0,
        "ttft_ms": {"p50": 300.0, "p90": 700.0, "p99": 1100.0},
        "tpot_ms": {"p50": 20.0, "p90": 30.0, "p99": 40.0},
        "latency_ms": {"p50": 2000.0, "p90": 4000.0, "p99": 6000.0},
        "n_queries": 1000,
        "n_errors": 0,
        "errors_by_status": {},
    }
    base.update(over)
    return base


FULL_SLO = {
    "name": "t",
    "ttft_ms": {"p50": 500, "p99": 1200},
    "tpot_ms": {"p99": 50},
    "latency_ms": {"p99": 8000},
    "max_error_rate": 0.01,
    "min_tokens_per_second": 2000,
    "min_qps": 40,
    "min_completed_ratio": 0.95,
    "accuracy": [{"metric": "rougeL", "min_fraction_of_baseline": 0.99}],
    "fidelity": [
        {"category": "arithmetic", "min_exact_match_fraction": 0.9},
        {"category": "*", "min_rouge_l_percent": 95},
    ],
    "compliance_must_pass": ["TEST06", "context"],
}


def category(exact_match_fraction: float, rouge_l_percent: float = 99.0, n: int = 100) -> CategoryFidelity:
    return CategoryFidelity(
        n=n,
        exact_match_fraction=exact_match_fraction,
        rouge_l_percent=rouge_l_percent,
        mean_first_divergence=None,
    )


def fidelity(overall: CategoryFidelity, **by_category: CategoryFidelity) -> FidelityReport:
    return FidelityReport(
        candidate="cand",
        reference="fp32",
        dataset="embedded",
        n_samples=overall.n,
        overall=overall,
        by_category=by_category,
        worst=[],
    )


def clean_inputs(**results_over: Any) -> GateInputs:
    return GateInputs(
        results=RunResult.model_validate(clean_results(**results_over)),
        accuracy=AccuracyReport(scores_percent={"rouge1": 44.0, "rougeL": 28.5}),
        baseline_accuracy=AccuracyReport(scores_percent={"rougeL": 28.6}),
        fidelity=fidelity(category(0.95, 98.0), arithmetic=category(0.97)),
        compliance={
            "TEST06": ComplianceOutcome(check="TEST06", passed=True, message="100 sampled outputs pass"),
            "context": ComplianceOutcome(check="context", passed=True, message="all lengths ok"),
        },
    )


def test_clean_run_passes_every_objective() -> None:
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), clean_inputs())
    assert report.passed, [o.line for o in report.violations]
    assert len(report.objectives) == SloSpec.model_validate(FULL_SLO).count() == 14


def test_ttft_violation_line_gives_value_limit_and_margin() -> None:
    report = evaluate_slo(
        SloSpec.model_validate(FULL_SLO), clean_inputs(ttft_ms={"p50": 300.0, "p90": 700.0, "p99": 1480.0})
    )
    assert not report.passed
    assert [o.line for o in report.violations] == ["ttft_p99 1480.0 ms > 1200.0 ms limit: over by 280.0 ms (23.3%)"]


@pytest.mark.parametrize(
    ("planted", "name"),
    [
        ({"valid": False, "validity_reasons": ["TTFT p99 over limit"]}, "result_valid"),
        ({"tpot_ms": {"p50": 20.0, "p90": 30.0, "p99": 61.0}}, "tpot_p99"),
        ({"latency_ms": {"p50": 1.0, "p90": 1.0, "p99": 9000.0}}, "latency_p99"),
        ({"n_errors": 20}, "error_rate"),
        ({"tokens_per_second": 1500.0}, "tokens_per_second"),
        ({"completed_qps": 30.0}, "completed_qps"),
    ],
)
def test_each_results_objective_fails_on_planted_violation(planted: dict[str, Any], name: str) -> None:
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), clean_inputs(**planted))
    bad = {o.name for o in report.violations}
    assert name in bad
    assert not report.passed


REASONING = {
    "n_queries": 1000,
    "n_with_reasoning": 1000,
    "reasoning_tokens": {"mean": 3900.0, "p50": 3800.0, "p90": 4500.0, "p99": 6000.0, "max": 9000},
    "answer_tokens": {"mean": 60.0, "p50": 55.0, "p90": 90.0, "p99": 120.0, "max": 300},
    "ttfa_ms": {"p50": 20000.0, "p90": 30000.0, "p99": 40000.0},
}
REASONING_SLO = {"name": "r", "require_valid": False, "ttfa_ms": {"p99": 45000}, "max_reasoning_tokens_mean": 4300}


def test_reasoning_objectives_pass_clean_and_fail_on_planted_violations() -> None:
    spec = SloSpec.model_validate({**REASONING_SLO, "min_reasoning_tokens_mean": 3500})
    assert spec.count() == 3
    assert evaluate_slo(spec, clean_inputs(reasoning=REASONING)).passed
    slow = {**REASONING, "ttfa_ms": {"p50": 20000.0, "p90": 30000.0, "p99": 50000.0}}
    assert [o.line for o in evaluate_slo(spec, clean_inputs(reasoning=slow)).violations] == [
        "ttfa_p99 50000.0 ms > 45000.0 ms limit: over by 5000.0 ms (11.1%)"
    ]
    long = {**REASONING, "reasoning_tokens": {**REASONING["reasoning_tokens"], "mean": 4500.0}}
    assert {o.name for o in evaluate_slo(spec, clean_inputs(reasoning=long)).violations} == {"reasoning_tokens_mean"}
    short = {**REASONING, "reasoning_tokens": {**REASONING["reasoning_tokens"], "mean": 3000.0}}
    assert {o.name for o in evaluate_slo(spec, clean_inputs(reasoning=short)).violations} == {"reasoning_tokens_mean"}


def test_reasoning_objectives_fail_by_name_on_a_run_without_reasoning() -> None:
    report = evaluate_slo(SloSpec.model_validate(REASONING_SLO), clean_inputs())
    assert not report.passed and len(report.violations) == 2
    assert all("no reasoning figures in the results" in o.line for o in report.violations)


def test_overloaded_but_valid_run_fails_completed_ratio() -> None:
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), clean_inputs(scheduled_qps=50.0, completed_qps=41.0))
    assert {o.name for o in report.violations} == {"completed_over_scheduled"}


def test_accuracy_below_fraction_of_baseline_fails() -> None:
    inputs = clean_inputs()
    inputs.accuracy = AccuracyReport(scores_percent={"rougeL": 28.0})  # 28.6 * 0.99 = 28.314
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    (v,) = report.violations
    assert v.name == "accuracy_rougeL"
    assert v.line.startswith("accuracy_rougeL 28.0 < 28.3 minimum (99.0% of baseline 28.6): under by 0.314")


def test_fidelity_per_category_and_compliance_fail() -> None:
    inputs = clean_inputs()
    inputs.fidelity = fidelity(category(0.95, 98.0), arithmetic=category(0.6))
    inputs.compliance["context"] = ComplianceOutcome(
        check="context", passed=False, message="advertised 131072, failed at 65536"
    )
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    lines = {o.name: o.line for o in report.violations}
    assert set(lines) == {"fidelity_exact_match[arithmetic]", "compliance_context"}
    assert "0.6 < 0.9" in lines["fidelity_exact_match[arithmetic]"]
    assert "failed at 65536" in lines["compliance_context"]


def test_missing_evidence_fails_rather_than_passing() -> None:
    inputs = GateInputs(results=RunResult.model_validate(clean_results()))
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    bad = {o.name for o in report.violations}
    assert {"accuracy_rougeL", "fidelity_exact_match[arithmetic]", "compliance_TEST06", "compliance_context"} <= bad


def test_collapsed_rouge_l_in_percent_is_not_rescaled_into_a_pass() -> None:
    # ROUGE-L 0.7 out of 100: a collapsed artifact. Reading it as a 0..1 fraction (70%) would pass min 50.
    inputs = clean_inputs()
    inputs.fidelity = fidelity(category(0.95, rouge_l_percent=0.7), arithmetic=category(0.97))
    slo = SloSpec.model_validate({"name": "t", "fidelity": [{"category": "*", "min_rouge_l_percent": 50}]})
    report = evaluate_slo(slo, inputs)
    assert not report.passed
    (v,) = report.violations
    assert v.name == "fidelity_rouge_l[all]" and v.value == 0.7
    assert v.line.startswith("fidelity_rouge_l[all] 0.7 < 50.0 minimum: under by 49.3")


def test_each_missing_report_is_named() -> None:
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), GateInputs())
    lines = {o.name: o.line for o in report.violations}
    assert len(lines) == len(report.objectives)  # nothing passes without evidence
    assert lines["result_valid"].startswith("result_valid: no evidence (no run results (results.json")
    assert lines["ttft_p99"].startswith("ttft_p99: no run results (results.json")
    assert lines["accuracy_rougeL"] == (
        "accuracy_rougeL: no evidence (no baseline rougeL; set 'baseline' or give a baseline report; "
        "no accuracy report next to the run (accuracy.json): run `lpuperf accuracy --results OUT --run-id RUN_ID "
        "--scenario SCENARIO` (with the run's --sut or --artifact) first, or give --accuracy PATH)"
    )
    with_baseline = GateInputs(baseline_accuracy=AccuracyReport(scores_percent={"rougeL": 28.6}))
    (acc,) = [o for o in evaluate_slo(SloSpec.model_validate(FULL_SLO), with_baseline).objectives if "rougeL" in o.name]
    assert acc.line.startswith("accuracy_rougeL: no accuracy report next to the run (accuracy.json): run `lpuperf")
    assert lines["fidelity_rouge_l[all]"].startswith("fidelity_rouge_l[all]: no fidelity report next to the run")
    assert lines["compliance_TEST06"] == (
        "compliance_TEST06: no evidence (no TEST06 report next to the run: run `lpuperf compliance test06 --out OUT "
        "--run-id RUN_ID --scenario SCENARIO` (with the run's --sut or --artifact) first, "
        "or give --compliance TEST06=PATH)"
    )


def test_a_missing_report_names_the_command_that_writes_it_next_to_the_run() -> None:
    """A plain performance run gated on an SLO that needs more: each missing report says how to make it."""
    results = RunResult.model_validate(clean_results(log_dir="results/nightly/Server/performance", run_id="nightly"))
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), GateInputs(results=results))
    lines = {o.name: o.line for o in report.violations}
    acc_cmd = "`lpuperf accuracy --results results --run-id nightly --scenario Server`"
    assert lines["accuracy_rougeL"].startswith("accuracy_rougeL: no evidence (no baseline rougeL")
    assert acc_cmd in lines["accuracy_rougeL"] and "no accuracy report next to the run" in lines["accuracy_rougeL"]
    assert acc_cmd in lines["fidelity_rouge_l[all]"]
    assert "`lpuperf compliance test06 --out results --run-id nightly --scenario Server`" in lines["compliance_TEST06"]
    assert "`lpuperf compliance context --out results --run-id nightly`" in lines["compliance_context"]
    # A directory lpuperf did not lay out (a published MLPerf result): no command to run there, only the flag.
    published = RunResult.model_validate(clean_results(log_dir="sub/closed/acme/results/s/llama2-70b-99/Server"))
    other = evaluate_slo(SloSpec.model_validate(FULL_SLO), GateInputs(results=published))
    line = next(o.line for o in other.violations if o.name == "fidelity_rouge_l[all]")
    assert line.endswith("no fidelity report next to the run (fidelity*.json); give --fidelity PATH (minimum 95.0)")


def test_a_report_without_the_metric_or_category_is_named() -> None:
    inputs = clean_inputs()
    inputs.accuracy = AccuracyReport(scores_percent={"rouge1": 44.0})
    inputs.fidelity = fidelity(category(0.95, 98.0), qa=category(1.0))
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    lines = {o.name: o.line for o in report.violations}
    assert set(lines) == {"accuracy_rougeL", "fidelity_exact_match[arithmetic]"}
    assert "no 'rougeL' in the accuracy report's scores_percent (has: rouge1)" in lines["accuracy_rougeL"]
    assert "no category 'arithmetic' in the fidelity report (has: qa)" in lines["fidelity_exact_match[arithmetic]"]


def test_packaged_slos_load() -> None:
    names = sorted(p.stem for p in SLO_DIR.glob("*.yaml"))
    assert "embedded" in names
    for name in names:
        assert load_slo(name).count() > 0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("ttft_ms: {p99: -5}\n", "field 'ttft_ms.p99'"),
        ("ttft_ms: {p95: 10}\n", "field 'ttft_ms.p95'"),
        ("compliance_must_pass: [TEST01]\n", "unknown compliance check 'TEST01'"),
        ("fidelity: [{min_exact_match: 0.9}]\n", "field 'fidelity.0.min_exact_match'"),
        ("fidelity: [{min_exact_match_fraction: 90}]\n", "field 'fidelity.0.min_exact_match_fraction'"),
        ("accuracy: [{metric: rougeL}]\n", "expected min_fraction_of_baseline or min_value"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("ttft_ms: {p99: [\n", "not valid YAML"),
        ("require_valid: false\n", "no objectives set"),
    ],
)
def test_bad_slo_file_gives_one_clear_line(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(SloError) as info:
        load_slo(f)
    msg = str(info.value)
    assert "\n" not in msg and str(f) in msg and needle in msg


def _write_run(tmp_path: Path, **over: Any) -> Path:
    run = tmp_path / "run1" / "Server" / "performance"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(clean_results(**over)))
    return run


def test_gate_cli_fails_with_one_line_per_violation_and_writes_junit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _write_run(tmp_path, ttft_ms={"p50": 900.0, "p90": 1000.0, "p99": 1480.0}, n_errors=5)
    slo = tmp_path / "slo.json"
    slo.write_text(json.dumps({"ttft_ms": {"p50": 500, "p99": 1200}, "max_error_rate": 0.001, "tpot_ms": {"p99": 50}}))
    rc = main(["gate", str(run), "--slo", str(slo)])
    out = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert out[:3] == [
        "ttft_p50 900.0 ms > 500.0 ms limit: over by 400.0 ms (80.0%)",
        "ttft_p99 1480.0 ms > 1200.0 ms limit: over by 280.0 ms (23.3%)",
        "error_rate 0.005 > 0.001 limit: over by 0.004 (400.0%)",
    ]
    assert out[3].startswith("gate slo: FAIL (2/5 objectives met)")
    suite = ET.parse(run / "gate.junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "5" and suite.get("failures") == "3"
    assert json.loads((run / "gate.json").read_text())["passed"] is False


def t06_report_json(passed: bool = True) -> str:
    from compliance import Test06Report

    verdict = "PASS: 100 sampled outputs pass" if passed else "FAIL: eos: 3 of 100 samples fail"
    return Test06Report(
        scenario="Server",
        accuracy_log="mlperf_log_accuracy.json",
        eos_token_id=2,
        n_samples=100,
        checks=[],
        verify_lines=[],
        mlperf_passed=passed,
        passed=passed,
        message=f"TEST06 {verdict}",
    ).model_dump_json()


def test_gate_cli_passes_clean_run_in_a_subprocess(tmp_path: Path) -> None:
    run = _write_run(tmp_path)
    (run.parent / "TEST06").mkdir()
    (run.parent / "TEST06" / "test06_report.json").write_text(t06_report_json())
    slo = tmp_path / "slo.yaml"
    slo.write_text("ttft_ms: {p99: 1200}\ncompliance_must_pass: [TEST06]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "gate", str(run / "results.json"), "--slo", str(slo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("gate slo: PASS (3/3 objectives met)")


def test_gate_cli_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", str(tmp_path), "--slo", "latency-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no results.json" in err[0]


def test_gate_cli_reads_reports_next_to_the_run_with_their_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _write_run(tmp_path)
    (run.parent / "TEST06").mkdir()
    (run.parent / "TEST06" / "test06_report.json").write_text(t06_report_json(passed=False))
    (run / "fidelity.json").write_text(fidelity(category(0.95, rouge_l_percent=0.7)).model_dump_json())
    slo = tmp_path / "slo.yaml"
    slo.write_text("fidelity: [{category: '*', min_rouge_l_percent: 50}]\ncompliance_must_pass: [TEST06]\n")
    assert main(["gate", str(run), "--slo", str(slo)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "fidelity_rouge_l[all] 0.7 < 50.0 minimum: under by 49.3 (98.6%)",
        "compliance_TEST06 FAIL: eos: 3 of 100 samples fail",
    ]


@pytest.mark.parametrize(
    ("where", "text", "needle"),
    [
        # An old-style fidelity report (rates under other names) is refused, not guessed at.
        ("fidelity.json", json.dumps({"overall": {"exact_match_rate": 0.9, "rouge_l": 0.7}}), "field 'candidate'"),
        ("accuracy.json", json.dumps({"scores": {"rougeL": 28.0}}), "field 'scores'"),
        ("../TEST06/test06_report.json", json.dumps({"passed": True}), "field 'scenario'"),
        ("../TEST06/test06_report.json", "{not json", "field '<root>'"),
        ("results.json", json.dumps({"run_id": "r"}), "field 'scenario'"),
    ],
)
def test_gate_cli_malformed_report_is_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, text: str, needle: str
) -> None:
    run = _write_run(tmp_path)
    target = (run / where).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    assert main(["gate", str(run), "--slo", "latency-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and needle in err[0], err


def test_gate_cli_compliance_flag_names_unknown_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write_run(tmp_path)
    report = tmp_path / "r.json"
    report.write_text(t06_report_json())
    assert main(["gate", str(run), "--slo", "latency-only", "--compliance", f"TEST01={report}"]) == 2
    assert "unknown check 'TEST01'" in capsys.readouterr().err
    assert main(["gate", str(run), "--slo", "latency-only", "--compliance", f"TEST06={report}"]) == 0
