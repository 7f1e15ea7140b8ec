"""Trace replay memory: reading a 1,000,000-line trace against a 10,000-line one, and a real replay's RSS over time.

Part 1 (reading). Mooncake-style JSONL traces of small prompts (32-64 tokens in blocks of 16, outputs of
8 tokens) are generated here at 10,000 and 1,000,000 lines, in two kinds: ``shared`` (every hash id from a
pool of 10,100: a few system prompts and a bounded set of user prefixes) and ``unique`` (the first block
from 100 system prompts, every later block a new id, as a real trace's ids keep growing). Each of
``iter_trace`` (what a replay reads: due times and prompt ids, one line at a time) and ``check_trace``
(the whole-file check before a run) runs over each file in a fresh child process, which reports its
RSS after the imports and its peak (VmHWM); the growth from 10,000 to 1,000,000 lines is the figure.
``check_trace`` keeps the set of hash ids it has seen (to count prefix reuse) up to ``MAX_TRACKED_IDS``
ids: with ``unique`` ids that set is what grows, to its cap.

Part 2 (replay). The real CLI replays a generated trace against the instant server
(``python -m cli run --load trace:FILE:speed=X,block=16 --sut ADDR``, the server ``lpuperf serve --artifact
sim-instant`` in its own process), ``--replay-requests`` requests at ``--replay-rate`` req/s (the trace's
mean gap is 100 ms; the speed factor is rate / 10), and once more with a tenth of the requests at the same
rate. The harness's RSS is sampled every 0.5 s (its peak from rusage); the peak difference between the two
replays over the requests between them is the memory each replayed query keeps (its per-query record),
and the slope of RSS over time while it replays, divided by the rate, is the same figure measured inside
one run. The server's RSS is sampled too.

Usage: ``python -m bench.trace_memory [--reps 3] [--lines 10000,1000000] [--replay-requests 200000]
[--replay-rate 2500] [--quick] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load_common import ROOT, figures, instant_server, load_argv, read_results, run_child

BLOCK = 16
OUTPUT = 8
MEAN_GAP_MS = 100  # the trace's own pace: 10 req/s at speed 1
SYSTEMS = 100
POOL = 10_000


def make_trace(path: Path, lines: int, kind: str, seed: int = 7) -> Path:
    """A Mooncake JSONL trace of ``lines`` small requests; ``kind`` shared or unique hash ids."""
    rng = random.Random(seed)
    ts, fresh = 0, SYSTEMS + POOL
    with path.open("w") as fh:
        for _ in range(lines):
            ts += max(0, round(rng.expovariate(1 / MEAN_GAP_MS)))
            inp = rng.randint(32, 64)
            blocks = -(-inp // BLOCK)
            ids = [rng.randrange(SYSTEMS)]
            for _ in range(blocks - 1):
                if kind == "shared":
                    ids.append(SYSTEMS + rng.randrange(POOL))
                else:
                    ids.append(fresh)
                    fresh += 1
            fh.write(f'{{"timestamp": {ts}, "input_length": {inp}, "output_length": {OUTPUT}, "hash_ids": {ids}}}\n')
    return path


# ---- part 1: reading, in a child process ----------------------------------------------------------


def _vm_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return -1.0


def child_read(func: str, path: Path) -> dict[str, Any]:
    """(in the child) Run iter_trace or check_trace over ``path``; RSS after imports, peak, rate."""
    from scenarios import TraceSpec, check_trace, iter_trace

    spec = TraceSpec(path=path, block_tokens=BLOCK)
    base = _vm_mb("VmRSS")
    t0 = time.perf_counter()
    if func == "iter":
        n = tokens = 0
        for req in iter_trace(spec):
            n += 1
            tokens += int(req.input_ids.size)
        extra: dict[str, Any] = {"requests": n, "prompt_tokens": tokens}
    else:
        summary = check_trace(spec)
        extra = {"requests": summary.n_requests, "reuse_exact": summary.reuse_exact}
    wall = time.perf_counter() - t0
    return {
        "rss_after_imports_mb": round(base, 1),
        "peak_mb": round(_vm_mb("VmHWM"), 1),
        "wall_s": round(wall, 2),
    } | extra


def read_case(func: str, path: Path) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.trace_memory", "--child", func, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    row["lines_per_s"] = round(row["requests"] / row["wall_s"]) if row["wall_s"] else None
    return row | {"load1": (round(load0, 2), round(os.getloadavg()[0], 2))}


def part_reading(tmp: Path, sizes: list[int], reps: int) -> list[dict[str, Any]]:
    rows = []
    files = {
        (n, kind): make_trace(tmp / f"trace-{kind}-{n}.jsonl", n, kind) for n in sizes for kind in ("shared", "unique")
    }
    for rep in range(1, reps + 1):
        for (n, kind), path in files.items():
            for func in ("iter", "check"):
                row = {"rep": rep, "part": "read", "lines": n, "ids": kind, "func": func} | read_case(func, path)
                row["file_mb"] = round(path.stat().st_size / 2**20, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
    for path in files.values():
        path.unlink()
    return rows


# ---- part 2: a real replay ------------------------------------------------------------------------


def _slope_mb_per_s(series: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Least-squares slope of RSS over [t0, t1] (MB/s)."""
    pts = [(t, m) for t, m in series if t0 <= t <= t1 and m > 0]
    if len(pts) < 4:
        return None
    mt = statistics.fmean(t for t, _ in pts)
    mm = statistics.fmean(m for _, m in pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (m - mm) for t, m in pts) / den if den else None


def replay(server: Any, tmp: Path, trace: Path, requests: int, rate: float) -> dict[str, Any]:
    speed = rate * MEAN_GAP_MS / 1000
    run_id = f"replay-{requests}-{time.monotonic_ns()}"
    spec = f"trace:{trace}:speed={speed:g},block={BLOCK},requests={requests}"
    argv = load_argv(spec, server, tmp, run_id, dataset=None, duration_s=None)
    child = run_child(argv, server.pid, timeout_s=requests / rate * 4 + 180, rss_every_s=0.5)
    child.results = read_results(tmp, run_id)
    span = requests / rate
    # The replay's middle: past the start-up (first 3 s of the child) and before the end of sending.
    slope = _slope_mb_per_s(child.rss_series, 4.0 + 0.1 * span, 3.0 + 0.9 * span)
    row = {"requests": requests, "rate": rate, "speed": speed} | figures(child)
    row |= {
        "harness_peak_mb": round(child.maxrss_mb, 1),
        "harness_rss_first_mb": next((round(m, 1) for t, m in child.rss_series if t >= 4.0 and m > 0), None),
        "harness_rss_last_mb": next((round(m, 1) for t, m in reversed(child.rss_series) if m > 0), None),
        "harness_slope_bytes_per_query": round(slope * 2**20 / rate) if slope is not None else None,
        "server_rss_mb": [
            round(min(m for _, m in child.server_rss_series), 1),
            round(max(m for _, m in child.server_rss_series), 1),
        ]
        if child.server_rss_series
        else None,
        "rss_series": [(round(t, 1), round(m, 1)) for t, m in child.rss_series],
    }
    out = next(tmp.glob(f"{run_id}/*/performance/queries.npz"), None)
    row["queries_npz_mb"] = round(out.stat().st_size / 2**20, 2) if out is not None else None
    return row


def part_replay(tmp: Path, requests: int, rate: float, reps: int) -> list[dict[str, Any]]:
    from bench.load_common import bench_dataset

    trace = make_trace(tmp / "replay.jsonl", requests, "shared", seed=11)
    rows = []
    with instant_server(tmp, bench_dataset(tmp)) as server:
        for rep in range(1, reps + 1):
            pair: dict[int, dict[str, Any]] = {}
            for n in (requests // 10, requests) if rep % 2 else (requests, requests // 10):
                row = {"rep": rep, "part": "replay"} | replay(server, tmp, trace, n, rate)
                pair[n] = row
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "rss_series"}), flush=True)
            big, small = pair[requests], pair[requests // 10]
            done = (big["completed"] or 0) - (small["completed"] or 0)
            diff = {
                "rep": rep,
                "part": "replay-diff",
                "peak_diff_mb": round(big["harness_peak_mb"] - small["harness_peak_mb"], 1),
                "bytes_per_query": round((big["harness_peak_mb"] - small["harness_peak_mb"]) * 2**20 / done)
                if done > 0
                else None,
            }
            rows.append(diff)
            print(json.dumps(diff), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def m(xs: list[Any], fmt: str = "{:.1f}") -> str:
        xs = [x for x in xs if x is not None]
        if not xs:
            return "–"
        med = statistics.median(xs)
        return fmt.format(med) + (f" ({fmt.format(min(xs))}–{fmt.format(max(xs))})" if len(xs) > 1 else "")

    lines = [
        "| function | hash ids | lines | file, MB | RSS after imports, MB | peak RSS, MB | lines/s | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reads = [r for r in rows if r["part"] == "read"]
    for key in dict.fromkeys((r["func"], r["ids"], r["lines"]) for r in reads):
        mine = [r for r in reads if (r["func"], r["ids"], r["lines"]) == key]
        loads = [x for r in mine for x in r["load1"]]
        lines.append(
            f"| {key[0]}_trace | {key[1]} | {key[2]:,} | {mine[0]['file_mb']} | {m([r['rss_after_imports_mb'] for r in mine])} | "
            f"{m([r['peak_mb'] for r in mine])} | {m([r['lines_per_s'] for r in mine], '{:,.0f}')} | "
            f"{min(loads):.1f}–{max(loads):.1f} |"
        )
    plays = [r for r in rows if r["part"] == "replay"]
    if plays:
        lines += [
            "",
            "| replay | completed | completed, req/s | dispatch lag p50 / p99, ms | harness RSS at 4 s -> last sample, MB | "
            "harness peak, MB | RSS slope while replaying, bytes/query | server RSS min–max, MB | queries.npz, MB | "
            "client CPU per request, ms | load (1 min) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in plays:
            lines.append(
                f"| rep {r['rep']}: {r['requests']:,} at {r['rate']:g}/s (speed {r['speed']:g}) | {r['completed']:,} | "
                f"{r['completed_qps'] or 0:.0f} | {r['lag_p50_ms']} / {r['lag_p99_ms']} | "
                f"{r['harness_rss_first_mb']} -> {r['harness_rss_last_mb']} | {r['harness_peak_mb']} | "
                f"{r['harness_slope_bytes_per_query']} | {r['server_rss_mb']} | {r['queries_npz_mb']} | "
                f"{r['client_cpu_ms_per_req']} | {r['load1'][0]:.1f}–{r['load1'][1]:.1f} |"
            )
        diffs = [r for r in rows if r["part"] == "replay-diff"]
        lines.append("")
        lines.append(
            "peak RSS difference, long minus short replay, per query between them: "
            + ", ".join(f"{d['bytes_per_query']} B ({d['peak_diff_mb']} MB)" for d in diffs)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.trace_memory", description=__doc__.splitlines()[0])
    ap.add_argument("--lines", default="10000,1000000", help="trace sizes for the reading part")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--replay-requests", type=int, default=200_000)
    ap.add_argument("--replay-rate", type=float, default=2500.0, help="req/s the replay runs at")
    ap.add_argument("--replay-reps", type=int, default=1, help="replay pairs (each ~1.1x requests/rate s)")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--skip-reading", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 rep, 100,000 lines, a 20,000-request replay")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--report", type=Path, help="only print the tables of a --json file")
    ap.add_argument("--child", nargs=2, metavar=("FUNC", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child_read(args.child[0], Path(args.child[1]))))
        return 0
    if args.report is not None:
        print(table(json.loads(args.report.read_text())["rows"]))
        return 0
    sizes, reps, requests = [int(x) for x in args.lines.split(",")], args.reps, args.replay_requests
    if args.quick:
        sizes, reps, requests = [10_000, 100_000], 1, 20_000
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="lpuperf-tracemem-") as tmp_s:
        tmp = Path(tmp_s)
        rows = [] if args.skip_reading else part_reading(tmp, sizes, reps)
        if not args.skip_replay:
            rows += part_replay(tmp, requests, args.replay_rate, args.replay_reps)
    if args.json is not None:
        args.json.write_text(json.dumps({"started": started, "rows": rows}, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
