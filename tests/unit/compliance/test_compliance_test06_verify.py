"""TEST06 verification on hand-built accuracy logs: each MLPerf check fails on its planted fault only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compliance import (
    AUDIT_CONFIG_TEXT,
    ComplianceInputError,
    audit_problem,
    encode_tokens,
    load_accuracy_log,
    parse_accuracy_log,
    verify_log,
    verify_test06,
    write_audit_config,
)

EOS = 7  # deliberately not 2: the id must come from the artifact, never a constant


def entry(i: int, data: list[int], first: list[int] | None = None, count: int | None = None) -> dict[str, object]:
    e: dict[str, object] = {"seq_id": i, "qsl_idx": 100 + i, "data": encode_tokens(data)}
    e["token_data"] = encode_tokens(data[:1] if first is None else first)
    e["token_count"] = len(data) if count is None else count
    return e


def clean_log(n: int = 6) -> list[dict[str, object]]:
    return [entry(i, [11 + i, 12, 13, 14, EOS]) for i in range(n)]


def failing(report: object) -> set[str]:
    return {c.name for c in report.checks if not c.passed}  # type: ignore[attr-defined]


def test_clean_log_passes_with_mlperf_lines() -> None:
    report = verify_test06(parse_accuracy_log(clean_log()), "Server", EOS)
    assert report.passed and report.mlperf_passed
    assert report.verify_text == (
        "First token check pass: True\n"
        "EOS check pass: True\n"
        "Sample length check pass: True\n"
        "TEST06 verification complete\n"
    )


def test_duplicate_trailing_eos_fails_only_eos() -> None:
    log = clean_log()
    log[3] = entry(3, [5, 6, EOS, EOS])
    report = verify_test06(parse_accuracy_log(log), "Server", EOS)
    assert failing(report) == {"eos"}
    assert report.verify_lines[1] == "EOS check pass: False"
    assert report.verify_lines[3] == "TEST06 verification failed"
    eos = report.check("eos")
    assert eos.n_failed == 1 and eos.failures[0].qsl_idx == 103
    assert "2 EOS tokens (id 7)" in eos.failures[0].reason


def test_eos_id_comes_from_the_caller() -> None:
    # Two trailing 2s are fine when EOS is 7, and fail when the artifact says EOS is 2.
    log = [entry(0, [5, 6, 2, 2])]
    assert verify_test06(parse_accuracy_log(log), "Server", EOS).passed
    assert failing(verify_test06(parse_accuracy_log(log), "Server", 2)) == {"eos"}


def test_mid_sequence_eos_passes_mlperf_eos() -> None:
    log = clean_log()
    log[0] = entry(0, [5, EOS, 6, EOS])
    assert verify_test06(parse_accuracy_log(log), "Server", EOS).passed


def test_mlperf_eos_walk_stops_before_index_zero() -> None:
    # MLPerf's loop runs while i > 0: [EOS, EOS] counts one trailing EOS and passes; three fail.
    assert verify_test06(parse_accuracy_log([entry(0, [EOS, EOS])]), "Server", EOS).passed
    assert failing(verify_test06(parse_accuracy_log([entry(0, [EOS, EOS, EOS])]), "Server", EOS)) == {"eos"}


def test_wrong_first_token_fails_only_first_token() -> None:
    log = clean_log()
    log[2] = entry(2, [5, 6, EOS], first=[9])
    report = verify_test06(parse_accuracy_log(log), "Server", EOS)
    assert failing(report) == {"first_token"}
    assert report.verify_lines[0] == "First token check pass: False"
    assert report.check("first_token").failures[0].reason == "token_data[0] = 9 but data[0] = 5"


def test_first_token_is_a_prefix_compare_and_skipped_offline() -> None:
    log = clean_log()
    log[1] = entry(1, [5, 6, EOS], first=[5, 6])  # several first tokens, all a prefix: pass
    assert verify_test06(parse_accuracy_log(log), "Server", EOS).passed
    log[1] = entry(1, [5, 6, EOS], first=[5, 9])
    report = verify_test06(parse_accuracy_log(log), "Offline", EOS)
    assert report.passed and report.check("first_token").status == "skipped"
    assert report.verify_lines[0] == "First token check pass: Skipped"


def test_token_count_off_by_one_fails_only_length() -> None:
    log = clean_log()
    log[4] = entry(4, [5, 6, EOS], count=4)
    report = verify_test06(parse_accuracy_log(log), "Server", EOS)
    assert failing(report) == {"sample_length"}
    assert report.verify_lines[2] == "Sample length check pass: False"
    assert report.check("sample_length").failures[0].reason == "data has 3 tokens but token_count is 4"


def test_missing_fields_fail_the_checks_that_need_them() -> None:
    log = clean_log(2)
    del log[0]["token_data"]
    del log[1]["token_count"]
    report = verify_test06(parse_accuracy_log(log), "Server", EOS)
    assert failing(report) == {"first_token", "sample_length"}
    assert report.check("first_token").failures[0].reason == "no 'token_data' field"


def test_empty_log_is_not_a_pass() -> None:
    report = verify_test06([], "Server", EOS)
    assert report.mlperf_passed and not report.passed  # MLPerf's lines say True; lpuperf does not
    assert "no samples" in report.message


def test_bad_log_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ComplianceInputError, match="accuracy log not found"):
        load_accuracy_log(tmp_path / "missing.json")
    bad = tmp_path / "mlperf_log_accuracy.json"
    bad.write_text("{not json")
    with pytest.raises(ComplianceInputError, match="cannot read the accuracy log"):
        load_accuracy_log(bad)
    bad.write_text('{"a": 1}')
    with pytest.raises(ComplianceInputError, match="expected a JSON list"):
        load_accuracy_log(bad)
    bad.write_text(json.dumps([{"seq_id": 0, "qsl_idx": 0, "data": "ABC", "token_count": 1}]))
    samples = load_accuracy_log(bad)
    assert "not valid hex" in samples[0].data_error or "whole number" in samples[0].data_error


def test_verify_log_writes_the_submission_layout(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "mlperf_log_accuracy.json").write_text(json.dumps(clean_log()))
    (run / "artifact.json").write_text(json.dumps({"artifact_id": "x", "eos_token_id": EOS}))
    out = tmp_path / "Server" / "TEST06"
    outcome = verify_log(run / "mlperf_log_accuracy.json", "Server", out)
    assert outcome.test06.passed and outcome.test06.eos_token_id == EOS
    assert (out / "verify_accuracy.txt").read_bytes() == outcome.test06.verify_text.encode()
    copied = out / "accuracy" / "mlperf_log_accuracy.json"
    assert copied.read_bytes() == (run / "mlperf_log_accuracy.json").read_bytes()
    report = json.loads((out / "test06_report.json").read_text())
    assert report["passed"] is True and report["n_samples"] == 6
    # Without queries.npz the per-query strict checks are skipped, strict EOS still runs.
    strict = json.loads((out / "strict_report.json").read_text())
    assert {c["name"]: c["status"] for c in strict["checks"]}["strict_eos"] == "pass"


def test_verify_log_needs_an_eos_source(tmp_path: Path) -> None:
    (tmp_path / "mlperf_log_accuracy.json").write_text(json.dumps(clean_log()))
    with pytest.raises(ComplianceInputError, match="--eos-id"):
        verify_log(tmp_path / "mlperf_log_accuracy.json", "Server", tmp_path / "TEST06")
    (tmp_path / "artifact.json").write_text(json.dumps({"artifact_id": "x"}))
    with pytest.raises(ComplianceInputError, match="field 'eos_token_id'"):
        verify_log(tmp_path / "mlperf_log_accuracy.json", "Server", tmp_path / "TEST06")


def test_audit_config_holds_test06_settings(tmp_path: Path) -> None:
    path = write_audit_config(tmp_path)
    assert path.read_text() == AUDIT_CONFIG_TEXT
    keys = {
        line.split("=")[0].strip(): line.split("=")[1].strip()
        for line in AUDIT_CONFIG_TEXT.splitlines()
        if line and not line.startswith("#")
    }
    assert keys == {
        "*.*.mode": "2",
        "*.*.accuracy_log_rng_seed": "720381539243781796",
        "*.*.accuracy_log_sampling_target": "100",
        "*.*.min_query_count": "100",
        "*.*.min_duration": "0",
        "*.*.sample_concatenate_permutation": "0",
    }


def _detail_log(path: Path, **override: object) -> Path:
    values: dict[str, object] = {
        "effective_test_mode": "PerformanceOnly",
        "effective_accuracy_log_sampling_target": 100,
        "effective_accuracy_log_rng_seed": 720381539243781796,
        "effective_min_query_count": 100,
        "effective_sample_concatenate_permutation": False,
        "effective_min_duration_ms": 0,
    } | override
    lines = [f":::MLLOG {json.dumps({'key': k, 'value': v, 'time_ms': 1.0})}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_audit_settings_are_confirmed_from_the_detail_log(tmp_path: Path) -> None:
    assert audit_problem(_detail_log(tmp_path / "ok.txt")) == ""
    bad = audit_problem(_detail_log(tmp_path / "bad.txt", effective_accuracy_log_sampling_target=0))
    assert "effective_accuracy_log_sampling_target = 0 (expected 100)" in bad
    assert "not found" in audit_problem(tmp_path / "missing.txt")
    # Offline runs one query: LoadGen reports min_query_count 1 and the 100 as samples per query.
    offline = _detail_log(tmp_path / "off.txt", effective_min_query_count=1, effective_samples_per_query=100)
    assert audit_problem(offline, "Offline") == ""
    assert "min_query_count = 1" in audit_problem(offline, "Server")
    short = _detail_log(tmp_path / "short.txt", effective_min_query_count=1, effective_samples_per_query=10)
    assert "effective_samples_per_query = 10 (expected >= 100)" in audit_problem(short, "Offline")


def test_unreadable_sample_labels_do_not_crash_the_parse() -> None:
    log = clean_log(3)
    log[0]["seq_id"] = [1, 2]
    log[1]["qsl_idx"] = {"x": 1}
    log[2]["qsl_idx"] = "102"
    samples = parse_accuracy_log(log)
    assert [(s.seq_id, s.qsl_idx) for s in samples] == [(0, 100), (1, -1), (2, 102)]
    assert verify_test06(samples, "Server", EOS).passed
