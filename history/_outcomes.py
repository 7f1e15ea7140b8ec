"""What each command records: its typed outcome turned into store records.

Each command hands over the model it produced (``RunResult``, ``AccuracyOutcome``, ``Test06Outcome``,
``ContextVerdict``, ``GateReport``, ``ValidateReport``, ``FindPeakResult``, the submission's
``CheckReport``); the record of each run it made is read from that run's directory and the outcome's
own verdicts are added to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from pydantic import JsonValue

from history._extract import (
    accuracy_figures,
    compliance_verdict,
    eval_figures,
    fidelity_figures,
    gate_verdict,
    installed_versions,
    record_check,
    record_interrupted,
    record_run_dir,
)
from history._models import MetricValue, RunRecord, Verdict, metric_unit
from loadgen_harness import RunResult

if TYPE_CHECKING:
    from accuracy import AccuracyOutcome
    from compliance import ContextVerdict, Test06Outcome, Test07Outcome, Test09Outcome
    from gate import GateReport
    from workflows import CheckReport, FindPeakResult, ValidateReport

# The outcomes of the stages after a run; their packages load only when one is recorded (_stage_records).
StageOutcome: TypeAlias = (
    "AccuracyOutcome | Test06Outcome | Test07Outcome | Test09Outcome | ContextVerdict | GateReport | ValidateReport"
    " | FindPeakResult | CheckReport"
)
Outcome: TypeAlias = "RunResult | StageOutcome"


def _has_results(log_dir: str | Path) -> bool:
    return bool(str(log_dir)) and (Path(log_dir) / "results.json").is_file()


def _accuracy_records(command: str, out: AccuracyOutcome) -> list[RunRecord]:
    log_dir = Path(out.report.log_path).parent
    if _has_results(log_dir):
        rec = record_run_dir(log_dir, command)
    else:  # a log from elsewhere (no results.json beside it): the scores alone
        lpuperf_version, loadgen_version = installed_versions()
        rec = RunRecord(
            command=command,
            run_id=log_dir.name,
            run_at=datetime.now(UTC),
            mode="accuracy",
            benchmark=out.report.benchmark,
            run_dir=str(log_dir.resolve()),
            lpuperf_version=lpuperf_version,
            loadgen_version=loadgen_version,
        )
    rec.accuracy = out.report
    rec.add_metrics(accuracy_figures(out.report))
    if out.fidelity is not None:
        rec.fidelity = out.fidelity
        rec.add_metrics(fidelity_figures(out.fidelity))
    rec.add_verdicts(
        [
            Verdict(kind="accuracy-gate", name=v.level, passed=v.passed, message=v.text().splitlines()[0])
            for v in out.verdicts
        ]
    )
    return [rec]


def _test06_records(command: str, out: Test06Outcome) -> list[RunRecord]:
    from compliance import ComplianceOutcome

    checks = [
        compliance_verdict(ComplianceOutcome.from_report(out)),
        compliance_verdict(ComplianceOutcome.from_report(out.strict)),
    ]
    if not _has_results(out.run_dir):  # a log verified on its own (--log): nothing ran here
        return []
    rec = record_run_dir(out.run_dir, command)
    rec.add_verdicts(checks)
    return [rec]


def _perf_mode_records(command: str, out: Test07Outcome | Test09Outcome) -> list[RunRecord]:
    """TEST07/TEST09: the performance pass they ran (its run directory) with the check's verdict."""
    from compliance import ComplianceOutcome

    if not out.run_dir or not _has_results(out.run_dir):  # a log verified on its own (--log)
        return []
    rec = record_run_dir(out.run_dir, command)
    rec.add_verdicts([compliance_verdict(ComplianceOutcome.from_report(out))])
    return [rec]


def _validate_records(command: str, report: ValidateReport) -> list[RunRecord]:
    from compliance import ComplianceOutcome

    out: list[RunRecord] = []
    for evidence, gate in ((report.baseline, report.baseline_gate), (report.candidate, report.gate)):
        if evidence.server is not None and _has_results(evidence.server.log_dir):
            rec = record_run_dir(evidence.server.log_dir, command)
            if evidence.accuracy is not None:
                rec.accuracy = evidence.accuracy
                rec.add_metrics(accuracy_figures(evidence.accuracy))
            if evidence.fidelity is not None:
                rec.fidelity = evidence.fidelity
                rec.add_metrics(fidelity_figures(evidence.fidelity))
            rec.add_metrics(eval_figures(evidence.evals))
            checks: list[ComplianceOutcome] = []
            if evidence.test06 is not None:
                checks += [
                    ComplianceOutcome.from_report(evidence.test06),
                    ComplianceOutcome.from_report(evidence.test06.strict),
                ]
            if evidence.context is not None:
                checks.append(ComplianceOutcome.from_report(evidence.context, evidence.context_report))
            rec.add_verdicts([compliance_verdict(c) for c in checks] + [gate_verdict(gate)])
            if evidence is report.candidate:
                detail = "; ".join(report.reasons) or f"against {report.baseline.name}"
                rec.add_verdicts(
                    [Verdict(kind="validate", name="deploy", passed=report.verdict == "DEPLOY", message=detail)]
                )
            out.append(rec)
        elif evidence.evals:  # an eval-only validate (--evals-only): the scores on a record of their own
            passed = evidence is report.baseline or report.verdict == "DEPLOY"
            detail = "; ".join(report.reasons) if evidence is report.candidate else "baseline"
            verdict = Verdict(kind="validate", name="evals", passed=passed, message=detail or "evals within limits")
            rec = record_check(command, verdict, dict(evidence.manifest or {"artifact_id": evidence.name}))
            rec.add_metrics(eval_figures(evidence.evals))
            out.append(rec)
        if evidence.offline is not None and _has_results(evidence.offline.log_dir):
            out.append(record_run_dir(evidence.offline.log_dir, command))
    return out


def _find_peak_records(command: str, result: FindPeakResult) -> list[RunRecord]:
    ev = result.evidence
    if ev is None or not _has_results(ev.log_dir):
        return []
    rec = record_run_dir(ev.log_dir, command)
    # The confirm run's own id is its place in the search (09-confirm): the record is named by the search.
    if result.out_dir:
        rec.run_id = Path(result.out_dir).name
    if result.peak_qps is not None:
        rec.add_metrics([MetricValue(name="peak_qps", value=result.peak_qps, unit=metric_unit("peak_qps"))])
    hi = result.bracket[1]
    what = f"confirm at {ev.qps:.1f} qps" if ev.qps is not None else "confirm run"
    bracket = f"{what}; bracket {result.bracket[0]:g}..{'-' if hi is None else f'{hi:g}'} qps"
    rec.add_verdicts([Verdict(kind="find-peak", name="confirmed", passed=result.confirmed, message=bracket)])
    return [rec]


def records_for(
    command: str,
    outcome: Outcome,
    run_dir: str | Path | None = None,
    artifact: Mapping[str, JsonValue] | None = None,
) -> list[RunRecord]:
    """The records a command's outcome makes.

    ``run_dir`` names the run a ``CheckReport`` is about (the submission's performance run); ``artifact``
    is the SUT's manifest for a check that made no LoadGen run (the context probe).
    """
    if isinstance(outcome, RunResult):
        if outcome.state == "interrupted":  # recorded as Ctrl-C ends the run: from results.json alone
            return [record_interrupted(outcome, command)]
        return [record_run_dir(outcome.log_dir, command)] if _has_results(outcome.log_dir) else []
    return _stage_records(command, outcome, run_dir, artifact)


def _stage_records(
    command: str,
    outcome: StageOutcome,
    run_dir: str | Path | None,
    artifact: Mapping[str, JsonValue] | None,
) -> list[RunRecord]:
    # The stages' packages load here, not at the top: recording a run (the record made as Ctrl-C ends
    # it) must not wait for the accuracy stack they import.
    from accuracy import AccuracyOutcome
    from compliance import ComplianceOutcome, ContextVerdict, Test06Outcome, Test07Outcome, Test09Outcome
    from gate import GateReport
    from workflows import FindPeakResult, ValidateReport

    if isinstance(outcome, AccuracyOutcome):
        return _accuracy_records(command, outcome)
    if isinstance(outcome, Test06Outcome):
        return _test06_records(command, outcome)
    if isinstance(outcome, Test07Outcome | Test09Outcome):
        return _perf_mode_records(command, outcome)
    if isinstance(outcome, ContextVerdict):
        verdict = compliance_verdict(ComplianceOutcome.from_report(outcome))
        return [record_check(command, verdict, dict(artifact or {"artifact_id": outcome.artifact_id}))]
    if isinstance(outcome, GateReport):
        if not outcome.source:
            return []
        rec = record_run_dir(Path(outcome.source), command)
        rec.add_verdicts([gate_verdict(outcome)])
        return [rec]
    if isinstance(outcome, ValidateReport):
        return _validate_records(command, outcome)
    if isinstance(outcome, FindPeakResult):
        return _find_peak_records(command, outcome)
    if run_dir is None or not _has_results(run_dir):
        return []
    rec = record_run_dir(run_dir, command)
    n = len(outcome.findings)
    message = "accepted" if outcome.passed else f"{n} finding{'s' if n != 1 else ''}: {outcome.findings[0].line}"
    rec.add_verdicts([Verdict(kind="submission", name="check", passed=outcome.passed, message=message)])
    return [rec]
