"""bench/merge_speed.py stays runnable: its shard directories merge, in a child process as the bench does."""

from __future__ import annotations

from pathlib import Path

from bench.merge_speed import SHARDS, merge_once, write_shards


def test_the_bench_shards_merge_in_a_child_process(tmp_path: Path) -> None:
    dirs = write_shards(tmp_path, 200)
    run = merge_once(dirs, tmp_path / "out", "m")
    assert run["n"] == 200 * SHARDS
    assert run["peak_mb"] >= run["base_mb"] > 0 and run["wall_s"] > 0
