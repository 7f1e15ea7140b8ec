"""Latency of the CLI commands that do little: ``history list``, ``history show`` and ``export`` of one run.

    .venv/bin/python -m bench.cli_latency [--runs 7] [--out DIR] [--pythonpath DIR] [--json PATH]

Without ``--out`` it first makes one real run (``lpuperf run --scenario Offline``, a few seconds, recorded
in a fresh store in a temp dir), so the store and the run directory are what a user has after a run.
Each command then runs ``--runs`` times in a fresh process; the table gives the median, min and max wall
time and the median CPU time (user + system) of the process, with ``lpuperf --help`` as the floor (the
interpreter and the parser). The load average is printed before and after: on a busy machine wall time
follows the load, CPU time is what the command itself costs. tests/unit/cli/test_cli_latency_imports.py
guards what these commands import; this measures what that buys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.cli_startup import StartupRow, time_processes
from common import write_json_atomic

RUN_ID = "bench-latency"


def time_command(
    python: str, argv: list[str], runs: int, env: dict[str, str], root: Path
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` fresh ``python -m cli ARGV`` processes in ``root`` (the checkout
    imported: ``-m`` puts the working directory first on the path); exits if one fails."""
    return time_processes([python, "-m", "cli", *argv], runs, env, root)


def make_run(python: str, out: Path, env: dict[str, str], root: Path) -> None:
    """One short real run, recorded in OUT's store: the state the timed commands read."""
    argv = ["run", "--scenario", "Offline", "--duration", "2", "--max-new-tokens", "16"]
    argv += ["--out", str(out), "--run-id", RUN_ID]
    proc = subprocess.run([python, "-m", "cli", *argv], cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # a 2 s run may be INVALID; it is recorded either way
        raise SystemExit(f"lpuperf run: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")


def _run_dir(out: Path) -> Path:
    found = sorted(out.glob("*/*/performance/queries.npz"))
    if not found:
        raise SystemExit(f"{out}: no run directory with queries.npz (OUT/<run-id>/<scenario>/performance/)")
    return found[-1].parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per command (default: 7)")
    ap.add_argument("--out", type=Path, help="an output root with a store and a run (default: make one run)")
    ap.add_argument("--pythonpath", type=Path, help="checkout to import the project from (default: this one)")
    ap.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    env = dict(os.environ)
    root = (args.pythonpath or Path(__file__).resolve().parent.parent).resolve()
    env["PYTHONPATH"] = str(root)
    with tempfile.TemporaryDirectory(prefix="lpuperf-bench-") as tmp:
        out = args.out
        if out is None:
            out = Path(tmp) / "results"
            make_run(args.python, out, env, root)
        run_dir = _run_dir(out)
        commands = [
            ["--help"],
            ["history", "list", "--out", str(out)],
            ["history", "show", "1", "--out", str(out)],
            ["history", "show", "1", "--json", "--out", str(out)],
            ["export", str(run_dir), "-o", str(Path(tmp) / "queries.csv")],
            ["export", str(run_dir), "--format", "jsonl", "-o", "-"],
        ]
        print(f"python -m cli ... in {root}, {args.runs} runs each, load average {os.getloadavg()[0]:.2f}")
        print(f"{'command':<44} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>7}")
        rows: list[StartupRow] = []
        for cmd in commands:
            wall, cpu = time_command(args.python, cmd, args.runs, env, root)
            shown = " ".join(a if not a.startswith("/") else Path(a).name for a in cmd)
            row = StartupRow(
                command=f"lpuperf {shown}",
                median_s=statistics.median(wall),
                min_s=min(wall),
                max_s=max(wall),
                cpu_s=statistics.median(cpu),
            )
            rows.append(row)
            print(f"{row.command:<44} {row.median_s:>9.3f} {row.min_s:>7.3f} {row.max_s:>7.3f} {row.cpu_s:>7.3f}")
    worst = max(rows[1:], key=lambda r: r.median_s)
    print(f"slowest median: {worst.command} {worst.median_s:.3f} s; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        write_json_atomic(args.json, [r.model_dump() for r in rows])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
