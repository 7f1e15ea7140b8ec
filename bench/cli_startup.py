"""CLI start-up: wall time of ``lpuperf --help`` and of every subcommand's ``--help``.

    .venv/bin/python -m bench.cli_startup [--runs 5] [--module cli] [--pythonpath DIR] [--json PATH]

Each row runs ``python -m MODULE ARGS --help`` in a fresh subprocess ``--runs`` times and reports the
median, min and max wall time, and the median CPU time (user + system) of the process. On a busy
machine wall time follows the load; CPU time is what the command itself costs. ``--module`` and
``--pythonpath`` point it at another checkout of the project (an older tree with its own entry
module) so the same table compares two versions. A fresh interpreter is the point: ``--help`` cost
is import cost, which a warm process hides.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel

from common import write_json_atomic

# Every command line a user can ask --help of, in the order `lpuperf --help` lists them.
COMMANDS: tuple[tuple[str, ...], ...] = (
    (),
    ("serve",),
    ("run",),
    ("find-peak",),
    ("gate",),
    ("compare",),
    ("validate",),
    ("submission",),
    ("submission", "run"),
    ("submission", "build"),
    ("submission", "check"),
    ("accuracy",),
    ("accuracy", "fidelity"),
    ("report",),
    ("compliance",),
    ("compliance", "test06"),
    ("compliance", "context"),
)


class StartupRow(BaseModel):
    command: str
    median_s: float
    min_s: float
    max_s: float
    cpu_s: float  # median user + system seconds of the process


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_processes(
    cmd: list[str], runs: int, env: dict[str, str], cwd: Path | None = None
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` fresh processes of ``cmd`` (run in ``cwd``); exits if one fails."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        c0, t0 = _children_cpu_s(), time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall.append(time.perf_counter() - t0)
        cpu.append(_children_cpu_s() - c0)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {last}")
    return wall, cpu


def time_help(
    python: str, module: str, args: tuple[str, ...], runs: int, env: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` fresh ``python -m module ARGS --help`` processes; exits if one fails."""
    return time_processes([python, "-m", module, *args, "--help"], runs, env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per command (default: 5)")
    ap.add_argument("--module", default="cli", help="entry module run with -m (default: cli)")
    ap.add_argument("--pythonpath", type=Path, help="checkout to import the project from (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    env = dict(os.environ)
    root = args.pythonpath or Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root)
    rows: list[StartupRow] = []
    print(f"python -m {args.module} ... --help, {args.runs} runs each, load average {os.getloadavg()[0]:.2f}")
    print(f"{'command':<34} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>7}")
    for cmd in COMMANDS:
        times, cpu = time_help(args.python, args.module, cmd, args.runs, env)
        name = " ".join(("lpuperf", *cmd, "--help"))
        row = StartupRow(
            command=name,
            median_s=statistics.median(times),
            min_s=min(times),
            max_s=max(times),
            cpu_s=statistics.median(cpu),
        )
        rows.append(row)
        print(f"{name:<34} {row.median_s:>9.3f} {row.min_s:>7.3f} {row.max_s:>7.3f} {row.cpu_s:>7.3f}", flush=True)
    worst = max(rows, key=lambda r: r.median_s)
    print(f"slowest median: {worst.command} {worst.median_s:.3f} s; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        write_json_atomic(args.json, [r.model_dump() for r in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
