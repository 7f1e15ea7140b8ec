"""Harness memory and time when the SUT cannot keep up: a Server run asking far more than the sim serves.

Each case runs ``lpuperf run --scenario Server --qps Q --duration D`` against the embedded sim in a
fresh process (optionally from another tree, ``--tree NAME=PATH``, for a before/after in one
invocation), samples the harness process's RSS every 0.5 s (the SUT child is not counted), and stops
it after ``--limit`` seconds if it has not ended by itself. Reported per case: how it ended, the wall
time, the peak harness RSS, and results.json's overload stop when there is one.

Usage: ``python -m bench.overload_memory [--tree before=PATH] [--qps 2e4,2e5] [--limit 90]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.soak import rss_mb

ROOT = Path(__file__).resolve().parents[1]


def run_case(tree: Path, qps: float, duration_s: float, limit_s: float, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-m", "cli", "run", "--scenario", "Server", "--qps", f"{qps:g}"]
    argv += ["--duration", f"{duration_s:g}", "--out", str(out), "--run-id", "ovl", "--no-record"]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    peak = 0.0
    ended = "by itself"
    while proc.poll() is None:
        peak = max(peak, rss_mb(proc.pid))
        if time.monotonic() - t0 > limit_s:
            ended = f"killed at the {limit_s:g} s limit"
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    proc.wait(timeout=60)
    row: dict[str, Any] = {
        "qps": qps,
        "ended": ended,
        "rc": proc.returncode,
        "wall_s": round(time.monotonic() - t0, 1),
        "peak_rss_mb": round(peak),
    }
    results = next(out.glob("ovl/Server/performance/results.json"), None)
    if results is not None:
        res = json.loads(results.read_text())
        row["overload"] = res.get("overload")
        row["n_queries"] = res.get("n_queries")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH of another checkout to measure first")
    ap.add_argument("--qps", default="2e4,2e5")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--limit", type=float, default=90.0)
    args = ap.parse_args()
    trees = [tuple(t.split("=", 1)) for t in args.tree] + [("this tree", str(ROOT))]
    for name, path in trees:
        for qps in (float(q) for q in args.qps.split(",")):
            load = os.getloadavg()[0]
            with tempfile.TemporaryDirectory(prefix="lpuperf-ovl-") as tmp:
                row = run_case(Path(path), qps, args.duration, args.limit, Path(tmp))
            print(json.dumps({"tree": name, "load_1m": round(load, 2), **row}), flush=True)


if __name__ == "__main__":
    main()
