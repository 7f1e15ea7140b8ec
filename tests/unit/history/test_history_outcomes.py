"""What each command's typed outcome records: the run directories it made, and its own verdicts and figures."""

from __future__ import annotations

from pathlib import Path

import compliance
from accuracy import AccuracyOutcome, AccuracyReport, CategoryFidelity, FidelityReport, GateVerdict, ScoredSamples
from compliance import ContextVerdict, StrictReport
from gate import GateReport, ObjectiveOutcome
from history import output_root, records_for
from loadgen_harness import load_results
from tests.history_runs import manifest, write_run
from workflows import CheckReport, CompareConfig, Comparison, FindPeakResult
from workflows._find_peak import Probe
from workflows._submission_check import Finding
from workflows._validate import ArtifactEvidence, ValidateReport


def _fidelity() -> FidelityReport:
    section = CategoryFidelity(n=10, exact_match_fraction=0.9, rouge_l_percent=97.0, mean_first_divergence=12.0)
    math = CategoryFidelity(n=4, exact_match_fraction=0.75, rouge_l_percent=93.0, mean_first_divergence=5.0)
    return FidelityReport(
        candidate="bf16",
        reference="fp32",
        dataset="embedded",
        n_samples=10,
        overall=section,
        by_category={"math": math},
        worst=[],
    )


def test_run_and_gate_record_the_run_directory(tmp_path: Path) -> None:
    d = write_run(tmp_path / "out", "r1", manifest("b1"))
    (rec,) = records_for("run", load_results(d))
    assert (rec.command, rec.run_id, rec.artifact.build_id) == ("run", "r1", "b1")
    report = GateReport(
        slo="embedded",
        source=str(d / "results.json"),
        passed=False,
        objectives=[ObjectiveOutcome(name="ttft_p99", direction="max", passed=False, line="ttft_p99 over by 3 ms")],
    )
    (gated,) = records_for("gate", report)
    assert gated.results_sha256 == rec.results_sha256  # the same run: one record in the store
    (v,) = gated.verdicts
    assert (v.kind, v.name, v.passed, v.command) == ("gate", "embedded", False, "gate")
    assert v.message == "0/1 objectives met; ttft_p99 over by 3 ms"
    assert output_root(d) == (tmp_path / "out").resolve()


def test_accuracy_records_scores_fidelity_and_its_gates(tmp_path: Path) -> None:
    d = write_run(tmp_path / "out", "acc", manifest("b1"))
    report = AccuracyReport(
        benchmark="embedded",
        scores_percent={"rouge1": 45.0, "rougeL": 44.0},
        log_path=str(d / "mlperf_log_accuracy.json"),
    )
    gates = [
        GateVerdict(level="99", benchmark="embedded", passed=True, lines=[]),
        GateVerdict(level="99.9", benchmark="embedded", passed=False, lines=[]),
    ]
    samples = ScoredSamples(qsl_indices=[], predictions=[], outputs=[], rougeL=[])
    (rec,) = records_for(
        "accuracy", AccuracyOutcome(report=report, samples=samples, fidelity=_fidelity(), verdicts=gates)
    )
    assert rec.metric("accuracy.rougeL").value == 44.0  # type: ignore[union-attr]
    assert rec.metric("fidelity.exact_match[math]").value == 0.75  # type: ignore[union-attr]
    assert rec.metric("fidelity.rouge_l[all]").value == 97.0  # type: ignore[union-attr]
    assert [(v.kind, v.name, v.passed) for v in rec.verdicts] == [
        ("accuracy-gate", "99", True),
        ("accuracy-gate", "99.9", False),
    ]
    # A log scored on its own (no results.json beside it): the scores alone, no run figures.
    loose = tmp_path / "loose"
    loose.mkdir()
    report.log_path = str(loose / "mlperf_log_accuracy.json")
    (alone,) = records_for("accuracy", AccuracyOutcome(report=report, samples=samples))
    assert (alone.mode, alone.run_id, alone.results_sha256) == ("accuracy", "loose", "")
    assert [m.name for m in alone.metrics] == ["accuracy.rouge1", "accuracy.rougeL"]
    assert output_root(loose) is None  # no store is made next to a log from elsewhere


def test_compliance_records_test06_strict_and_the_context_probe(tmp_path: Path) -> None:
    d = write_run(tmp_path / "out", "TEST06", manifest("b1"))
    t06 = compliance.Test06Report(
        scenario="Server",
        accuracy_log="x",
        eos_token_id=2,
        n_samples=5,
        checks=[],
        verify_lines=[],
        mlperf_passed=True,
        passed=True,
        message="TEST06 PASS: 5 samples",
    )
    strict = StrictReport(
        eos_token_id=2,
        n_samples=5,
        n_queries=5,
        checks=[],
        passed=False,
        message="strict FAIL: duplicate EOS in 1 sample",
    )
    outcome = compliance.Test06Outcome(
        test06=t06, strict=strict, test06_dir=str(tmp_path / "t06"), run_dir=str(d), passed=False, message="FAIL"
    )
    (rec,) = records_for("compliance", outcome)
    assert [(v.name, v.passed, v.message) for v in rec.verdicts] == [
        ("TEST06", False, "FAIL"),
        ("strict", False, "duplicate EOS in 1 sample"),
    ]
    verdict = ContextVerdict(
        address="127.0.0.1:1",
        artifact_id="lpu-llm",
        advertised_context_tokens=4096,
        eos_token_id=2,
        attempts=[],
        passed=True,
        message="all lengths served",
    )
    (probe,) = records_for("compliance", verdict, artifact=manifest("b1"))
    assert (probe.mode, probe.artifact.build_id, probe.results_sha256) == ("check", "b1", "")
    assert [(v.kind, v.name, v.passed) for v in probe.verdicts] == [("compliance", "context", True)]


def test_test07_and_test09_record_their_performance_pass_with_the_verdict(tmp_path: Path) -> None:
    d7 = write_run(tmp_path / "out", "TEST07", manifest("b1"))
    t07 = compliance.Test07Report(
        accuracy_log="x",
        n_entries=40,
        script="exact_match-gpt-oss-120b",
        score=11.429,
        threshold=60.698,
        threshold_source="audit.config",
        verify_text="",
        mlperf_passed=False,
        passed=False,
        message="TEST07 FAIL: exact_match 11.429 < 60.698",
    )
    out07 = compliance.Test07Outcome(
        test07=t07, test07_dir=str(tmp_path / "t07"), run_dir=str(d7), passed=False, message=t07.message
    )
    (rec7,) = records_for("compliance", out07)
    assert [(v.kind, v.name, v.passed) for v in rec7.verdicts] == [("compliance", "TEST07", False)]
    d9 = write_run(tmp_path / "out9", "TEST09", manifest("b1"))
    t09 = compliance.Test09Report(
        accuracy_log="x", n_samples=40, mean_output_tokens=1278.2, min_output_tokens=600, max_output_tokens=2000,
        min_bound=1150.38, max_bound=1406.02, min_check_pass=True, max_check_pass=True, verify_lines=[],
        mlperf_passed=True, passed=True, message="TEST09 PASS: mean 1278.20 tokens",
    )  # fmt: skip
    out09 = compliance.Test09Outcome(
        test09=t09, test09_dir=str(tmp_path / "t09"), run_dir=str(d9), passed=True, message=t09.message
    )
    (rec9,) = records_for("compliance", out09)
    assert [(v.name, v.passed) for v in rec9.verdicts] == [("TEST09", True)]
    # A log verified on its own (--log, no run here) records nothing.
    assert records_for("compliance", out09.model_copy(update={"run_dir": ""})) == []


def test_find_peak_validate_and_submission_record_their_verdicts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    peak_dir = write_run(out, "peak", manifest("b1"))
    result = FindPeakResult(
        peak_qps=42.0,
        confirmed=True,
        bracket=(42.0, 44.0),
        evidence=Probe(kind="confirm", qps=42.0, log_dir=str(peak_dir)),
        out_dir=str(out / "peak-20250301-120000"),
    )
    (rec,) = records_for("find-peak", result)
    assert rec.metric("peak_qps").value == 42.0  # type: ignore[union-attr]
    assert rec.metric("peak_qps").unit == "qps"  # type: ignore[union-attr]
    # Named by the search, not by the confirm run's place in it (its results.json says "09-confirm").
    assert rec.run_id == "peak-20250301-120000"
    assert [(v.kind, v.passed, v.message) for v in rec.verdicts] == [
        ("find-peak", True, "confirm at 42.0 qps; bracket 42..44 qps")
    ]
    assert records_for("find-peak", FindPeakResult(peak_qps=None, confirmed=False, bracket=(1.0, None))) == []

    base, cand = write_run(out, "v-base", manifest("b1")), write_run(out, "v-cand", manifest("b2"), slower=1.5)
    offline = write_run(out, "v-cand", manifest("b2"), scenario="Offline")
    gate = GateReport(slo="embedded", passed=False, objectives=[])
    report = ValidateReport(
        verdict="NO DEPLOY",
        baseline=ArtifactEvidence(name="sim-fp32", server=load_results(base)),
        candidate=ArtifactEvidence(
            name="sim-bf16", server=load_results(cand), offline=load_results(offline), fidelity=_fidelity()
        ),
        slo="embedded",
        gate=gate,
        baseline_gate=gate.model_copy(update={"passed": True}),
        comparison=Comparison(baseline="b", candidate="c", config=CompareConfig()),
        reasons=["TPOT p99 over the SLO"],
    )
    recs = records_for("validate", report)
    assert [(r.run_id, r.scenario) for r in recs] == [("v-base", "Server"), ("v-cand", "Server"), ("v-cand", "Offline")]
    assert [(v.kind, v.passed) for v in recs[0].verdicts] == [("gate", True)]
    assert [(v.kind, v.name, v.passed, v.message) for v in recs[1].verdicts] == [
        ("gate", "embedded", False, "0/0 objectives met"),
        ("validate", "deploy", False, "TPOT p99 over the SLO"),
    ]
    assert recs[1].metric("fidelity.exact_match[all]").value == 0.9  # type: ignore[union-attr]

    sub = write_run(out, "sub", manifest("b1"))
    check = CheckReport(
        root=str(out / "sub" / "submission"),
        findings=[Finding(code="not-submittable", path="x", message="quick preset")],
    )
    (rec,) = records_for("submission", check, run_dir=sub)
    (v,) = rec.verdicts
    assert (v.kind, v.passed) == ("submission", False) and v.message.startswith("1 finding: [not-submittable]")
