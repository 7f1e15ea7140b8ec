"""Find the reports a gate reads next to a run directory, and load each with the model that wrote it.

A run directory is ``OUT/<run-id>/<scenario>/<mode>/``. Accuracy scoring writes ``accuracy.json``
and ``fidelity.json`` into the accuracy run directory; TEST06 writes ``test06_report.json`` and
``strict_report.json`` into ``OUT/<run-id>/<scenario>/TEST06/`` (TEST07 and TEST09 their reports into
``TEST07/`` and ``TEST09/`` beside it); the context probe writes
``OUT/<run-id>/context_report.json``. A malformed report is a UsageError naming the file and field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accuracy import AccuracyReport, FidelityReport, load_accuracy_report, load_fidelity_report
from common import UsageError, first_error_line
from compliance import REPORT_FILES, ComplianceCheck, ComplianceOutcome, load_compliance_outcome
from gate._evaluate import GateInputs
from loadgen_harness import RunResult, load_results

T = TypeVar("T")

# Patterns relative to the run directory and then to the directories above it; the first match wins.
_ACCURACY_PATTERNS = ("accuracy.json", "accuracy/accuracy.json")
_FIDELITY_PATTERNS = ("fidelity.json", "fidelity-*.json", "accuracy/fidelity.json", "accuracy/fidelity-*.json")
_COMPLIANCE_PATTERNS: dict[ComplianceCheck, tuple[str, ...]] = {
    "TEST06": (f"TEST06/{REPORT_FILES['TEST06']}",),
    "TEST07": (f"TEST07/{REPORT_FILES['TEST07']}",),
    "TEST09": (f"TEST09/{REPORT_FILES['TEST09']}",),
    "strict": (f"TEST06/{REPORT_FILES['strict']}",),
    "context": (REPORT_FILES["context"],),
}


class ReportPaths(BaseModel):
    """Where each report of a run lies; None (or no entry) where none was found or given."""

    model_config = ConfigDict(extra="forbid")

    accuracy: Path | None = None
    fidelity: Path | None = None
    compliance: dict[ComplianceCheck, Path] = Field(default_factory=dict)


def results_file(path: str | Path) -> Path:
    """``results.json`` of a run directory or file argument, or the detail log of a plain MLPerf result
    directory (``<scenario>/``, ``performance/run_1/``); UsageError naming the path otherwise."""
    from loadgen_harness import run_results_file

    try:
        f = run_results_file(path)
    except FileNotFoundError:
        f = Path(path)
    if not f.is_file():
        raise UsageError(
            f"{path}: no results.json (expected a run directory OUT/<run-id>/<scenario>/<mode>/, "
            "or an MLPerf result directory <scenario>/performance/run_1/ with mlperf_log_detail.txt)"
        )
    return f


def _first_match(roots: list[Path], patterns: tuple[str, ...]) -> Path | None:
    for root in roots:
        for pattern in patterns:
            hits = sorted(p for p in root.glob(pattern) if p.is_file())
            if hits:
                return hits[0]
    return None


def discover_reports(run_dir: Path) -> ReportPaths:
    """Reports next to a run: in the run directory, its scenario directory, or the run-id directory."""
    near = [run_dir, run_dir.parent]
    compliance_roots = [run_dir, run_dir.parent, run_dir.parent.parent]
    found = ReportPaths(
        accuracy=_first_match(near, _ACCURACY_PATTERNS),
        fidelity=_first_match(near, _FIDELITY_PATTERNS),
    )
    for check, patterns in _COMPLIANCE_PATTERNS.items():
        hit = _first_match(compliance_roots, patterns)
        if hit is not None:
            found.compliance[check] = hit
    return found


def read_report(path: Path, loader: Callable[[Path], T], what: str) -> T:
    """``loader(path)``, with every way a report can be unreadable turned into one UsageError line."""
    if not path.is_file():
        raise UsageError(f"{path}: {what} not found")
    try:
        return loader(path)
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, f"{path} ({what})")) from None
    except (OSError, ValueError) as exc:
        text = str(exc).strip()
        raise UsageError(text.splitlines()[0] if text else f"{path}: cannot read {what}") from None


def read_results(path: Path) -> RunResult:
    return read_report(path, load_results, "run results")


def read_accuracy(path: Path) -> AccuracyReport:
    return read_report(path, load_accuracy_report, "accuracy report")


def read_fidelity(path: Path) -> FidelityReport:
    return read_report(path, load_fidelity_report, "fidelity report")


def read_compliance(check: ComplianceCheck, path: Path) -> ComplianceOutcome:
    return read_report(path, lambda p: load_compliance_outcome(check, p), f"{check} report")


def load_gate_inputs(results_path: Path, reports: ReportPaths, baseline_accuracy: Path | None = None) -> GateInputs:
    """Every report the gate reads, each loaded with its own model."""
    return GateInputs(
        results=read_results(results_path),
        accuracy=None if reports.accuracy is None else read_accuracy(reports.accuracy),
        baseline_accuracy=None if baseline_accuracy is None else read_accuracy(baseline_accuracy),
        fidelity=None if reports.fidelity is None else read_fidelity(reports.fidelity),
        compliance={check: read_compliance(check, path) for check, path in reports.compliance.items()},
        source=str(results_path),
    )


def shipped_baseline(benchmark: str) -> AccuracyReport | None:
    """The FP32 reference scores the accuracy package ships for a benchmark, as an accuracy report."""
    if not benchmark:
        return None
    from accuracy import available_baselines, load_baseline

    if benchmark not in available_baselines():
        return None
    return load_baseline(benchmark).as_report()
