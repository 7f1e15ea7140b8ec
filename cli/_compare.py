"""``lpuperf compare BASELINE CANDIDATE``: per-metric deltas; non-zero exit on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_file_arg
from common import UsageError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "compare",
        help="compare two runs; non-zero exit on regression",
        description="Compare two run directories (OUT/<run-id>/<scenario>/<mode>/): latency percentiles, QPS and "
        "tokens/s with bootstrap confidence intervals from queries.npz, error rate, accuracy and fidelity. A metric "
        "is better or worse only when its interval excludes zero; one without an interval gets no verdict.",
    )
    p.add_argument("baseline", type=Path, help="baseline run directory or results.json, or an MLPerf result directory")
    p.add_argument(
        "candidate", type=Path, help="candidate run directory or results.json, or an MLPerf result directory"
    )
    p.add_argument("--tolerance", type=float, default=0.05, help="relative latency/throughput/energy tolerance (0.05)")
    p.add_argument("--accuracy-tolerance", type=float, default=0.01, help="relative accuracy tolerance (0.01)")
    p.add_argument("--fidelity-tolerance", type=float, default=0.02, help="absolute exact-match tolerance (0.02)")
    p.add_argument("--confidence", type=float, default=0.95, help="bootstrap confidence level (0.95)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples, 100..20000 (1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument(
        "--force",
        action="store_true",
        help="compare runs of different modes, scenarios or benchmarks (refused otherwise, exit 2)",
    )
    p.add_argument("--json", type=out_file_arg, help="write the comparison as JSON here")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from common import first_error_line, write_atomic
    from workflows import CompareConfig, compare_runs, load_run_data

    try:
        cfg = CompareConfig(
            tolerance=args.tolerance,
            accuracy_tolerance=args.accuracy_tolerance,
            fidelity_tolerance=args.fidelity_tolerance,
            confidence=args.confidence,
            resamples=args.resamples,
            seed=args.seed,
            force=args.force,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--").replace("_", "-")) from None
    comparison = compare_runs(load_run_data(args.baseline), load_run_data(args.candidate), cfg)
    print(comparison.table())
    for note in comparison.notes:
        print(f"note: {note}")
    for m in comparison.regressions:
        print(m.line)
    if args.json:
        write_atomic(args.json, comparison.model_dump_json(indent=2) + "\n")
        print(f"wrote {args.json}")
    n = len(comparison.regressions)
    print(f"compare: {'no regression' if n == 0 else f'{n} regression' + ('s' if n > 1 else '')}")
    return 0 if comparison.passed else 1
