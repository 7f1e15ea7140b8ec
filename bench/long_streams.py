"""The harness's CPU per query and per token for long (2,000-token) streams next to short (128-token) ones.

The per-token path must stay flat: a 2,000-token answer may cost more per query than a 128-token one,
but not more per token. Each case serves an instant SUT (``lpuperf serve --artifact sim-instant``, or
another artifact such as ``sim-reasoning``, chunk 8) over a synthetic dataset whose answers are exactly
N tokens, and times ``lpuperf run --scenario Server`` at a fixed rate for two durations. The harness
process's CPU (user + system, rusage of the finished child; the SUT is another process) at the longer
duration minus the shorter one, over the queries and tokens the longer run added, is the marginal cost:
start-up and the end of test cancel out. ``--reps`` rounds rotate the case order; medians are reported
with the load average.

Usage: ``python -m bench.long_streams [--reps 3] [--qps 20] [--durations 10,30]
[--case "reasoning=sim-reasoning@reasoning:deepseek-r1@4096"]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 8


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _dataset(tmp: Path, tokens: int) -> Path:
    from scenarios import save_dataset, synthetic_dataset

    ds = synthetic_dataset(n=128, seed=5, input_range=(50, 100), output_tokens=tokens, name=f"bench-{tokens}")
    return save_dataset(ds, tmp / f"bench-{tokens}.jsonl")


@contextlib.contextmanager
def _sut(tmp: Path, artifact: str, dataset: str) -> Iterator[str]:
    port_file = tmp / f"{artifact}.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "cli", "serve", "--port", "0", "--port-file", str(port_file)]
    argv += ["--artifact", artifact, "--chunk-size", str(CHUNK), "--dataset", dataset]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"lpuperf serve --artifact {artifact} did not start")
            time.sleep(0.05)
        yield f"127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(address: str, dataset: str, max_new: int, qps: float, duration_s: float, out: Path) -> dict[str, float]:
    argv = [sys.executable, "-m", "cli", "run", "--scenario", "Server", "--sut", address, "--dataset", dataset]
    argv += ["--max-new-tokens", str(max_new), "--qps", f"{qps:g}", "--duration", f"{duration_s:g}"]
    argv += ["--out", str(out), "--run-id", f"d{duration_s:g}", "--no-record", "--metrics-linger", "0"]
    c0 = _children_cpu_s()
    subprocess.run(argv, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    cpu = _children_cpu_s() - c0
    res = json.loads(next(out.glob(f"d{duration_s:g}/Server/performance/results.json")).read_text())
    ok = res.get("successful") or {}
    queries = float(ok.get("n_queries") or 0)
    tokens = float(ok.get("tokens_per_second") or 0) * float(ok.get("window_s") or 0)
    return {"cpu_s": cpu, "queries": queries, "tokens": tokens, "errors": float(res.get("n_errors", 0))}


def measure(
    label: str, address: str, dataset: str, max_new: int, qps: float, durations: tuple[float, float]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lpuperf-long-") as tmp:
        short, long = (_run(address, dataset, max_new, qps, d, Path(tmp)) for d in durations)
    dq, dt = long["queries"] - short["queries"], long["tokens"] - short["tokens"]
    dcpu = long["cpu_s"] - short["cpu_s"]
    return {
        "case": label,
        "cpu_ms_per_query": 1e3 * dcpu / dq if dq > 0 else None,
        "cpu_us_per_token": 1e6 * dcpu / dt if dt > 0 else None,
        "tokens_per_query": dt / dq if dq > 0 else None,
        "errors": short["errors"] + long["errors"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--qps", type=float, default=20.0)
    ap.add_argument("--durations", default="10,30", help="the two run lengths, seconds")
    ap.add_argument(
        "--case",
        action="append",
        default=[],
        help="extra case LABEL=ARTIFACT@DATASET@MAX_NEW (e.g. reasoning=sim-reasoning@reasoning:deepseek-r1@4096)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    d_short, d_long = (float(x) for x in args.durations.split(","))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-long-ds-") as tmp_s:
        tmp = Path(tmp_s)
        cases: list[tuple[str, str, str, int]] = [
            (f"{n}-token answers", "sim-instant", str(_dataset(tmp, n)), n) for n in (128, 2000)
        ]
        for spec in args.case:
            label, rest = spec.split("=", 1)
            artifact, dataset, max_new = rest.split("@")
            cases.append((label, artifact, dataset, int(max_new)))
        for rep in range(args.reps):
            order = cases[rep % len(cases) :] + cases[: rep % len(cases)]
            for label, artifact, dataset, max_new in order:
                load = os.getloadavg()[0]
                with _sut(tmp, artifact, dataset) as address:
                    row = measure(label, address, dataset, max_new, args.qps, (d_short, d_long))
                row |= {"rep": rep, "load_1m": round(load, 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("case                      CPU ms/query   CPU us/token   tokens/query   (medians)")
    for label in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == label and r["cpu_ms_per_query"] is not None]
        if not mine:
            continue
        med = {
            k: statistics.median(r[k] for r in mine)
            for k in ("cpu_ms_per_query", "cpu_us_per_token", "tokens_per_query")
        }
        print(
            f"{label:<25} {med['cpu_ms_per_query']:>12.3f} {med['cpu_us_per_token']:>14.2f} {med['tokens_per_query']:>14.0f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
