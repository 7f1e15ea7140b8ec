"""``lpuperf find-peak``: the highest Server QPS that stays VALID, with its search trace and evidence."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_dir_arg, run_id_arg
from cli._record import add_record_args, record
from cli._transport_args import add_transport_arguments, transport_from_args
from common import UsageError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "find-peak",
        help="find the highest VALID Server QPS (bound, bisect, confirm)",
        description="Bound the search with short Offline and SingleStream runs (Erlang-C estimate), bisect with "
        "short Server runs, confirm the result with a full-length run (never shorter than a probe; a failed confirm "
        "steps the rate down). Writes OUT/<run-id>/find_peak.json, find_peak.html (the sweep chart) and every run "
        "under OUT/<run-id>/probes/.",
    )
    p.add_argument(
        "--benchmark", default="embedded", help="benchmark profile: its limits judge each run (default: embedded)"
    )
    p.add_argument("--dataset", help="dataset spec (default: the benchmark's)")
    p.add_argument("--preset", choices=("quick", "submission"), default="quick", help="length of the confirm run")
    p.add_argument(
        "--sut",
        help="a running SUT or fleet: host:port, a list of host:port or a gRPC target URI such as dns:///name:port "
        "(default: spawn the embedded sim once)",
    )
    p.add_argument("--replicas", type=int, default=1, help="spawn this many embedded SUTs as one fleet (default 1)")
    add_transport_arguments(p)
    p.add_argument("--artifact", default=None, help="sim artifact preset for the spawned SUT (e.g. sim-fp32)")
    p.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `lpuperf serve` argument for the spawned SUT (repeatable, e.g. --serve-arg=--chunk-size=8)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="cap on output tokens per answer (default: the benchmark profile's max_new_tokens)",
    )
    p.add_argument("--probe-duration", type=float, default=5.0, help="seconds per search probe (min; default 5)")
    p.add_argument("--confirm-duration", type=float, help="seconds for the confirm run (default: the preset's)")
    p.add_argument("--resolution", type=float, default=0.03, help="stop when the bracket is this tight (0.03)")
    p.add_argument(
        "--completed-ratio",
        type=float,
        default=0.95,
        help="completed rate over the rate a keeping-up SUT shows; below this a probe is overloaded (0.95)",
    )
    p.add_argument(
        "--max-probes", type=int, default=10, help="most Server search probes before confirming (default 10)"
    )
    p.add_argument("--out", type=out_dir_arg, default=Path("results"), help="output root (default: results)")
    p.add_argument("--run-id", type=run_id_arg, help="run id (default: peak-<timestamp>)")
    p.add_argument(
        "--from-sweep",
        type=Path,
        metavar="DIR",
        help="no new runs: report the highest-throughput point of a sweep (OUT/<sweep-id> of lpuperf sweep) that "
        "meets the SLO it was judged by",
    )
    add_record_args(p)
    p.set_defaults(func=run_find_peak)


def run_find_peak(args: argparse.Namespace) -> int:
    import time

    if args.from_sweep is not None:
        return _from_sweep(args)

    from pydantic import ValidationError

    from common import first_error_line
    from workflows import FindPeakConfig, find_peak

    if args.sut and (args.artifact or args.serve_arg or args.replicas != 1):
        raise UsageError("--artifact/--serve-arg/--replicas: only for the spawned SUT; drop them or drop --sut")
    from cli._run import spawned_backend

    backend = spawned_backend(args.serve_arg, args.artifact)
    run_id = args.run_id or time.strftime("peak-%Y%m%d-%H%M%S")
    try:
        cfg = FindPeakConfig(
            benchmark=args.benchmark,
            dataset=args.dataset,
            preset=args.preset,
            sut=args.sut,
            replicas=args.replicas,
            transport=transport_from_args(args, remote=bool(args.sut)),
            backend=backend,
            max_new_tokens=args.max_new_tokens,
            out_dir=args.out,
            run_id=run_id,
            probe_duration_s=args.probe_duration,
            confirm_duration_s=args.confirm_duration,
            resolution=args.resolution,
            completed_ratio=args.completed_ratio,
            max_probes=args.max_probes,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--")) from None
    try:
        result = find_peak(cfg)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    out = args.out / run_id / "find_peak.json"
    record(args, args.out, result)
    for line in result.summary_lines(confirm_duration_given=cfg.confirm_duration_s is not None):
        print(line)
    print(f"find-peak: report {out}, chart {out.with_name('find_peak.html')}")
    return 0 if result.peak_qps is not None else 1


def _from_sweep(args: argparse.Namespace) -> int:
    """The peak a finished sweep already measured: its best point, in find-peak's words; 1 when it has none."""
    from workflows import load_sweep
    from workflows import sweep_peak_lines as peak_lines

    if args.sut or args.artifact or args.serve_arg or args.replicas != 1:
        raise UsageError("--from-sweep: makes no runs; drop --sut/--artifact/--serve-arg/--replicas")
    sweep = load_sweep(args.from_sweep)
    for line in peak_lines(sweep):
        print(line)
    return 0 if sweep.best is not None else 1
