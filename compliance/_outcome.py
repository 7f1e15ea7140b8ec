"""One pass/fail outcome per compliance check, whatever report the check itself wrote.

TEST06, TEST07, TEST09, the strict token checks and the context probe each write their own report model
(:class:`Test06Report`, :class:`Test07Report`, :class:`Test09Report`, :class:`StrictReport`,
:class:`ContextVerdict`). A consumer that only needs
the verdict, such as the SLO gate, takes :class:`ComplianceOutcome`. Reports on disk are read with
the model of the check that wrote them, so a file of the wrong kind fails by name instead of being
read as a pass.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from common import read_model
from compliance._accuracy_log import ComplianceInputError
from compliance._context import ContextVerdict
from compliance._perf_mode import Test07Outcome, Test09Outcome
from compliance._runner import Test06Outcome
from compliance._strict import STRICT_REPORT_FILE, StrictReport
from compliance._test06 import REPORT_FILE as TEST06_REPORT_FILE
from compliance._test06 import Test06Report
from compliance._test07 import REPORT_FILE as TEST07_REPORT_FILE
from compliance._test07 import Test07Report
from compliance._test09 import REPORT_FILE as TEST09_REPORT_FILE
from compliance._test09 import Test09Report

ComplianceCheck = Literal["TEST06", "TEST07", "TEST09", "context", "strict"]
COMPLIANCE_CHECKS: tuple[ComplianceCheck, ...] = ("TEST06", "TEST07", "TEST09", "context", "strict")
CONTEXT_REPORT_FILE = "context_report.json"
# The file each check writes: TEST06 and strict into ``<scenario>/TEST06/``, TEST07 and TEST09 into
# ``<scenario>/TEST07/`` and ``<scenario>/TEST09/``, the probe into ``OUT/<run-id>/``.
REPORT_FILES: dict[ComplianceCheck, str] = {
    "TEST06": TEST06_REPORT_FILE,
    "TEST07": TEST07_REPORT_FILE,
    "TEST09": TEST09_REPORT_FILE,
    "strict": STRICT_REPORT_FILE,
    "context": CONTEXT_REPORT_FILE,
}

# The reports open with their own verdict ("TEST06 PASS: ..."); the outcome states it in ``passed``.
_VERDICT_PREFIX = re.compile(r"^(?:TEST06|TEST07|TEST09|strict) (?:PASS|FAIL): ")

ComplianceReport = (
    Test06Outcome
    | Test06Report
    | Test07Outcome
    | Test07Report
    | Test09Outcome
    | Test09Report
    | StrictReport
    | ContextVerdict
)


class ComplianceOutcome(BaseModel):
    """A check's verdict: ``message`` is one line of detail without the PASS/FAIL prefix."""

    model_config = ConfigDict(extra="forbid")

    check: ComplianceCheck
    passed: bool
    message: str
    report_path: str = ""

    @classmethod
    def from_report(cls, report: ComplianceReport, report_path: str | Path = "") -> ComplianceOutcome:
        """The outcome of one check's own report; a Test06Outcome counts TEST06, strict and the audit together."""
        check: ComplianceCheck
        if isinstance(report, Test06Outcome):
            check, path = "TEST06", report_path or Path(report.test06_dir) / TEST06_REPORT_FILE
        elif isinstance(report, Test06Report):
            check, path = "TEST06", report_path
        elif isinstance(report, Test07Outcome):
            check, path = "TEST07", report_path or Path(report.test07_dir) / TEST07_REPORT_FILE
        elif isinstance(report, Test07Report):
            check, path = "TEST07", report_path
        elif isinstance(report, Test09Outcome):
            check, path = "TEST09", report_path or Path(report.test09_dir) / TEST09_REPORT_FILE
        elif isinstance(report, Test09Report):
            check, path = "TEST09", report_path
        elif isinstance(report, StrictReport):
            check, path = "strict", report_path
        else:
            check, path = "context", report_path
        lines = report.message.strip().splitlines()
        detail = _VERDICT_PREFIX.sub("", lines[0]) if lines else ("passed" if report.passed else "failed")
        return cls(check=check, passed=report.passed, message=detail, report_path=str(path))


_MODELS: dict[
    ComplianceCheck,
    type[Test06Report] | type[Test07Report] | type[Test09Report] | type[StrictReport] | type[ContextVerdict],
] = {
    "TEST06": Test06Report,
    "TEST07": Test07Report,
    "TEST09": Test09Report,
    "strict": StrictReport,
    "context": ContextVerdict,
}


def load_compliance_outcome(check: ComplianceCheck, path: str | Path) -> ComplianceOutcome:
    """Read ``path`` with the report model of ``check``; ComplianceInputError names the file and field."""
    model = _MODELS[check]
    report = read_model(path, model, f"{check} report, {model.__name__}", ComplianceInputError)
    return ComplianceOutcome.from_report(report, Path(path))
