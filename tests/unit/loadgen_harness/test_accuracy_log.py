"""The harness's one reader and encoder of mlperf_log_accuracy.json, which accuracy and compliance share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common import UsageError
from loadgen_harness import (
    ACCURACY_LOG_FILE,
    decode_tokens,
    encode_tokens,
    read_accuracy_log_entries,
    write_accuracy_log,
)


class _OwnError(ValueError):
    pass


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_encode_decode_round_trip(dtype: str) -> None:
    ids = [0, 1, 2**31 - 1]
    hex_text = encode_tokens(ids, dtype)  # type: ignore[arg-type]
    assert hex_text == hex_text.upper()
    assert decode_tokens(hex_text, dtype).tolist() == ids  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "reason"),
    [(5, "expected a hex string, got int"), ("zz", "not valid hex"), ("0102", "2 bytes is not a whole number")],
)
def test_decode_says_why_not(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_tokens(value)


def test_written_log_reads_back_from_its_run_directory(tmp_path: Path) -> None:
    write_accuracy_log(tmp_path / ACCURACY_LOG_FILE, [np.array([3, 4]), np.array([], dtype=np.int32)])
    entries = read_accuracy_log_entries(tmp_path)
    assert [e["qsl_idx"] for e in entries] == [0, 1]
    assert decode_tokens(entries[0]["data"]).tolist() == [3, 4] and entries[1]["data"] == ""


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "accuracy log not found"),
        ("{not json", "cannot read the accuracy log"),
        ('{"a": 1}', "expected a JSON list"),
        ("[1]", "entry 0: expected an object, got int"),
    ],
)
def test_bad_logs_raise_the_callers_error_naming_the_file(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "log.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=needle) as info:
        read_accuracy_log_entries(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    with pytest.raises(_OwnError, match=needle):
        read_accuracy_log_entries(path, _OwnError)


def test_entries_keep_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.write_text(json.dumps([{"seq_id": 0, "qsl_idx": 7, "data": "", "token_count": 0}]))
    assert read_accuracy_log_entries(path)[0]["token_count"] == 0
