"""The SLO gate: objectives a run must meet, checked against the run's results and its reports."""

from gate._discover import discover_reports, results_file, shipped_baseline
from gate._evaluate import (
    GateInputs,
    GateReport,
    ObjectiveOutcome,
    compliance_verdict,
    evaluate_slo,
    fidelity_value,
    find_metric,
    fmt_number,
    keep_up_ratio,
)
from gate._slo import COMPLIANCE_CHECKS, SLO_DIR, SloError, SloSpec, load_slo

__all__ = [
    "COMPLIANCE_CHECKS",
    "SLO_DIR",
    "GateInputs",
    "GateReport",
    "ObjectiveOutcome",
    "SloError",
    "SloSpec",
    "compliance_verdict",
    "discover_reports",
    "evaluate_slo",
    "fidelity_value",
    "find_metric",
    "fmt_number",
    "keep_up_ratio",
    "load_slo",
    "results_file",
    "shipped_baseline",
]
