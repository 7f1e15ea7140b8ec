"""Soak: a long Server run at 70 % of the embedded sim's capacity, SUT and harness memory sampled.

Spawns ``python -m sut serve`` with the embedded default artifact (``sim-fp32``), computes the sim's
analytic capacity over the embedded dataset at the benchmark's ``max_new_tokens``, and drives a
Server run at ``--load`` of it for ``--duration`` seconds with this process as the harness. A sampler
thread reads VmRSS of both processes every ``--every`` seconds. Growth is judged after a warm-up
(``--warmup`` seconds: allocators, grpc and LoadGen reach their working set): the median of the
first minute after it against the median of the last minute.

Usage: ``python -m bench.soak [--duration 600] [--load 0.7] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ARTIFACT = "sim-fp32"
WINDOW_S = 60.0  # the first and the last minute are compared


def rss_mb(pid: int) -> float:
    """Resident set of ``pid`` (VmRSS), MB; -1 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


class RssSampler:
    """Samples the RSS of a set of processes on a fixed period until stopped (bounded by ``max_samples``)."""

    def __init__(self, pids: dict[str, int], every_s: float, max_samples: int) -> None:
        self._pids = pids
        self._every_s = every_s
        self._max = max_samples
        self._stop = threading.Event()
        self.samples: list[dict[str, float]] = []
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set() and len(self.samples) < self._max:
            row = {"t_s": time.monotonic() - self._t0, "load1": os.getloadavg()[0]}
            row.update({f"{name}_rss_mb": rss_mb(pid) for name, pid in self._pids.items()})
            self.samples.append(row)
            self._stop.wait(self._every_s)


def growth(samples: list[dict[str, float]], key: str, warmup_s: float) -> dict[str, float]:
    """Median RSS of the first minute after ``warmup_s`` vs the last minute, and the relative growth."""
    live = [s for s in samples if s[key] > 0]
    end = live[-1]["t_s"] if live else 0.0
    first = [s[key] for s in live if warmup_s <= s["t_s"] < warmup_s + WINDOW_S]
    last = [s[key] for s in live if s["t_s"] >= end - WINDOW_S]
    if not first or not last:
        raise SystemExit(f"soak: too few samples of {key} to compare (run longer than warm-up + 2 minutes)")
    a, b = statistics.median(first), statistics.median(last)
    return {
        "first_minute_mb": round(a, 1),
        "last_minute_mb": round(b, 1),
        "growth_percent": round(100 * (b - a) / a, 2),
        "peak_mb": round(max(s[key] for s in live), 1),
    }


def soak(duration_s: float, load: float, every_s: float, warmup_s: float) -> dict[str, Any]:
    from loadgen_harness import RunConfig, run_benchmark
    from scenarios import get_benchmark, resolve_dataset
    from sut import analytic_capacity_qps, backends, spawn_server

    profile = get_benchmark("embedded")
    backend = backends.create({"kind": "sim", "artifact": ARTIFACT})
    capacity = analytic_capacity_qps(backend.manifest, resolve_dataset(profile.dataset), profile.max_new_tokens)
    qps = load * capacity
    with spawn_server(["--artifact", ARTIFACT]) as server:
        pids = {"sut": server.pid, "harness": os.getpid()}
        max_samples = int((duration_s + 300) / every_s) + 10
        with tempfile.TemporaryDirectory(prefix="lpuperf-soak-") as tmp, RssSampler(pids, every_s, max_samples) as s:
            t0 = time.monotonic()
            res = run_benchmark(
                RunConfig(
                    scenario="Server",
                    sut=server.address,
                    out_dir=Path(tmp),
                    run_id="soak",
                    qps=qps,
                    duration_s=duration_s,
                    metrics_linger_s=0,
                )
            )
            wall_s = time.monotonic() - t0
    return {
        "artifact": ARTIFACT,
        "analytic_capacity_qps": round(capacity, 2),
        "target_qps": round(qps, 2),
        "wall_s": round(wall_s, 1),
        "queries": res.n_queries,
        "errors": res.n_errors,
        "loadgen_valid": res.loadgen_valid,
        "successful_qps": res.successful.qps if res.successful else None,
        "ttft_p99_ms": res.ttft_ms.p99,
        "load1_range": [round(min(x["load1"] for x in s.samples), 1), round(max(x["load1"] for x in s.samples), 1)],
        "samples": len(s.samples),
        "sut": growth(s.samples, "sut_rss_mb", warmup_s),
        "harness": growth(s.samples, "harness_rss_mb", warmup_s),
        "series": s.samples,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of the analytic capacity (default 0.7)")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the first compared minute")
    ap.add_argument("--json", type=Path, help="also write the figures (with the RSS series) here")
    args = ap.parse_args(argv)
    result = soak(args.duration, args.load, args.every, args.warmup)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))
    worst = max(result["sut"]["growth_percent"], result["harness"]["growth_percent"])
    print(f"RSS growth, first vs last minute: worst {worst:+.2f} % (goal < 5 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
