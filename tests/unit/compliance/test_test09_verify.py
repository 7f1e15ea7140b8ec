"""TEST09 with MLPerf's semantics: what counts as an output token, the bounds, verify_output_len.txt byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compliance import encode_tokens, entry_length, verify_test09
from compliance._audit import audit_config_text, coverage_problem, read_audit_value, sampling_target

RULE = "=" * 80


def _entries(lengths: list[int]) -> list[dict[str, object]]:
    return [{"seq_id": i, "qsl_idx": i, "data": encode_tokens(np.arange(n))} for i, n in enumerate(lengths)]


def test_lengths_are_counted_as_mlperf_counts_them() -> None:
    assert entry_length({"data": encode_tokens([1, 2, 3])}) == 3
    assert entry_length({"data": encode_tokens([1, 2, 3]) + "ABCD"}) == 3  # 2 trailing bytes: not a whole int32
    assert entry_length({"data": " " + encode_tokens([7]) + "\n"}) == 1  # stripped first
    assert entry_length({"data": ""}) == 0
    assert entry_length({"qsl_idx": 3}) == 0  # no data: 0 tokens, still a sample
    assert entry_length({"data": "XYZ"}) == 0  # undecodable: 0
    assert entry_length({"data": 12}) == 0
    # token_count is not used, whatever it says.
    assert entry_length({"data": encode_tokens([1, 2]), "token_count": 99}) == 2


def test_verify_file_is_mlperfs_byte_for_byte() -> None:
    report = verify_test09(_entries([10, 20, 31]), 12.5, 25.0, "log.json")
    mean, std = 61 / 3, ((10 - 61 / 3) ** 2 + (20 - 61 / 3) ** 2 + (31 - 61 / 3) ** 2) / 3
    expected = (
        f"{RULE}\nTEST09: Verify Output Token Length in Performance Mode\n{RULE}\n\n"
        "Output Token Length Statistics\n" + "-" * 40 + "\n"
        "Total samples: 3\n"
        f"Mean output tokens: {mean:.2f}\n"
        "Min output tokens: 10\nMax output tokens: 31\n"
        f"Std deviation: {std**0.5:.2f}\n"
        f"\n{RULE}\nVerification Results\n{RULE}\n"
        f"Mean output tokens: {mean:.2f}\n"
        "Min threshold: 12.5\nMax threshold: 25.0\n"
        "Min check pass: True\nMax check pass: True\n"
        "\nTEST PASS\n"
    )
    assert report.verify_text == expected
    assert report.passed and report.mlperf_passed
    assert report.message.startswith("TEST09 PASS: mean output 20.33 tokens over 3 samples")


def test_bounds_are_inclusive_and_each_side_fails() -> None:
    assert verify_test09(_entries([10, 30]), 20, 20).passed  # mean exactly on both bounds
    low = verify_test09(_entries([5, 5]), 1150.38, 1406.02)
    assert not low.passed and not low.min_check_pass and low.max_check_pass
    assert low.verify_lines[-1] == "TEST FAIL"
    assert "below the minimum 1150.38" in low.message
    high = verify_test09(_entries([2000, 2000]), 1150.38, 1406.02)
    assert not high.passed and high.min_check_pass and not high.max_check_pass
    assert "above the maximum 1406.02" in high.message


def test_duplicates_and_empty_outputs_count() -> None:
    entries = _entries([10, 10])
    entries.append(dict(entries[0]))  # a duplicate qsl_idx counts again, as in MLPerf
    entries.append({"seq_id": 9, "qsl_idx": 9})  # no data: 0 tokens
    report = verify_test09(entries, 0, 100)
    assert report.n_samples == 4 and report.mean_output_tokens == 7.5 and report.min_output_tokens == 0


def test_an_empty_log_fails() -> None:
    report = verify_test09([], 1, 2)
    assert not report.passed
    assert "Std deviation" not in report.verify_text
    assert "no entries" in report.message


def test_a_coverage_problem_fails_what_mlperf_would_pass() -> None:
    problem = coverage_problem([0, 1, 1], 3, "TEST09")
    assert problem == "TEST09 needs every sample logged: the accuracy log has 3 entries for 2 samples, the run issued 3"
    report = verify_test09(_entries([10, 10, 10]), 0, 100, coverage_problem=problem)
    assert report.mlperf_passed and not report.passed
    assert report.verify_lines[-1] == "TEST PASS"  # MLPerf's own file is unchanged
    assert report.message.startswith("TEST09 FAIL: TEST09 needs every sample logged")
    assert coverage_problem([2, 0, 1], 3, "TEST09") == ""


def test_audit_config_bounds_are_read_as_mlperf_reads_them(tmp_path: Path) -> None:
    audit = tmp_path / "audit.config"
    audit.write_text(
        "# comment\n*.*.mode = 2\n"
        "gpt-oss-120b.Offline.test09_min_output_tokens = 1150.38  # reference mean x 0.9\n"
        "*.*.test09_max_output_tokens = 1406.02\n"
        "test09_max_output_tokens = 5\n"  # fewer than 3 key parts: ignored
    )
    assert read_audit_value(audit, "test09_min_output_tokens", strip_inline_comment=True) == (1150.38, "")
    assert read_audit_value(audit, "test09_max_output_tokens", strip_inline_comment=True) == (1406.02, "")
    # TEST07's reader keeps the inline comment in the value, which then does not parse.
    value, warning = read_audit_value(audit, "test09_min_output_tokens", strip_inline_comment=False)
    assert value is None and "invalid test09_min_output_tokens value: 1150.38  # reference mean x 0.9" in warning
    assert read_audit_value(tmp_path / "none.config", "x", True) == (None, "")


@pytest.mark.parametrize(("n", "upstream", "want"), [(40, 10000, 10000), (6396, 990, 6396), (990, 990, 990)])
def test_sampling_target_logs_every_issued_sample(n: int, upstream: int, want: int) -> None:
    assert sampling_target(n, upstream) == want
    text = audit_config_text("TEST", n, want, {"test09_min_output_tokens": 1.5})
    assert f"*.*.accuracy_log_sampling_target = {want}\n" in text
    assert f"*.*.min_query_count = {n}\n" in text
    assert "*.*.performance_issue_unique = 1\n" in text and "*.*.mode = 2\n" in text
    assert text.endswith("*.*.test09_min_output_tokens = 1.5\n")


def test_bounds_follow_a_sut_that_shortens_its_reasoning(tmp_path: Path) -> None:
    """The quick sim declares reasoning_scale 0.1: the bounds move with the reference mean at that scale."""
    import json

    from compliance import scaled_bounds, sut_scaled_bounds
    from scenarios import resolve_dataset

    full = resolve_dataset("reasoning:gpt-oss-120b")
    short = resolve_dataset("reasoning:gpt-oss-120b:0.1")
    n = len(full)
    ratio = sum(len(r) for r in short.reference_ids) / sum(len(r) for r in full.reference_ids)
    got = scaled_bounds((1150.38, 1406.02), "reasoning:gpt-oss-120b", 0.1, n)
    assert got is not None
    (lo, hi), note = got
    assert (lo, hi) == (round(1150.38 * ratio, 2), round(1406.02 * ratio, 2))
    mean_short = sum(len(r) for r in short.reference_ids) / n
    assert lo <= mean_short <= hi  # the scaled sim's own outputs pass
    assert "reasoning_scale 0.1" in note and "not MLPerf's bounds" in note
    assert scaled_bounds((1150.38, 1406.02), "reasoning:gpt-oss-120b:0.1", 0.1, n) == got  # a spec with its own scale
    assert scaled_bounds((1.0, 2.0), "embedded", 0.1, n) is None
    # From the pass's artifact.json: no declaration, or a full-length reasoning artifact, keeps the bounds.
    assert sut_scaled_bounds((1150.38, 1406.02), tmp_path, "reasoning:gpt-oss-120b", n) == ((1150.38, 1406.02), "")
    (tmp_path / "artifact.json").write_text(json.dumps({"reasoning": {"style": "harmony", "reasoning_scale": 1.0}}))
    assert sut_scaled_bounds((1150.38, 1406.02), tmp_path, "reasoning:gpt-oss-120b", n)[1] == ""
    (tmp_path / "artifact.json").write_text(json.dumps({"reasoning": {"style": "harmony", "reasoning_scale": 0.1}}))
    assert sut_scaled_bounds((1150.38, 1406.02), tmp_path, "reasoning:gpt-oss-120b", n) == got
    unscalable = sut_scaled_bounds((1150.38, 1406.02), tmp_path, "my.jsonl", n)
    assert unscalable[0] == (1150.38, 1406.02) and "has no reference at that scale" in unscalable[1]
