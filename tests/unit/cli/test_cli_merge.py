"""``lpuperf run --shard/--start-at`` refusals and ``lpuperf merge`` from the command line: one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from tests.unit.workflows.test_merge_shards import _shard


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--scenario", "Server", "--shard", "0/3"], "--shard: a LoadGen scenario runs as one LoadGen"),
        (["--shard", "1/2"], "--shard: a LoadGen scenario runs as one LoadGen and cannot be sharded"),
        (["--start-at", "1500000000"], "--start-at: a LoadGen scenario"),
        (["--load", "rate:5", "--shard", "3/3"], "argument --shard: --shard 3/3: the index counts from 0"),
        (["--load", "rate:5", "--start-at", "noon"], "argument --start-at: expected an ISO 8601 time"),
        (["--load", "concurrency:2", "--shard", "2/3"], "--shard 2/3: concurrency 2 is fewer than the 3 shards"),
    ],
)
def test_bad_shard_flags_are_one_line_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["run", "--out", str(tmp_path / "out"), "--no-record", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert needle in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_merge_prints_the_shard_table_and_writes_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = [str(_shard(tmp_path, i)) for i in range(3)]
    rc = main(["merge", *dirs, "--out", str(tmp_path / "out"), "--run-id", "m", "--no-record"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "sharded: not an MLPerf LoadGen run: 3 shards, common window" in out
    assert "  shard 2 h2: 120 queries (0 failed)" in out
    assert (tmp_path / "out" / "m" / "Rate" / "performance" / "results.json").is_file()


def test_merge_of_a_missing_shard_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = [str(_shard(tmp_path, i)) for i in range(2)]
    rc = main(["merge", *dirs, "--out", str(tmp_path / "out"), "--no-record"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == "lpuperf merge: error: shard 2/3 missing: 2 of 3 shards given"


def test_a_merged_run_is_read_by_report_compare_gate_and_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = [str(_shard(tmp_path, i, latency_ms=80.0 + 40 * i)) for i in range(3)]
    out = tmp_path / "out"
    assert main(["merge", *dirs, "--out", str(out), "--run-id", "m"]) == 0  # recorded in out/lpuperf.db
    merged = out / "m" / "Rate" / "performance"
    assert main(["report", str(merged)]) == 0
    page = (merged / "report.html").read_text(encoding="utf-8")
    assert 'id="shards-table"' in page and "sharded: not an MLPerf LoadGen run" in page
    assert page.count("<tr>") >= 4
    assert main(["compare", dirs[0], str(merged), "--force"]) in (0, 1)
    assert main(["gate", str(merged), "--slo", "latency-only", "--no-record"]) in (0, 1)
    assert (merged / "gate.json").is_file()
    capsys.readouterr()
    assert main(["history", "list", "--out", str(out), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["command"], row["run_id"], row["load_kind"], row["scenario"]) == ("merge", "m", "rate", "Rate")
    assert row["metrics"]  # the merged figures, named as compare names them
