"""The openai relay's CPU per 128-token query, relay source trees side by side, in one invocation.

Each round spawns the HTTP front (``python -m sut serve --artifact sim-instant --http PORT``, this
checkout) and, per ``--tree NAME=PATH``, a relay SUT (``python -m sut serve --backend openai``) from
that tree (the trees alternate who goes first), drives the relay with this checkout's harness (Server
scenario, ``--qps``, ``--duration`` s), and reads the relay's and the front's CPU from
``/proc/<pid>/stat``. ``--profile DIR`` also records a py-spy profile of each relay (needs py-spy).
Usage::

    git worktree add --detach /tmp/before <commit>
    python -m bench.relay_cost --tree before=/tmp/before --tree after=. --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.sut_cost import CHUNK_SIZE, OUTPUT_TOKENS, _proc_cpu_s, measured_server_run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(root: Path, extra: list[str], tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m sut serve`` from ``root`` with ``extra`` flags; (process, gRPC address) once serving."""
    port_file = tmp / f"port-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "sut", "serve", "--port", "0", "--port-file", str(port_file), *extra]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):  # bounded: 60 s
        if port_file.is_file() and port_file.read_text().strip():
            break
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited with {proc.returncode}")
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"{cmd} did not bind within 60 s")
    address = f"127.0.0.1:{int(port_file.read_text())}"
    from sut import wait_serving

    if not wait_serving(address, 30.0):
        proc.kill()
        raise RuntimeError(f"{cmd} not serving")
    return proc, address


def spawn_front(dataset: Path | str, tmp: Path, http_port: int) -> tuple[subprocess.Popen[bytes], str]:
    """The instant sim behind the OpenAI-compatible HTTP front (this checkout); (process, its gRPC address)."""
    flags = ["--artifact", "sim-instant", "--dataset", str(dataset), "--chunk-size", str(CHUNK_SIZE)]
    return spawn(Path.cwd(), [*flags, "--http", str(http_port)], tmp)


def one_run(
    root: Path, dataset: Path, tmp: Path, base_url: str, qps: float, duration_s: float, profile: Path | None
) -> dict[str, Any]:
    relay, address = spawn(root, ["--backend", "openai", "--base-url", base_url, "--dataset", str(dataset)], tmp)
    spy = None
    spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if profile is not None and Path(spy_bin).is_file():
        out = profile / f"relay-{root.name}-{time.monotonic_ns()}.txt"
        spy_cmd = [spy_bin, "record", "-p", str(relay.pid), "-f", "raw", "-o", str(out), "-r", "200"]
        spy = subprocess.Popen([*spy_cmd, "-d", str(int(duration_s) + 2)], stdout=subprocess.DEVNULL)
    try:
        row = measured_server_run(relay.pid, address, dataset, tmp, qps, duration_s)
    finally:
        if spy is not None:
            spy.wait(timeout=duration_s + 60)
        relay.terminate()
        relay.wait(timeout=30)
    row["relay_cpu_ms"] = row.pop("sut_cpu_ms")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.relay_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, help="NAME=PATH of a relay source tree (repeatable)")
    ap.add_argument("--qps", type=float, default=150.0)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", type=Path, help="write py-spy raw profiles of each relay here")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    trees = [(name, Path(path).resolve()) for name, _, path in (t.partition("=") for t in args.tree)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lpuperf-relay-cost-") as tmp_s:
        tmp = Path(tmp_s)
        from bench.harness_overhead import _dataset

        dataset = _dataset(tmp)
        port = free_port()
        front, _ = spawn_front(dataset, tmp, port)
        try:
            for r in range(args.rounds):
                for name, root in trees if r % 2 == 0 else trees[::-1]:
                    f0 = _proc_cpu_s(front.pid)
                    row = one_run(
                        root, dataset, tmp, f"http://127.0.0.1:{port}/v1", args.qps, args.duration, args.profile
                    )
                    row["front_cpu_ms"] = 1000 * (_proc_cpu_s(front.pid) - f0) / max(1, row["n"])
                    runs[name].append(row)
                    print(json.dumps({"round": r + 1, "tree": name, **row}), flush=True)
        finally:
            front.terminate()
            front.wait(timeout=30)
    print(f"\nmedians of {args.rounds} rounds, {args.qps:g} QPS x {args.duration:g} s, {OUTPUT_TOKENS}-token outputs:")
    summary: dict[str, Any] = {}
    for name, rows in runs.items():
        vals = [float(x["relay_cpu_ms"]) for x in rows]
        summary[name] = {"relay_cpu_ms": statistics.median(vals), "spread": (min(vals), max(vals)), "runs": rows}
        print(
            f"  {name}: relay CPU/query {statistics.median(vals):.2f} ms ({min(vals):.2f}-{max(vals):.2f}), "
            f"errors {[x['errors'] for x in rows]}, load {[round(x['load1'], 1) for x in rows]}"
        )
    if len(trees) == 2:
        a, b = (n for n, _ in trees)
        ratios = [float(x["relay_cpu_ms"]) / float(y["relay_cpu_ms"]) for x, y in zip(runs[b], runs[a], strict=True)]
        print(f"  relay CPU ratio {b}/{a} per round: {[round(x, 2) for x in ratios]}")
        summary["ratio"] = {"per_round": ratios, "median": statistics.median(ratios)}
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
