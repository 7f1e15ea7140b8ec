"""validate's verdict on hand-assembled evidence: DEPLOY when clean, NO DEPLOY naming what failed.

The end-to-end runs on the sim artifacts are in tests/integration/test_workflows_validate.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import compliance
from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from compliance import ContextVerdict, StrictReport
from gate import SloSpec
from loadgen_harness import RunResult
from workflows._validate import ArtifactEvidence, ValidateConfig, decide, target_for

SLO = SloSpec.model_validate(
    {
        "name": "t",
        "ttft_ms": {"p99": 2000},
        "accuracy": [{"metric": "rougeL", "min_fraction_of_baseline": 0.99}],
        "fidelity": [
            {"category": "*", "min_exact_match_fraction": 0.9},
            {"category": "arithmetic", "min_exact_match_fraction": 0.95},
        ],
        "compliance_must_pass": ["TEST06", "context"],
    }
)


def fidelity(overall: float, **by_category: float) -> FidelityReport:
    def cat(exact: float) -> CategoryFidelity:
        rouge = 100.0 if exact == 1.0 else 90.0
        return CategoryFidelity(n=30, exact_match_fraction=exact, rouge_l_percent=rouge, mean_first_divergence=None)

    return FidelityReport(
        candidate="c",
        reference="fp32",
        dataset="embedded",
        n_samples=90,
        overall=cat(overall),
        by_category={k: cat(v) for k, v in by_category.items()},
        worst=[],
    )


def t06_outcome(passed: bool = True) -> compliance.Test06Outcome:
    msg = "TEST06 PASS: 100 sampled outputs pass" if passed else "TEST06 FAIL: eos: FAIL (3 of 100)"
    report = compliance.Test06Report(
        scenario="Server",
        accuracy_log="",
        eos_token_id=2,
        n_samples=100,
        checks=[],
        verify_lines=[],
        mlperf_passed=passed,
        passed=passed,
        message=msg,
    )
    strict = StrictReport(eos_token_id=2, n_samples=100, n_queries=100, checks=[], passed=True, message="strict PASS")
    return compliance.Test06Outcome(test06=report, strict=strict, test06_dir="", passed=passed, message=msg)


def context(passed: bool = True, message: str = "advertised 131072, served 65536, 131072 tokens") -> ContextVerdict:
    return ContextVerdict(
        address="127.0.0.1:1",
        artifact_id="a",
        advertised_context_tokens=131072,
        eos_token_id=2,
        attempts=[],
        passed=passed,
        message=message,
    )


def evidence(name: str, **over: Any) -> ArtifactEvidence:
    server = RunResult(
        run_id=name,
        scenario="Server",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=True,
        ttft_ms={"p50": 50.0, "p90": 80.0, "p99": 120.0},  # type: ignore[arg-type]
        tokens_per_second=900.0,
    )
    base: dict[str, Any] = {
        "name": name,
        "server": server,
        "accuracy": AccuracyReport(scores_percent={"rougeL": 40.0}),
        "fidelity": fidelity(1.0, qa=1.0, summarization=1.0, arithmetic=1.0),
        "test06": t06_outcome(),
        "context": context(),
    }
    base.update(over)
    return ArtifactEvidence(**base)


def test_clean_candidate_deploys() -> None:
    report = decide(ValidateConfig(baseline="sim-fp32", candidate="sim-bf16"), SLO, evidence("a"), evidence("b"))
    assert report.verdict == "DEPLOY" and not report.reasons
    assert [r.objective for r in report.rows][:2] == ["result_valid", "ttft_p99"]
    assert "ttft_p99" in report.table() and "FAIL" not in report.table()


def test_context_cap_is_no_deploy_naming_the_length() -> None:
    cand = evidence("sim-ctx16k", context=context(False, "advertised 131072, failed at 65536: status UNAVAILABLE"))
    report = decide(ValidateConfig(baseline="sim-fp32", candidate="sim-ctx16k"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert report.reasons == ["compliance_context FAIL: advertised 131072, failed at 65536: status UNAVAILABLE"]


def test_category_slippage_is_named() -> None:
    fid = fidelity(0.91, qa=0.97, summarization=0.93, arithmetic=0.62)
    cand = evidence("sim-int8", fidelity=fid, accuracy=AccuracyReport(scores_percent={"rougeL": 39.0}))
    report = decide(ValidateConfig(baseline="sim-fp32", candidate="sim-int8"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert any(r.startswith("fidelity_exact_match[arithmetic] 0.62 < 0.95 minimum") for r in report.reasons)
    assert any(r.startswith("accuracy_rougeL 39.0 < 39.6 minimum (99.0% of baseline 40.0)") for r in report.reasons)
    assert report.slippage[0] == "arithmetic: exact match vs FP32 100.0% -> 62.0% (-38.0 points), ROUGE-L vs FP32 90.0"


def test_a_stage_that_could_not_run_blocks_deploy() -> None:
    cand = evidence("b", test06=None, errors=["TEST06: SUT unreachable"])
    report = decide(ValidateConfig(baseline="a", candidate="b"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert "b: TEST06: SUT unreachable" in report.reasons
    assert any(r.startswith("compliance_TEST06: no evidence") for r in report.reasons)


def test_failed_test06_and_a_missing_server_run_are_named() -> None:
    cand = evidence("b", test06=t06_outcome(passed=False), server=None, errors=["Server performance: SUT unreachable"])
    report = decide(ValidateConfig(baseline="a", candidate="b"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert "compliance_TEST06 FAIL: eos: FAIL (3 of 100)" in report.reasons
    assert any(r.startswith("ttft_p99: no run results") for r in report.reasons)
    assert report.comparison.notes == ["no Server run for b: not compared"]
    assert ArtifactEvidence.model_validate_json(cand.model_dump_json()) == cand


def test_artifact_specs_map_to_sut_targets() -> None:
    assert target_for("sim-int8").backend == {"artifact": "sim-int8"}
    assert target_for("transformers:bf16").backend == {"kind": "transformers", "precision": "bf16"}
    assert target_for("sim:bf16").backend == {"kind": "sim", "precision": "bf16"}
    assert target_for("127.0.0.1:50051").address == "127.0.0.1:50051"
    # Shared options for the spawned SUT; the artifact spec wins over them.
    shared = target_for("sim-int8", {"dataset": "synthetic:8:1", "artifact": "sim-fp32"})
    assert shared.backend == {"dataset": "synthetic:8:1", "artifact": "sim-int8"}


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "--baseline", "sim-nope", "--candidate", "sim-bf16"],
        ["find-peak", "--artifact", "sim-nope"],
        ["validate", "--baseline", "sim-fp32", "--candidate", "sim-bf16", "--slo", "no-such-slo"],
    ],
)
def test_bad_artifact_or_slo_is_one_error_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lpuperf {argv[0]}: error: ")
    assert "sim-nope" in err[0] or "no-such-slo" in err[0]
