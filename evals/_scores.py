"""An eval suite's result as lpuperf reads it: per-sample scores, per-category means with confidence
intervals, and the paired baseline-vs-candidate deltas ``validate`` and ``run --eval-during`` show.

Scores come from an Inspect log written as JSON (``--log-format json``): each sample's first scorer value
(``C``/``I``/``P``/``N`` or a number) as a number in 0..1, its category from the sample metadata
(``category``; ``all`` without one), its answer text and the request's TTFT/TPOT from the output's
metadata (the lpuperf provider records them).

Intervals: a mean's 95% interval is the t interval over the sample scores; a delta's is the paired t
interval over the per-sample differences (both runs score the same samples, so the pairing removes the
samples' own difficulty from the noise). A category with one sample has a zero-width interval.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from common import UsageError

__all__ = [
    "ALL_CATEGORIES",
    "CategoryScore",
    "SampleScore",
    "ScoreDelta",
    "TaskScore",
    "categories_of",
    "compare_scores",
    "mean_interval",
    "read_inspect_log",
]

ALL_CATEGORIES = "all"
_LETTER_VALUES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_CONFIDENCE = 0.95


class SampleScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample_id: str
    category: str
    score: float = Field(ge=0, le=1)
    answer: str
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    # Wall clock (Unix seconds) when Inspect started and finished the sample: places it inside or outside a load.
    started_unix_s: float | None = None
    completed_unix_s: float | None = None


class CategoryScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str  # ALL_CATEGORIES: the whole task
    n_samples: int = Field(ge=0)
    score: float
    ci_low: float
    ci_high: float


class TaskScore(BaseModel):
    """One eval task run against one target."""

    model_config = ConfigDict(extra="forbid")

    task: str
    target: str
    scorer: str
    samples: list[SampleScore]
    categories: list[CategoryScore]  # ALL_CATEGORIES first, then each category by name

    @property
    def overall(self) -> CategoryScore:
        return self.categories[0]

    def category(self, name: str) -> CategoryScore | None:
        return next((c for c in self.categories if c.category == name), None)


class ScoreDelta(BaseModel):
    """Candidate minus baseline for one task category (paired over the samples both runs scored)."""

    model_config = ConfigDict(extra="forbid")

    task: str
    category: str
    n_samples: int = Field(ge=0)
    baseline_score: float
    candidate_score: float
    delta: float
    ci_low: float
    ci_high: float
    changed_answers: int = Field(ge=0)  # samples whose answer text differs between the two runs


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t interval of the mean; zero width for fewer than two values."""
    if not values:
        return 0.0, 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(stats.t.ppf(0.5 + _CONFIDENCE / 2, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def categories_of(samples: list[SampleScore]) -> list[CategoryScore]:
    """The whole task (``all``) first, then each category by name, each with its 95% interval."""
    groups: dict[str, list[float]] = {ALL_CATEGORIES: [s.score for s in samples]}
    for s in samples:
        groups.setdefault(s.category, []).append(s.score)
    out = []
    for name in [ALL_CATEGORIES, *sorted(k for k in groups if k != ALL_CATEGORIES)]:
        mean, low, high = mean_interval(groups[name])
        # A score lies in 0..1: the t interval of a few binary scores can reach past either end.
        low, high = max(0.0, low), min(1.0, high)
        out.append(CategoryScore(category=name, n_samples=len(groups[name]), score=mean, ci_low=low, ci_high=high))
    return out


def _value(raw: Any, where: str) -> float:
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, int | float):
        return min(1.0, max(0.0, float(raw)))
    if isinstance(raw, str) and raw in _LETTER_VALUES:
        return _LETTER_VALUES[raw]
    raise UsageError(f"{where}: expected a score C/I/P/N or a number, got {raw!r}")


def _unix_s(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def _sample(raw: dict[str, Any], where: str) -> tuple[SampleScore, str]:
    scores = raw.get("scores") or {}
    if not isinstance(scores, dict) or not scores:
        raise UsageError(f"{where}: field 'scores': the sample was not scored")
    scorer, first = next(iter(scores.items()))
    output = raw.get("output") or {}
    meta = output.get("metadata") or {}
    category = str((raw.get("metadata") or {}).get("category") or ALL_CATEGORIES)
    sample = SampleScore(
        sample_id=f"{raw.get('id')}#{raw.get('epoch', 1)}",
        category=category,
        score=_value(first.get("value"), f"{where}: field 'scores.{scorer}.value'"),
        answer=str(output.get("completion") or ""),
        ttft_ms=meta.get("ttft_ms"),
        tpot_ms=meta.get("tpot_ms"),
        started_unix_s=_unix_s(raw.get("started_at")),
        completed_unix_s=_unix_s(raw.get("completed_at")),
    )
    return sample, str(scorer)


def read_inspect_log(path: Path, target: str) -> TaskScore:
    """A JSON Inspect log as a :class:`TaskScore`; UsageError (one line naming the file) when it is not one
    of a finished eval."""
    try:
        log = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: expected an Inspect JSON log ({exc.__class__.__name__})") from None
    if log.get("status") != "success":
        error = (log.get("error") or {}).get("message", "") if isinstance(log.get("error"), dict) else ""
        raise UsageError(f"{path}: the eval did not finish (status {log.get('status')!r}) {error}".strip())
    raw_samples = log.get("samples") or []
    if not raw_samples:
        raise UsageError(f"{path}: field 'samples': the log holds no samples")
    parsed = [_sample(s, f"{path}: sample {s.get('id')}") for s in raw_samples]
    samples = [s for s, _ in parsed]
    return TaskScore(
        task=str((log.get("eval") or {}).get("task", path.stem)),
        target=target,
        scorer=parsed[0][1],
        samples=samples,
        categories=categories_of(samples),
    )


def _delta(task: str, category: str, pairs: list[tuple[SampleScore, SampleScore]]) -> ScoreDelta:
    base = [b.score for b, _ in pairs]
    cand = [c.score for _, c in pairs]
    diff, low, high = mean_interval([c - b for b, c in zip(base, cand, strict=True)])
    return ScoreDelta(
        task=task,
        category=category,
        n_samples=len(pairs),
        baseline_score=sum(base) / len(base) if base else 0.0,
        candidate_score=sum(cand) / len(cand) if cand else 0.0,
        delta=diff,
        ci_low=low,
        ci_high=high,
        changed_answers=sum(b.answer != c.answer for b, c in pairs),
    )


def compare_scores(baseline: TaskScore, candidate: TaskScore) -> list[ScoreDelta]:
    """Per-task (``all``) and per-category deltas over the samples both runs scored."""
    cand = {s.sample_id: s for s in candidate.samples}
    pairs = [(b, cand[b.sample_id]) for b in baseline.samples if b.sample_id in cand]
    if not pairs:
        raise UsageError(f"{baseline.task}: baseline and candidate scored no sample in common")
    out = [_delta(baseline.task, ALL_CATEGORIES, pairs)]
    for name in sorted({b.category for b, _ in pairs} - {ALL_CATEGORIES}):
        out.append(_delta(baseline.task, name, [(b, c) for b, c in pairs if b.category == name]))
    return out
