"""TEST07 with MLPerf's semantics: the first score match, the threshold, verify_accuracy.txt byte for byte."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from compliance import command_script, parse_score, verify_test07
from compliance._audit import read_audit_value

RULE = "=" * 80


def test_verify_file_is_the_script_output_then_mlperfs_summary() -> None:
    output = "Evaluating 40 samples\n\n'exact_match': 62.150\n"
    report = verify_test07(output, 60.698, accuracy_log="log.json", n_entries=40, script="stub")
    assert report.verify_text == (
        output + f"\n{RULE}\nTEST07 Verification Summary\n{RULE}\n"
        "Accuracy score: 62.15\nAccuracy threshold: 60.698\nAccuracy check pass: True\nTEST PASS\n"
    )
    assert report.passed and report.score == 62.15
    assert report.message == "TEST07 PASS: accuracy in performance mode 62.15 >= threshold 60.698 (40 samples)"


def test_below_the_threshold_fails_and_equal_passes() -> None:
    low = verify_test07("'exact_match': 25.000", 60.698)
    assert not low.passed
    # No newline after the script's last line: the summary's leading newline ends it, as in MLPerf's file.
    assert low.verify_text.startswith(f"'exact_match': 25.000\n{RULE}\n")
    assert low.verify_text.endswith("Accuracy check pass: False\nTEST FAIL\n")
    assert verify_test07("'exact_match': 60.698\n", 60.698).passed


def test_the_first_match_is_the_score() -> None:
    """A per-dataset line printed before the overall one would be taken: the scorers must not print one."""
    out = "'exact_match': 10.0 (gpqa)\n'exact_match': 90.0\n"
    assert verify_test07(out, 50).score == 10.0
    assert parse_score("{'exact_match': 81.358, 'tokens_per_sample': 3886.2, 'num-samples': 4388}") == 81.358


def test_no_score_fails_with_mlperfs_lines() -> None:
    report = verify_test07("rouge1: 44.1\n", 60.698, script="rouge")
    assert report.score is None and not report.passed
    assert report.verify_text.endswith(f"{RULE}\nError: Could not parse accuracy score\nTEST FAIL\n")
    assert parse_score("'exact_match': .") is None  # float('.') fails: MLPerf reports no score


def test_a_coverage_problem_fails_a_passing_score() -> None:
    report = verify_test07("'exact_match': 99.0\n", 60.0, coverage_problem="TEST07 needs every sample logged: ...")
    assert report.mlperf_passed and not report.passed
    assert report.verify_text.endswith("TEST PASS\n")
    assert report.message.startswith("TEST07 FAIL: TEST07 needs every sample logged")


def test_threshold_reading_keeps_mlperfs_quirk(tmp_path: Path) -> None:
    audit = tmp_path / "audit.config"
    audit.write_text("*.*.test07_accuracy_threshold = 60.698\n")
    assert read_audit_value(audit, "test07_accuracy_threshold", strip_inline_comment=False) == (60.698, "")
    audit.write_text("*.*.test07_accuracy_threshold = 60.698 # GPQA\n")
    value, warning = read_audit_value(audit, "test07_accuracy_threshold", strip_inline_comment=False)
    assert value is None and warning.endswith("invalid test07_accuracy_threshold value: 60.698 # GPQA")


def test_command_script_runs_like_mlperfs(tmp_path: Path) -> None:
    stub = tmp_path / "stub.py"
    stub.write_text("import sys\nprint('log', sys.argv[1])\nprint(\"'exact_match': 70.5\", file=sys.stderr)\n")
    script = command_script(f"{sys.executable} {stub} {{accuracy_log}}")
    out = script(tmp_path / "mlperf_log_accuracy.json")
    assert f"log {tmp_path / 'mlperf_log_accuracy.json'}" in out
    assert parse_score(out) == pytest.approx(70.5)  # stderr is read with stdout
