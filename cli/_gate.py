"""``lpuperf gate RESULTS --slo FILE``: apply an SLO to a run; non-zero exit on any violation.

RESULTS is a run directory (``OUT/<run-id>/<scenario>/<mode>/``) or its ``results.json``, or a plain
MLPerf result directory (read from LoadGen's logs). Accuracy, fidelity and compliance reports are
picked up next to it (see :func:`discover_reports`) or given explicitly. One line per violated
objective goes to stdout; JSON and JUnit XML go next to the results (or where ``--json`` /
``--junit`` say) for CI systems.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._args import out_file_arg, relative_tolerance_arg
from cli._record import add_record_args, gate_against_last_good, record
from common import UsageError


def _compliance_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--compliance: expected NAME=PATH (e.g. TEST06=report.json), got '{text}'")
    return name, Path(path)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "gate",
        help="check a run against an SLO file; non-zero exit on violation",
        description="Apply an SLO (YAML/JSON) to a run directory. Prints one line per violated objective "
        "with value, limit and margin; writes gate.json and gate.junit.xml.",
    )
    p.add_argument(
        "results",
        help="run directory OUT/<run-id>/<scenario>/<mode>/ or its results.json, or an MLPerf result directory "
        "(<scenario>/ or its performance/run_1/)",
    )
    p.add_argument(
        "--slo", help="SLO file (YAML or JSON) or a packaged name, e.g. 'latency-only' (required without --against)"
    )
    p.add_argument(
        "--against",
        choices=("last-good",),
        help="also compare with the run store's last good build of the same artifact (lpuperf history mark-good) "
        "and fail on any regression",
    )
    p.add_argument(
        "--tolerance", type=relative_tolerance_arg, default=0.05, help="with --against: relative tolerance (0.05)"
    )
    p.add_argument("--accuracy", type=Path, help="accuracy.json of the candidate (default: found next to the run)")
    p.add_argument(
        "--baseline-accuracy",
        type=Path,
        help="accuracy.json of the baseline, for relative gates (default: the benchmark's shipped FP32 baseline)",
    )
    p.add_argument("--fidelity", type=Path, help="fidelity report JSON (default: found next to the run)")
    p.add_argument(
        "--compliance",
        type=_compliance_arg,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="compliance report for check NAME (TEST06, context, strict); repeatable",
    )
    p.add_argument("--json", type=out_file_arg, help="where to write the gate report JSON (default: RESULTS/gate.json)")
    p.add_argument("--junit", type=out_file_arg, help="where to write JUnit XML (default: RESULTS/gate.junit.xml)")
    p.add_argument("--verbose", "-v", action="store_true", help="also print passing objectives")
    add_record_args(p)
    p.set_defaults(func=run_gate)


def run_gate(args: argparse.Namespace) -> int:
    from compliance import COMPLIANCE_CHECKS
    from gate import (
        SloError,
        discover_reports,
        evaluate_slo,
        load_gate_inputs,
        load_slo,
        results_file,
        shipped_baseline,
    )

    if args.slo is None and args.against is None:
        raise UsageError("--slo: required (or --against last-good)")
    try:
        slo = load_slo(args.slo) if args.slo is not None else None
    except SloError as exc:
        raise UsageError(str(exc)) from None
    res_path = results_file(args.results)
    run_dir = res_path.parent
    found = discover_reports(run_dir)
    for flag, path in (("--accuracy", args.accuracy), ("--fidelity", args.fidelity)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{flag}: {path}: file not found")
    found.accuracy = args.accuracy or found.accuracy
    found.fidelity = args.fidelity or found.fidelity
    for name, path in args.compliance:
        check = next((c for c in COMPLIANCE_CHECKS if c == name), None)
        if check is None:
            raise UsageError(f"--compliance: unknown check '{name}'; expected one of {', '.join(COMPLIANCE_CHECKS)}")
        if not path.is_file():
            raise UsageError(f"--compliance: {path}: file not found")
        found.compliance[check] = path
    if args.baseline_accuracy is not None and not Path(args.baseline_accuracy).is_file():
        raise UsageError(f"--baseline-accuracy: {args.baseline_accuracy}: file not found")
    inputs = load_gate_inputs(res_path, found, args.baseline_accuracy)
    if (
        slo is not None
        and inputs.baseline_accuracy is None
        and any(a.min_fraction_of_baseline and a.baseline is None for a in slo.accuracy)
    ):
        inputs.baseline_accuracy = shipped_baseline(inputs.results.benchmark if inputs.results else "")
    report = evaluate_slo(slo, inputs) if slo is not None else None
    if args.against is not None:
        report = gate_against_last_good(args, res_path, report, args.tolerance)
    assert report is not None
    json_path = args.json or run_dir / "gate.json"
    junit_path = args.junit or run_dir / "gate.junit.xml"
    report.write(json_path, junit_path)
    for o in report.objectives:
        if not o.passed or args.verbose:
            print(o.line)
    n_bad = len(report.violations)
    print(
        f"gate {report.slo}: {'PASS' if report.passed else 'FAIL'} "
        f"({len(report.objectives) - n_bad}/{len(report.objectives)} objectives met); wrote {json_path}, {junit_path}"
    )
    record(args, None, report)
    return 0 if report.passed else 1
