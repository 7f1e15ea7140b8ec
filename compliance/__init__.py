"""Compliance: MLPerf TEST06, TEST07 and TEST09 (identical lines), stricter token checks, the context-length probe."""

from compliance._accuracy_log import (
    ComplianceInputError,
    LoggedSample,
    eos_from_artifact,
    load_accuracy_log,
    parse_accuracy_log,
)
from compliance._checks import CheckResult, SampleFailure
from compliance._context import ContextProbeConfig, ContextVerdict, ProbeAttempt, probe_context
from compliance._outcome import (
    COMPLIANCE_CHECKS,
    CONTEXT_REPORT_FILE,
    REPORT_FILES,
    ComplianceCheck,
    ComplianceOutcome,
    load_compliance_outcome,
)
from compliance._perf_mode import (
    PerfModeConfig,
    Test07Config,
    Test07Outcome,
    Test09Config,
    Test09Outcome,
    issued_samples,
    run_test07,
    run_test09,
    scaled_bounds,
    sut_scaled_bounds,
    test07_threshold_default,
    test09_bounds_default,
    verify_test07_log,
    verify_test09_log,
)
from compliance._runner import (
    Test06Config,
    Test06Outcome,
    audit_problem,
    run_test06,
    verify_log,
    write_audit_config,
)
from compliance._strict import StrictReport, check_records, strict_checks
from compliance._test06 import AUDIT_CONFIG_TEXT, Test06Report, verify_test06, write_test06_outputs
from compliance._test07 import (
    DEFAULT_SCORE_PATTERN,
    AccuracyScript,
    Test07Report,
    command_script,
    parse_score,
    verify_test07,
)
from compliance._test09 import Test09Report, entry_length, verify_test09

# The log's encoder is the harness's (one encoder of LoadGen's format); compliance users keep finding it here.
from loadgen_harness import encode_tokens

__all__ = [
    "AUDIT_CONFIG_TEXT",
    "COMPLIANCE_CHECKS",
    "CONTEXT_REPORT_FILE",
    "DEFAULT_SCORE_PATTERN",
    "REPORT_FILES",
    "AccuracyScript",
    "CheckResult",
    "ComplianceCheck",
    "ComplianceInputError",
    "ComplianceOutcome",
    "ContextProbeConfig",
    "ContextVerdict",
    "LoggedSample",
    "PerfModeConfig",
    "ProbeAttempt",
    "SampleFailure",
    "StrictReport",
    "Test06Config",
    "Test06Outcome",
    "Test06Report",
    "Test07Config",
    "Test07Outcome",
    "Test07Report",
    "Test09Config",
    "Test09Outcome",
    "Test09Report",
    "audit_problem",
    "check_records",
    "command_script",
    "encode_tokens",
    "entry_length",
    "eos_from_artifact",
    "issued_samples",
    "load_accuracy_log",
    "load_compliance_outcome",
    "parse_accuracy_log",
    "parse_score",
    "probe_context",
    "run_test06",
    "run_test07",
    "run_test09",
    "scaled_bounds",
    "strict_checks",
    "sut_scaled_bounds",
    "test07_threshold_default",
    "test09_bounds_default",
    "verify_log",
    "verify_test06",
    "verify_test07",
    "verify_test07_log",
    "verify_test09",
    "verify_test09_log",
    "write_audit_config",
    "write_test06_outputs",
]
