"""Workflows built from runs: find-peak, validate, submission, compare and the HTML report.

Every name is imported on first use (:func:`common.lazy_exports`): ``lpuperf export`` needs the export
alone, not the accuracy stack (nltk, scipy) that validate and compare load
(tests/unit/cli/test_cli_latency_imports.py).
"""

from typing import TYPE_CHECKING

from common import lazy_exports

if TYPE_CHECKING:
    from workflows._compare import (
        CompareConfig,
        Comparison,
        MetricDelta,
        RunData,
        compare_runs,
        latencies_from_records,
        load_run_data,
    )
    from workflows._compare_load import load_samples
    from workflows._compliance_runs import ScorerScript
    from workflows._eval_during import EVAL_UNDER_LOAD_FILE, EvalUnderLoad, judge_under_load, run_with_eval_during
    from workflows._export import export_records
    from workflows._find_peak import FindPeakConfig, FindPeakResult, find_peak
    from workflows._merge import ShardMergeError, merge_shards
    from workflows._plan import (
        PlanConfig,
        PlanError,
        PlanResult,
        load_profile,
        max_valid_qps,
        plan_capacity,
        predict,
    )
    from workflows._plan_output import format_plan, write_plan
    from workflows._plan_power import PowerPlan, PowerPlanError
    from workflows._report import ReportError, write_report
    from workflows._session import RunStep, SessionConfig, SessionResult, run_session
    from workflows._submission import (
        SubmissionConfig,
        SubmissionError,
        SubmissionRunConfig,
        build_submission,
        check_dataset_coverage,
        run_submission,
    )
    from workflows._submission_check import CheckReport, check_submission
    from workflows._submission_system import read_system_file, system_template
    from workflows._sweep import SweepConfig, SweepError, SweepLoads, SweepResult, load_sweep, parse_sweep_load
    from workflows._sweep import best_run_dir as sweep_best_run_dir
    from workflows._sweep import parse_auto as parse_auto_sweep
    from workflows._sweep import parse_rates as parse_sweep_rates
    from workflows._sweep import peak_lines as sweep_peak_lines
    from workflows._sweep_run import SweepInterrupted, run_sweep
    from workflows._validate import ValidateConfig, ValidateReport, validate

__getattr__ = lazy_exports(
    __name__,
    {
        "workflows._compare": [
            "CompareConfig",
            "Comparison",
            "MetricDelta",
            "RunData",
            "compare_runs",
            "latencies_from_records",
            "load_run_data",
        ],
        "workflows._compare_load": ["load_samples"],
        "workflows._compliance_runs": ["ScorerScript"],
        "workflows._export": ["export_records"],
        "workflows._find_peak": ["FindPeakConfig", "FindPeakResult", "find_peak"],
        "workflows._plan": [
            "PlanConfig",
            "PlanError",
            "PlanResult",
            "load_profile",
            "max_valid_qps",
            "plan_capacity",
            "predict",
        ],
        "workflows._plan_output": ["format_plan", "write_plan"],
        "workflows._plan_power": ["PowerPlan", "PowerPlanError"],
        "workflows._report": ["ReportError", "write_report"],
        "workflows._merge": ["ShardMergeError", "merge_shards"],
        "workflows._session": ["RunStep", "SessionConfig", "SessionResult", "run_session"],
        "workflows._submission": [
            "SubmissionConfig",
            "SubmissionError",
            "SubmissionRunConfig",
            "build_submission",
            "check_dataset_coverage",
            "run_submission",
        ],
        "workflows._submission_check": ["CheckReport", "check_submission"],
        "workflows._submission_system": ["read_system_file", "system_template"],
        "workflows._sweep": [
            "SweepConfig",
            "SweepError",
            "SweepLoads",
            "SweepResult",
            "load_sweep",
            "parse_sweep_load",
            "sweep_best_run_dir=best_run_dir",
            "parse_auto_sweep=parse_auto",
            "parse_sweep_rates=parse_rates",
            "sweep_peak_lines=peak_lines",
        ],
        "workflows._sweep_run": ["SweepInterrupted", "run_sweep"],
        "workflows._validate": ["ValidateConfig", "ValidateReport", "validate"],
        "workflows._eval_during": ["EVAL_UNDER_LOAD_FILE", "EvalUnderLoad", "judge_under_load", "run_with_eval_during"],
    },
)

__all__ = [
    "EVAL_UNDER_LOAD_FILE",
    "CheckReport",
    "CompareConfig",
    "Comparison",
    "EvalUnderLoad",
    "FindPeakConfig",
    "FindPeakResult",
    "MetricDelta",
    "PlanConfig",
    "PlanError",
    "PlanResult",
    "PowerPlan",
    "PowerPlanError",
    "ReportError",
    "RunData",
    "RunStep",
    "ScorerScript",
    "SessionConfig",
    "SessionResult",
    "ShardMergeError",
    "SubmissionConfig",
    "SubmissionError",
    "SubmissionRunConfig",
    "SweepConfig",
    "SweepError",
    "SweepInterrupted",
    "SweepLoads",
    "SweepResult",
    "ValidateConfig",
    "ValidateReport",
    "build_submission",
    "check_dataset_coverage",
    "check_submission",
    "compare_runs",
    "export_records",
    "find_peak",
    "format_plan",
    "judge_under_load",
    "latencies_from_records",
    "load_profile",
    "load_run_data",
    "load_samples",
    "load_sweep",
    "max_valid_qps",
    "merge_shards",
    "parse_auto_sweep",
    "parse_sweep_load",
    "parse_sweep_rates",
    "plan_capacity",
    "predict",
    "read_system_file",
    "run_session",
    "run_submission",
    "run_sweep",
    "run_with_eval_during",
    "sweep_best_run_dir",
    "sweep_peak_lines",
    "system_template",
    "validate",
    "write_plan",
    "write_report",
]
