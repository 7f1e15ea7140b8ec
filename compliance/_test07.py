"""TEST07 verification with MLPerf's semantics: accuracy in performance mode must reach a threshold.

MLPerf's ``compliance/TEST07/run_verification.py`` runs an accuracy script over the performance-mode
accuracy log (every sample logged), writes the script's whole output to ``verify_accuracy.txt``, takes
the **first** match of ``'exact_match':\\s*([\\d.]+)`` in it as the score and appends a summary: the score
and the threshold as Python prints a float, ``Accuracy check pass: True|False`` and ``TEST PASS`` or
``TEST FAIL`` (``score >= threshold``). The threshold is the audit config's
``test07_accuracy_threshold`` unless one is given.

The accuracy script is anything that turns the log into that output: :func:`command_script` runs a
command as MLPerf does (``{accuracy_log}`` is replaced by the log's path); lpuperf's own scorers are
adapted in ``workflows`` (compliance does not depend on the accuracy package).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

VERIFY_FILE = "verify_accuracy.txt"
REPORT_FILE = "test07_report.json"
DEFAULT_SCORE_PATTERN = r"'exact_match':\s*([\d.]+)"
_RULE = "=" * 80


class AccuracyScript(Protocol):
    """An accuracy evaluation: the text it prints for an accuracy log (MLPerf parses the score from it)."""

    def __call__(self, accuracy_log: Path) -> str: ...


class CommandScript:
    """MLPerf's ``--accuracy-script``: a shell command, stdout and stderr together, ``{accuracy_log}`` filled in."""

    def __init__(self, command: str, timeout_s: float = 3600.0) -> None:
        self.command, self.timeout_s = command, timeout_s

    def __call__(self, accuracy_log: Path) -> str:
        cmd = self.command.format(accuracy_log=accuracy_log)
        try:
            proc = subprocess.run(
                cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return out + f"\naccuracy script timed out after {self.timeout_s:g} s\n"
        return proc.stdout


def command_script(command: str) -> AccuracyScript:
    return CommandScript(command)


class Test07Report(BaseModel):
    """TEST07's verdict: MLPerf's file and score, plus whether the log covered every issued sample."""

    accuracy_log: str
    n_entries: int = Field(ge=0, description="accuracy-log entries the script scored")
    script: str = Field(description="what produced the accuracy output (a scorer kind or a command)")
    score_pattern: str = DEFAULT_SCORE_PATTERN
    score: float | None = Field(description="the first match of the score pattern; None when none parsed")
    threshold: float
    threshold_source: str = Field(description="'audit.config' or 'given'")
    verify_text: str = Field(description="verify_accuracy.txt exactly as MLPerf's script writes it")
    mlperf_passed: bool
    coverage_problem: str = Field(default="", description="set when the log does not hold every issued sample")
    passed: bool = Field(description="mlperf_passed, and the log holds every issued sample")
    message: str


def parse_score(output: str, pattern: str = DEFAULT_SCORE_PATTERN) -> float | None:
    """The score MLPerf's script reads: ``float`` of group 1 of the first match; None when it cannot."""
    match = re.search(pattern, output)
    if match is None:
        return None
    try:
        return float(match.group(1))
    except (ValueError, IndexError):
        return None


def verify_text(output: str, score: float | None, threshold: float) -> str:
    """verify_accuracy.txt: the accuracy output as printed, then the summary MLPerf appends."""
    tail = ["", _RULE, "TEST07 Verification Summary", _RULE]
    if score is None:
        tail += ["Error: Could not parse accuracy score", "TEST FAIL"]
    else:
        ok = score >= threshold
        tail += [f"Accuracy score: {score}", f"Accuracy threshold: {threshold}", f"Accuracy check pass: {ok}"]
        tail.append("TEST PASS" if ok else "TEST FAIL")
    return output + "\n".join(tail) + "\n"


def verify_test07(
    output: str,
    threshold: float,
    *,
    accuracy_log: str = "",
    n_entries: int = 0,
    script: str = "",
    threshold_source: str = "audit.config",
    score_pattern: str = DEFAULT_SCORE_PATTERN,
    coverage_problem: str = "",
) -> Test07Report:
    """MLPerf's TEST07 verdict over an accuracy script's ``output``."""
    threshold = float(threshold)
    score = parse_score(output, score_pattern)
    mlperf_passed = score is not None and score >= threshold
    if score is None:
        message = f"TEST07 FAIL: no score matching {score_pattern} in the accuracy output of {script or 'the script'}"
    elif mlperf_passed:
        message = f"TEST07 PASS: accuracy in performance mode {score} >= threshold {threshold} ({n_entries} samples)"
    else:
        message = f"TEST07 FAIL: accuracy in performance mode {score} < threshold {threshold} ({n_entries} samples)"
    if coverage_problem:
        message = f"TEST07 FAIL: {coverage_problem}" if mlperf_passed else f"{message}; {coverage_problem}"
    return Test07Report(
        accuracy_log=accuracy_log,
        n_entries=n_entries,
        script=script,
        score_pattern=score_pattern,
        score=score,
        threshold=threshold,
        threshold_source=threshold_source,
        verify_text=verify_text(output, score, threshold),
        mlperf_passed=mlperf_passed,
        coverage_problem=coverage_problem,
        passed=mlperf_passed and not coverage_problem,
        message=message,
    )
