"""``lpuperf run --workers N``: harness CPU per query and the highest VALID Server QPS per worker count.

Against a fleet of instant sims (``--replicas`` servers, chunk 8, 128-token answers; each its own process, so
the SUT side is not the limit when there are enough of them), from ONE invocation:

(a) **CPU per query at a fixed rate** (``--qps``, ``--duration``): every worker count in ``--workers`` in
    turn, ``--reps`` rounds. The harness's CPU is this process's (LoadGen, the bridge or the pipes) plus its
    worker processes' (``/proc/PID/stat``), sampled with the run's completed count every ~2 s while LoadGen
    issues; the figure is the slope between the first and last sample, so start-up and teardown (a worker's
    interpreter and imports) are left out. Each round gives the ratio to the first worker count, measured
    in that round; the table has the medians.
(b) **Highest VALID Server QPS** per worker count (``--peak``): doubling from ``--peak-start`` until a run is
    not VALID (or has errors), then bisection to ~5 %; each probe runs >= 800 queries.

Usage: ``python -m bench.workers [--workers 1,2] [--qps 200] [--duration 12] [--reps 3] [--replicas 1]
[--peak] [--json F]``; on a machine with cores to spare, ``--workers 1,8 --replicas 8 --peak``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness_overhead import OUTPUT_TOKENS
from bench.load_common import bench_dataset, instant_server

_TICK_S = os.sysconf("SC_CLK_TCK")
WORKER_MODULE = b"loadgen_harness._worker_proc"


def _worker_cpu_s() -> float:
    """User + system CPU of this process's worker children, from /proc (the SUTs are children too: skipped)."""
    me, total = os.getpid(), 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if WORKER_MODULE not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / _TICK_S
    return total


def harness_cpu_s() -> float:
    return time.process_time() + _worker_cpu_s()


def _run(
    fleet: str, dataset: Path, out: Path, run_id: str, qps: float, duration_s: float, workers: int, **kw: Any
) -> Any:
    from loadgen_harness import RunConfig, run_benchmark

    cfg = RunConfig(
        scenario="Server",
        sut=fleet,
        dataset=str(dataset),
        qps=qps,
        duration_s=duration_s,
        out_dir=out,
        run_id=run_id,
        max_new_tokens=OUTPUT_TOKENS,
        workers=workers,
        metrics_linger_s=0,
    )
    return run_benchmark(cfg, **kw)


def cpu_per_query(
    fleet: str, dataset: Path, out: Path, tag: str, qps: float, duration_s: float, workers: int
) -> dict[str, Any]:
    """(a) one run: harness CPU us per completed query over LoadGen's issuing, from the progress samples."""
    samples: list[tuple[int, float]] = []

    def on_progress(_elapsed_s: float, completed: int, _rate: float) -> None:
        samples.append((completed, harness_cpu_s()))

    res = _run(fleet, dataset, out, tag, qps, duration_s, workers, on_progress=on_progress)
    steady = [s for s in samples if s[0] > 0]
    if len(steady) < 2 or steady[-1][0] <= steady[0][0]:
        raise SystemExit(f"{tag}: too few progress samples ({samples}); raise --duration")
    (n0, c0), (n1, c1) = steady[0], steady[-1]
    return {
        "workers": workers,
        "cpu_us_per_query": (c1 - c0) / (n1 - n0) * 1e6,
        "queries_sampled": n1 - n0,
        "valid": bool(res.valid),
        "n_queries": res.n_queries,
        "n_errors": res.n_errors,
    }


def max_valid_qps(fleet: str, dataset: Path, out: Path, tag: str, workers: int, start: float) -> dict[str, Any]:
    """(b) doubling until a run is not VALID, then bisection to ~5 %."""
    trace: list[tuple[float, bool]] = []

    def probe(q: float) -> bool:
        res = _run(fleet, dataset, out, f"{tag}-{len(trace):02d}", q, max(2.0, 800.0 / q), workers)
        ok = bool(res.valid) and res.n_errors == 0
        trace.append((q, ok))
        print(f"    workers {workers}: {q:8.1f} QPS {'VALID' if ok else 'not valid'}", flush=True)
        return ok

    lo, hi = 0.0, start
    while probe(hi) and hi < 100_000:
        lo, hi = hi, hi * 2
    for _ in range(6):
        if lo and (hi - lo) / lo <= 0.05:
            break
        mid = (lo + hi) / 2 if lo else hi / 2
        lo, hi = (mid, hi) if probe(mid) else (lo, mid)
    return {"workers": workers, "max_valid_qps": lo, "probes": trace}


@contextlib.contextmanager
def fleet_of(n: int, tmp: Path, dataset: Path) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(instant_server(tmp / f"s{i}", dataset)) for i in range(n)]
        yield ",".join(s.address for s in servers)


def _load1() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2", help="worker counts, the first is the ratio's base (default 1,2)")
    ap.add_argument("--qps", type=float, default=200.0, help="(a)'s fixed Server rate")
    ap.add_argument("--duration", type=float, default=12.0, help="(a)'s run length, s")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=1, help="instant sim servers in the fleet")
    ap.add_argument("--peak", action="store_true", help="also (b): the highest VALID QPS per worker count")
    ap.add_argument("--peak-start", type=float, default=200.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    report: dict[str, Any] = {"cpu_count": os.cpu_count(), "load1_start": _load1(), "rounds": [], "peak": []}
    with tempfile.TemporaryDirectory(prefix="lpuperf-bench-workers-") as td:
        tmp = Path(td)
        for i in range(args.replicas):
            (tmp / f"s{i}").mkdir()
        dataset = bench_dataset(tmp)
        with fleet_of(args.replicas, tmp, dataset) as fleet:
            for rep in range(args.reps):
                rows = [
                    cpu_per_query(fleet, dataset, tmp / "out", f"cpu-{rep}-w{n}", args.qps, args.duration, n)
                    for n in counts
                ]
                base = rows[0]["cpu_us_per_query"]
                for row in rows:
                    row["ratio"] = row["cpu_us_per_query"] / base
                    print(
                        f"round {rep}: workers {row['workers']}: {row['cpu_us_per_query']:.0f} us/query "
                        f"(x{row['ratio']:.2f}), valid {row['valid']}, {row['n_queries']} queries, "
                        f"{row['n_errors']} errors",
                        flush=True,
                    )
                report["rounds"].append(rows)
            if args.peak:
                for n in counts:
                    report["peak"].append(max_valid_qps(fleet, dataset, tmp / "out", f"peak-w{n}", n, args.peak_start))
    report["load1_end"] = _load1()
    print(
        f"\nload average (1 min) {report['load1_start']:.2f} at start, {report['load1_end']:.2f} at end; "
        f"{report['cpu_count']} CPUs; fleet of {args.replicas} instant sim(s); {args.qps:g} QPS x {args.duration:g} s"
    )
    for k, n in enumerate(counts):
        cpu = [r[k]["cpu_us_per_query"] for r in report["rounds"]]
        ratio = [r[k]["ratio"] for r in report["rounds"]]
        print(
            f"workers {n}: CPU/query median {statistics.median(cpu):.0f} us ({min(cpu):.0f}-{max(cpu):.0f}), "
            f"ratio median {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})"
        )
    for p in report["peak"]:
        print(f"workers {p['workers']}: max VALID Server QPS {p['max_valid_qps']:.0f}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
