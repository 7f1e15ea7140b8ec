"""The SLO gate: objectives a run must meet, checked against the run's results and its reports."""

from gate._discover import (
    ReportPaths,
    discover_reports,
    load_gate_inputs,
    read_accuracy,
    read_compliance,
    read_fidelity,
    read_report,
    read_results,
    results_file,
    shipped_baseline,
)
from gate._evaluate import GateInputs, GateReport, ObjectiveOutcome, evaluate_slo, fmt_number
from gate._slo import SLO_DIR, SloError, SloSpec, load_slo

__all__ = [
    "SLO_DIR",
    "GateInputs",
    "GateReport",
    "ObjectiveOutcome",
    "ReportPaths",
    "SloError",
    "SloSpec",
    "discover_reports",
    "evaluate_slo",
    "fmt_number",
    "load_gate_inputs",
    "load_slo",
    "read_accuracy",
    "read_compliance",
    "read_fidelity",
    "read_report",
    "read_results",
    "results_file",
    "shipped_baseline",
]
