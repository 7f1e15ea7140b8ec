"""The gRPC SUT server's CPU per 128-token query under the harness, two source trees side by side.

Each round spawns ``python -m sut serve --artifact sim-instant`` from every given tree (``--tree
NAME=PATH``; the trees alternate within a round, so both see the same load), drives it with this
checkout's harness (Server scenario, ``--qps``, ``--duration`` s) and reads the server process's
CPU time from ``/proc/<pid>/stat`` before and after. Reports, per tree, the median over rounds of
server CPU per query, harness CPU per query, TTFT p50 and errors, with the 1-minute load average
of each run. ``--floor`` adds ``bench.grpc_floor`` to every round: grpc.aio sending the same two
messages per stream and doing nothing else, the least any grpc.aio SUT can cost. Usage::

    git worktree add /tmp/old <commit-before>
    python -m bench.sut_cost --tree before=/tmp/old --tree after=. --floor --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUTPUT_TOKENS = 128
CHUNK_SIZE = 8


def _spawn(root: Path, dataset: Path, tmp: Path, floor: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """``lpuperf serve --artifact sim-instant`` from the tree at ``root``; with ``floor``, this checkout's
    bench.grpc_floor (grpc.aio answering with the same two messages and doing nothing else) instead."""
    port_file = tmp / f"port-{time.monotonic_ns()}"
    if floor:
        cmd = [sys.executable, "-m", "bench.grpc_floor", "--port-file", str(port_file)]
    else:
        cmd = [sys.executable, "-m", "sut", "serve", "--port", "0", "--port-file", str(port_file)]
        cmd += ["--artifact", "sim-instant", "--dataset", str(dataset), "--chunk-size", str(CHUNK_SIZE)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):  # bounded: 60 s
        if port_file.is_file() and port_file.read_text().strip():
            break
        if proc.poll() is not None:
            raise RuntimeError(f"SUT from {root} exited with {proc.returncode}")
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"SUT from {root} did not bind within 60 s")
    address = f"127.0.0.1:{int(port_file.read_text())}"
    from sut import wait_serving

    if not wait_serving(address, 30.0):
        proc.kill()
        raise RuntimeError(f"SUT from {root} not serving")
    return proc, address


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(root: Path, dataset: Path, tmp: Path, qps: float, duration_s: float, floor: bool = False) -> dict[str, Any]:
    proc, address = _spawn(root, dataset, tmp, floor)
    try:
        row = measured_server_run(proc.pid, address, dataset, tmp, qps, duration_s)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    row["server_cpu_ms"] = row.pop("sut_cpu_ms")
    return row


def measured_server_run(
    sut_pid: int, address: str, dataset: Path, tmp: Path, qps: float, duration_s: float
) -> dict[str, Any]:
    """One Server run against ``address``: the SUT process's and this harness's CPU per query, TTFT p50."""
    from loadgen_harness import RunConfig, run_benchmark

    s0 = _proc_cpu_s(sut_pid)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    res = run_benchmark(
        RunConfig(
            scenario="Server",
            sut=address,
            dataset=str(dataset),
            out_dir=tmp,
            run_id=f"r{time.monotonic_ns()}",
            qps=qps,
            duration_s=duration_s,
            max_new_tokens=OUTPUT_TOKENS,
            metrics_linger_s=0,
        )
    )
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    s1 = _proc_cpu_s(sut_pid)
    n = max(1, res.n_queries)
    return {
        "n": res.n_queries,
        "errors": res.n_errors,
        "loadgen_valid": res.loadgen_valid,
        "sut_cpu_ms": 1000 * (s1 - s0) / n,
        "harness_cpu_ms": 1000 * ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)) / n,
        "ttft_p50_ms": res.ttft_ms.p50,
        "load1": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sut_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, help="NAME=PATH of a source tree (repeatable)")
    ap.add_argument("--qps", type=float, default=400.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--floor", action="store_true", help="also run bench.grpc_floor each round, as 'floor'")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    trees = [(name, Path(path).resolve(), False) for name, _, path in (t.partition("=") for t in args.tree)]
    if args.floor:
        trees.append(("floor", Path.cwd(), True))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in trees}
    with tempfile.TemporaryDirectory(prefix="lpuperf-sut-cost-") as tmp_s:
        tmp = Path(tmp_s)
        from bench.harness_overhead import _dataset

        dataset = _dataset(tmp)
        for r in range(args.rounds):
            order = trees if r % 2 == 0 else trees[::-1]  # alternate who goes first
            for name, root, floor in order:
                row = one_run(root, dataset, tmp, args.qps, args.duration, floor)
                runs[name].append(row)
                print(json.dumps({"round": r + 1, "tree": name, **row}), flush=True)
    print(f"\nmedians of {args.rounds} rounds, {args.qps:g} QPS x {args.duration:g} s, {OUTPUT_TOKENS}-token outputs:")
    summary = {}
    for name, rows in runs.items():
        med = {k: statistics.median(float(x[k] or 0) for x in rows) for k in ("server_cpu_ms", "harness_cpu_ms")}
        spread = {k: (min(float(x[k]) for x in rows), max(float(x[k]) for x in rows)) for k in med}
        summary[name] = {"median": med, "spread": spread, "runs": rows}
        print(
            f"  {name}: server CPU/query {med['server_cpu_ms']:.3f} ms "
            f"({spread['server_cpu_ms'][0]:.3f}-{spread['server_cpu_ms'][1]:.3f}), harness CPU/query "
            f"{med['harness_cpu_ms']:.3f} ms, errors {[x['errors'] for x in rows]}, "
            f"load {[round(x['load1'], 1) for x in rows]}"
        )
    named = [n for n, _, floor in trees if not floor]
    if len(named) == 2:
        a, b = named
        ratios = [float(x["server_cpu_ms"]) / float(y["server_cpu_ms"]) for x, y in zip(runs[b], runs[a], strict=True)]
        print(f"  server CPU ratio {b}/{a} per round: {[round(x, 2) for x in ratios]}")
        summary["ratio"] = {"per_round": ratios, "median": statistics.median(ratios)}
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
