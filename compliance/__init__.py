"""Compliance: MLPerf TEST06 (identical lines), stricter token checks, and the context-length probe."""

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

# The log's encoder is the harness's (one encoder of LoadGen's format); compliance users keep finding it here.
from loadgen_harness import encode_tokens

__all__ = [
    "AUDIT_CONFIG_TEXT",
    "COMPLIANCE_CHECKS",
    "CONTEXT_REPORT_FILE",
    "REPORT_FILES",
    "CheckResult",
    "ComplianceCheck",
    "ComplianceInputError",
    "ComplianceOutcome",
    "ContextProbeConfig",
    "ContextVerdict",
    "LoggedSample",
    "ProbeAttempt",
    "SampleFailure",
    "StrictReport",
    "Test06Config",
    "Test06Outcome",
    "Test06Report",
    "audit_problem",
    "check_records",
    "encode_tokens",
    "eos_from_artifact",
    "load_accuracy_log",
    "load_compliance_outcome",
    "parse_accuracy_log",
    "probe_context",
    "run_test06",
    "strict_checks",
    "verify_log",
    "verify_test06",
    "write_audit_config",
    "write_test06_outputs",
]
