"""``lpuperf validate --baseline ARTIFACT --candidate ARTIFACT``: one verdict, DEPLOY or NO DEPLOY."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli._args import out_dir_arg, run_id_arg
from cli._record import add_record_args, record
from cli._transport_args import add_transport_arguments, transport_from_args
from common import UsageError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "validate",
        help="may a candidate artifact replace the baseline? (non-zero exit on NO DEPLOY)",
        description="Run performance (Server + Offline), accuracy with fidelity against the FP32 reference, "
        "TEST06 and the context probe on both artifacts; gate the candidate with the SLO and print one verdict "
        "table. ARTIFACT: a sim preset (sim-fp32, sim-bf16, sim-int8, sim-ctx16k), a manifest JSON, "
        "backend:precision (transformers:int8) or host:port of a running SUT.",
    )
    p.add_argument("--baseline", required=True, help="baseline artifact (e.g. sim-fp32)")
    p.add_argument("--candidate", required=True, help="candidate artifact (e.g. sim-bf16)")
    add_transport_arguments(p, target="--baseline/--candidate HOST:PORT")
    p.add_argument(
        "--slo",
        help="SLO file or packaged name (default: reasoning for a reasoning benchmark, else embedded)",
    )
    p.add_argument("--qps", type=float, help="Server target QPS (default: the benchmark's)")
    p.add_argument("--duration", type=float, help="performance run length in seconds (default: the preset's)")
    p.add_argument("--benchmark", default="embedded", help="benchmark profile (default: embedded)")
    p.add_argument("--dataset", help="dataset spec (default: the benchmark's)")
    p.add_argument(
        "--preset", choices=("quick", "submission"), default="quick", help="length of the runs (default: quick)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="cap on output tokens per answer (default: the benchmark profile's max_new_tokens)",
    )
    p.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `lpuperf serve` argument for both spawned SUTs (repeatable, e.g. --serve-arg=--decode-step-s=0.002)",
    )
    p.add_argument("--fail-on-regression", action="store_true", help="also NO DEPLOY on regressions vs baseline")
    p.add_argument("--tolerance", type=float, default=0.05, help="relative tolerance for regressions (0.05)")
    p.add_argument("--out", type=out_dir_arg, default=Path("results"), help="output root (default: results)")
    p.add_argument("--run-id", type=run_id_arg, help="run id (default: validate-<timestamp>)")
    add_eval_arguments(p)
    add_record_args(p)
    p.set_defaults(func=run_validate)


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("eval suites (the inspect extra: pip install 'lpuperf[inspect]')")
    g.add_argument(
        "--inspect",
        action="append",
        default=[],
        metavar="TASK",
        help="an Inspect task run on both artifacts (file.py, file.py@task, package/task; repeatable)",
    )
    g.add_argument("--inspect-arg", action="append", default=[], metavar="KEY=VALUE", help="task argument (-T)")
    g.add_argument(
        "--lm-eval",
        action="append",
        default=[],
        metavar="TASK",
        help="an lm-eval generate-until task or group run on both artifacts (pip install 'lpuperf[lm-eval]')",
    )
    g.add_argument("--lm-eval-include", type=Path, metavar="DIR", help="lm-eval task YAML folder (--include_path)")
    g.add_argument("--eval-limit", type=int, help="first N samples of each task only")
    g.add_argument("--evals-only", action="store_true", help="run only the eval suites (no performance stages)")
    g.add_argument("--min-task-score", type=float, help="objective: every task scores at least this (0..1)")
    g.add_argument("--max-task-drop", type=float, help="objective: no task or category drops more than this")


def inspect_runs(args: argparse.Namespace) -> list[Any]:
    """The --inspect tasks as the workflows' InspectRun; UsageError naming a malformed --inspect-arg."""
    from evals import InspectRun

    task_args: dict[str, str] = {}
    for item in args.inspect_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--inspect-arg: expected KEY=VALUE, got '{item}'")
        task_args[key] = value
    return [InspectRun(task=t, task_args=task_args, limit=args.eval_limit) for t in args.inspect]


def lm_eval_runs(args: argparse.Namespace) -> list[Any]:
    from evals import LmEvalRun

    return [LmEvalRun(task=t, include_path=args.lm_eval_include, limit=args.eval_limit) for t in args.lm_eval]


def eval_slo(slo: Any, args: argparse.Namespace) -> Any:
    """The SLO with the eval objectives the flags set; with --evals-only, those objectives alone."""
    update = {
        k: v
        for k, v in (("min_task_score", args.min_task_score), ("max_task_drop", args.max_task_drop))
        if v is not None
    }
    slo = slo.model_validate({**slo.model_dump(), **update})
    if args.evals_only:
        from gate import SloSpec

        return SloSpec(
            name=f"{slo.name} (evals)",
            require_valid=False,
            min_task_score=slo.min_task_score,
            max_task_drop=slo.max_task_drop,
        )
    return slo


def _names_a_running_sut(args: argparse.Namespace) -> bool:
    """Whether --baseline or --candidate is host:port (TLS and token flags reach only those)."""
    return any(spec.rpartition(":")[2].isdigit() for spec in (args.baseline, args.candidate))


def run_validate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from cli._run import spawned_backend
    from common import first_error_line
    from gate import SloError, load_slo
    from workflows import CompareConfig, ValidateConfig, validate

    try:
        slo = eval_slo(load_slo(args.slo or _default_slo(args.benchmark)), args)
    except SloError as exc:
        raise UsageError(str(exc)) from None
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--")) from None
    if args.evals_only and not (args.inspect or args.lm_eval):
        raise UsageError("--evals-only: expected at least one --inspect TASK or --lm-eval TASK")
    try:
        cfg = ValidateConfig(
            baseline=args.baseline,
            candidate=args.candidate,
            benchmark=args.benchmark,
            dataset=args.dataset,
            preset=args.preset,
            qps=args.qps,
            duration_s=args.duration,
            max_new_tokens=args.max_new_tokens,
            backend=spawned_backend(args.serve_arg),
            transport=transport_from_args(args, remote=_names_a_running_sut(args)),
            out_dir=args.out,
            run_id=args.run_id,
            fail_on_regression=args.fail_on_regression,
            compare=CompareConfig(tolerance=args.tolerance),
            inspect=inspect_runs(args),
            lm_eval=lm_eval_runs(args),
            evals_only=args.evals_only,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--")) from None
    try:
        report = validate(cfg, slo)
    except (RuntimeError, ValueError) as exc:  # the SUT for an artifact did not start (RunError, one line)
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    print()
    print(f"validate {report.candidate.name} against {report.baseline.name} (SLO {report.slo})")
    print(report.table())
    fidelity = [line for line in report.slippage if not line.startswith("eval ")]
    if fidelity:
        print("fidelity vs FP32 reference, worst category first:")
        for line in fidelity:
            print(f"  {line}")
    slipped = [line for line in report.slippage if line.startswith("eval ")]
    if slipped:
        print("eval categories that slipped (95% interval below zero), worst first:")
        for line in slipped:
            print(f"  {line}")
    changes = [m.line for m in report.comparison.metrics if m.direction != "same"]
    if changes:
        print("changes vs baseline:")
        for line in changes:
            print(f"  {line}{'  <- regression' if any(r.line == line for r in report.comparison.regressions) else ''}")
    print(f"VERDICT: {report.verdict}")
    for reason in report.reasons:
        print(f"  {reason}")
    record(args, args.out, report)
    return 0 if report.verdict == "DEPLOY" else 1


def _default_slo(benchmark: str | None) -> str:
    """The packaged SLO a benchmark is validated against when none is named."""
    from scenarios import BenchmarkError, get_benchmark

    try:
        return "reasoning" if benchmark and get_benchmark(benchmark).reasoning else "embedded"
    except BenchmarkError:
        return "embedded"  # the unknown name is refused where the config is built, naming the field
