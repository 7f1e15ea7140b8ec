"""``lpuperf compliance {test06,test07,test09,context}``: MLPerf's TEST06/07/09 and the context-length probe.

TEST06 adds the strict token checks; TEST07 (accuracy in performance mode) and TEST09 (mean output length
in performance mode) log every sample of their pass. All exit 0 on PASS, 1 on FAIL and 2 on bad input.
Without ``--sut`` they start the embedded sim SUT (``--artifact``, ``--enforced-context`` and ``--fault``
are passed to ``lpuperf serve``; a reasoning benchmark's sim is its reasoning artifact).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli._args import error_line, out_dir_arg, out_file_arg, run_id_arg
from cli._record import add_record_args, record
from cli._transport_args import add_transport_arguments, transport_from_args
from common import UsageError

if TYPE_CHECKING:
    from common import BackendSpec
    from loadgen_harness import RunningSut


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _add_sut_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sut", metavar="HOST:PORT", help="SUT to test; default: start the embedded sim SUT")
    add_transport_arguments(p)
    p.add_argument("--artifact", help="embedded SUT: artifact preset (sim-fp32, sim-ctx16k, ...) or manifest JSON")
    p.add_argument("--enforced-context", type=_positive_int, metavar="N", help="embedded SUT: context it enforces")
    p.add_argument("--fault", action="append", default=[], metavar="NAME", help="embedded SUT: plant a fault")
    p.add_argument("--dataset", help="dataset spec (embedded, synthetic:N:SEED or a path)")
    p.add_argument("--out", type=out_dir_arg, default=Path("results"), help="output root (default: results)")
    p.add_argument("--run-id", type=run_id_arg, default="compliance", help="run id under --out (default: compliance)")
    add_record_args(p)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("compliance", help="TEST06 (MLPerf) + strict checks, context-length probe")
    sub = parser.add_subparsers(dest="compliance_command", metavar="CHECK", required=True)

    t06 = sub.add_parser("test06", help="TEST06 performance pass and verification, or verify an existing log")
    _add_sut_args(t06)
    from scenarios import scenario_names

    t06.add_argument(
        "--scenario",
        choices=scenario_names(),
        help="scenario of the pass (default Server); with --log, required: the scenario the log was made in",
    )
    t06.add_argument("--benchmark", default="embedded", help="benchmark profile (default embedded)")
    t06.add_argument("--qps", type=float, help="Server target QPS for the pass")
    t06.add_argument(
        "--max-new-tokens", type=_positive_int, help="cap on output tokens per answer (default: the benchmark's)"
    )
    t06.add_argument("--log", type=Path, metavar="PATH", help="verify this mlperf_log_accuracy.json; no run")
    t06.add_argument("--eos-id", type=int, help="with --log: EOS token id (default: artifact.json next to the log)")
    t06.add_argument("--artifact-json", type=Path, help="with --log: manifest to take the EOS id from")
    t06.add_argument("--output", type=out_dir_arg, help="with --log: TEST06 directory (default: <log dir>/../TEST06)")
    t06.set_defaults(func=run_test06_cli)

    _add_perf_mode_parsers(sub)

    ctx = sub.add_parser("context", help="probe the advertised context length (50/90/99/100%% and +1)")
    _add_sut_args(ctx)
    ctx.add_argument(
        "--max-new-tokens",
        type=_positive_int,
        default=16,
        help="output tokens each probe asks for, counted into the context (default 16)",
    )
    ctx.add_argument("--timeout", type=float, default=120.0, help="per-request timeout in seconds")
    ctx.add_argument("--json", type=out_file_arg, help="verdict JSON (default: OUT/<run-id>/context_report.json)")
    ctx.set_defaults(func=run_context_cli)


def _add_perf_mode_parsers(sub: Any) -> None:
    from scenarios import scenario_names

    t07 = sub.add_parser("test07", help="TEST07: accuracy in performance mode (every sample logged) vs a threshold")
    t09 = sub.add_parser("test09", help="TEST09: mean output tokens in performance mode within bounds")
    for p in (t07, t09):
        _add_sut_args(p)
        p.add_argument("--benchmark", default="gpt-oss-120b", help="benchmark profile (default gpt-oss-120b)")
        p.add_argument("--scenario", choices=scenario_names(), default="Offline", help="scenario of the pass")
        p.add_argument("--preset", choices=("quick", "submission"), default="quick", help="run preset (default quick)")
        p.add_argument("--qps", type=float, help="Server target QPS for the pass")
        p.add_argument("--max-new-tokens", type=_positive_int, help="cap on output tokens (default: the benchmark's)")
        p.add_argument("--audit-config", type=Path, metavar="PATH", help="use this audit.config, not the project's")
        p.add_argument("--log", type=Path, metavar="PATH", help="verify this mlperf_log_accuracy.json; no run")
        p.add_argument(
            "--output", type=out_dir_arg, help="with --log: the TEST directory (default: <log dir>/../TEST0x)"
        )
    t07.add_argument("--threshold", type=float, help="accuracy threshold (default: the audit.config's)")
    t07.add_argument(
        "--accuracy-script",
        metavar="CMD",
        help="score with this command, as MLPerf's --accuracy-script ({accuracy_log} is the log's path); "
        "default: the benchmark's own scorer",
    )
    t07.add_argument("--score-pattern", help="regex whose group 1 is the score (default: MLPerf's 'exact_match')")
    t07.add_argument(
        "--tokenizer", metavar="DIR", help="Hugging Face tokenizer to decode with (default: the dataset's)"
    )
    t07.set_defaults(func=run_test07_cli)
    t09.add_argument("--min-output-tokens", type=float, help="lower bound of the mean (default: the audit.config's)")
    t09.add_argument("--max-output-tokens", type=float, help="upper bound of the mean (default: the audit.config's)")
    t09.set_defaults(func=run_test09_cli)


def sut_backend(args: argparse.Namespace) -> BackendSpec:
    """The embedded SUT's backend config from the CLI's SUT options (generic options; the sim by default)."""
    out: BackendSpec = {}
    if args.artifact:
        out["artifact"] = str(args.artifact)
    if args.enforced_context:
        out["enforced_context_tokens"] = args.enforced_context
    if args.fault:
        out["faults"] = {name: True for name in args.fault}
    return out


def _check_fault_names(names: list[str]) -> None:
    from sut import FaultFlags

    known = sorted(FaultFlags.model_fields)
    for name in names:
        if name not in known:
            raise UsageError(f"--fault: unknown fault '{name}'; expected one of {', '.join(known)}")


def _check_sut_args(args: argparse.Namespace) -> None:
    if args.sut and (args.artifact or args.enforced_context or args.fault):
        raise UsageError("--sut: --artifact, --enforced-context and --fault apply only to the embedded SUT")
    _check_fault_names(args.fault)


@contextlib.contextmanager
def _embedded_or_given(args: argparse.Namespace) -> Iterator[RunningSut]:
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import RunError, SutTarget, launch_sut

    _check_sut_args(args)
    try:
        target = SutTarget(
            address=args.sut,
            backend={} if args.sut else sut_backend(args),
            dataset=args.dataset,
            transport=transport_from_args(args, remote=bool(args.sut)),
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "--sut")) from None
    try:
        with launch_sut(target) as running:
            yield running
    except RunError as exc:
        raise UsageError(str(exc)) from None


def _print_outcome(outcome: Any) -> None:
    print(outcome.test06.verify_text, end="")
    for check in outcome.test06.checks + outcome.strict.checks:
        print(f"  {check.line()}")
    print(outcome.test06.message)
    print(outcome.strict.message)
    if outcome.audit_problem:
        print(f"audit: FAIL: {outcome.audit_problem}")
    print(f"reports: {outcome.test06_dir}")


def run_test06_cli(args: argparse.Namespace) -> int:
    from compliance import ComplianceInputError, Test06Config, eos_from_artifact, run_test06, verify_log

    try:
        if args.log is not None:
            if args.sut or args.artifact or args.fault or args.enforced_context:
                raise UsageError(
                    "--log: verifies an existing log; --sut/--artifact/--fault/--enforced-context not used"
                )
            log = args.log / "mlperf_log_accuracy.json" if args.log.is_dir() else args.log
            eos = args.eos_id
            if eos is None and args.artifact_json is not None:
                eos = eos_from_artifact(args.artifact_json)
            if args.scenario is None:
                # As MLPerf's TEST06 script: Offline skips the first-token check, so guessing is wrong either way.
                raise UsageError("--scenario: required with --log (the scenario the log was made in, e.g. Offline)")
            out = args.output or log.parent.parent / "TEST06"
            from scenarios import loadgen_scenario

            scenario = loadgen_scenario(args.scenario)
            outcome = verify_log(log, scenario, out, eos)
        else:
            if args.eos_id is not None or args.artifact_json or args.output:
                raise UsageError("--eos-id/--artifact-json/--output: only with --log")
            _check_sut_args(args)
            from scenarios import embedded_dataset, embedded_sut_backend, get_benchmark

            bench = get_benchmark(args.benchmark)
            backend, notes = embedded_sut_backend(bench, "quick", sut_backend(args))
            for note in notes:
                print(f"note: {note}")
            cfg = Test06Config(
                scenario=args.scenario or "Server",
                benchmark=bench.name,
                dataset=args.dataset or (None if args.sut else embedded_dataset(bench, "quick")),
                sut=args.sut,
                transport=transport_from_args(args, remote=bool(args.sut)),
                backend={} if args.sut else backend,
                qps=args.qps,
                max_new_tokens=args.max_new_tokens,
                out_dir=args.out,
                run_id=args.run_id,
            )
            outcome = run_test06(cfg)
    except ComplianceInputError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # RunError, or a config's ValidationError: one line naming the field
        raise UsageError(error_line(exc)) from None
    _print_outcome(outcome)
    record(args, None if args.log is not None else args.out, outcome)
    return 0 if outcome.passed else 1


def run_context_cli(args: argparse.Namespace) -> int:
    from common import write_atomic
    from compliance import CONTEXT_REPORT_FILE, ComplianceInputError, ContextProbeConfig, probe_context

    if args.timeout <= 0:
        raise UsageError(f"--timeout: expected seconds > 0, got {args.timeout}")
    cfg = ContextProbeConfig(max_new_tokens=args.max_new_tokens, timeout_s=args.timeout)
    with _embedded_or_given(args) as running:
        try:
            verdict = probe_context(running.address, cfg, transport_from_args(args, remote=bool(args.sut)))
        except ComplianceInputError as exc:
            raise UsageError(str(exc)) from None
    for a in verdict.attempts:
        state = "PASS" if a.passed else "FAIL"
        extra = f" {a.finish_reason} {a.n_tokens} tokens" if a.status == "OK" else f" '{a.detail}'"
        print(f"  {a.label:>8} {a.total_tokens:>8} tokens: {state} status {a.status}{extra} ({a.elapsed_s:.2f} s)")
    print(f"context: {'PASS' if verdict.passed else 'FAIL'}: {verdict.message}")
    path = args.json or args.out / args.run_id / CONTEXT_REPORT_FILE
    write_atomic(path, verdict.model_dump_json(indent=2) + "\n")
    print(f"report: {path}")
    record(args, args.out, verdict, artifact=running.artifact)
    return 0 if verdict.passed else 1


def _perf_mode_common(args: argparse.Namespace) -> dict[str, Any]:
    """The TEST07/TEST09 config fields shared by both commands; a reasoning benchmark's sim is its own."""
    from scenarios import embedded_dataset, embedded_sut_backend, get_benchmark

    if args.log is not None:
        if args.sut or args.artifact or args.fault or args.enforced_context:
            raise UsageError("--log: verifies an existing log; --sut/--artifact/--fault/--enforced-context not used")
        return {}
    if args.output is not None:
        raise UsageError("--output: only with --log")
    _check_sut_args(args)
    backend, notes = embedded_sut_backend(get_benchmark(args.benchmark), args.preset, sut_backend(args))
    for note in notes:
        print(f"note: {note}")
    return {
        "scenario": args.scenario,
        "benchmark": args.benchmark,
        "dataset": args.dataset or (None if args.sut else embedded_dataset(get_benchmark(args.benchmark), args.preset)),
        "sut": args.sut,
        "transport": transport_from_args(args, remote=bool(args.sut)),
        "backend": {} if args.sut else backend,
        "preset": args.preset,
        "qps": args.qps,
        "max_new_tokens": args.max_new_tokens,
        "out_dir": args.out,
        "run_id": args.run_id,
        "audit_config": args.audit_config,
    }


def _log_dir(args: argparse.Namespace) -> Path:
    log: Path = args.log
    if not log.exists():
        raise UsageError(f"--log: {log}: not found (expected mlperf_log_accuracy.json or its run directory)")
    return log if log.is_dir() else log.parent


def _log_bounds(
    args: argparse.Namespace, default: tuple[float, float] | None
) -> tuple[tuple[float | None, float | None], str]:
    """TEST09's bounds for ``--log``: the given ones, else (without --audit-config) the benchmark's, scaled
    when the SUT's manifest next to the log declares a shortened reasoning (see run_test09)."""
    from compliance import sut_scaled_bounds
    from loadgen_harness import read_accuracy_log_entries
    from scenarios import get_benchmark

    given = (args.min_output_tokens, args.max_output_tokens)
    if args.audit_config is not None or default is None or None not in given:
        return given, ""
    log_dir = _log_dir(args)
    dataset = args.dataset or _run_dataset(log_dir) or get_benchmark(args.benchmark).dataset
    n = len(read_accuracy_log_entries(log_dir))
    (lo, hi), note = sut_scaled_bounds(default, log_dir, dataset, max(1, n))
    return (given[0] if given[0] is not None else lo, given[1] if given[1] is not None else hi), note


def _run_dataset(log_dir: Path) -> str | None:
    """The dataset the run next to the log was made with (its results.json), if there is one."""
    from loadgen_harness import load_results

    try:
        return load_results(log_dir).dataset or None
    except (OSError, ValueError):
        return None


def run_test07_cli(args: argparse.Namespace) -> int:
    from compliance import (
        DEFAULT_SCORE_PATTERN,
        ComplianceInputError,
        Test07Config,
        command_script,
        run_test07,
        test07_threshold_default,
        verify_test07_log,
    )
    from scenarios import get_benchmark
    from workflows import ScorerScript

    pattern = args.score_pattern or DEFAULT_SCORE_PATTERN
    try:
        fields = _perf_mode_common(args)
        if args.accuracy_script:
            script, name = command_script(args.accuracy_script), args.accuracy_script
        else:
            scorer = ScorerScript(args.benchmark, args.dataset, args.tokenizer)
            script, name = scorer, scorer.name
        if args.log is not None:
            threshold = args.threshold
            if threshold is None and args.audit_config is None:
                threshold = test07_threshold_default(get_benchmark(args.benchmark))
            out = args.output or _log_dir(args).parent / "TEST07"
            outcome = verify_test07_log(
                _log_dir(args),
                out,
                script,
                name,
                audit_config=args.audit_config,
                threshold=threshold,
                score_pattern=pattern,
            )
        else:
            cfg = Test07Config.model_validate({**fields, "threshold": args.threshold, "score_pattern": pattern})
            outcome = run_test07(cfg, script, name)
    except ComplianceInputError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # RunError, AccuracyLogError, a config's ValidationError: one line
        raise UsageError(error_line(exc)) from None
    print(outcome.test07.verify_text, end="")
    print(outcome.message)
    print(f"reports: {outcome.test07_dir}")
    record(args, args.out if args.log is None else None, outcome)
    return 0 if outcome.passed else 1


def run_test09_cli(args: argparse.Namespace) -> int:
    from compliance import ComplianceInputError, Test09Config, run_test09, test09_bounds_default, verify_test09_log
    from scenarios import get_benchmark

    given = (args.min_output_tokens, args.max_output_tokens)
    try:
        fields = _perf_mode_common(args)
        if args.log is not None:
            bounds, note = _log_bounds(args, test09_bounds_default(get_benchmark(args.benchmark)))
            out = args.output or _log_dir(args).parent / "TEST09"
            outcome = verify_test09_log(
                _log_dir(args), out, audit_config=args.audit_config, bounds=bounds, bounds_note=note
            )
        else:
            cfg = Test09Config.model_validate({**fields, "min_output_tokens": given[0], "max_output_tokens": given[1]})
            outcome = run_test09(cfg)
    except ComplianceInputError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(error_line(exc)) from None
    print(outcome.test09.verify_text, end="")
    print(outcome.message)
    print(f"reports: {outcome.test09_dir}")
    record(args, args.out if args.log is None else None, outcome)
    return 0 if outcome.passed else 1
