"""``lpuperf merge`` time and memory: three shard runs of R records each, merged in a fresh child process.

Three shard run directories (results.json + queries.npz, every column filled as a real run fills them,
SUT timestamps included so the clock measurement runs) are written once per size. Each repetition merges
them with ``workflows.merge_shards`` in a new Python process, which reports the merge's wall time, its
RSS after the imports and its peak (VmHWM). The figures: median seconds per merge and per million records,
and the peak's growth over the imports per record (what the merge holds: the shards' records, loaded and
shifted in place, and their concatenation).

Usage: ``python -m bench.merge_speed [--rows 100000,1000000] [--reps 3] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 3
T0 = 1_900_000_000 * 1_000_000_000


def write_shards(root: Path, rows: int) -> list[Path]:
    """Three shard run directories of ``rows`` successful queries each, at 1,000 queries/s per shard."""
    import numpy as np

    from loadgen_harness import QUERY_RECORD_DTYPE, LoadInfo, RunResult, ShardInfo
    from loadgen_harness._results import save_results

    rng = np.random.default_rng(3)
    dirs = []
    for i in range(SHARDS):
        d = root / f"shard-{i}" / "Rate" / "performance"
        d.mkdir(parents=True)
        rec = np.zeros(rows, dtype=QUERY_RECORD_DTYPE)
        issue = np.sort(rng.integers(0, rows * 1_000_000, rows))
        rec["issue_ns"] = issue
        rec["sent_ns"] = issue + rng.integers(50_000, 500_000, rows)
        rec["first_token_ns"] = rec["sent_ns"] + rng.integers(10_000_000, 60_000_000, rows)
        rec["n_tokens"] = rng.integers(16, 256, rows)
        rec["done_ns"] = rec["first_token_ns"] + rec["n_tokens"] * rng.integers(5_000_000, 15_000_000, rows)
        rec["last_msg_ns"] = rec["done_ns"]
        rec["n_streamed"] = rec["n_tokens"]
        rec["sut_arrival_ns"] = T0 + rec["sent_ns"] + 200_000
        rec["sut_first_token_ns"] = T0 + rec["first_token_ns"] - 200_000
        rec["session"] = -1
        rec["sample_index"] = np.arange(rows) % 1000
        res = RunResult(
            run_id=f"shard-{i}",
            scenario="Rate",
            mode="performance",
            benchmark="embedded",
            preset="quick",
            valid=True,
            n_queries=rows,
            load=LoadInfo(kind="rate", spec="rate:3000", rate_qps=1000.0, arrival="poisson", sent_requests=rows),
            shard=ShardInfo(index=i, count=SHARDS, wall_t0_unix_ns=T0, started_unix_ns=T0),
        )
        save_results(res, d)
        np.savez_compressed(d / "queries.npz", records=rec)
        dirs.append(d)
    return dirs


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from workflows import merge_shards
import loadgen_harness, numpy
def rss_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
base = rss_mb()
t = time.perf_counter()
res = merge_shards([Path(p) for p in sys.argv[3:]], Path(sys.argv[1]), sys.argv[2])
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "base_mb": base, "peak_mb": peak, "n": res.n_queries}))
"""


def merge_once(dirs: list[Path], out: Path, run_id: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", _CHILD, str(out), run_id, *map(str, dirs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, check=True)
    out_: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="100000,1000000", help="records per shard, comma-separated")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for rows in (int(x) for x in args.rows.split(",")):
        with tempfile.TemporaryDirectory(prefix="lpuperf-merge-bench-") as tmp:
            dirs = write_shards(Path(tmp), rows)
            runs = [merge_once(dirs, Path(tmp) / "out", f"m{k}") for k in range(args.reps)]
        total = rows * SHARDS
        wall = statistics.median(r["wall_s"] for r in runs)
        grow = statistics.median(r["peak_mb"] - r["base_mb"] for r in runs)
        row = {
            "records": total,
            "merge_s_median": round(wall, 3),
            "s_per_million": round(wall / total * 1e6, 3),
            "peak_over_imports_mb": round(grow, 1),
            "bytes_per_record": round(grow * 1024 * 1024 / total, 1),
            "runs": runs,
            "load_avg": os.getloadavg(),
        }
        results.append(row)
        print(
            f"{total:>10,} records: merge {wall:.2f} s median of {args.reps} ({row['s_per_million']} s per million), "
            f"peak +{grow:.0f} MB over the imports ({row['bytes_per_record']} B/record), "
            f"load {os.getloadavg()[0]:.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
