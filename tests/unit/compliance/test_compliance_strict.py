"""Strict checks on hand-built logs and per-query records: each fails on its planted fault only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compliance import encode_tokens, parse_accuracy_log, strict_checks
from loadgen_harness._records import QUERY_RECORD_DTYPE, QueryRecords, load_query_records

EOS = 5


def samples(*outputs: list[int]) -> list:  # type: ignore[type-arg]
    log = [
        {"seq_id": i, "qsl_idx": i, "data": encode_tokens(o), "token_data": encode_tokens(o[:1]), "token_count": len(o)}
        for i, o in enumerate(outputs)
    ]
    return parse_accuracy_log(log)


def clean_records(n: int = 8) -> np.ndarray:
    r = np.zeros(n, dtype=QUERY_RECORD_DTYPE)
    r["sample_index"] = np.arange(n)
    r["issue_ns"] = np.arange(n) * 1000
    r["first_token_ns"] = r["issue_ns"] + 500
    r["done_ns"] = r["issue_ns"] + 900
    r["n_tokens"] = 12
    r["n_streamed"] = 12
    r["n_chunks"] = 3
    r["first_chunk_tokens"] = 1
    r["status"] = 0
    r["sut_arrival_ns"] = 10_000
    r["sut_first_token_ns"] = 10_400
    r["sut_last_token_ns"] = 10_800
    r["stream_matches_output"] = True
    return r


CLEAN = ([1, 2, 3, EOS], [4, 3, 2], [9, EOS])


def test_clean_passes_every_strict_check() -> None:
    report = strict_checks(samples(*CLEAN), EOS, clean_records())
    assert report.passed and report.failed_checks() == set()
    assert all(c.status == "pass" for c in report.checks)


def test_mid_sequence_eos_fails_strict_eos_only() -> None:
    report = strict_checks(samples(CLEAN[0], [1, EOS, 2, EOS]), EOS, clean_records())
    assert report.failed_checks() == {"strict_eos"}
    assert report.check("strict_eos").failures[0].reason == "EOS (id 5) at position(s) [1, 3] of 4 tokens"


def test_single_mid_eos_and_duplicate_trailing_eos_fail_strict_eos() -> None:
    assert strict_checks(samples([1, EOS, 2]), EOS, None).failed_checks() == {"strict_eos"}
    assert strict_checks(samples([1, 2, EOS, EOS]), EOS, None).failed_checks() == {"strict_eos"}
    # Ending without EOS (max_new_tokens reached) is fine.
    assert strict_checks(samples([1, 2, 3]), EOS, None).failed_checks() == set()


@pytest.mark.parametrize(
    ("field", "value", "check", "reason"),
    [
        ("stream_matches_output", False, "stream_matches_output", "streamed tokens differ"),
        ("n_tokens", 13, "token_count", "SUT reported 13 tokens but streamed 12"),
        ("first_chunk_tokens", 8, "first_token_alone", "first message carried 8 tokens"),
        ("sut_first_token_ns", 9_000, "first_token_timing", "0.001 ms before arrival"),
        ("sut_arrival_ns", -1, "first_token_timing", "did not report"),
        ("status", 14, "queries_ok", "status 14 (UNAVAILABLE)"),
    ],
)
def test_each_record_fault_fails_exactly_its_check(field: str, value: object, check: str, reason: str) -> None:
    rec = clean_records()
    rec[5][field] = value
    report = strict_checks(samples(*CLEAN), EOS, rec)
    assert report.failed_checks() == {check}
    result = report.check(check)
    assert result.n_failed == 1 and result.failures[0].qsl_idx == 5
    assert reason in result.failures[0].reason
    assert not report.passed and check in report.message


def test_records_round_trip_through_queries_npz(tmp_path: Path) -> None:
    # The strict checks read what the harness writes: build it with the harness's own writer.
    qr = QueryRecords(capacity=4)
    for i in range(6):
        row = qr.slot(i, i * 100)
        qr.n_tokens[row] = qr.n_streamed[row] = 10
        qr.first_chunk_tokens[row] = 2 if i == 3 else 1
        qr.status[row] = 0
        qr.sut_arrival_ns[row], qr.sut_first_token_ns[row] = 50, 60
        qr.stream_matches_output[row] = True
    qr.save(tmp_path)
    report = strict_checks(samples(*CLEAN), EOS, load_query_records(tmp_path))
    assert report.failed_checks() == {"first_token_alone"}
    assert report.check("first_token_alone").failures[0].qsl_idx == 3


def test_nothing_to_check_is_not_a_pass() -> None:
    report = strict_checks([], EOS, None)
    assert not report.passed and "nothing to check" in report.message
