"""``lpuperf submission {run,build,check}``: MLPerf submission tree from runs, and its checker.

* ``run`` does everything ``make submission`` needs: a performance run, an accuracy run scored into
  accuracy.txt, TEST06, then ``build`` and ``check``.
* ``build`` lays out finished run directories.
* ``check`` reports what MLPerf's checker would reject; non-zero exit on any finding.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cli._args import error_line, out_dir_arg, out_file_arg, run_id_arg
from cli._record import add_record_args, record
from cli._transport_args import add_transport_arguments, transport_from_args
from common import UsageError

if TYPE_CHECKING:
    from workflows import SubmissionConfig


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "submission",
        help="build and check an MLPerf submission directory",
        description="Build {closed|open}/<submitter>/results/<system>/<benchmark>/<scenario>/ from runs and "
        "check it the way MLPerf's submission checker would.",
    )
    sub = p.add_subparsers(dest="submission_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--division", choices=("closed", "open"), default="closed", help="MLPerf division (default: closed)"
        )
        q.add_argument("--submitter", default="lpuperf", help="submitter name (letters, digits, _ . -)")
        q.add_argument("--system", help="system name (default: the artifact id)")
        q.add_argument(
            "--status",
            choices=("available", "preview", "rdi"),
            default="available",
            help="system availability in the system description (default: available)",
        )
        q.add_argument(
            "--system-type",
            choices=("datacenter", "edge"),
            default="datacenter",
            help="MLPerf system category (default: datacenter)",
        )
        q.add_argument("--user-conf", type=Path, help="user.conf the runs used (copied into the tree)")
        q.add_argument(
            "--system-desc",
            type=Path,
            help="system description filled from `submission init-system` (merged over what lpuperf detects)",
        )

    run = sub.add_parser("run", help="run performance + accuracy + TEST06, then build and check")
    run.add_argument(
        "--scenario",
        help="LoadGen scenario(s) of the runs, comma-separated (e.g. Offline,Server); the closed division's "
        "MLPerf benchmarks need every scenario the round requires (default: those, else Server)",
    )
    run.add_argument("--benchmark", default="embedded", help="benchmark profile (default: embedded)")
    run.add_argument("--dataset", help="dataset spec (default: the benchmark's)")
    run.add_argument(
        "--preset",
        choices=("quick", "submission"),
        default="quick",
        help="run length: quick, or submission (MLPerf's full 600 s runs) (default: quick)",
    )
    run.add_argument("--sut", help="host:port of a running SUT (default: spawn the embedded sim)")
    add_transport_arguments(run)
    run.add_argument("--artifact", help="sim artifact preset for the embedded SUT (default: sim-fp32)")
    run.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `lpuperf serve` argument for the spawned SUT (repeatable, e.g. --serve-arg=--decode-step-s=0.002)",
    )
    run.add_argument(
        "--qps",
        help="target QPS: one number for every scenario, or per scenario as SCENARIO=QPS,... "
        "(e.g. Offline=150,Server=25)",
    )
    run.add_argument("--duration", type=float, help="performance run duration in seconds (quick preset)")
    run.add_argument("--out", type=out_dir_arg, default=Path("results"), help="where runs go (default: results)")
    run.add_argument("--submission-dir", type=out_dir_arg, help="where the tree goes (default: OUT/submission)")
    run.add_argument("--run-id", type=run_id_arg, help="run id (default: generated)")
    common(run)
    add_record_args(run)
    run.set_defaults(func=run_submission_all)

    build = sub.add_parser("build", help="lay out finished runs as a submission tree")
    build.add_argument("--performance", type=Path, required=True, help="performance run dir (results.json)")
    build.add_argument("--accuracy", type=Path, required=True, help="accuracy run dir with accuracy.txt")
    build.add_argument("--test06", type=Path, help="TEST06 dir with verify_accuracy.txt")
    build.add_argument("--out", type=out_dir_arg, required=True, help="submission root")
    common(build)
    build.set_defaults(func=run_submission_build)

    init = sub.add_parser("init-system", help="write a system description template to fill in")
    init.add_argument("out", type=out_file_arg, help="where the template goes (JSON)")
    init.add_argument("--artifact-json", type=Path, help="artifact manifest (artifact.json) of the measured SUT")
    common(init)
    init.set_defaults(func=run_init_system)

    check = sub.add_parser("check", help="report anything MLPerf's checker would reject")
    check.add_argument("root", type=Path, help="submission root holding closed/ or open/")
    check.add_argument("--json", type=out_file_arg, help="write the findings as JSON here")
    check.add_argument(
        "--version",
        metavar="ROUND",
        help="MLPerf round the tree was made for, e.g. v5.1: its seeds are expected, and for v6.0/v6.1 its "
        "table's rules (default: the installed LoadGen's seeds, v6.1's table; an unknown round is not checked "
        "for seeds)",
    )
    check.set_defaults(func=run_submission_check)


def _config(args: argparse.Namespace) -> SubmissionConfig:
    from pydantic import ValidationError

    from common import first_error_line
    from workflows import SubmissionConfig

    try:
        return SubmissionConfig(
            division=args.division,
            submitter=args.submitter,
            system=args.system,
            status=args.status,
            system_type=args.system_type,
            system_desc=args.system_desc,
        )
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--")) from None


def run_init_system(args: argparse.Namespace) -> int:
    from common import read_json_object, write_atomic
    from workflows import system_template

    cfg = _config(args)
    artifact = dict(read_json_object(args.artifact_json, "artifact manifest")) if args.artifact_json else {}
    system = cfg.system or str(artifact.get("artifact_id") or "lpuperf-system")
    write_atomic(args.out, system_template(cfg, system, artifact))
    print(f"submission: wrote {args.out}; fill every blank field, then pass it as --system-desc")
    return 0


def _qps_by_scenario(text: str | None, scenarios: list[str]) -> dict[str, float | None]:
    """``--qps``: one rate for every scenario, or ``SCENARIO=QPS`` pairs; one line naming the bad part."""
    if text is None:
        return dict.fromkeys(scenarios)
    pairs = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if len(pairs) == 1 and "=" not in pairs[0]:
            return dict.fromkeys(scenarios, float(pairs[0]))
        rates = {k.strip(): float(v) for k, _, v in (p.partition("=") for p in pairs)}
    except ValueError:
        raise UsageError(f"--qps: expected a number or SCENARIO=QPS,..., got {text!r}") from None
    unknown = sorted(set(rates) - set(scenarios))
    if unknown:
        raise UsageError(f"--qps: {', '.join(unknown)} not among --scenario {','.join(scenarios)}")
    return {s: rates.get(s) for s in scenarios}


def _scenarios(args: argparse.Namespace, cfg: SubmissionConfig) -> list[str]:
    """The scenarios to run; in the closed division every one the benchmark's round requires, refused before
    any run when one is missing."""
    from scenarios import BENCHMARKS

    bench = BENCHMARKS.get(args.benchmark)
    rules = bench.rules if bench is not None else None
    if args.scenario is None:
        req = rules.required.get(cfg.system_type) if rules is not None else None
        # The round's required scenarios, with Server as the one of Server/Interactive.
        return [*req.all_of, *req.one_of[:1]] if req is not None else ["Server"]
    scenarios = [s.strip() for s in str(args.scenario).split(",") if s.strip()]
    if not scenarios:
        raise UsageError("--scenario: expected one or more scenario names, comma-separated")
    if rules is None or cfg.division == "open" or cfg.system_type not in rules.required:
        return scenarios
    present = set(scenarios)
    if bench is not None and bench.name.endswith("-interactive"):
        present = {"Interactive" if s == "Server" else s for s in present}
    missing = rules.required[cfg.system_type].missing(present)
    if missing:
        raise UsageError(
            f"--scenario: {rules.checker_model} ({cfg.system_type}, closed division) needs {', '.join(missing)}; "
            f"got {', '.join(scenarios)} (use --division open for a subset)"
        )
    return scenarios


def run_submission_build(args: argparse.Namespace) -> int:
    from workflows import SubmissionError, build_submission

    cfg = _config(args)
    try:
        scen = build_submission(args.out, args.performance, args.accuracy, args.test06, cfg, args.user_conf)
    except SubmissionError as exc:
        raise UsageError(str(exc)) from None
    print(f"submission: wrote {scen}")
    return 0


def print_check(root: Path, json_path: Path | None = None, version: str | None = None) -> int:
    from common import write_atomic
    from workflows import SubmissionError, check_submission

    try:
        report = check_submission(root, version)
    except SubmissionError as exc:
        raise UsageError(str(exc)) from None
    for f in report.findings:
        print(f.line)
    for note in report.notes:
        print(f"note: {note}")
    n = len(report.findings)
    verdict = "accepted" if report.passed else f"{n} finding{'s' if n != 1 else ''}"
    if json_path is not None:
        write_atomic(json_path, report.model_dump_json(indent=2) + "\n")
        print(f"wrote {json_path}")
    print(f"submission check: {verdict} ({report.scenarios_checked} scenario(s) under {root})")
    return 0 if report.passed else 1


def run_submission_check(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise UsageError(f"{args.root}: submission root not found")
    return print_check(args.root, args.json, args.version)


# What a quick-preset tree is expected to fall short of: it is a rehearsal, short and on a small dataset.
QUICK_PRESET_CODES = frozenset(
    {
        "not-submittable",
        "min-duration",
        "performance-sample-count",
        "accuracy-coverage",
        "offline-samples",
        "accuracy-target",
        "benchmark",
    }
)


def run_submission_all(args: argparse.Namespace) -> int:
    import time

    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import RunError
    from workflows import (
        SubmissionError,
        SubmissionRunConfig,
        check_dataset_coverage,
        check_submission,
        read_system_file,
        run_submission,
    )

    cfg = _config(args)
    scenarios = _scenarios(args, cfg)
    qps = _qps_by_scenario(args.qps, scenarios)
    run_id = args.run_id or time.strftime("submission-%Y%m%d-%H%M%S")
    if args.sut and (args.artifact or args.serve_arg):
        raise UsageError("--artifact/--serve-arg: only for the spawned SUT; drop them or drop --sut")
    if cfg.system_desc is not None:  # a blank field is refused before any run, not after an hour of them
        try:
            read_system_file(cfg.system_desc)
        except SubmissionError as exc:
            raise UsageError(str(exc)) from None
    from cli._run import spawned_backend

    backend = spawned_backend(args.serve_arg, args.artifact)
    try:
        runs = [
            SubmissionRunConfig(
                scenario=scenario,
                benchmark=args.benchmark,
                dataset=args.dataset,
                preset=args.preset,
                sut=args.sut,
                transport=transport_from_args(args, remote=bool(args.sut)),
                backend=backend,
                qps=qps[scenario],
                duration_s=args.duration,
                out_dir=args.out,
                run_id=run_id,
                submission_dir=args.submission_dir,
                user_conf=args.user_conf,
            )
            for scenario in scenarios
        ]
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "options").replace("field '", "option '--")) from None
    try:
        check_dataset_coverage(runs[0])  # before any run: a short dataset is known now, not after an hour
    except SubmissionError as exc:
        raise UsageError(str(exc)) from None
    for run in runs:
        try:
            scen, checked = run_submission(run, cfg)
        except (SubmissionError, RunError, ValidationError) as exc:  # RunError: a run or the SUT could not start
            raise UsageError(error_line(exc)) from None
        print(f"submission: wrote {scen}")
        record(args, args.out, checked, run_dir=args.out / run_id / run.scenario / "performance")
    root = runs[0].submission_dir or args.out / run_id / "submission"
    rc = print_check(root)
    if rc and args.preset == "quick" and {f.code for f in check_submission(root).findings} <= QUICK_PRESET_CODES:
        # A quick tree is complete and labelled; being unsubmittable is what was asked for.
        print("submission: quick preset: a complete tree for rehearsal; use PRESET=submission to submit")
        return 0
    return rc
