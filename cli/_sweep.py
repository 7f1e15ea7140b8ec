"""``lpuperf sweep``: one load run per point (concurrencies or rates, or stepping until saturation), the
latency-throughput curves on one page, and the best point under the SLO."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli._args import out_dir_arg, run_id_arg
from cli._record import add_record_args, record
from cli._run import add_sut_arguments, note_openai_http, sut_options_from_args
from common import UsageError

if TYPE_CHECKING:
    from workflows import SweepLoads


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="latency-throughput sweep: one load run per concurrency or rate, the curves and the best point",
        description="Run one load shape beside LoadGen at each load in turn against one SUT (spawned once, or "
        "--sut): a list of concurrencies or rates, or --auto stepping up until throughput stops rising while "
        "latency climbs. Writes OUT/<run-id>/sweep.json (every point, the best point under the SLO, the knee), "
        "sweep.html (TTFT/TPOT p99 and per-user tokens/s against throughput) and each run under "
        "OUT/<run-id>/points/. Exit 0 when a point meets the SLO, 1 when none does.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--load",
        metavar="SHAPE:LIST",
        help="concurrency:1,2,4,8[:ramp=S] (closed loops) or rate:10,20,40[:poisson|constant][:seed=S] (open loops)",
    )
    what.add_argument("--rates", metavar="LIST", help="open loops at these rates (requests/s), Poisson arrivals")
    what.add_argument(
        "--auto",
        nargs="?",
        const="concurrency",
        metavar="START",
        help="step from START (concurrency: 1, concurrency:N or rate:R[:constant]) by --factor until saturation "
        "(throughput gain under --min-gain while TTFT/latency p99 rises), the SLO breaks, --max-points or "
        "--time-budget",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds each point sends for (default 10)")
    p.add_argument("--factor", type=float, default=2.0, help="--auto: each load is the last times this (default 2)")
    p.add_argument("--max-points", type=int, default=10, help="--auto: most points (default 10)")
    p.add_argument(
        "--time-budget", type=float, default=900.0, help="--auto: no point starts after this many seconds (900)"
    )
    p.add_argument(
        "--min-gain", type=float, default=0.05, help="saturated below this throughput gain a step (default 0.05)"
    )
    p.add_argument(
        "--slo",
        help="SLO file (or packaged name) each point must meet, as lpuperf gate judges its results "
        "(default: the benchmark's TTFT/TPOT limits at p99, no failures, the client on schedule)",
    )
    _add_target_arguments(p)
    p.add_argument("--out", type=out_dir_arg, default=Path("results"), help="output root (default: results)")
    p.add_argument("--run-id", type=run_id_arg, help="sweep id (default: sweep-<timestamp>)")
    add_record_args(p)
    p.set_defaults(func=run_sweep_cli)


def _add_target_arguments(p: argparse.ArgumentParser) -> None:
    """The SUT, fleet and transport flags of ``lpuperf run``, read the same way."""
    p.add_argument("--benchmark", default="embedded", help="benchmark profile: its limits judge each point")
    p.add_argument(
        "--preset",
        default="quick",
        help="quick|submission (the spawned sim's set), or an endpoint preset of the spawned SUT's backend",
    )
    p.add_argument("--dataset", help="embedded | synthetic:N:SEED | path (default: the benchmark's)")
    add_sut_arguments(p)
    p.add_argument("--max-new-tokens", type=int, help="cap on output tokens per answer (default: the benchmark's)")
    p.add_argument("--ignore-eos", action="store_true", help="hold every answer to exactly --max-new-tokens")
    p.add_argument("--max-in-flight", type=int, help="a point stops as overloaded past this many outstanding")
    p.add_argument(
        "--max-dispatch-lag-ms",
        type=float,
        help="a point whose dispatch lag p99 exceeds this is client-limited: never the best point (default 10)",
    )
    from sut import add_backend_arguments

    add_backend_arguments(p)
    note_openai_http(p)


def _loads(args: argparse.Namespace) -> SweepLoads:
    from workflows import parse_auto_sweep as parse_auto
    from workflows import parse_sweep_load
    from workflows import parse_sweep_rates as parse_rates

    if args.auto is not None:
        return parse_auto(args.auto)
    if args.rates is not None:
        return parse_rates(args.rates)
    return parse_sweep_load(args.load)


def _target(args: argparse.Namespace) -> dict[str, Any]:
    """The SUT options as ``lpuperf run`` checks them: SUT or fleet, backend, endpoint, preset, transport."""
    return sut_options_from_args(args)


def run_sweep_cli(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from common import first_error_line
    from workflows import SweepConfig, SweepInterrupted, run_sweep

    loads = _loads(args)
    run_id = args.run_id or time.strftime("sweep-%Y%m%d-%H%M%S")
    try:
        cfg = SweepConfig(
            loads=loads,
            auto=args.auto is not None,
            factor=args.factor,
            max_points=args.max_points,
            time_budget_s=args.time_budget,
            min_gain=args.min_gain,
            duration_s=args.duration,
            slo=args.slo,
            benchmark=args.benchmark,
            dataset=args.dataset,
            max_new_tokens=args.max_new_tokens,
            ignore_eos=args.ignore_eos,
            max_in_flight=args.max_in_flight,
            max_dispatch_lag_ms=args.max_dispatch_lag_ms,
            out_dir=args.out,
            run_id=run_id,
            **_target(args),
        )
    except ValidationError as exc:
        line = re.sub(r"field '(\w+)'", _flag, first_error_line(exc, "sweep"))
        raise UsageError(line) from None
    try:
        result = run_sweep(cfg)
    except SweepInterrupted as stop:
        _record(args, stop.result, quiet=True)
        raise
    except RuntimeError as exc:  # a point's run failed; sweep.json holds the points before it
        raise UsageError(str(exc).splitlines()[0]) from None
    _record(args, result)
    return 0 if result.best is not None else 1


def _flag(field: re.Match[str]) -> str:
    """A config field as the flag that sets it: ``duration_s`` -> ``--duration``."""
    return f"option '--{field[1].removesuffix('_s').replace('_', '-')}'"


def _record(args: argparse.Namespace, result: Any, quiet: bool = False) -> None:
    """Each finished point in the run store, as ``lpuperf run`` records a run (the sweep itself has no record)."""
    import contextlib

    from loadgen_harness import load_results

    for point in result.points:
        run_dir = result.point_dir(point)
        with contextlib.suppress(KeyboardInterrupt, OSError, ValueError):
            record(args, args.out, load_results(run_dir), quiet=quiet)
