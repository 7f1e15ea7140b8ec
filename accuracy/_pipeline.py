"""End-to-end accuracy scoring of a run directory or log: decode, score, gate, fidelity, write files.

Used by ``lpuperf accuracy`` and by other workflows (artifact validation) that hold an
accuracy-mode run directory and want its accuracy.json and fidelity report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from accuracy._baseline import GateLevel, GateVerdict, apply_gate, available_baselines, load_baseline
from accuracy._evaluate import AccuracyReport, ScoredSamples, evaluate_log, write_accuracy_files
from accuracy._fidelity import FidelityReport, compare_outputs, write_fidelity_report
from accuracy._log import AccuracyLogError, TokenDtype, hf_decoder, read_accuracy_log


@dataclass
class AccuracyOutcome:
    report: AccuracyReport
    samples: ScoredSamples
    fidelity: FidelityReport | None = None
    verdicts: list[GateVerdict] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_benchmark_name(log_dir: Path) -> str | None:
    """The benchmark recorded in the run's results.json, if there is one."""
    from loadgen_harness import load_results

    try:
        return load_results(log_dir).benchmark or None
    except (OSError, ValueError):  # no or unreadable results: the caller falls back to its default benchmark
        return None


def score_accuracy_log(
    log_path: str | Path,
    dataset_spec: str | None = None,
    benchmark: str | None = None,
    dtype: TokenDtype = "int32",
    tokenizer: str | Path | None = None,
    baseline: str | Path | None = None,
    levels: Sequence[GateLevel] = ("99", "99.9"),
    out_dir: str | Path | None = None,
    fidelity: bool = True,
    workers: int = 1,
    scorer: BaseModel | Mapping[str, Any] | None = None,
) -> AccuracyOutcome:
    """Score ``mlperf_log_accuracy.json``; write accuracy.txt/json (and fidelity.json/md) to ``out_dir``.

    The dataset defaults to the benchmark's (benchmark from the run's results.json, else
    "embedded"); the baseline defaults to the benchmark's shipped baseline when one exists.
    """
    from scenarios import DatasetError, get_benchmark, resolve_dataset

    log_path = Path(log_path)
    if log_path.is_dir():
        log_path = log_path / "mlperf_log_accuracy.json"
    bench_name = benchmark or run_benchmark_name(log_path.parent) or "embedded"
    try:
        spec = dataset_spec or get_benchmark(bench_name).dataset
        dataset = resolve_dataset(spec)
    except (DatasetError, ValueError) as exc:
        raise AccuracyLogError(str(exc).splitlines()[0]) from None
    log = read_accuracy_log(log_path, dtype)
    decode: Callable[[Sequence[int]], str]
    if tokenizer is not None:
        decode, decoder_name = hf_decoder(tokenizer), f"hf:{tokenizer}"
    else:
        if dataset.decoder is None:
            raise AccuracyLogError(f"dataset '{spec}': has no decoder; pass --tokenizer DIR")
        decode, decoder_name = dataset.decode, "dataset byte decoder"
    report, samples = evaluate_log(
        log, dataset.targets, decode, workers=workers, decoder_name=decoder_name, scorer=scorer
    )
    report.benchmark, report.dataset, report.dataset_sha256 = bench_name, dataset.name, dataset.digest()
    outcome = AccuracyOutcome(report=report, samples=samples)
    base_ref = baseline if baseline is not None else (bench_name if bench_name in available_baselines() else None)
    if base_ref is not None:
        base = load_baseline(base_ref)
        if base.dataset_sha256 and base.dataset_sha256 != report.dataset_sha256 and baseline is None:
            outcome.notes.append(f"shipped baseline '{base_ref}' was computed on another dataset: not gated")
        elif base.dataset_sha256 and base.dataset_sha256 != report.dataset_sha256:
            raise AccuracyLogError(
                f"baseline '{base_ref}': field 'dataset_sha256': computed on another dataset than '{spec}'; "
                "pass --baseline for this dataset (lpuperf accuracy --write-baseline PATH --dataset ...)"
            )
        else:
            outcome.verdicts = [apply_gate(report, base, level) for level in levels]
    if fidelity and dataset.decoder is not None and tokenizer is None:
        outcome.fidelity = compare_outputs(
            dataset,
            [o for o in log.outputs],
            indices=log.qsl_indices,
            candidate_name=f"accuracy log {log_path}",
            reference_name="fp32 (dataset reference outputs)",
            workers=workers,
        )
    if out_dir is not None:
        outcome.files += write_accuracy_files(report, out_dir)
        if outcome.fidelity is not None:
            outcome.files += write_fidelity_report(outcome.fidelity, out_dir)
    return outcome


def _recording_path(name: str) -> Path:
    from scenarios import EMBEDDED_DATASET

    p = Path(name)
    if p.suffix == ".npz" or p.exists():
        return p
    return EMBEDDED_DATASET.parent / "recordings" / f"{name}.npz"


def recording_fidelity(
    candidate: str,
    reference: str = "fp32",
    dataset_spec: str = "embedded",
    out_dir: str | Path | None = None,
    worst_k: int = 10,
    workers: int = 1,
) -> tuple[FidelityReport, list[Path]]:
    """Fidelity of a recording (precision name under scenarios/data/recordings, or an .npz path) vs FP32.

    The reference is the ``reference`` recording when it exists, else the dataset's own FP32
    reference outputs. Recordings must have been made on this dataset (sha256 checked).
    """
    from scenarios import DatasetError, load_recording, resolve_dataset

    try:
        dataset = resolve_dataset(dataset_spec)
        cand = load_recording(_recording_path(candidate))
        ref_path = _recording_path(reference)
        ref = load_recording(ref_path) if ref_path.is_file() else None
    except DatasetError as exc:
        raise AccuracyLogError(str(exc).splitlines()[0]) from None
    digest = dataset.digest()
    for rec in (cand, ref):
        if rec is not None and rec.dataset_sha256 and rec.dataset_sha256 != digest:
            raise AccuracyLogError(
                f"{rec.source}: field 'meta.dataset_sha256': recorded on another dataset than '{dataset_spec}'"
            )
    n = min(len(cand), len(dataset), len(ref) if ref is not None else len(dataset))
    rep = compare_outputs(
        dataset,
        cand.outputs[:n],
        reference=None if ref is None else ref.outputs,
        candidate_name=f"{cand.precision or candidate} ({Path(cand.source).name})",
        reference_name=f"{ref.precision} ({Path(ref.source).name})" if ref is not None else "fp32 (dataset reference)",
        worst_k=worst_k,
        workers=workers,
    )
    files: list[Path] = []
    if out_dir is not None:
        files += write_fidelity_report(rep, out_dir, stem=f"fidelity-{cand.precision or Path(candidate).stem}")
    return rep, files
