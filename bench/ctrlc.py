"""How long one Ctrl-C takes to end ``lpuperf run``, per scenario, fleet and transport.

Each case starts ``lpuperf run`` in its own session with SIGINT at its default (as a terminal does),
waits until LoadGen has issued for a while (its trace log grows), sends SIGINT to the process group
and times signal to exit. Every case runs ``--reps`` times; the table gives the median, the range and
the load average before each case. The openai-http case streams to ``lpuperf serve --http`` (the sim's
OpenAI-compatible front), started once for it.

Usage: ``python -m bench.ctrlc [--reps 3] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE = ["--dataset", "synthetic:64:7", "--duration", "600", "--trace"]
CASES: dict[str, list[str]] = {
    "Server": ["--scenario", "Server", "--qps", "40"],
    "Offline": ["--scenario", "Offline", "--qps", "40"],
    "SingleStream": ["--scenario", "SingleStream"],
    "MultiStream": ["--scenario", "MultiStream"],
    "fleet (3 replicas, Server)": ["--scenario", "Server", "--qps", "40", "--replicas", "3"],
    "openai-http (Server)": ["--scenario", "Server", "--qps", "20", "--transport", "openai-http"],
}
START_TIMEOUT_S = 120.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@contextlib.contextmanager
def _http_front(tmp: Path) -> Iterator[str]:
    """``lpuperf serve --http`` on the sim; yields the front's base URL."""
    port_file = tmp / "grpc.port"
    http_port = _free_port()
    argv = [sys.executable, "-m", "cli", "serve", "--port", "0", "--port-file", str(port_file)]
    argv += ["--dataset", "synthetic:64:7", "--http", str(http_port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{http_port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one(args: list[str], out: Path, run_id: str) -> dict[str, Any]:
    # Recorded in a run store, as a user's run is (the record is part of the time to exit).
    argv = [sys.executable, "-m", "cli", "run", *args, *BASE, "--out", str(out), "--run-id", run_id]
    argv += ["--db", f"sqlite:///{out.parent / 'runs.db'}"]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            trace = next(out.glob(f"{run_id}/*/performance/mlperf_log_trace.json"), None)
            if trace is not None and trace.stat().st_size > 10_000:
                break
            time.sleep(0.1)
        time.sleep(2.0)  # issuing for a while, streams in flight
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    res = json.loads(next(out.glob(f"{run_id}/*/performance/results.json")).read_text())
    return {"exit_s": round(took, 3), "rc": rc, "loadgen_finished": res["loadgen_finished"], "state": res["state"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-ctrlc-") as tmp_s:
        tmp = Path(tmp_s)
        with _http_front(tmp) as base_url:
            for name, case in CASES.items():
                extra = ["--base-url", base_url] if "openai-http" in case else []
                load = os.getloadavg()[0]
                runs = [_one([*case, *extra], tmp / "out", f"c{len(rows)}-{i}") for i in range(args.reps)]
                times = [r["exit_s"] for r in runs]
                row = {
                    "case": name,
                    "median_s": statistics.median(times),
                    "min_s": min(times),
                    "max_s": max(times),
                    "load_1m": round(load, 2),
                    "loadgen_finished": [r["loadgen_finished"] for r in runs],
                    "exit_codes": sorted({r["rc"] for r in runs}),
                }
                rows.append(row)
                print(
                    f"{name:<28} median {row['median_s']:.2f} s (range {row['min_s']:.2f}-{row['max_s']:.2f}), "
                    f"exit {row['exit_codes']}, LoadGen ended its test: {row['loadgen_finished']}, load {load:.2f}",
                    flush=True,
                )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
