"""``lpuperf plan``: replicas (chips, racks, kW) an artifact needs for a target QPS under a TTFT/TPOT SLO."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_dir_arg
from common import UsageError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "plan",
        help="capacity plan: replicas needed for a target QPS under an SLO, from a measured run",
        description="From a measured run directory (queries.npz, artifact.json), predict with a discrete-event "
        "simulation of the statically scheduled batcher under Poisson arrivals (split round-robin over the "
        "replicas) how many replicas meet the TTFT/TPOT SLO at the target QPS, add the redundancy rule's spares, "
        "and report utilisation, predicted p99s, headroom and power (kW per replica, per rack and for the fleet, at the "
        "planned load and at peak; racks under --rack-kw). Writes plan.json and plan.svg (predicted p99 vs "
        "replicas).",
    )
    p.add_argument(
        "run_dir",
        type=Path,
        help="a run directory: OUT/<run-id>/<scenario>/<mode>, or a sweep (OUT/<sweep-id> of lpuperf sweep): "
        "its best point's run",
    )
    p.add_argument("--qps", type=float, required=True, help="target queries per second for the whole fleet")
    p.add_argument("--ttft-ms", type=float, help="TTFT p99 limit (default: the SLO's, else the run's benchmark)")
    p.add_argument("--tpot-ms", type=float, help="TPOT p99 limit (default: the SLO's, else the run's benchmark)")
    p.add_argument(
        "--ttfa-ms",
        type=float,
        help="reasoning models: time-to-first-answer-token p99 limit, on top of TTFT/TPOT (default: the SLO's, else none)",
    )
    p.add_argument("--slo", help="SLO file (or packaged name) whose TTFT/TPOT limits the plan meets")
    p.add_argument("--redundancy", default="N+1", help="spares on top of the replicas the SLO needs: N+K (default N+1)")
    p.add_argument("--chips-per-replica", type=int, help="chips one replica of the artifact occupies")
    p.add_argument("--replicas-per-rack", type=int, help="replicas one rack holds")
    p.add_argument(
        "--rack-kw",
        type=float,
        help="a rack's power budget in kW: replicas per rack are the fewer of its slots and what the budget feeds "
        "at peak (needs the run's measured energy or the manifest's power model)",
    )
    p.add_argument("--pue", type=float, default=1.0, help="facility power over IT power (default 1.0: IT power only)")
    p.add_argument(
        "--power-source",
        choices=("auto", "measured", "manifest"),
        default="auto",
        help="a replica's draw: the run's measured energy per token, or the manifest's power model "
        "(auto: measured when results.json has it)",
    )
    p.add_argument(
        "--service",
        choices=("auto", "manifest", "records"),
        default="auto",
        help="the replica's schedule: the manifest's static timing, or fitted from the run's records "
        "(auto: the manifest's when it states one)",
    )
    p.add_argument("--max-batch", type=int, help="batch size when the manifest states none")
    p.add_argument("--queries", type=int, default=20000, help="simulated queries per prediction (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated arrivals and service (default 0)")
    p.add_argument(
        "--loadgen-queries",
        type=int,
        metavar="N",
        help="judge the limits as LoadGen's early stopping judges a run of N queries (a VALID run of that length) "
        "instead of the steady-state percentile",
    )
    p.add_argument("--out", type=out_dir_arg, help="where plan.json and plan.svg go (default: the run directory)")
    p.add_argument("--json", action="store_true", help="print plan.json instead of the text summary")
    p.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from common import first_error_line
    from workflows import PlanConfig, format_plan, plan_capacity, write_plan

    if not (args.run_dir / "results.json").is_file() and (args.run_dir / "sweep.json").is_file():
        from workflows import sweep_best_run_dir as best_run_dir

        args.run_dir, line = best_run_dir(args.run_dir)
        if not args.json:
            print(f"plan: {line}")
    if not (args.run_dir / "results.json").is_file():
        raise UsageError(f"run_dir: {args.run_dir}: no results.json (expected OUT/<run-id>/<scenario>/<mode>)")
    try:
        cfg = PlanConfig(
            run_dir=args.run_dir,
            target_qps=args.qps,
            ttft_ms=args.ttft_ms,
            tpot_ms=args.tpot_ms,
            ttfa_ms=args.ttfa_ms,
            slo=args.slo,
            redundancy=args.redundancy,
            chips_per_replica=args.chips_per_replica,
            replicas_per_rack=args.replicas_per_rack,
            service=args.service,
            max_batch=args.max_batch,
            queries=args.queries,
            seed=args.seed,
            loadgen_queries=args.loadgen_queries,
            rack_kw=args.rack_kw,
            pue=args.pue,
            power_source=args.power_source,
        )
    except ValidationError as exc:
        line = first_error_line(exc, "plan").replace("field 'target_qps'", "field 'qps'")
        raise UsageError(line.replace("field '", "option '--").replace("_", "-")) from None
    plan = plan_capacity(cfg)
    json_path, svg_path = write_plan(plan, args.out or args.run_dir)
    if args.json:
        print(plan.model_dump_json(indent=2))
    else:
        print(format_plan(plan))
        print(f"  plan: {json_path}  plot: {svg_path}")
    return 0
