"""``lpuperf accuracy``: score an accuracy run MLPerf-style, gate it against the FP32 baseline.

    lpuperf accuracy [--artifact sim-bf16 | --sut HOST:PORT] [--scenario Offline] ...   # run + score
    lpuperf accuracy --log DIR/mlperf_log_accuracy.json [--dtype int32|int64] [--tokenizer DIR]
    lpuperf accuracy --write-baseline [--dataset embedded]      # regenerate the embedded baseline
    lpuperf accuracy fidelity --candidate bf16 [--reference fp32] [--out DIR]

Exit status: 0 when every gate at ``--gate`` passes, 1 when one fails, 2 on bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli._args import error_line, out_dir_arg, run_id_arg
from cli._record import add_record_args, record
from cli._transport_args import add_transport_arguments, transport_from_args
from common import UsageError

if TYPE_CHECKING:
    from common import BackendSpec


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "accuracy",
        help="accuracy vs the dataset (ROUGE or the reasoning models' exact match; MLPerf accuracy.txt), FP32 gates, "
        "fidelity",
    )
    src = p.add_argument_group("source (default: run an AccuracyOnly pass against the SUT)")
    src.add_argument("--log", type=Path, help="score this mlperf_log_accuracy.json (or a run dir holding one)")
    src.add_argument("--scenario", default="Offline", help="scenario of the accuracy pass (default: Offline)")
    src.add_argument("--sut", help="host:port of a running SUT (default: spawn the embedded sim SUT)")
    add_transport_arguments(p)
    src.add_argument("--artifact", help="artifact preset of the spawned SUT (e.g. sim-fp32, sim-bf16)")
    src.add_argument("--backend", help="backend of the spawned SUT: sim | transformers | openai")
    src.add_argument(
        "--max-new-tokens",
        type=int,
        help="cap on output tokens per answer (default: the benchmark profile's max_new_tokens)",
    )
    src.add_argument("--run-id", type=run_id_arg, help="run id of the accuracy pass (default: accuracy-<timestamp>)")
    p.add_argument("--benchmark", help="benchmark profile (default: the run's, else embedded)")
    p.add_argument("--dataset", help="embedded | synthetic:N:SEED | path (default: the benchmark's)")
    p.add_argument("--dtype", choices=("int32", "int64"), default="int32", help="token id type in the log")
    p.add_argument("--tokenizer", type=Path, help="Hugging Face tokenizer dir (default: the dataset's decoder)")
    p.add_argument("--baseline", help="baseline name or JSON path (default: the benchmark's shipped baseline)")
    p.add_argument("--gate", choices=("99", "99.9"), default="99", help="gate level deciding the exit status")
    p.add_argument("--out", type=out_dir_arg, help="where accuracy.txt/json go (default: next to the log)")
    p.add_argument("--results", type=out_dir_arg, default=Path("results"), help="output root of the accuracy pass")
    p.add_argument("--no-fidelity", action="store_true", help="skip the fidelity report vs FP32 outputs")
    p.add_argument("--workers", type=int, default=1, help="scoring processes (0 = all cores)")
    p.add_argument(
        "--execute-code",
        action="store_true",
        help="run code answers' tests (LiveCodeBench samples) in a sandbox: no network, CPU/memory/time limits; "
        "without it they are reported as not scored",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load a pickled MLPerf dataset table (.pkl): unpickling runs code, so only for files you trust",
    )
    p.add_argument(
        "--write-baseline",
        nargs="?",
        const="",
        metavar="PATH",
        help="compute the baseline from the dataset's FP32 reference outputs (default path: the shipped file)",
    )
    add_record_args(p)
    p.set_defaults(func=_main)
    fsub = p.add_subparsers(dest="accuracy_command", metavar="{fidelity}")
    f = fsub.add_parser("fidelity", help="per-sample slippage of a recording vs the FP32 recording")
    f.add_argument("--candidate", required=True, action="append", help="precision (bf16, int8) or .npz path")
    f.add_argument("--reference", default="fp32", help="reference recording (default: fp32, else the dataset's)")
    f.add_argument(
        "--dataset",
        dest="fidelity_dataset",
        default="embedded",
        help="dataset the recordings answer (default: embedded)",
    )
    f.add_argument(
        "--out",
        dest="fidelity_out",
        type=out_dir_arg,
        default=Path("results/fidelity"),
        help="where the fidelity report goes (default: results/fidelity)",
    )
    f.add_argument("--worst", type=int, default=10, help="how many worst samples to list")
    f.set_defaults(func=_fidelity_main)


def _fidelity_main(args: argparse.Namespace) -> int:
    from accuracy import AccuracyLogError, recording_fidelity

    for cand in args.candidate:
        try:
            rep, files = recording_fidelity(
                cand, args.reference, args.fidelity_dataset, args.fidelity_out, worst_k=args.worst
            )
        except AccuracyLogError as exc:
            raise UsageError(str(exc)) from None
        o = rep.overall
        print(
            f"{rep.candidate} vs {rep.reference}: exact match {o.exact_match_fraction * 100:.1f}%, "
            f"ROUGE-L {o.rouge_l_percent:.2f}"
        )
        for name, c in rep.by_category.items():
            ans = "" if c.answer_accuracy_fraction is None else f", answers {c.answer_accuracy_fraction * 100:.1f}%"
            print(f"  {name}: exact match {c.exact_match_fraction * 100:.1f}%, ROUGE-L {c.rouge_l_percent:.2f}{ans}")
        print("  wrote " + ", ".join(str(f) for f in files))
    return 0


def _write_baseline(args: argparse.Namespace) -> int:
    from accuracy import baseline_path, compute_reference_baseline, save_baseline
    from scenarios import DatasetError, get_benchmark, resolve_dataset

    bench = args.benchmark or "embedded"
    try:
        dataset = resolve_dataset(args.dataset or get_benchmark(bench).dataset)
    except (DatasetError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    base, _ = compute_reference_baseline(dataset, benchmark=bench, workers=args.workers)
    path = save_baseline(base, args.write_baseline or baseline_path(bench))
    print(f"baseline {bench}: {base.metrics} tokens_per_sample {base.tokens_per_sample} -> {path}")
    return 0


def _run_accuracy_pass(args: argparse.Namespace) -> Path:
    import time

    from loadgen_harness import RunConfig, RunError, run_benchmark

    if args.sut and (args.artifact or args.backend):
        raise UsageError("--artifact/--backend: only for the spawned SUT; drop them or drop --sut")
    backend: BackendSpec = {}
    if args.backend:
        backend["kind"] = args.backend
    if args.artifact:
        backend["artifact"] = args.artifact
        backend.setdefault("kind", "sim")
    try:
        cfg = RunConfig(
            scenario=args.scenario,
            mode="accuracy",
            benchmark=args.benchmark or "embedded",
            dataset=args.dataset,
            sut=args.sut,
            transport=transport_from_args(args, remote=bool(args.sut)),
            backend=backend,
            out_dir=args.results,
            run_id=args.run_id or time.strftime("accuracy-%Y%m%d-%H%M%S"),
            max_new_tokens=args.max_new_tokens,
        )
        res = run_benchmark(cfg)
    except (RunError, ValueError) as exc:
        raise UsageError(error_line(exc)) from None
    print(f"accuracy pass: {res.n_queries} queries, {res.n_errors} errors -> {res.log_dir}")
    if res.n_errors:
        raise UsageError(f"accuracy pass: {res.n_errors} queries failed ({res.errors_by_status}); not scoring")
    return Path(res.log_dir)


def _main(args: argparse.Namespace) -> int:
    from accuracy import AccuracyLogError, exact_match_lines, score_accuracy_log

    if args.write_baseline is not None:
        return _write_baseline(args)
    if args.log is not None:
        log = args.log
        if not log.exists():
            raise UsageError(f"--log: {log}: file not found")
    else:
        log = _run_accuracy_pass(args)
    log_file = log / "mlperf_log_accuracy.json" if log.is_dir() else log
    try:
        out = score_accuracy_log(
            log_file,
            dataset_spec=args.dataset,
            benchmark=args.benchmark,
            dtype=args.dtype,
            tokenizer=args.tokenizer,
            baseline=args.baseline,
            out_dir=args.out or log_file.parent,
            fidelity=not args.no_fidelity,
            workers=args.workers,
            execute_code=args.execute_code,
            allow_pickle=args.allow_pickle,
        )
    except AccuracyLogError as exc:
        raise UsageError(str(exc)) from None
    if out.report.scorer.startswith("exact_match"):
        for line in exact_match_lines(out.report):  # per dataset, then the line MLPerf's checker reads
            print(line)
    else:
        print(repr(out.report.result_dict()))
    print(f"hash={out.report.log_sha256}")
    if out.fidelity is not None:
        o = out.fidelity.overall
        print(f"fidelity vs FP32: exact match {o.exact_match_fraction * 100:.1f}%, ROUGE-L {o.rouge_l_percent:.2f}")
    for v in out.verdicts:
        print(v.text())
    print("wrote " + ", ".join(str(f) for f in out.files))
    for note in out.notes:
        print(note)
    record(args, None if args.log is not None else args.results, out, run_dir=log_file.parent)
    if not out.verdicts:
        print(f"no baseline for benchmark '{out.report.benchmark}': scores not gated")
        return 0
    gate = next(v for v in out.verdicts if v.level == args.gate)
    return 0 if gate.passed else 1
