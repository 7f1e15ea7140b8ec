"""Trace replay: Mooncake JSONL, Azure and BurstGPT CSV parsed into exact due times and prompts, streamed.

Due times are checked to the nanosecond against hand-computed values: timestamps are decimals, the
speed factor is the decimal it is written as, and ``due = round((t - t_first) / speed)`` rounds to the
nearest ns, halves to even. Every bad line names file, line and field.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import scenarios._traces as traces_module
from common import UsageError
from scenarios import TraceError, TraceRequest, TraceSpec, check_trace, iter_trace

AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BURST = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _mooncake(path: Path, rows: list[dict[str, object]]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


def _replay(path: Path, **kw: object) -> list[TraceRequest]:
    return list(iter_trace(TraceSpec(path=path, **kw)))  # type: ignore[arg-type]


def _dues(path: Path, **kw: object) -> list[int]:
    return [r.due_ns for r in _replay(path, **kw)]


# ---- each format parsed -----------------------------------------------------------------------------
def test_mooncake_rows_become_requests_with_exact_ms_due_times(tmp_path: Path) -> None:
    path = _mooncake(
        tmp_path / "t.jsonl",
        [
            {"timestamp": 1000, "input_length": 20, "output_length": 5, "hash_ids": [0, 1, 2]},
            {"timestamp": 1000.5, "input_length": 8, "output_length": 3, "hash_ids": [0]},
            {"timestamp": 3052.000001, "input_length": 7, "output_length": 1, "hash_ids": [9]},
        ],
    )
    reqs = _replay(path, block_tokens=8)
    assert [r.due_ns for r in reqs] == [0, 500_000, 2_052_000_001]
    assert [r.line for r in reqs] == [1, 2, 3]
    assert [r.output_tokens for r in reqs] == [5, 3, 1]
    assert [r.input_ids.size for r in reqs] == [20, 8, 7]
    for r in reqs:
        assert r.input_ids.dtype == np.int32
        # the synthetic datasets' word ids, so the sim and the synthetic decoder take them
        assert r.input_ids.min() >= 4 and r.input_ids.max() < 4 + 2048


def test_azure_100ns_steps_are_exact_and_speed_3_rounds_half_to_even(tmp_path: Path) -> None:
    stamps = [f"2023-11-16 18:15:46.680590{d}" for d in range(4)]  # 0, 100, 200, 300 ns apart
    path = _write(tmp_path / "az.csv", AZURE + "".join(f"{s},100,20\n" for s in stamps))
    assert _dues(path) == [0, 100, 200, 300]
    # 100/3 = 33.33 -> 33, 200/3 = 66.67 -> 67, 300/3 = 100 exactly
    assert _dues(path, speed=3.0) == [0, 33, 67, 100]
    summary = check_trace(TraceSpec(path=path))
    assert (summary.format, summary.n_requests, summary.input_tokens_mean, summary.output_tokens_mean) == (
        "azure",
        4,
        100.0,
        20.0,
    )
    assert summary.prefix_blocks_total == 0


def test_azure_timestamps_cross_midnight_and_zones_exactly(tmp_path: Path) -> None:
    rows = [
        "2023-12-31 23:59:59.9999999",
        "2024-01-01 00:00:00.0000001",  # 200 ns later, across a year boundary
        "2024-01-01T01:00:00.0000001+01:00",  # the same instant written in another zone
        "2024-01-01 00:00:01Z",
    ]
    path = _write(tmp_path / "az.csv", AZURE + "".join(f"{s},5,1\n" for s in rows))
    assert _dues(path) == [0, 200, 200, 1_000_000_100]


def test_burstgpt_decimal_seconds_and_failed_rows_skipped_and_counted(tmp_path: Path) -> None:
    rows = [
        "1700000000.123456789,ChatGPT,10,5,15,Conversation log",
        "1700000000.123456790,ChatGPT,10,0,10,Conversation log",  # failed: no response
        "1700000000.123456791,GPT-4,472,18,490,API log",  # 2 ns after the first: a float would lose it
        "1700000001,GPT-4,0,0,0,API log",  # failed, with no request either
        "1700000002.5,ChatGPT,3,2,5,Conversation log",
    ]
    path = _write(tmp_path / "b.csv", BURST + "\n".join(rows) + "\n")
    reqs = _replay(path)
    assert [r.due_ns for r in reqs] == [0, 2, 2_376_543_211]
    assert [r.line for r in reqs] == [2, 4, 6]
    assert [r.output_tokens for r in reqs] == [5, 18, 2]
    summary = check_trace(TraceSpec(path=path))
    assert (summary.format, summary.n_requests, summary.skipped_rows) == ("burstgpt", 3, 2)
    assert summary.span_s == pytest.approx(2.376543211)


def test_gzipped_trace_and_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"timestamp": 0, "input_length": 3, "output_length": 2}\n')
        fh.write('{"timestamp": 2, "input_length": 3, "output_length": 2}\n')
    assert _dues(path) == [0, 2_000_000]
    plain = _write(tmp_path / "trace.txt", AZURE + "2024-01-01 00:00:00,4,4\n")
    assert _dues(plain, format="azure") == [0]
    with pytest.raises(TraceError, match=r"trace\.txt: format: expected .*got '\.txt'"):
        check_trace(TraceSpec(path=plain))


# ---- timing: speed, rounding, duration, rate cap ---------------------------------------------------
def test_speed_rounds_to_nearest_ns_halves_to_even(tmp_path: Path) -> None:
    rows = [f"0.00000000{i},m,1,1,2,x" for i in range(6)]  # 0..5 ns
    path = _write(tmp_path / "b.csv", BURST + "\n".join(rows) + "\n")
    assert _dues(path, speed=2.0) == [0, 0, 1, 2, 2, 2]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
    assert _dues(path, speed=0.5) == [0, 2, 4, 6, 8, 10]
    assert _dues(path, speed=1.1) == [0, 1, 2, 3, 4, 5]  # 5 / 1.1 = 4.545... -> 5
    # 1.1 is 11/10, the decimal as written: 3.85 ns / 1.1 = 3.5 exactly -> 4 (even). Divided by the double
    # nearest 1.1 (a little more) it would be 3.4999... -> 3. The sub-ns timestamp is kept exactly too.
    sub_ns = _write(tmp_path / "sub.csv", BURST + "0,m,1,1,2,x\n0.00000000385,m,1,1,2,x\n")
    assert _dues(sub_ns, speed=1.1) == [0, 4]
    assert _dues(sub_ns) == [0, 4]  # 3.85 ns -> 4
    # Six years of trace in ns is past a double's 53 bits: the division is done in integers.
    long = _write(tmp_path / "long.csv", BURST + "0,m,1,1,2,x\n200000000.000000001,m,1,1,2,x\n")
    assert _dues(long, speed=3.0) == [0, 66_666_666_666_666_667]


def test_duration_counts_replay_time_after_speed(tmp_path: Path) -> None:
    path = _mooncake(
        tmp_path / "t.jsonl", [{"timestamp": s * 1000, "input_length": 1, "output_length": 1} for s in range(5)]
    )
    assert _dues(path, duration_s=2.0) == [0, 1_000_000_000, 2_000_000_000]  # due == duration is still sent
    assert _dues(path, duration_s=1.999999999) == [0, 1_000_000_000]
    assert _dues(path, speed=2.0, duration_s=1.0) == [0, 500_000_000, 1_000_000_000]
    summary = check_trace(TraceSpec(path=path, duration_s=2.0))
    assert (summary.n_requests, summary.rows_past_duration, summary.span_s) == (3, 2, 2.0)


def test_max_rate_spaces_due_times_by_at_least_one_over_rate(tmp_path: Path) -> None:
    stamps = [0, 0, 0, 0, 5000, 5000]  # ms
    path = _mooncake(tmp_path / "t.jsonl", [{"timestamp": t, "input_length": 1, "output_length": 1} for t in stamps])
    # ceil(1e9 / 3) = 333333334 ns, so no two requests are ever closer than 1/3 s
    gap = 333_333_334
    assert _dues(path, max_rate=3.0) == [0, gap, 2 * gap, 3 * gap, 5_000_000_000, 5_000_000_000 + gap]
    assert _dues(path, max_rate=0.5, duration_s=5.0) == [0, 2_000_000_000, 4_000_000_000]


def test_spec_fields_are_validated() -> None:
    for bad in ({"speed": 0}, {"speed": float("inf")}, {"max_rate": -1.0}, {"duration_s": 0}, {"block_tokens": 0}):
        with pytest.raises(ValidationError):
            TraceSpec(path=Path("t.jsonl"), **bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TraceSpec(path=Path("t.jsonl"), format="sharegpt")  # type: ignore[arg-type]


# ---- prompts --------------------------------------------------------------------------------------
def test_shared_hash_ids_give_identical_prefixes_and_different_ids_different_blocks(tmp_path: Path) -> None:
    bt = 16
    rows = [
        {"timestamp": 0, "input_length": 40, "output_length": 1, "hash_ids": [0, 1, 2]},
        {"timestamp": 1, "input_length": 48, "output_length": 1, "hash_ids": [0, 1, 3]},
        {"timestamp": 2, "input_length": 35, "output_length": 1, "hash_ids": [0, 1, 2]},  # block 2 cut to 3 tokens
        {"timestamp": 3, "input_length": 32, "output_length": 1, "hash_ids": [4, 1]},
    ]
    a, b, c, d = (r.input_ids for r in _replay(_mooncake(tmp_path / "t.jsonl", rows), block_tokens=bt))
    assert np.array_equal(a[: 2 * bt], b[: 2 * bt])
    assert not np.array_equal(a[2 * bt : 40], b[2 * bt : 40])  # ids 2 and 3 differ
    assert np.array_equal(c, a[:35])  # the last block is the same block, cut
    assert not np.array_equal(d[:bt], a[:bt])
    assert np.array_equal(d[bt:], a[bt : 2 * bt])  # equal id -> equal tokens, wherever it stands
    again = _replay(_mooncake(tmp_path / "u.jsonl", rows), block_tokens=bt)
    assert all(np.array_equal(x.input_ids, y) for x, y in zip(again, (a, b, c, d), strict=True))
    other_seed = _replay(_mooncake(tmp_path / "v.jsonl", rows), block_tokens=bt, seed=1)
    assert not np.array_equal(other_seed[0].input_ids, a)


def test_prompts_without_hash_ids_are_unique_per_line_and_deterministic(tmp_path: Path) -> None:
    path = _write(tmp_path / "az.csv", AZURE + "2024-01-01 00:00:00,600,4\n" * 3)
    first = [r.input_ids for r in _replay(path)]
    assert [p.size for p in first] == [600, 600, 600]
    assert not np.array_equal(first[0][:16], first[1][:16])
    assert all(np.array_equal(x.input_ids, y) for x, y in zip(_replay(path), first, strict=True))


def test_summary_counts_reused_prefix_blocks(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 0, "input_length": 20, "output_length": 2, "hash_ids": [0, 1, 2]},
        {"timestamp": 1, "input_length": 20, "output_length": 0, "hash_ids": [0, 1, 7]},  # skipped: no output
        {"timestamp": 2, "input_length": 16, "output_length": 4, "hash_ids": [0, 1]},
        {"timestamp": 3, "input_length": 24, "output_length": 4, "hash_ids": [0, 5, 6]},
    ]
    summary = check_trace(TraceSpec(path=_mooncake(tmp_path / "t.jsonl", rows), block_tokens=8))
    assert (summary.n_requests, summary.skipped_rows) == (3, 1)
    assert (summary.prefix_blocks_total, summary.prefix_blocks_reused, summary.reuse_exact) == (8, 3, True)
    assert (summary.input_tokens_max, summary.output_tokens_max) == (24, 4)
    assert summary.input_tokens_mean == 20.0


def test_reuse_tracking_stops_at_its_bound_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(traces_module, "MAX_TRACKED_IDS", 3)
    rows = [{"timestamp": i, "input_length": 2, "output_length": 1, "hash_ids": [i % 5]} for i in range(10)]
    summary = check_trace(TraceSpec(path=_mooncake(tmp_path / "t.jsonl", rows), block_tokens=2))
    # ids 0, 1, 2 are tracked; 3 and 4 are not, so their reuse is missed: 3 of 5, a lower bound, marked as such
    assert (summary.prefix_blocks_reused, summary.reuse_exact) == (3, False)


# ---- bad input --------------------------------------------------------------------------------------
_OK = '{"timestamp": 0, "input_length": 4, "output_length": 2, "hash_ids": [1]}\n'


@pytest.mark.parametrize(
    ("line", "field", "detail"),
    [
        ('{"timestamp": 1, "input_length": 4,', "line", "invalid JSON"),
        ("[1, 2]", "line", "a JSON object, got [1, 2]"),
        ('{"input_length": 4, "output_length": 2}', "timestamp", "got nothing (field missing)"),
        ('{"timestamp": "soon", "input_length": 4, "output_length": 2}', "timestamp", "got 'soon'"),
        ('{"timestamp": NaN, "input_length": 4, "output_length": 2}', "timestamp", "got NaN"),
        ('{"timestamp": 1, "input_length": true, "output_length": 2}', "input_length", "got True"),
        ('{"timestamp": 1, "input_length": 4.0, "output_length": 2}', "input_length", "got 4.0"),
        ('{"timestamp": 1, "input_length": 0, "output_length": 2}', "input_length", "integer 1..16777216, got 0"),
        ('{"timestamp": 1, "input_length": 4, "output_length": -3}', "output_length", "got -3"),
        ('{"timestamp": 1, "input_length": 4, "output_length": 2, "hash_ids": 5}', "hash_ids", "a list"),
        ('{"timestamp": 1, "input_length": 4, "output_length": 2, "hash_ids": [-1]}', "hash_ids[0]", "got -1"),
        (
            '{"timestamp": 1, "input_length": 9, "output_length": 2, "hash_ids": [1]}',
            "hash_ids",
            "3 ids (input_length 9 in blocks of 4",
        ),
        ('{"timestamp": -1, "input_length": 4, "output_length": 2}', "timestamp", "non-decreasing"),
    ],
)
def test_bad_mooncake_lines_name_file_line_and_field(tmp_path: Path, line: str, field: str, detail: str) -> None:
    path = _write(tmp_path / "t.jsonl", _OK + "\n" + line + "\n" + _OK)
    for read in (check_trace, lambda spec: list(iter_trace(spec))):
        with pytest.raises(
            TraceError, match=rf"^{re.escape(f'{path}:3: {field}: expected ')}.*{re.escape(detail)}"
        ) as err:
            read(TraceSpec(path=path, block_tokens=4))
        assert "\n" not in str(err.value)
        assert isinstance(err.value, UsageError)


@pytest.mark.parametrize(
    ("row", "field", "detail"),
    [
        ("2024-01-01 00:00:01.5,10,5,extra", "row", "3 columns"),
        ("yesterday,10,5", "TIMESTAMP", "a date-time"),
        ("2024-02-30 00:00:01,10,5", "TIMESTAMP", "got '2024-02-30 00:00:01'"),
        ("2024-01-01 25:00:01,10,5", "TIMESTAMP", "a date-time"),
        ("2024-01-01 00:00:01,-10,5", "ContextTokens", "got '-10'"),
        ("2024-01-01 00:00:01,10,five", "GeneratedTokens", "got 'five'"),
        (
            "2024-01-01 00:00:00.5,10,5",
            "TIMESTAMP",
            r"non-decreasing timestamps \(>= '2024-01-01 00:00:01' on line 2\)",
        ),
    ],
)
def test_bad_azure_rows_name_file_line_and_field(tmp_path: Path, row: str, field: str, detail: str) -> None:
    path = _write(tmp_path / "az.csv", AZURE + "2024-01-01 00:00:01,10,5\n" + row + "\n")
    with pytest.raises(TraceError, match=rf"^{path}:3: {field}: expected .*{detail}"):
        check_trace(TraceSpec(path=path))


@pytest.mark.parametrize(
    ("row", "field", "detail"),
    [
        ("later,ChatGPT,10,5,15,API log", "Timestamp", "a number of seconds, got 'later'"),
        ("5,,10,5,15,API log", "Model", "a model name"),
        ("5,ChatGPT,10,-5,15,API log", "Response tokens", "got '-5'"),
        ("5,ChatGPT,0,5,5,API log", "Request tokens", "integer 1..16777216, got '0'"),
        ("5,ChatGPT,10,5,many,API log", "Total tokens", "got 'many'"),
        ("0.5,ChatGPT,10,5,15,API log", "Timestamp", "non-decreasing"),
    ],
)
def test_bad_burstgpt_rows_name_file_line_and_field(tmp_path: Path, row: str, field: str, detail: str) -> None:
    path = _write(tmp_path / "b.csv", BURST + "1,ChatGPT,10,5,15,API log\n" + row + "\n")
    with pytest.raises(TraceError, match=rf"^{path}:3: {field}: expected .*{detail}"):
        check_trace(TraceSpec(path=path))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.jsonl", "", r"empty.jsonl:1: file: expected at least one request row"),
        ("blank.jsonl", "\n\n", r"blank.jsonl:1: file: expected at least one request row"),
        ("empty.csv", "", r"empty.csv:1: header: expected a CSV header line, got an empty file"),
        ("header.csv", AZURE, r"header.csv:1: file: expected at least one request row"),
        (
            "other.csv",
            "time,prompt,answer\n1,2,3\n",
            r"other.csv:1: header: expected 'TIMESTAMP,.*got 'time,prompt,answer'",
        ),
        ("failed.csv", BURST + "1,m,3,0,3,x\n", r"failed.csv: file: expected at least one request with output"),
    ],
)
def test_empty_and_unknown_files_are_refused(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(TraceError, match=message):
        check_trace(TraceSpec(path=path))
    with pytest.raises(TraceError, match=message):
        list(iter_trace(TraceSpec(path=path)))


def test_missing_file_and_wrong_header_for_the_named_format(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"nope.jsonl: file: expected a trace file, got nothing"):
        check_trace(TraceSpec(path=tmp_path / "nope.jsonl"))
    path = _write(tmp_path / "b.csv", BURST + "1,m,3,2,5,x\n")
    with pytest.raises(TraceError, match=r"b.csv:1: header: expected"):
        check_trace(TraceSpec(path=path, format="azure"))


# ---- bounded ---------------------------------------------------------------------------------------
def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def test_a_million_line_trace_streams_in_bounded_memory(tmp_path: Path) -> None:
    n = 1_000_000
    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        for start in range(0, n, 100_000):
            fh.write(
                "".join(
                    f'{{"timestamp": {i}, "input_length": 12, "output_length": 2, "hash_ids": [{i % 5000}]}}\n'
                    for i in range(start, start + 100_000)
                )
            )
    assert path.stat().st_size > 60_000_000  # held whole (text or requests) it would show in the RSS
    count = checksum = 0
    rss_early = 0
    for req in iter_trace(TraceSpec(path=path, block_tokens=16)):
        count += 1
        checksum ^= req.due_ns
        if count == 50_000:
            rss_early = _rss_bytes()
    growth = _rss_bytes() - rss_early
    assert count == n
    assert checksum == np.bitwise_xor.reduce(np.arange(n, dtype=np.int64) * 1_000_000)
    # 950,000 more requests: kept, they would be hundreds of MB; streamed, the RSS stays where it was
    assert growth < 40 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB while streaming"
