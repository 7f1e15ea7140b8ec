"""``lpuperf report RUN_DIR``: a self-contained HTML page with the run's plots, verdict and settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_file_arg
from common import UsageError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "report",
        help="write an HTML report (latency CDFs, histogram, QPS over time, verdict) for a run",
        description="Render RUN_DIR (OUT/<run-id>/<scenario>/<mode>/) as one self-contained HTML page: inline SVG "
        "plots from queries.npz (or LoadGen's trace log), the validity verdict with reasons, the effective "
        "settings and the artifact manifest.",
    )
    p.add_argument(
        "run_dir",
        type=Path,
        metavar="RUN_DIR",
        help="run directory holding results.json, or an MLPerf result directory (<scenario>/ or performance/run_1/)",
    )
    p.add_argument("-o", "--out", type=out_file_arg, help="output file (default: RUN_DIR/report.html)")
    p.set_defaults(func=report_cli)


def report_cli(args: argparse.Namespace) -> int:
    from workflows import ReportError, write_report

    try:
        path = write_report(args.run_dir, args.out)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{args.out or args.run_dir}: cannot write the report ({exc.strerror or exc})") from None
    print(f"wrote {path}")
    return 0
