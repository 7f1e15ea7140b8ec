"""End-to-end accuracy scoring of a run directory or log: decode, score, gate, fidelity, write files.

Used by ``lpuperf accuracy`` and by other workflows (artifact validation) that hold an
accuracy-mode run directory and want its accuracy.json and fidelity report.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from accuracy._baseline import GateLevel, GateVerdict, apply_gate, available_baselines, load_baseline
from accuracy._evaluate import ROUGE_SCORER, AccuracyReport, ScoredSamples, evaluate_log, write_accuracy_files
from accuracy._fidelity import FidelityReport, compare_outputs, write_fidelity_report
from accuracy._log import AccuracyLogError, TokenDtype, hf_decoder, read_accuracy_log
from accuracy._scorers import scorer_class, scorers

if TYPE_CHECKING:
    from scenarios import BenchmarkProfile, Dataset


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
    return _run_field(log_dir, "benchmark")


def run_dataset_spec(log_dir: Path) -> str | None:
    """The dataset spec the run read (results.json), e.g. a quick run's scaled ``reasoning:deepseek-r1:0.1``."""
    return _run_field(log_dir, "dataset")


def _run_field(log_dir: Path, name: str) -> str | None:
    from loadgen_harness import load_results

    try:
        return str(getattr(load_results(log_dir), name)) or None
    except (OSError, ValueError):  # no or unreadable results: the caller falls back to its default
        return None


def _profile(name: str, needed: bool) -> BenchmarkProfile | None:
    """The benchmark's profile; None for a name it does not know, which is an error only when ``needed``."""
    from scenarios import BenchmarkError, get_benchmark

    try:
        return get_benchmark(name)
    except BenchmarkError as exc:
        if needed:
            raise AccuracyLogError(str(exc).splitlines()[0]) from None
        return None


def load_scoring_dataset(spec: str, allow_pickle: bool = False) -> Dataset:
    """The dataset a log is scored against: MLPerf's tables (.parquet, .pkl with ``allow_pickle``) or any
    spec ``scenarios.resolve_dataset`` takes; AccuracyLogError, one line, when it cannot be read."""
    from scenarios import DatasetError, resolve_dataset

    try:
        return resolve_dataset(spec, allow_pickle=allow_pickle)
    except (DatasetError, ValueError) as exc:
        raise AccuracyLogError(str(exc).splitlines()[0]) from None


def scorer_config(
    scorer: BaseModel | Mapping[str, Any] | None, profile: BenchmarkProfile | None, workers: int, execute_code: bool
) -> dict[str, Any]:
    """The scorer config: the one given, else the benchmark's (``BenchmarkProfile.scorer``), else ROUGE.
    ``workers`` is ROUGE's processes or the programs a code-running scorer runs at once; ``execute_code``
    reaches the scorers that run code (one line for any other)."""
    if scorer is not None:
        cfg = scorer.model_dump() if isinstance(scorer, BaseModel) else dict(scorer)
    else:
        kind = getattr(profile, "scorer", ROUGE_SCORER) if profile is not None else ROUGE_SCORER
        cfg = {"kind": kind, "workers": workers} if kind == ROUGE_SCORER else {"kind": kind}
    fields = scorers.config_model(str(cfg.get("kind"))).model_fields
    if scorer is None and "code_workers" in fields:
        cfg["code_workers"] = workers  # --workers: programs run at once
    if execute_code:
        if "execute_code" not in fields:
            raise AccuracyLogError(f"--execute-code: scorer '{cfg.get('kind')}' runs no code")
        cfg.setdefault("execute_code", True)
    return cfg


def _notes(report: AccuracyReport) -> list[str]:
    """What a reader of an exact-match score must know: samples left out, answers graded wrong on a timeout."""
    notes = []
    for name, d in report.per_dataset.items():
        if d.not_scored:
            notes.append(f"not scored: {d.not_scored} {name} samples ({d.not_scored_reason})")
        if d.grading_timeouts:
            notes.append(f"{name}: {d.grading_timeouts} answers graded wrong after the sympy time limit")
    if report.not_scored:
        graded = sum(d.total for d in report.per_dataset.values())
        notes.append(
            f"exact_match covers {graded} of {graded + sum(report.not_scored.values())} samples: "
            "not MLPerf's figure until every sample is scored"
        )
    return notes


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
    *,
    execute_code: bool = False,
    allow_pickle: bool = False,
) -> AccuracyOutcome:
    """Score ``mlperf_log_accuracy.json``; write accuracy.txt/json (and fidelity.json/md) to ``out_dir``.

    The dataset defaults to the run's (results.json), else the benchmark's (benchmark from the run's
    results.json, else "embedded"), the scorer to the benchmark's (ROUGE unless its profile names another); the baseline
    defaults to the benchmark's shipped baseline when one exists. ``execute_code`` runs code answers'
    tests in the sandbox (exact-match scorers); ``allow_pickle`` lets a pickled MLPerf table load.
    """
    log_path = Path(log_path)
    if log_path.is_dir():
        log_path = log_path / "mlperf_log_accuracy.json"
    bench_name = benchmark or run_benchmark_name(log_path.parent) or "embedded"
    profile = _profile(bench_name, needed=dataset_spec is None)  # an unknown name with a dataset scores ROUGE
    # The run's own dataset first: its outputs answer that set (a quick reasoning run's is the scaled one).
    ran = run_dataset_spec(log_path.parent) if bench_name == (run_benchmark_name(log_path.parent) or "") else None
    spec = dataset_spec or ran or (profile.dataset if profile is not None else "embedded")
    dataset = load_scoring_dataset(spec, allow_pickle)
    cfg = scorer_config(scorer, profile, workers, execute_code)
    kind = scorer_class(str(cfg["kind"]))
    skip_special = bool(getattr(kind, "skip_special_tokens", True))
    log = read_accuracy_log(log_path, dtype, dedupe=bool(getattr(kind, "dedupe_log", True)))
    decode: Callable[[Sequence[int]], str]
    if tokenizer is not None:
        decode, decoder_name = hf_decoder(tokenizer, skip_special_tokens=skip_special), f"hf:{tokenizer}"
    else:
        if dataset.decoder is None:
            raise AccuracyLogError(f"dataset '{spec}': has no decoder; pass --tokenizer DIR")
        decode = functools.partial(dataset.decode, skip_special_tokens=skip_special)
        decoder_name = "dataset byte decoder" + ("" if skip_special else " (special tokens kept)")
    report, samples = evaluate_log(
        log,
        dataset.targets,
        decode,
        workers=workers,
        decoder_name=decoder_name,
        scorer=cfg,
        datasets=dataset.datasets,
        ground_truths=dataset.ground_truths,
        tests=dataset.tests,
    )
    report.benchmark, report.dataset, report.dataset_sha256 = bench_name, dataset.name, dataset.digest()
    outcome = AccuracyOutcome(report=report, samples=samples, notes=_notes(report))
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
