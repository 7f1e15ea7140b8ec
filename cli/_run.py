"""``lpuperf run``: one LoadGen scenario, or one load shape (``--load``), against a SUT address or the embedded sim SUT."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from cli._args import out_dir_arg, run_id_arg
from cli._merge import add_shard_arguments, shard_options_from_args
from cli._record import add_record_args, record
from cli._scrape_args import add_scrape_arguments, telemetry_from_args
from cli._transport_args import (
    add_metrics_security_arguments,
    add_transport_arguments,
    metrics_security_from_args,
    transport_from_args,
)
from common import UsageError

if TYPE_CHECKING:
    from common import BackendSpec


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a LoadGen scenario against a SUT (embedded sim SUT when no --sut)",
        description="Run one MLPerf LoadGen scenario. Results go to OUT/<run-id>/<scenario>/<mode>/: LoadGen's "
        "logs, results.json, artifact.json and queries.npz.",
    )
    from scenarios import scenario_names

    p.add_argument(
        "--scenario",
        choices=scenario_names(),
        help="LoadGen scenario (default: Server; Interactive runs as Server with the interactive latency limits); "
        "not with --load",
    )
    p.add_argument(
        "--mode",
        choices=("performance", "accuracy"),
        default="performance",
        help="performance: timed run judged VALID/INVALID; accuracy: one pass over the dataset logging every "
        "output for lpuperf accuracy (default: performance)",
    )
    p.add_argument("--benchmark", default="embedded", help="benchmark profile (default: embedded)")
    p.add_argument(
        "--preset",
        default="quick",
        help="run preset quick|submission, or an endpoint preset of the spawned SUT's backend "
        "(e.g. --backend openai --preset groq; the run is then quick)",
    )
    p.add_argument(
        "--dataset",
        help="embedded | synthetic:N:SEED | shared-prefix[:systems=K,users=M,...] | reasoning:MODEL | path "
        "(default: the benchmark's)",
    )
    add_sut_arguments(p)
    p.add_argument("--qps", type=float, help="Server target QPS / Offline expected QPS")
    p.add_argument("--duration", type=float, help="minimum duration in seconds")
    p.add_argument(
        "--min-query-count", type=int, help="LoadGen min_query_count: the run lasts until this many queries too"
    )
    p.add_argument("--out", type=out_dir_arg, default=Path("results"), help="output root (default: results)")
    p.add_argument("--run-id", type=run_id_arg, help="run id (default: run-<timestamp>)")
    p.add_argument("--user-conf", type=Path, help="LoadGen user.conf applied on top of the preset")
    p.add_argument("--audit-config", type=Path, help="LoadGen audit.config (compliance runs)")
    p.add_argument("--metrics-port", type=int, help="expose harness Prometheus metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address the metrics exporter binds (default loopback)")
    p.add_argument(
        "--metrics-linger", type=float, default=2.0, help="seconds the exporter stays up after the run (default 2)"
    )
    add_metrics_security_arguments(p)
    add_scrape_arguments(p)
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="cap on output tokens per answer (default: the benchmark profile's max_new_tokens)",
    )
    p.add_argument(
        "--ignore-eos",
        action="store_true",
        help="hold every answer to exactly --max-new-tokens (fixed-length load tests; performance mode only)",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        help="a Server run stops early (OVERLOADED) once more queries than this are outstanding: the SUT is "
        "hopelessly behind and the harness's memory stays bounded (default 32768, about 0.7 GB)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="worker processes that stream LoadGen's queries, each with its own event loop and connections "
        "(LoadGen stays in this process; for rates one core cannot stream; LoadGen scenarios only). Default 1",
    )
    p.add_argument(
        "--load",
        metavar="SHAPE",
        help="send with a load shape instead of LoadGen's scenario (not an MLPerf LoadGen run; latency from each "
        "query's due time): concurrency:N[:ramp=S,requests=K] (closed loop), rate:R[:poisson|constant] (open loop), "
        "trace:FILE[:speed=X,max_rate=R,format=mooncake|azure|burstgpt] (timestamped replay), "
        "sessions:FILE|synthetic[:concurrency=C,turns=T,agentic=true,...] (multi-turn and agentic). "
        "--duration caps it (concurrency and rate default to 10 s)",
    )
    p.add_argument(
        "--max-dispatch-lag-ms",
        type=float,
        help="with --load: a run whose dispatch lag p99 (send time minus due time) exceeds this is marked "
        "client-limited and not valid (default 10)",
    )
    add_shard_arguments(p)
    p.add_argument("--progress", action="store_true", help="show the live progress line even when not on a TTY")
    p.add_argument("--trace", action="store_true", help="also write LoadGen's trace log (mlperf_log_trace.json)")
    p.add_argument(
        "--eval-during",
        metavar="TASK",
        help="an Inspect task run idle, then interleaved with the load; score under load next to idle "
        "(needs pip install 'lpuperf[inspect]')",
    )
    p.add_argument("--eval-limit", type=int, help="--eval-during: first N samples of the task only")
    p.add_argument(
        "--allow-context-overflow",
        action="store_true",
        help="send samples whose prompt + max_new_tokens exceed the SUT's advertised context (refused otherwise)",
    )
    from sut import add_backend_arguments

    add_backend_arguments(p)  # each backend's own flags (openai: --base-url, --model, --api-key-env, ...)
    note_openai_http(p)
    add_record_args(p)
    p.set_defaults(func=run_cli)


def add_sut_arguments(p: argparse.ArgumentParser) -> None:
    """The SUT, fleet and transport flags (``lpuperf run`` and ``lpuperf sweep`` read them the same way)."""
    p.add_argument(
        "--sut",
        help="a running SUT or fleet: host:port, a comma-separated list of host:port, or a gRPC target URI "
        "(dns:///name:port, ipv4:a:p,b:q), balanced by gRPC's round_robin (default: spawn the embedded sim SUT)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="spawn this many embedded SUT processes on free loopback ports and drive them as one fleet (default 1)",
    )
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="run against replicas serving different artifacts (refused otherwise); results are split by artifact",
    )
    add_transport_arguments(p)
    p.add_argument(
        "--transport",
        choices=("grpc", "openai-http"),
        default="grpc",
        help="grpc: LoadGen drives a gRPC SUT (default); openai-http: the harness streams each query straight to "
        "the OpenAI-compatible endpoint of --base-url (with --model, --api-key-env, --ca-bundle, ...), "
        "no SUT process and no relay",
    )
    from sut import backends

    p.add_argument("--backend", help=f"backend of the spawned SUT: {' | '.join(backends.names())} (default: sim)")
    p.add_argument("--precision", help="precision of the spawned SUT's artifact (e.g. fp32, bf16, int8)")
    p.add_argument("--artifact", help="artifact preset or manifest path for the spawned SUT (e.g. sim-fp32)")


def note_openai_http(p: argparse.ArgumentParser) -> None:
    """Say in ``run --help`` that the openai backend's flags also configure ``--transport openai-http``.

    The flags are the backend's own (``sut/_openai_options.py``, shared with ``lpuperf serve``, where the
    transport does not exist), so the note goes on their group here, found by one of its flags.
    """
    action = p._option_string_actions.get("--base-url")
    group = getattr(action, "container", None)
    if isinstance(group, argparse._ArgumentGroup) and group is not p:
        group.title = f"{group.title}, and --transport openai-http"
        group.description = (
            "With --backend openai these flags configure the relay SUT that run spawns; with --transport "
            "openai-http they name the endpoint the harness streams each query to, with no SUT process."
        )


def backend_from_args(args: argparse.Namespace) -> BackendSpec:
    """The spawned SUT's backend config: the generic options plus the chosen backend's own flags."""
    from sut import backend_options_from_args

    backend: BackendSpec = {}
    if args.backend:
        backend = {**backend_options_from_args(args.backend, args), "kind": args.backend}
    if args.artifact:
        backend["artifact"] = args.artifact
    if args.precision:
        backend["precision"] = args.precision
    return backend


def spawned_backend(serve_args: list[str], artifact: str | None = None) -> BackendSpec:
    """A workflow's spawned SUT config from its ``--serve-arg`` flags (read as ``lpuperf serve`` reads them)."""
    from sut import backend_config_from_serve_args

    backend = backend_config_from_serve_args(list(serve_args))
    if artifact:
        backend["artifact"] = artifact
    return backend


def sut_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """RunConfig's SUT fields from the flags of :func:`add_sut_arguments` (and ``--preset``), checked:
    ``sut``, ``replicas``, ``allow_mixed``, ``transport``, ``backend``, ``http_endpoint`` and ``preset``
    (an endpoint preset names the upstream: the run itself is then quick)."""
    from scenarios import Preset

    if args.sut and (args.backend or args.precision or args.artifact):
        raise UsageError("--backend/--precision/--artifact: only for the spawned SUT; drop them or drop --sut")
    if args.sut and args.replicas != 1:
        raise UsageError("--replicas: spawns embedded SUTs; drop it or drop --sut (which names the fleet)")
    if not 1 <= args.replicas <= 32:
        raise UsageError(f"--replicas: expected 1..32 embedded SUT processes, got {args.replicas}")
    http_endpoint = None
    if args.transport == "openai-http":
        if args.sut or args.replicas != 1 or args.artifact or args.precision or args.backend not in (None, "openai"):
            raise UsageError(
                "--transport openai-http: the harness talks to --base-url itself; "
                "drop --sut/--replicas/--backend/--artifact/--precision"
            )
        from sut import backend_options_from_args

        http_endpoint = {**backend_options_from_args("openai", args), "kind": "openai"}
        args.backend = None
    backend = backend_from_args(args)
    run_preset = args.preset
    if args.preset not in get_args(Preset):
        if (http_endpoint or backend).get("preset") != args.preset:
            raise UsageError(
                f"--preset {args.preset}: expected quick or submission, or an endpoint preset of the --backend"
            )
        run_preset = "quick"  # an endpoint preset names the upstream, not the run's length
    return {
        "sut": args.sut,
        "replicas": args.replicas,
        "allow_mixed": args.allow_mixed,
        "transport": transport_from_args(args, remote=bool(args.sut)),
        "backend": backend,
        "http_endpoint": http_endpoint,
        "preset": run_preset,
    }


def run_cli(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import RunConfig, RunError, RunInterrupted, format_summary, progress_printer, run_benchmark

    if args.load and args.scenario:
        raise UsageError(f"--scenario {args.scenario}: a LoadGen scenario; --load sends without LoadGen (drop one)")
    args.scenario = args.scenario or "Server"
    opts = {**sut_options_from_args(args), **shard_options_from_args(args)}
    try:
        cfg = RunConfig(
            scenario=args.scenario,
            mode=args.mode,
            benchmark=args.benchmark,
            dataset=args.dataset,
            **opts,
            qps=args.qps,
            duration_s=args.duration,
            min_query_count=args.min_query_count,
            out_dir=args.out,
            run_id=args.run_id,
            user_conf=args.user_conf,
            audit_config=args.audit_config,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            metrics_security=metrics_security_from_args(args),
            metrics_linger_s=args.metrics_linger,
            max_new_tokens=args.max_new_tokens,
            ignore_eos=args.ignore_eos,
            **({} if args.max_in_flight is None else {"max_in_flight": args.max_in_flight}),
            load=args.load,
            workers=args.workers,
            **({} if args.max_dispatch_lag_ms is None else {"max_dispatch_lag_ms": args.max_dispatch_lag_ms}),
            progress=args.progress,
            trace=args.trace,
            allow_context_overflow=args.allow_context_overflow,
            telemetry=telemetry_from_args(args),
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "run").replace("field 'duration_s'", "field 'duration'")) from None
    show = args.progress or sys.stderr.isatty()
    under_load = None
    try:
        if args.eval_during:
            res, under_load = run_eval_during(cfg, args, progress_printer() if show else None)
        else:
            res = run_benchmark(
                cfg.model_copy(update={"progress": False}), on_progress=progress_printer() if show else None
            )
    except RunError as exc:
        raise UsageError(str(exc)) from None
    except RunInterrupted as stop:  # results.json is written: show it, record it, then exit 130/143 (cli._main)
        if show:
            sys.stderr.write("\n")
        print(format_summary(stop.result), flush=True)
        # Recorded as interrupted, from results.json alone (a few tenths of a second); a store that is busy
        # or unreachable is skipped without a word. A second signal while recording stops it, and the run
        # leaves on the first signal's exit path.
        with contextlib.suppress(KeyboardInterrupt):
            record(args, args.out, stop.result, quiet=True)
        raise stop from None
    if show:
        sys.stderr.write("\n")
    print(format_summary(res))
    if under_load is not None:
        print(under_load.line)
    record(args, args.out, res)
    return 0 if res.valid and (under_load is None or under_load.passed) else 1


def run_eval_during(cfg: Any, args: argparse.Namespace, on_progress: Any) -> tuple[Any, Any]:
    """The run with ``--eval-during``'s task idle and under its load (workflows/_eval_during.py)."""
    from evals import InspectRun
    from workflows import run_with_eval_during

    if args.load:
        raise UsageError("--eval-during: runs beside a LoadGen scenario; drop --load")
    task = InspectRun(task=args.eval_during, limit=args.eval_limit)
    echo = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731 (stdout keeps the summary)
    return run_with_eval_during(cfg.model_copy(update={"progress": False}), task, echo, on_progress)
