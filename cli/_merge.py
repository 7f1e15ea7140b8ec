"""``lpuperf merge DIR... --out DIR``: one run from the shards of a sharded load, and ``run``'s shard flags.

``lpuperf run --load SHAPE --shard I/N --start-at TIME`` runs shard I of N of a load (docs/sharding.md);
``lpuperf merge`` builds one run directory from the shards' records, readable by report, compare, gate,
export and history like any run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_dir_arg, run_id_arg
from cli._record import add_record_args, record
from common import UsageError


def shard_arg(text: str) -> str:
    """``--shard I/N``, checked while parsing (kept as text: the parser imports no pydantic)."""
    from loadgen_harness import parse_shard

    try:
        return str(parse_shard(text))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--shard: ")) from None


def start_at_arg(text: str) -> int:
    """``--start-at TIME`` -> Unix ns, checked while parsing."""
    from loadgen_harness import parse_start_at

    try:
        return parse_start_at(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--start-at: ")) from None


def add_shard_arguments(p: argparse.ArgumentParser) -> None:
    """``run``'s --shard and --start-at."""
    p.add_argument(
        "--shard",
        type=shard_arg,
        metavar="I/N",
        help="with --load: send shard I of N (0-based) of the load, for N harnesses on N machines: rate R/N as an "
        "independent Poisson stream, concurrency C/N, trace lines and sessions k with k mod N == I; "
        "lpuperf merge builds one run from the shards (not with --scenario: one LoadGen per MLPerf run)",
    )
    p.add_argument(
        "--start-at",
        type=start_at_arg,
        metavar="TIME",
        help="with --load: begin sending at this wall-clock time (ISO 8601 with a zone, or Unix seconds), so the "
        "shards start together; the SUT is reached and checked before it",
    )


def shard_options_from_args(args: argparse.Namespace) -> dict[str, object]:
    """RunConfig's shard fields; a LoadGen scenario with --shard/--start-at is refused in one line."""
    shard, start_at = getattr(args, "shard", None), getattr(args, "start_at", None)
    if shard is None and start_at is None:
        return {}
    if not args.load:
        flag = "--shard" if shard is not None else "--start-at"
        raise UsageError(
            f"{flag}: a LoadGen scenario runs as one LoadGen and cannot be sharded; use --load (rate:, concurrency:, "
            "trace:, sessions:) with it"
        )
    from loadgen_harness import parse_shard

    return {"shard": None if shard is None else parse_shard(shard), "start_at_unix_ns": start_at}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "merge",
        help="build one run from the shards of a sharded load (lpuperf run --load ... --shard I/N)",
        description="Merge the run directories of every shard of a sharded load into one run at "
        "OUT/<run-id>/<scenario>/performance/: percentiles exact over the union of the shards' records, rates "
        "summed over the window every shard covered, per-shard and per-replica tables, the clock offsets between "
        "shards as measured through the SUT's timestamps. Sharded: not an MLPerf LoadGen run.",
    )
    p.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="each shard's run directory (OUT/<run-id>/<scenario>/performance/) or its OUT/<run-id>/",
    )
    p.add_argument("--out", type=out_dir_arg, required=True, help="output root of the merged run")
    p.add_argument("--run-id", type=run_id_arg, help="the merged run's id (default: merged-<timestamp>)")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for shards still running to write their results.json (default 0: they must be "
        "there); for a merge step started beside the shards",
    )
    add_record_args(p)
    p.set_defaults(func=merge_cli)


def merge_cli(args: argparse.Namespace) -> int:
    from loadgen_harness import format_summary
    from workflows import merge_shards

    if not 0 <= args.wait <= 7 * 24 * 3600:
        raise UsageError(f"--wait: expected 0..604800 seconds, got {args.wait:g}")
    res = merge_shards(list(args.dirs), args.out, args.run_id, args.wait)
    print(format_summary(res))
    for line in shard_table(res):
        print(line)
    print(f"merged run: {res.log_dir}")
    record(args, args.out, res)
    return 0 if res.valid else 1


def shard_table(res: object) -> list[str]:
    """The per-shard lines the console shows after a merge."""
    from loadgen_harness import RunResult

    assert isinstance(res, RunResult)
    sharded = res.sharded
    if sharded is None:
        return []
    window = f"{sharded.common_window_s:.3f} s" if sharded.common_window_s is not None else "none"
    lines = [f"{sharded.note}: {sharded.count} shards, common window {window}, timeline on {sharded.alignment}"]
    for row in sharded.shards:
        clock = (
            f"clock {row.clock_offset_ms:+.3f} ms (±{row.clock_offset_error_ms:.3f})"
            if row.clock_offset_ms is not None and row.clock_offset_error_ms is not None
            else "clock not measured"
        )
        qps = f"{row.qps:.2f}" if row.qps is not None else "-"
        lines.append(
            f"  shard {row.index} {row.host or '?'}: {row.n_queries} queries ({row.n_failed} failed), {qps} q/s, "
            f"started +{row.start_offset_ms:.3f} ms, {clock}"
        )
    return lines
