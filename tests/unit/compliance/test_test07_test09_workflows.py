"""Where TEST07 and TEST09 plug into validate, submission and the checker, and into the gate's outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compliance import ComplianceOutcome, verify_test07, verify_test09

# The outcome models are imported where used: pytest would take a module-level Test* class for a test class.


def _t07(passed: bool) -> Any:
    from compliance import Test07Outcome

    report = verify_test07(f"'exact_match': {90.0 if passed else 20.0}\n", 60.698, n_entries=40)
    return Test07Outcome(test07=report, test07_dir="/x/TEST07", passed=report.passed, message=report.message)


def _t09(passed: bool) -> Any:
    from compliance import Test09Outcome

    report = verify_test09([{"data": "00000000" * (1200 if passed else 10)}], 1150.38, 1406.02)
    return Test09Outcome(test09=report, test09_dir="/x/TEST09", passed=report.passed, message=report.message)


def test_outcomes_reduce_to_compliance_outcomes() -> None:
    ok, bad = ComplianceOutcome.from_report(_t07(True)), ComplianceOutcome.from_report(_t09(False))
    assert (ok.check, ok.passed, ok.report_path) == ("TEST07", True, "/x/TEST07/test07_report.json")
    assert ok.message.startswith("accuracy in performance mode 90.0 >= threshold 60.698")
    assert (bad.check, bad.passed) == ("TEST09", False)
    assert bad.message.startswith("mean output 10.00 tokens over 1 samples is below the minimum 1150.38")


def test_reports_load_back_by_check(tmp_path: Path) -> None:
    from compliance import load_compliance_outcome

    path = tmp_path / "test09_report.json"
    path.write_text(_t09(True).test09.model_dump_json())
    assert load_compliance_outcome("TEST09", path).passed
    from compliance import ComplianceInputError

    with pytest.raises(ComplianceInputError):
        load_compliance_outcome("TEST07", path)  # a TEST09 report is not read as a TEST07 pass


@pytest.mark.parametrize(("benchmark", "tests"), [("gpt-oss-120b", ("TEST07", "TEST09")), ("embedded", ())])
def test_validate_runs_the_benchmarks_tests(benchmark: str, tests: tuple[str, ...]) -> None:
    from workflows._validate import ArtifactRunner, ValidateConfig

    cfg = ValidateConfig(baseline="sim-reasoning", candidate="sim-reasoning-int8", benchmark=benchmark)
    session = ArtifactRunner(cfg, "candidate", "127.0.0.1:1", print).session_config()
    got = tuple(name for name, step in (("TEST07", session.test07), ("TEST09", session.test09)) if step is not None)
    assert got == tests
    assert session.test06 is not None  # validate's own gate keeps TEST06 for every LLM
    if tests:
        assert session.test07 is not None and session.test07.scenario == "Offline"


def test_a_failing_test07_is_a_no_deploy_reason_even_when_the_slo_does_not_list_it() -> None:
    from gate import SloSpec
    from workflows._validate import ArtifactEvidence, benchmark_compliance_rows

    slo = SloSpec(name="x", compliance_must_pass=["TEST06"])
    base = ArtifactEvidence(name="base", test07=_t07(True), test09=_t09(True))
    cand = ArtifactEvidence(name="cand", test07=_t07(False), test09=_t09(True))
    rows = benchmark_compliance_rows(slo, base, cand)
    assert [(r.objective, r.baseline, r.candidate, r.passed) for r in rows] == [
        ("compliance_TEST07", "PASS", "FAIL", False),
        ("compliance_TEST09", "PASS", "PASS", True),
    ]
    assert rows[0].line.startswith("compliance_TEST07: FAIL accuracy in performance mode 20.0 < threshold 60.698")
    # Listed in the SLO: the gate's own objective covers it, no second row.
    listed = SloSpec(name="y", compliance_must_pass=["TEST07"])
    assert [r.objective for r in benchmark_compliance_rows(listed, base, cand)] == ["compliance_TEST09"]


def test_required_checks_follow_the_round() -> None:
    from workflows._compliance_runs import required_checks

    assert required_checks("gpt-oss-120b") == ("TEST07", "TEST09")
    assert required_checks("deepseek-r1-interactive") == ("TEST06",)
    assert required_checks("llama3_1-8b-edge") == ()
    assert required_checks("embedded") == ("TEST06",)


def test_scorer_script_refuses_an_unknown_scorer_before_any_pass() -> None:
    from workflows._compliance_runs import ScorerScript

    with pytest.raises(ValueError, match="scorer: unknown kind 'nope'"):
        ScorerScript("gpt-oss-120b", kind="nope")
