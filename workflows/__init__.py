"""Workflows built from runs: find-peak, validate, submission, compare and the HTML report."""

from workflows._compare import (
    CompareConfig,
    Comparison,
    MetricDelta,
    RunData,
    compare_runs,
    latencies_from_records,
    load_run_data,
)
from workflows._export import export_records
from workflows._find_peak import FindPeakConfig, FindPeakResult, find_peak
from workflows._plan import (
    PlanConfig,
    PlanError,
    PlanResult,
    format_plan,
    load_profile,
    max_valid_qps,
    plan_capacity,
    predict,
    write_plan,
)
from workflows._report import ReportError, write_report
from workflows._session import RunStep, SessionConfig, SessionResult, run_session
from workflows._submission import (
    SubmissionConfig,
    SubmissionError,
    SubmissionRunConfig,
    build_submission,
    run_submission,
)
from workflows._submission_check import CheckReport, check_submission
from workflows._validate import ValidateConfig, ValidateReport, validate

__all__ = [
    "CheckReport",
    "CompareConfig",
    "Comparison",
    "FindPeakConfig",
    "FindPeakResult",
    "MetricDelta",
    "PlanConfig",
    "PlanError",
    "PlanResult",
    "ReportError",
    "RunData",
    "RunStep",
    "SessionConfig",
    "SessionResult",
    "SubmissionConfig",
    "SubmissionError",
    "SubmissionRunConfig",
    "ValidateConfig",
    "ValidateReport",
    "build_submission",
    "check_submission",
    "compare_runs",
    "export_records",
    "find_peak",
    "format_plan",
    "latencies_from_records",
    "load_profile",
    "load_run_data",
    "max_valid_qps",
    "plan_capacity",
    "predict",
    "run_session",
    "run_submission",
    "validate",
    "write_plan",
    "write_report",
]
