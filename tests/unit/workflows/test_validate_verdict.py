"""validate's verdict on hand-assembled evidence: DEPLOY when clean, NO DEPLOY naming what failed.

The end-to-end runs on the sim artifacts are in tests/integration/test_workflows_validate.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate import SloSpec
from workflows._validate import ArtifactEvidence, ValidateConfig, decide, serve_args_for

SLO = SloSpec.model_validate(
    {
        "name": "t",
        "ttft_ms": {"p99": 2000},
        "accuracy": [{"metric": "rougeL", "min_fraction_of_baseline": 0.99}],
        "fidelity": [{"category": "*", "min_exact_match": 0.9}, {"category": "arithmetic", "min_exact_match": 0.95}],
        "compliance_must_pass": ["TEST06", "context"],
    }
)


def evidence(name: str, **over: Any) -> ArtifactEvidence:
    fid = {
        "overall": {"exact_match_rate": 1.0},
        "by_category": {c: {"exact_match_rate": 1.0} for c in ("qa", "summarization", "arithmetic")},
    }
    base: dict[str, Any] = {
        "name": name,
        "server": {"valid": True, "ttft_ms": {"p50": 50.0, "p90": 80.0, "p99": 120.0}, "tokens_per_second": 900.0},
        "accuracy": {"rougeL": 40.0},
        "fidelity": fid,
        "test06": {"passed": True},
        "context": {"passed": True, "message": "all lengths within 131072 served"},
    }
    base.update(over)
    return ArtifactEvidence.model_validate(base)


def test_clean_candidate_deploys() -> None:
    report = decide(ValidateConfig(baseline="sim-fp32", candidate="sim-bf16"), SLO, evidence("a"), evidence("b"))
    assert report.verdict == "DEPLOY" and not report.reasons
    assert [r.objective for r in report.rows][:2] == ["result_valid", "ttft_p99"]
    assert "ttft_p99" in report.table() and "FAIL" not in report.table()


def test_context_cap_is_no_deploy_naming_the_length() -> None:
    cand = evidence(
        "sim-ctx16k", context={"passed": False, "message": "advertised 131072, failed at 65536: status UNAVAILABLE"}
    )
    report = decide(ValidateConfig(baseline="sim-fp32", candidate="sim-ctx16k"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert report.reasons == ["compliance_context FAIL: advertised 131072, failed at 65536: status UNAVAILABLE"]


def test_category_slippage_is_named() -> None:
    fid = {
        "overall": {"exact_match_rate": 0.91},
        "by_category": {
            "qa": {"exact_match_rate": 0.97},
            "summarization": {"exact_match_rate": 0.93},
            "arithmetic": {"exact_match_rate": 0.62},
        },
    }
    cand = evidence("sim-int8", fidelity=fid, accuracy={"rougeL": 39.0})
    report = decide(ValidateConfig(baseline="sim-fp32", candidate="sim-int8"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert any(r.startswith("fidelity_exact_match[arithmetic] 0.62 < 0.95 minimum") for r in report.reasons)
    assert any(r.startswith("accuracy_rougeL 39.0 < 39.6 minimum (99.0% of baseline 40.0)") for r in report.reasons)
    assert report.slippage[0] == "arithmetic: exact match vs FP32 100.0% -> 62.0% (-38.0 points)"


def test_a_stage_that_could_not_run_blocks_deploy() -> None:
    cand = evidence("b", test06=None, errors=["TEST06: SUT unreachable"])
    report = decide(ValidateConfig(baseline="a", candidate="b"), SLO, evidence("a"), cand)
    assert report.verdict == "NO DEPLOY"
    assert "b: TEST06: SUT unreachable" in report.reasons
    assert any(r.startswith("compliance_TEST06: no evidence") for r in report.reasons)


def test_artifact_specs_map_to_serve_args() -> None:
    assert serve_args_for("sim-int8") == ["--artifact", "sim-int8"]
    assert serve_args_for("transformers:bf16") == ["--backend", "transformers", "--precision", "bf16"]
    assert serve_args_for("127.0.0.1:50051") is None


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
