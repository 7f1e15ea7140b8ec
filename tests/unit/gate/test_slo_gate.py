"""SLO spec loading and the gate: each objective fails on a planted violation and passes clean."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from cli import main
from gate import SLO_DIR, GateInputs, SloError, SloSpec, evaluate_slo, load_slo


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
    "fidelity": [{"category": "arithmetic", "min_exact_match": 0.9}, {"category": "*", "min_rouge_l": 95}],
    "compliance_must_pass": ["TEST06", "context"],
}


def clean_inputs(**results_over: Any) -> GateInputs:
    return GateInputs(
        results=clean_results(**results_over),
        accuracy={"rouge1": 44.0, "rougeL": 28.5},
        baseline_accuracy={"rougeL": 28.6},
        fidelity={
            "overall": {"exact_match_rate": 0.95, "rouge_l": 98.0},
            "by_category": {"arithmetic": {"exact_match_rate": 0.97}},
        },
        compliance={"TEST06": {"passed": True}, "context": {"passed": True, "message": "all lengths ok"}},
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


def test_overloaded_but_valid_run_fails_completed_ratio() -> None:
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), clean_inputs(scheduled_qps=50.0, completed_qps=41.0))
    assert {o.name for o in report.violations} == {"completed_over_scheduled"}


def test_accuracy_below_fraction_of_baseline_fails() -> None:
    inputs = clean_inputs()
    inputs.accuracy = {"rougeL": 28.0}  # 28.6 * 0.99 = 28.314
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    (v,) = report.violations
    assert v.name == "accuracy_rougeL"
    assert v.line.startswith("accuracy_rougeL 28.0 < 28.3 minimum (99.0% of baseline 28.6): under by 0.314")


def test_fidelity_per_category_and_compliance_fail() -> None:
    inputs = clean_inputs()
    inputs.fidelity = {
        "overall": {"exact_match_rate": 0.95, "rouge_l": 98.0},
        "by_category": {"arithmetic": {"exact_match_rate": 0.6}},
    }
    inputs.compliance["context"] = {"passed": False, "message": "advertised 131072, failed at 65536"}
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    lines = {o.name: o.line for o in report.violations}
    assert set(lines) == {"fidelity_exact_match[arithmetic]", "compliance_context"}
    assert "0.6 < 0.9" in lines["fidelity_exact_match[arithmetic]"]
    assert "failed at 65536" in lines["compliance_context"]


def test_missing_evidence_fails_rather_than_passing() -> None:
    inputs = GateInputs(results=clean_results())
    report = evaluate_slo(SloSpec.model_validate(FULL_SLO), inputs)
    bad = {o.name for o in report.violations}
    assert {"accuracy_rougeL", "fidelity_exact_match[arithmetic]", "compliance_TEST06", "compliance_context"} <= bad


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


def test_gate_cli_passes_clean_run_in_a_subprocess(tmp_path: Path) -> None:
    run = _write_run(tmp_path)
    (run.parent / "TEST06").mkdir()
    (run.parent / "TEST06" / "test06_report.json").write_text(json.dumps({"passed": True}))
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
