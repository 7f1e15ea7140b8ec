"""common's file helpers: atomic writes leave either the old file or the whole new one, and no temp files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from common import (
    UsageError,
    atomic_path,
    file_sha256,
    read_json,
    read_json_object,
    read_model,
    write_atomic,
    write_json_atomic,
)


def test_write_atomic_creates_parents_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    assert write_atomic(target, "héllo\n") == target
    assert target.read_bytes() == "héllo\n".encode()
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_write_atomic_honours_the_umask_like_a_plain_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_write_json_atomic_options(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "s.json", {"b": 1, "a": 2}, sort_keys=True)
    assert (tmp_path / "s.json").read_text() == json.dumps({"a": 2, "b": 1}, indent=2) + "\n"


def test_atomic_path_renames_on_success_and_cleans_up_on_error(tmp_path: Path) -> None:
    target = tmp_path / "q.npz"
    with atomic_path(target, suffix=".tmp.npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.npz")
        np.savez_compressed(tmp, x=np.arange(3))
    with np.load(target) as z:
        assert z["x"].tolist() == [0, 1, 2]

    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.npz"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "report not found"), ("{", "cannot read report"), ("[1]", "expected a JSON object in the report")],
)
def test_read_json_object_errors_name_the_file(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError) as info:
        read_json_object(path, "report")
    assert str(info.value).startswith(str(path)) and expected in str(info.value)
    assert "\n" not in str(info.value)


class _OwnError(ValueError):
    pass


def test_read_json_raises_the_callers_error_type(tmp_path: Path) -> None:
    with pytest.raises(_OwnError, match=r"r\.json: run results not found"):
        read_json_object(tmp_path / "r.json", "run results", _OwnError)
    (tmp_path / "l.json").write_text("[1, 2]")
    assert read_json(tmp_path / "l.json") == [1, 2]
    assert file_sha256(tmp_path / "l.json") == hashlib.sha256(b"[1, 2]").hexdigest()


def test_read_model_names_the_file_and_the_field(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Report(BaseModel):
        passed: bool

    path = tmp_path / "report.json"
    with pytest.raises(_OwnError, match=r"report\.json: cannot read the report \(FileNotFoundError\)"):
        read_model(path, Report, "the report", _OwnError)
    path.write_text('{"passed": "maybe"}')
    with pytest.raises(UsageError, match=r"report\.json \(the report\): field 'passed'"):
        read_model(path, Report, "the report")
    path.write_text('{"passed": true}')
    assert read_model(path, Report, "the report").passed
