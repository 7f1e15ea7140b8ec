"""What the load-shape benches share: the instant server, and one ``lpuperf run --load`` child measured from outside.

The server is ``python -m sut serve --artifact sim-instant`` (zero-time sim, chunk 8) in its own process,
serving the 128-token bench dataset, optionally with its OpenAI-compatible HTTP front and its metrics port.
A harness run is the real CLI (``python -m cli run --load SHAPE ...``) as a child process; its CPU is the
child's own user + system time from ``wait4`` (its rusage, start-up and report writing included), its
peak RSS ``ru_maxrss``, and optionally its RSS sampled over time from ``/proc``. The server's CPU over the
same run comes from ``/proc/<pid>/stat``. The 1-minute load average is read at the start and the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.relay_cost import free_port, spawn
from bench.soak import rss_mb
from bench.sut_cost import CHUNK_SIZE, OUTPUT_TOKENS, _proc_cpu_s

ROOT = Path(__file__).resolve().parent.parent
MODEL = "sim-instant"
LAG_BOUND_MS = 10.0  # the harness's default --max-dispatch-lag-ms
COMPLETION_FLOOR = 0.95  # an open loop follows its target when it completes at least this share of it


@dataclass
class Server:
    pid: int
    address: str  # gRPC host:port
    base_url: str | None  # the HTTP front's /v1, when started
    metrics_url: str | None


@contextlib.contextmanager
def instant_server(tmp: Path, dataset: Path, http: bool = False, metrics: bool = False) -> Iterator[Server]:
    """The instant sim serving ``dataset`` (chunk 8), with its HTTP front and metrics port if asked."""
    flags = ["--artifact", MODEL, "--dataset", str(dataset), "--chunk-size", str(CHUNK_SIZE)]
    http_port = free_port() if http else None
    metrics_port = free_port() if metrics else None
    if http_port is not None:
        flags += ["--http", str(http_port)]
    if metrics_port is not None:
        flags += ["--metrics-port", str(metrics_port)]
    proc, address = spawn(ROOT, flags, tmp)
    try:
        yield Server(
            proc.pid,
            address,
            f"http://127.0.0.1:{http_port}/v1" if http_port is not None else None,
            f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port is not None else None,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def bench_dataset(tmp: Path) -> Path:
    """The 128-token bench dataset (256 prompts of 50-100 tokens), as every harness bench uses."""
    from bench.harness_overhead import _dataset

    return _dataset(tmp)


@dataclass
class ChildRun:
    """One ``lpuperf run`` child, measured from outside."""

    rc: int
    wall_s: float
    cpu_s: float  # the child's user + system CPU (rusage from wait4)
    maxrss_mb: float
    server_cpu_s: float | None
    load1: tuple[float, float]
    rss_series: list[tuple[float, float]] = field(default_factory=list)  # (s since start, harness RSS MB)
    server_rss_series: list[tuple[float, float]] = field(default_factory=list)
    results: dict[str, Any] | None = None


def load_argv(
    spec: str,
    server: Server,
    out: Path,
    run_id: str,
    *,
    dataset: Path | None,
    duration_s: float | None,
    transport: str = "grpc",
    extra: Sequence[str] = (),
) -> list[str]:
    """``python -m cli run --load SPEC`` against ``server`` over gRPC or its HTTP front, 128-token answers."""
    argv = [sys.executable, "-m", "cli", "run", "--load", spec, "--out", str(out), "--run-id", run_id]
    argv += ["--no-record", "--metrics-linger", "0"]
    if dataset is not None:  # a trace makes its own prompts and output lengths
        argv += ["--dataset", str(dataset), "--max-new-tokens", str(OUTPUT_TOKENS), "--ignore-eos"]
    if duration_s is not None:
        argv += ["--duration", f"{duration_s:g}"]
    if transport == "grpc":
        argv += ["--sut", server.address]
    else:
        assert server.base_url is not None, "the HTTP transport needs the server's HTTP front"
        argv += ["--transport", "openai-http", "--base-url", server.base_url, "--model", MODEL]
    return [*argv, *extra]


def run_child(argv: list[str], server_pid: int | None, timeout_s: float, rss_every_s: float | None = None) -> ChildRun:
    """Run ``argv`` to its end (killed past ``timeout_s``); CPU and peak RSS from its rusage, RSS sampled if asked."""
    load0 = os.getloadavg()[0]
    s0 = _proc_cpu_s(server_pid) if server_pid is not None else None
    t0 = time.monotonic()
    # stderr to a file, not a pipe: a chatty child never blocks on a full pipe while we poll
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=err
        )
        child = ChildRun(rc=-1, wall_s=0.0, cpu_s=0.0, maxrss_mb=0.0, server_cpu_s=None, load1=(0.0, 0.0))
        status, usage = _wait(proc.pid, server_pid, t0, timeout_s, rss_every_s, child)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    proc.returncode = child.rc = os.waitstatus_to_exitcode(status)
    if child.rc not in (0, 1):  # 1: a finished run judged not valid
        print(f"# {' '.join(argv[2:6])}...: exit {child.rc}: {stderr.strip()[-300:]}", file=sys.stderr)
    child.wall_s = time.monotonic() - t0
    child.cpu_s = usage.ru_utime + usage.ru_stime
    child.maxrss_mb = usage.ru_maxrss / 1024
    if server_pid is not None and s0 is not None:
        child.server_cpu_s = _proc_cpu_s(server_pid) - s0
    child.load1 = (round(load0, 2), round(os.getloadavg()[0], 2))
    return child


def _wait(
    pid: int, server_pid: int | None, t0: float, timeout_s: float, rss_every_s: float | None, child: ChildRun
) -> tuple[int, Any]:
    """Poll ``pid`` until it exits (SIGKILL past ``timeout_s``), sampling RSS into ``child``; (status, rusage)."""
    next_sample, killed = t0, False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        now = time.monotonic()
        if now - t0 > timeout_s and not killed:
            os.kill(pid, signal.SIGKILL)
            killed = True
        if rss_every_s is not None and now >= next_sample:
            child.rss_series.append((now - t0, rss_mb(pid)))
            if server_pid is not None:
                child.server_rss_series.append((now - t0, rss_mb(server_pid)))
            next_sample += rss_every_s
        time.sleep(0.05)


def read_results(out: Path, run_id: str) -> dict[str, Any] | None:
    found = sorted(out.glob(f"{run_id}/*/performance/results.json"))
    return json.loads(found[0].read_text()) if found else None


def run_load(
    spec: str,
    server: Server,
    out: Path,
    run_id: str,
    *,
    dataset: Path | None,
    duration_s: float | None,
    transport: str = "grpc",
    timeout_s: float = 300.0,
    rss_every_s: float | None = None,
) -> ChildRun:
    argv = load_argv(spec, server, out, run_id, dataset=dataset, duration_s=duration_s, transport=transport)
    child = run_child(argv, server.pid, timeout_s, rss_every_s)
    child.results = read_results(out, run_id)
    return child


def figures(child: ChildRun, fixed_cpu_s: float | None = None) -> dict[str, Any]:
    """The figures of one load run: completed rate, dispatch lag, CPU per completed request, load."""
    res = child.results or {}
    ok = res.get("successful") or {}
    lag = res.get("dispatch_lag") or {}
    load = res.get("load") or {}
    done = int(ok.get("n_queries") or 0)
    row: dict[str, Any] = {
        "rc": child.rc,
        "sent": int(load.get("sent_requests") or 0),
        "completed": done,
        "errors": int(res.get("n_errors") or 0),
        "completed_qps": ok.get("qps"),
        "ttft_p50_ms": (ok.get("ttft_ms") or {}).get("p50"),
        "lag_p50_ms": lag.get("p50_ms"),
        "lag_p99_ms": lag.get("p99_ms"),
        "lag_max_ms": lag.get("max_ms"),
        "client_limited": res.get("client_limited"),
        "overloaded": res.get("overload") is not None,
        "client_cpu_s": round(child.cpu_s, 3),
        "client_cpu_ms_per_req": round(1e3 * child.cpu_s / done, 4) if done else None,
        "server_cpu_ms_per_req": (
            round(1e3 * child.server_cpu_s / done, 4) if done and child.server_cpu_s is not None else None
        ),
        "wall_s": round(child.wall_s, 2),
        "load1": child.load1,
    }
    if fixed_cpu_s is not None and done:
        row["client_cpu_net_ms_per_req"] = round(1e3 * max(child.cpu_s - fixed_cpu_s, 0.0) / done, 4)
    return row


def fixed_cpu_s(server: Server, out: Path, dataset: Path, transport: str = "grpc") -> float:
    """The harness's fixed CPU (start-up, channel, report): a run of one request."""
    child = run_load(
        "concurrency:1:requests=1",
        server,
        out,
        f"fixed-{time.monotonic_ns()}",
        dataset=dataset,
        duration_s=None,
        transport=transport,
    )
    return child.cpu_s


def med(values: Sequence[float | None]) -> str:
    """Median (min-max) of the figures present, as the tables print them."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return "–"
    m = statistics.median(xs)
    return f"{m:.3g} ({min(xs):.3g}–{max(xs):.3g})" if len(xs) > 1 else f"{m:.3g}"


def load_range(rows: Sequence[dict[str, Any]]) -> str:
    loads = [x for r in rows for x in r["load1"]]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–"


__all__ = [
    "CHUNK_SIZE",
    "COMPLETION_FLOOR",
    "LAG_BOUND_MS",
    "OUTPUT_TOKENS",
    "ChildRun",
    "Server",
    "bench_dataset",
    "figures",
    "fixed_cpu_s",
    "instant_server",
    "load_argv",
    "load_range",
    "med",
    "read_results",
    "run_child",
    "run_load",
]
