"""``lpuperf export RUN_DIR``: one row per request of a run, as CSV, JSON lines or Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_file_arg


def _out_arg(text: str) -> Path | str:
    return "-" if text == "-" else out_file_arg(text)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a run's per-request records (CSV, JSON lines, Parquet)",
        description="Write one row per query of RUN_DIR's queries.npz: query and sample ids, status, harness and "
        "SUT timestamps (ns), ttft_ms, tpot_ms, itl_ms, max_gap_ms, latency_ms and token counts; how each was sent "
        "(sent_ns, dispatch_lag_ms, session, turn, tool_step, finish_reason, cached_tokens, n_prompt). Values a query "
        "never reached are empty (CSV) or null. Parquet needs the 'parquet' extra (pyarrow).",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory holding queries.npz")
    p.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv", help="output format (csv)")
    p.add_argument("-o", "--out", type=_out_arg, help="output file, '-' for stdout (default: RUN_DIR/queries.<format>)")
    p.set_defaults(func=export_cli)


def export_cli(args: argparse.Namespace) -> int:
    from workflows import export_records

    path = export_records(args.run_dir, args.format, args.out)
    if path is not None:
        print(path)
    return 0
