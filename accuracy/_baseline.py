"""FP32 reference baselines and the MLPerf accuracy gates (99% / 99.9%, tokens-per-sample window).

A baseline is a small JSON file (:class:`Baseline`): per-metric FP32 reference values and, where
the benchmark has one, the expected tokens per sample with its relative tolerance. The published
MLPerf values ship in ``accuracy/baselines/<benchmark>.json``; the embedded benchmark's file is
computed from the dataset's FP32 reference outputs by :func:`compute_reference_baseline`
(``lpuperf accuracy --write-baseline``), and a test recomputes it to prove it matches the dataset.

A gate passes a metric when ``value >= target * fraction`` (MLPerf compares the rounded values
it prints); tokens per sample must lie within ``target * (1 -/+ tolerance)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from accuracy._evaluate import AccuracyReport, score_texts
from accuracy._log import AccuracyLogError
from common import first_error_line, read_json_object, write_atomic

BASELINES_DIR = Path(__file__).with_name("baselines")
GateLevel = Literal["99", "99.9"]
GATE_LEVELS: dict[GateLevel, float] = {"99": 0.99, "99.9": 0.999}


class Baseline(BaseModel):
    benchmark: str = Field(min_length=1)
    source: str = Field(description="where the values come from")
    metrics: dict[str, float] = Field(description="FP32 reference values, ROUGE as mean F x 100")
    tokens_per_sample: float | None = Field(default=None, gt=0)
    tokens_per_sample_tolerance: float | None = Field(default=None, gt=0, lt=1, description="relative, 0.1 = +-10%")
    dataset_sha256: str = Field(default="", description="for computed baselines: the dataset they were computed on")

    def as_report(self) -> AccuracyReport:
        """The reference values as an accuracy report, so a gate compares a report with a report."""
        return AccuracyReport(
            benchmark=self.benchmark,
            dataset_sha256=self.dataset_sha256,
            scores_percent=dict(self.metrics),
            tokens_per_sample=self.tokens_per_sample or 0.0,
        )


class GateLine(BaseModel):
    metric: str
    value: float | None
    target: float
    passed: bool
    margin: float | None = Field(description="value - target (or distance outside the window); None if missing")
    line: str


class GateVerdict(BaseModel):
    level: str
    benchmark: str
    passed: bool
    lines: list[GateLine]

    def text(self) -> str:
        head = f"accuracy gate {self.level}% vs {self.benchmark} FP32 baseline: {'PASS' if self.passed else 'FAIL'}"
        return "\n".join([head, *("  " + g.line for g in self.lines)])


def baseline_path(name: str) -> Path:
    return BASELINES_DIR / f"{name}.json"


def available_baselines() -> list[str]:
    return sorted(p.stem for p in BASELINES_DIR.glob("*.json"))


def load_baseline(name_or_path: str | Path) -> Baseline:
    """A shipped baseline by benchmark name, or a baseline JSON file by path."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = baseline_path(str(name_or_path))
        if not p.is_file():
            raise AccuracyLogError(
                f"baseline '{name_or_path}': no such shipped baseline; expected one of {available_baselines()} or a path"
            )
    raw = read_json_object(p, "baseline file", AccuracyLogError)
    try:
        return Baseline.model_validate(raw)
    except ValidationError as exc:
        raise AccuracyLogError(first_error_line(exc, str(p))) from None


def save_baseline(baseline: Baseline, path: str | Path) -> Path:
    return write_atomic(path, baseline.model_dump_json(indent=2, exclude_none=True) + "\n")


def compute_reference_baseline(
    dataset: object, benchmark: str = "embedded", tolerance: float = 0.1, workers: int = 1
) -> tuple[Baseline, AccuracyReport]:
    """Score the dataset's FP32 reference outputs against its targets: the baseline a candidate must keep."""
    from scenarios.dataset import Dataset

    if not isinstance(dataset, Dataset):
        raise TypeError("dataset: expected a scenarios.Dataset")
    texts = [dataset.decode(ids) for ids in dataset.reference_ids]
    report, _ = score_texts(texts, dataset.targets, [len(r) for r in dataset.reference_ids], workers=workers)
    baseline = Baseline(
        benchmark=benchmark,
        source=f"computed from the FP32 reference outputs of dataset '{dataset.name}' ({len(dataset)} samples)",
        metrics=dict(report.scores_percent),
        tokens_per_sample=report.tokens_per_sample,
        tokens_per_sample_tolerance=tolerance,
        dataset_sha256=dataset.digest(),
    )
    return baseline, report


def _num(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.0f}"


def apply_gate(report: AccuracyReport | dict[str, float], baseline: Baseline, level: GateLevel = "99") -> GateVerdict:
    """Per metric: value >= baseline * fraction; tokens_per_sample within the baseline's window."""
    fraction = GATE_LEVELS[level]
    values: dict[str, float] = (
        dict(report.scores_percent) | {"tokens_per_sample": report.tokens_per_sample}
        if isinstance(report, AccuracyReport)
        else dict(report)
    )
    lines: list[GateLine] = []
    for metric, ref in baseline.metrics.items():
        # Compared unrounded, as the checker does (value >= target * fraction); rounded only for display.
        target = ref * fraction
        value = values.get(metric)
        tag = f"target ({level}% of {_num(ref)})"
        if value is None:
            line = f"{metric} not measured, {_num(target)} {tag} FAIL (no value)"
            lines.append(GateLine(metric=metric, value=None, target=target, passed=False, margin=None, line=line))
            continue
        margin = round(value - target, 4)
        ok = value >= target
        rel = ">=" if ok else "<"
        line = f"{metric} {_num(value)} {rel} {_num(target)} {tag} {'PASS' if ok else 'FAIL'} by {_num(abs(margin))}"
        lines.append(GateLine(metric=metric, value=value, target=target, passed=ok, margin=margin, line=line))
    if baseline.tokens_per_sample is not None and baseline.tokens_per_sample_tolerance is not None:
        ref, tol = baseline.tokens_per_sample, baseline.tokens_per_sample_tolerance
        lo, hi = ref * (1 - tol), ref * (1 + tol)
        value = values.get("tokens_per_sample")
        tag = f"(+-{_num(tol * 100)}% of {_num(ref)})"
        if value is None:
            line = f"tokens_per_sample not measured, window [{_num(lo)}, {_num(hi)}] {tag} FAIL (no value)"
            lines.append(
                GateLine(metric="tokens_per_sample", value=None, target=ref, passed=False, margin=None, line=line)
            )
        else:
            ok = lo <= value <= hi
            outside = 0.0 if ok else round(lo - value if value < lo else value - hi, 4)
            where = "within" if ok else "outside"
            verdict = "PASS" if ok else f"FAIL by {_num(outside)}"
            line = f"tokens_per_sample {_num(value)} {where} [{_num(lo)}, {_num(hi)}] {tag} {verdict}"
            margin = round(min(value - lo, hi - value), 4) if ok else -outside
            lines.append(
                GateLine(metric="tokens_per_sample", value=value, target=ref, passed=ok, margin=margin, line=line)
            )
    return GateVerdict(level=level, benchmark=baseline.benchmark, passed=all(g.passed for g in lines), lines=lines)
