"""Check results shared by TEST06 and the stricter checks: which samples failed and why."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# A report names at most this many failing samples per check; the count is always exact.
MAX_LISTED_FAILURES = 200


class SampleFailure(BaseModel):
    """One sample that failed a check. ``seq_id`` is -1 for per-query records (no LoadGen seq id)."""

    qsl_idx: int
    seq_id: int = -1
    reason: str


class CheckResult(BaseModel):
    name: str
    description: str
    status: Literal["pass", "fail", "skipped"]
    checked: int = Field(ge=0, description="samples (or queries) the check looked at")
    n_failed: int = Field(ge=0)
    failures: list[SampleFailure] = Field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def line(self) -> str:
        if self.status == "skipped":
            return f"{self.name}: skipped ({self.note or 'not applicable'})"
        if self.status == "pass":
            return f"{self.name}: PASS ({self.checked} checked)"
        first = self.failures[0] if self.failures else None
        where = f"; first: sample {first.qsl_idx}: {first.reason}" if first else ""
        return f"{self.name}: FAIL ({self.n_failed} of {self.checked}{where})"


def make_result(
    name: str, description: str, checked: int, failures: list[SampleFailure], note: str = ""
) -> CheckResult:
    return CheckResult(
        name=name,
        description=description,
        status="fail" if failures else "pass",
        checked=checked,
        n_failed=len(failures),
        failures=failures[:MAX_LISTED_FAILURES],
        note=note,
    )


def skipped(name: str, description: str, note: str) -> CheckResult:
    return CheckResult(name=name, description=description, status="skipped", checked=0, n_failed=0, note=note)
