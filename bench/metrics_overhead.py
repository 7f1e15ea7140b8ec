"""What the harness's Prometheus endpoint costs: Server runs with and without ``--metrics-port``.

Against the instant sim SUT (so the harness is the only thing being timed), each round runs the
same Server scenario twice per load point, once without metrics and once with the exporter on and
a scraper pulling ``/metrics`` every second as Prometheus would. The order alternates between
rounds so drift on a shared machine does not favour one side. Reported per load point: completed
QPS and TTFT p50/p99 as LoadGen measured them, medians over ``--repeats`` rounds (default 3), and
the ratio with/without.

Usage: ``python -m bench.metrics_overhead [--repeats 3] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness_overhead import CHUNK_SIZE, OUTPUT_TOKENS, _dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SCRAPE_LOOP = """
import sys, time, urllib.request
url, n = sys.argv[1], 0
while True:
    time.sleep(1.0)
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            resp.read()
        n += 1
        print(n, flush=True)
    except OSError:
        pass
"""


class _Scraper:
    """Pulls ``/metrics`` once a second from its own process, as Prometheus would: its CPU time is
    not the harness's."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.ok = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Scraper:
        cmd = [sys.executable, "-c", _SCRAPE_LOOP, self.url]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        lines = out.split()
        self.ok = int(lines[-1]) if lines else 0


def one_run(address: str, dataset: Path, out: Path, run_id: str, qps: float, duration_s: float, metrics: bool) -> Any:
    from loadgen_harness import RunConfig, run_benchmark

    port = _free_port() if metrics else None
    cfg = RunConfig(
        scenario="Server",
        sut=address,
        dataset=str(dataset),
        qps=qps,
        duration_s=duration_s,
        out_dir=out,
        run_id=run_id,
        max_new_tokens=OUTPUT_TOKENS,
        metrics_port=port,
    )
    cpu0 = time.process_time()
    if port is None:
        res, scrapes = run_benchmark(cfg), 0
    else:
        with _Scraper(port) as scraper:
            res = run_benchmark(cfg)
        scrapes = scraper.ok
    cpu_us = (time.process_time() - cpu0) * 1e6 / max(res.n_queries, 1)
    return res, scrapes, cpu_us


def metric_call_costs(n: int = 200_000) -> dict[str, float]:
    """CPU cost of the hot-path calls the bridge makes per query, and of rendering one scrape."""
    from prometheus_client import generate_latest

    from loadgen_harness._metrics import HarnessMetrics

    m = HarnessMetrics()
    t0 = time.thread_time()
    for _ in range(n):
        m.issued(1)
        m.completed(1_000_000, 3_000_000, 130_000_000, 128)
    per_query_us = (time.thread_time() - t0) * 1e6 / n
    t0 = time.thread_time()
    for _ in range(200):
        generate_latest(m.registry)
    per_scrape_ms = (time.thread_time() - t0) * 1e3 / 200
    return {"metrics_us_per_query": per_query_us, "scrape_render_ms": per_scrape_ms}


def main(argv: list[str] | None = None) -> int:
    import sut

    ap = argparse.ArgumentParser(prog="bench.metrics_overhead", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--qps", type=float, nargs="+", default=[100.0, 600.0], help="Server target QPS points")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats: expected a positive count")

    rows: dict[tuple[float, bool], list[dict[str, float]]] = {(q, m): [] for q in args.qps for m in (False, True)}
    with tempfile.TemporaryDirectory(prefix="lpuperf-bench-") as tmpname:
        tmp = Path(tmpname)
        dataset = _dataset(tmp)
        serve = ["--artifact", "sim-instant", "--dataset", str(dataset), "--chunk-size", str(CHUNK_SIZE)]
        with sut.spawn_server(serve) as server:
            for r in range(args.repeats):
                order = (False, True) if r % 2 == 0 else (True, False)
                for qps in args.qps:
                    for metrics in order:
                        tag = f"r{r}-{qps:g}-{'metrics' if metrics else 'plain'}"
                        res, scrapes, cpu_us = one_run(
                            server.address, dataset, tmp / "out", tag, qps, args.duration, metrics
                        )
                        row = {
                            "harness_cpu_us_per_query": cpu_us,
                            "completed_qps": float(res.completed_qps or 0.0),
                            "ttft_p50_ms": float(res.ttft_ms.p50 or 0.0),
                            "ttft_p99_ms": float(res.ttft_ms.p99 or 0.0),
                            "valid": float(res.valid),
                            "scrapes": float(scrapes),
                        }
                        rows[(qps, metrics)].append(row)
                        print(
                            f"round {r + 1} {qps:6.0f} QPS metrics={'on ' if metrics else 'off'}: completed "
                            f"{row['completed_qps']:.1f} QPS, TTFT p50 {row['ttft_p50_ms']:.3f} / p99 "
                            f"{row['ttft_p99_ms']:.3f} ms, {'VALID' if res.valid else 'not valid'}, {scrapes} scrapes, "
                            f"harness CPU {cpu_us:.0f} us/query"
                        )
    med = {
        f"{q:g}/{'on' if m else 'off'}": {k: statistics.median(x[k] for x in v) for k in v[0]}
        for (q, m), v in rows.items()
    }
    print(
        f"\nmedians of {args.repeats} rounds ({OUTPUT_TOKENS}-token outputs, chunk {CHUNK_SIZE}, {args.duration:g} s):"
    )
    print(f"  {'QPS':>6} {'metrics':>7} {'completed':>10} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12} {'CPU us/q':>9}")
    for key, m in med.items():
        q, onoff = key.split("/")
        print(
            f"  {q:>6} {onoff:>7} {m['completed_qps']:10.1f} {m['ttft_p50_ms']:12.3f} {m['ttft_p99_ms']:12.3f} "
            f"{m['harness_cpu_us_per_query']:9.0f}"
        )
    keys = ("completed_qps", "ttft_p50_ms", "ttft_p99_ms", "harness_cpu_us_per_query")
    for q in args.qps:
        off, on = med[f"{q:g}/off"], med[f"{q:g}/on"]
        ratio = {k: on[k] / off[k] if off[k] else float("nan") for k in keys}
        print(
            f"  {q:g} QPS on/off: completed x{ratio['completed_qps']:.3f}, TTFT p50 x{ratio['ttft_p50_ms']:.3f}, "
            f"p99 x{ratio['ttft_p99_ms']:.3f}, harness CPU/query x{ratio['harness_cpu_us_per_query']:.3f}"
        )
    call_costs = metric_call_costs()
    print(
        f"  hot-path metric calls: {call_costs['metrics_us_per_query']:.2f} us CPU per query; "
        f"rendering one scrape: {call_costs['scrape_render_ms']:.3f} ms CPU"
    )
    if args.json:
        body = {"medians": med, "costs": call_costs, "rounds": {f"{q:g}/{m}": v for (q, m), v in rows.items()}}
        args.json.write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
