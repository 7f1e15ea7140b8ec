"""ComplianceOutcome: each report file is read with the model that wrote it; the wrong kind fails by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compliance import (
    REPORT_FILES,
    ComplianceInputError,
    ComplianceOutcome,
    ContextVerdict,
    encode_tokens,
    load_compliance_outcome,
    verify_log,
)

EOS = 7


def _log(n: int = 4, duplicate_eos_at: int | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(n):
        data = [11 + i, 12, 13, EOS] + ([EOS] if i == duplicate_eos_at else [])
        out.append(
            {
                "seq_id": i,
                "qsl_idx": i,
                "data": encode_tokens(data),
                "token_data": encode_tokens(data[:1]),
                "token_count": len(data),
            }
        )
    return out


def _verified(tmp_path: Path, duplicate_eos_at: int | None = None) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "mlperf_log_accuracy.json").write_text(json.dumps(_log(duplicate_eos_at=duplicate_eos_at)))
    out = tmp_path / "Server" / "TEST06"
    verify_log(run / "mlperf_log_accuracy.json", "Server", out, eos_token_id=EOS)
    return out


def test_test06_and_strict_reports_load_as_outcomes(tmp_path: Path) -> None:
    out = _verified(tmp_path)
    t06 = load_compliance_outcome("TEST06", out / REPORT_FILES["TEST06"])
    strict = load_compliance_outcome("strict", out / REPORT_FILES["strict"])
    assert t06.check == "TEST06" and t06.passed and t06.report_path == str(out / "test06_report.json")
    assert t06.message == "4 sampled outputs pass the first-token, EOS and length checks"  # verdict prefix dropped
    assert strict.check == "strict" and strict.passed and not strict.message.startswith("strict PASS")


def test_a_failing_report_loads_as_a_failed_outcome(tmp_path: Path) -> None:
    out = _verified(tmp_path, duplicate_eos_at=2)
    t06 = load_compliance_outcome("TEST06", out / REPORT_FILES["TEST06"])
    assert not t06.passed and t06.message.startswith("eos: FAIL (1 of 4; first: sample 2")


def test_a_report_of_another_check_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    out = _verified(tmp_path)
    strict_file = out / REPORT_FILES["strict"]
    with pytest.raises(ComplianceInputError) as info:
        load_compliance_outcome("TEST06", strict_file)
    msg = str(info.value)
    assert "\n" not in msg and str(strict_file) in msg and "Test06Report" in msg and "field '" in msg


@pytest.mark.parametrize("text", [json.dumps({"passed": True}), json.dumps({"ok": True, "verdict": "PASS"}), "[]"])
def test_a_bare_verdict_is_not_a_pass(tmp_path: Path, text: str) -> None:
    # A file that only says "passed" (or spells it differently) is not a context report.
    f = tmp_path / "context_report.json"
    f.write_text(text)
    with pytest.raises(ComplianceInputError, match="context report, ContextVerdict"):
        load_compliance_outcome("context", f)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ComplianceInputError, match="cannot read TEST06 report"):
        load_compliance_outcome("TEST06", tmp_path / "nope.json")


def test_context_verdict_round_trips(tmp_path: Path) -> None:
    verdict = ContextVerdict(
        address="127.0.0.1:1",
        artifact_id="sim-ctx16k",
        advertised_context_tokens=131072,
        eos_token_id=2,
        attempts=[],
        passed=False,
        first_failure_tokens=65536,
        message="advertised 131072, failed at 65536: status RESOURCE_EXHAUSTED 'too long'",
    )
    f = tmp_path / REPORT_FILES["context"]
    f.write_text(verdict.model_dump_json())
    outcome = load_compliance_outcome("context", f)
    assert outcome == ComplianceOutcome.from_report(verdict, f)
    assert outcome.check == "context" and not outcome.passed and outcome.message == verdict.message
