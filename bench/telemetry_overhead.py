"""What scraping server-side telemetry costs the harness: Server runs at 300 QPS with and without ``--scrape``.

Against the instant sim SUT in its own process (serving its Prometheus metrics, so the harness is the
only thing timed here), each round runs the same Server scenario without telemetry, with the SUT's
exporter scraped every second, and (when ``prometheus-node-exporter`` is installed) with the SUT's
exporter plus a node exporter on loopback. The order rotates between rounds so drift on a shared
machine favours no side. Two figures: the sampler threads' own CPU time (``thread_time``, kept in
telemetry.npz) as a share of the whole harness process's CPU time in the same run, which is what the
2 % goal is about; and the harness's CPU time per completed query (every thread: LoadGen, the bridge,
the samplers) with and without scraping, their ratio taken within each round (noisier: it carries
the machine's drift between two runs). Medians over ``--repeats`` rounds (default 3), with the load
average.

Usage: ``python -m bench.telemetry_overhead [--qps 300] [--duration 10] [--repeats 3] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness_overhead import OUTPUT_TOKENS, _dataset

NODE_EXPORTER = shutil.which("prometheus-node-exporter")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _node_exporter() -> Iterator[str | None]:
    if NODE_EXPORTER is None:
        yield None
        return
    port = _free_port()
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run(address: str, dataset: Path, out: Path, tag: str, qps: float, duration_s: float, urls: list[str]) -> Any:
    from loadgen_harness import RunConfig, ScrapeTarget, TelemetryConfig, run_benchmark

    telemetry = TelemetryConfig(targets=[ScrapeTarget(url=u) for u in urls], interval_s=1.0) if urls else None
    cfg = RunConfig(
        scenario="Server",
        sut=address,
        dataset=str(dataset),
        qps=qps,
        duration_s=duration_s,
        out_dir=out,
        run_id=tag,
        max_new_tokens=OUTPUT_TOKENS,
        telemetry=telemetry,
        metrics_linger_s=0,
    )
    c0 = time.process_time()
    res = run_benchmark(cfg)
    cpu = time.process_time() - c0
    sampler = 0.0
    if urls:
        from loadgen_harness import Telemetry

        sampler = Telemetry.load(res.log_dir).sampler_cpu_s
    return cpu / max(res.n_queries, 1) * 1e6, sampler / cpu, res


def main(argv: list[str] | None = None) -> int:
    import sut

    p = argparse.ArgumentParser(prog="bench.telemetry_overhead", description=__doc__.splitlines()[0])
    p.add_argument("--qps", type=float, default=300.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lpuperf-bench-telemetry-") as tmp_s, _node_exporter() as node:
        tmp = Path(tmp_s)
        dataset = _dataset(tmp)
        server = sut.spawn_server(
            ["--backend", "sim", "--artifact", "sim-instant", "--dataset", str(dataset)], timeout_s=120, metrics=True
        )
        try:
            own = f"http://{server.metrics_address}/metrics"
            variants: dict[str, list[str]] = {"plain": [], "sut": [own]}
            if node is not None:
                variants["sut+node"] = [own, node]
            _run(server.address, dataset, tmp / "out", "warmup", args.qps, 3.0, [])
            names = list(variants)
            for r in range(args.repeats):
                order = names[r % len(names) :] + names[: r % len(names)]
                got: dict[str, float] = {}
                for name in order:
                    us, share, res = _run(
                        server.address,
                        dataset,
                        tmp / "out",
                        f"{name.replace('+', '-')}-{r}",
                        args.qps,
                        args.duration,
                        variants[name],
                    )
                    got[name] = us
                    if name != "plain":  # the sampler threads' CPU over the whole process's, in the same run
                        rows.setdefault(f"{name} sampler share", []).append(share)
                    rows.setdefault(f"{name} us/query", []).append(us)
                    rows.setdefault(f"{name} completed qps", []).append(float(res.completed_qps or 0.0))
                for name in names[1:]:
                    rows.setdefault(f"{name}/plain", []).append(got[name] / got["plain"])
                print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f} us/query" for k, v in got.items()), flush=True)
        finally:
            server.terminate()
    figures = {k: statistics.median(v) for k, v in rows.items()}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    for k, v in figures.items():
        print(f"  {k:28s} {v:10.4f}   (rounds: {', '.join(f'{x:.4f}' for x in rows[k])})")
    if args.json is not None:
        args.json.write_text(json.dumps({"figures": figures, "rounds": rows, "loadavg": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
