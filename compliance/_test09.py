"""TEST09 verification with MLPerf's semantics: the mean output length in performance mode within bounds.

MLPerf's ``compliance/TEST09/run_verification.py`` counts each accuracy-log entry's output as the number of
whole 4-byte little-endian int32 values in its ``data`` hex (trailing bytes ignored; a missing, empty or
undecodable ``data`` counts 0 tokens and still counts as a sample; ``token_count`` is not used). The mean
over every entry (duplicates included) must satisfy ``min <= mean <= max``, both bounds inclusive, with the
bounds from the audit config's ``test09_min_output_tokens`` / ``test09_max_output_tokens``.
``verify_output_len.txt`` holds the script's lines byte for byte; :class:`Test09Report` adds what the
script does not check: that the log holds every sample the run issued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field, JsonValue

VERIFY_FILE = "verify_output_len.txt"
REPORT_FILE = "test09_report.json"
TITLE = "TEST09: Verify Output Token Length in Performance Mode"
_RULE = "=" * 80


def entry_length(entry: Mapping[str, JsonValue]) -> int:
    """Output tokens of one log entry as MLPerf's TEST09 counts them (0 when ``data`` is missing or bad)."""
    data = entry.get("data", "")
    if not data:
        return 0
    try:
        raw = bytes.fromhex(data.strip()) if isinstance(data, str) else b""
    except ValueError:
        return 0
    return len(raw) // 4


class Test09Report(BaseModel):
    """TEST09's verdict: MLPerf's statistics and lines, plus whether the log covered every issued sample."""

    accuracy_log: str
    n_samples: int = Field(ge=0, description="log entries counted (MLPerf's 'Total samples')")
    mean_output_tokens: float
    min_output_tokens: int = Field(description="shortest output in the log")
    max_output_tokens: int = Field(description="longest output in the log")
    std_output_tokens: float | None = Field(default=None, description="population standard deviation")
    min_bound: float = Field(description="test09_min_output_tokens")
    max_bound: float = Field(description="test09_max_output_tokens")
    min_check_pass: bool
    max_check_pass: bool
    verify_lines: list[str] = Field(description="verify_output_len.txt, line by line, as MLPerf writes it")
    mlperf_passed: bool
    coverage_problem: str = Field(default="", description="set when the log does not hold every issued sample")
    bounds_note: str = Field(default="", description="why the bounds are not the round's, when they are not")
    passed: bool = Field(description="mlperf_passed, and the log holds every issued sample")
    message: str

    @property
    def verify_text(self) -> str:
        return "".join(line + "\n" for line in self.verify_lines)


def verify_lines(
    lengths: Sequence[int],
    mean: float,
    std: float | None,
    min_bound: float,
    max_bound: float,
    min_ok: bool,
    max_ok: bool,
) -> list[str]:
    """verify_output_len.txt as MLPerf's script writes it (thresholds printed as Python prints a float)."""
    lines = [_RULE, TITLE, _RULE, "", "Output Token Length Statistics", "-" * 40]
    lines += [
        f"Total samples: {len(lengths)}",
        f"Mean output tokens: {mean:.2f}",
        f"Min output tokens: {min(lengths) if lengths else 0}",
        f"Max output tokens: {max(lengths) if lengths else 0}",
    ]
    if std is not None:
        lines.append(f"Std deviation: {std:.2f}")
    lines += ["", _RULE, "Verification Results", _RULE, f"Mean output tokens: {mean:.2f}"]
    lines += [f"Min threshold: {min_bound}", f"Max threshold: {max_bound}"]
    lines += [f"Min check pass: {min_ok}", f"Max check pass: {max_ok}", ""]
    lines.append("TEST PASS" if min_ok and max_ok else "TEST FAIL")
    return lines


def verify_test09(
    entries: Sequence[Mapping[str, JsonValue]],
    min_bound: float,
    max_bound: float,
    accuracy_log: str = "",
    coverage_problem: str = "",
    bounds_note: str = "",
) -> Test09Report:
    """MLPerf's TEST09 over a loaded accuracy log (its list of entries)."""
    lengths = [entry_length(e) for e in entries]
    n = len(lengths)
    # The script's own arithmetic, so the printed figures round the same way.
    mean = sum(lengths) / n if n else 0.0
    std = (sum((x - mean) ** 2 for x in lengths) / n) ** 0.5 if n else None
    min_bound, max_bound = float(min_bound), float(max_bound)
    min_ok, max_ok = mean >= min_bound, mean <= max_bound
    mlperf_passed = min_ok and max_ok and n > 0
    if n == 0:
        message = "TEST09 FAIL: the accuracy log has no entries: was the run made with TEST09's audit.config?"
    elif not (min_ok and max_ok):
        side = f"below the minimum {min_bound}" if not min_ok else f"above the maximum {max_bound}"
        message = f"TEST09 FAIL: mean output {mean:.2f} tokens over {n} samples is {side}"
    else:
        message = f"TEST09 PASS: mean output {mean:.2f} tokens over {n} samples within [{min_bound}, {max_bound}]"
    if coverage_problem:
        message = f"TEST09 FAIL: {coverage_problem}" if mlperf_passed else f"{message}; {coverage_problem}"
    return Test09Report(
        accuracy_log=accuracy_log,
        n_samples=n,
        mean_output_tokens=mean,
        min_output_tokens=min(lengths) if lengths else 0,
        max_output_tokens=max(lengths) if lengths else 0,
        std_output_tokens=std,
        min_bound=min_bound,
        max_bound=max_bound,
        min_check_pass=min_ok,
        max_check_pass=max_ok,
        verify_lines=verify_lines(lengths, mean, std, min_bound, max_bound, min_ok, max_ok),
        mlperf_passed=mlperf_passed,
        coverage_problem=coverage_problem,
        bounds_note=bounds_note,
        passed=mlperf_passed and not coverage_problem,
        message=message + (f" ({bounds_note})" if bounds_note else ""),
    )
