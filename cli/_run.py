"""``lpuperf run``: one LoadGen scenario against a SUT address, or against the embedded sim SUT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import UsageError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a LoadGen scenario against a SUT (embedded sim SUT when no --sut)",
        description="Run one MLPerf LoadGen scenario. Results go to OUT/<run-id>/<scenario>/<mode>/: LoadGen's "
        "logs, results.json, artifact.json and queries.npz.",
    )
    from scenarios import scenario_names

    p.add_argument("--scenario", choices=scenario_names(), default="Server")
    p.add_argument("--mode", choices=("performance", "accuracy"), default="performance")
    p.add_argument("--benchmark", default="embedded", help="benchmark profile (default: embedded)")
    p.add_argument(
        "--preset",
        choices=("quick", "submission", "groq"),
        default="quick",
        help="run preset quick|submission; with --backend openai, 'groq' names the endpoint preset (run: quick)",
    )
    p.add_argument("--dataset", help="embedded | synthetic:N:SEED | path (default: the benchmark's)")
    p.add_argument("--sut", help="host:port of a running SUT (default: spawn the embedded sim SUT)")
    p.add_argument("--backend", help="backend of the spawned SUT: sim | transformers | openai")
    p.add_argument("--precision", help="precision of the spawned SUT's artifact (e.g. fp32, bf16, int8)")
    p.add_argument("--artifact", help="artifact preset or manifest path for the spawned SUT (e.g. sim-fp32)")
    p.add_argument("--qps", type=float, help="Server target QPS / Offline expected QPS")
    p.add_argument("--duration", type=float, help="minimum duration in seconds")
    p.add_argument("--min-query-count", type=int)
    p.add_argument("--out", type=Path, default=Path("results"), help="output root (default: results)")
    p.add_argument("--run-id", help="run id (default: run-<timestamp>)")
    p.add_argument("--user-conf", type=Path, help="LoadGen user.conf applied on top of the preset")
    p.add_argument("--audit-config", type=Path, help="LoadGen audit.config (compliance runs)")
    p.add_argument("--metrics-port", type=int, help="expose harness Prometheus metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address the metrics exporter binds (default loopback)")
    p.add_argument(
        "--metrics-linger", type=float, default=2.0, help="seconds the exporter stays up after the run (default 2)"
    )
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--progress", action="store_true", help="show the live progress line even when not on a TTY")
    from sut import add_openai_arguments

    add_openai_arguments(p)  # --base-url, --model, --api-key-env, ... for a spawned openai relay SUT
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import RunConfig, RunError, format_summary, progress_printer, run_benchmark

    backend: dict[str, object] = {}
    if args.sut and (args.backend or args.precision or args.artifact):
        raise UsageError("--backend/--precision/--artifact: only for the spawned SUT; drop them or drop --sut")
    run_preset = args.preset
    if args.preset == "groq":
        if args.backend != "openai":
            raise UsageError("--preset groq: an endpoint preset, only with --backend openai")
        run_preset = "quick"
    if args.backend == "openai":
        from sut import openai_config_from_args

        backend.update(openai_config_from_args(args))
    elif args.backend:
        backend["kind"] = args.backend
    if args.artifact:
        backend["artifact"] = args.artifact
    if args.precision:
        backend["precision"] = args.precision
    try:
        cfg = RunConfig(
            scenario=args.scenario,
            mode=args.mode,
            benchmark=args.benchmark,
            preset=run_preset,
            dataset=args.dataset,
            sut=args.sut,
            backend=backend,
            qps=args.qps,
            duration_s=args.duration,
            min_query_count=args.min_query_count,
            out_dir=args.out,
            run_id=args.run_id,
            user_conf=args.user_conf,
            audit_config=args.audit_config,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            metrics_linger_s=args.metrics_linger,
            max_new_tokens=args.max_new_tokens,
            progress=args.progress,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "run").replace("field 'duration_s'", "field 'duration'")) from None
    show = args.progress or sys.stderr.isatty()
    try:
        res = run_benchmark(
            cfg.model_copy(update={"progress": False}), on_progress=progress_printer() if show else None
        )
    except RunError as exc:
        raise UsageError(str(exc)) from None
    if show:
        sys.stderr.write("\n")
    print(format_summary(res))
    return 0 if res.valid else 1
