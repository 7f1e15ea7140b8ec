"""Compare two runs: per-metric deltas, direction, significance and regressions.

Latency percentiles come from LoadGen's results (:class:`RunResult`); where both runs kept per-query
records (``queries.npz``) a seeded bootstrap gives a confidence interval for the relative change of
each percentile. A metric is a **regression** when it moved the wrong way by more than the tolerance
and, where an interval exists, the interval excludes zero (so noise between two equal runs is not a
regression). Lines are meant to be acted on: ``TTFT p99 regressed 23% (1.20 s -> 1.48 s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from loadgen_harness import Percentiles, RunResult

Better = Literal["lower", "higher"]
_PCTS: tuple[tuple[Literal["p50", "p90", "p99"], float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


class CompareConfig(BaseModel):
    """Tolerances are relative (0.05 = 5%) except fidelity, which is an absolute rate change."""

    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(default=0.05, ge=0, description="latency and throughput, relative")
    accuracy_tolerance: float = Field(default=0.01, ge=0, description="accuracy scores, relative (MLPerf's 99%)")
    fidelity_tolerance: float = Field(default=0.02, ge=0, description="exact-match fraction, absolute")
    error_rate_tolerance: float = Field(default=0.001, ge=0, description="error rate, absolute")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    resamples: int = Field(default=1000, ge=100, le=20000)
    max_queries: int = Field(default=20000, ge=100, description="per-query records used for the bootstrap")
    seed: int = 0


class MetricDelta(BaseModel):
    name: str
    label: str
    unit: str = ""
    better: Better
    baseline: float
    candidate: float
    rel_delta: float | None = None  # (candidate - baseline) / baseline
    ci_low: float | None = None  # bootstrap interval for rel_delta
    ci_high: float | None = None
    significant: bool | None = None  # None: no per-query data to judge
    direction: Literal["better", "worse", "same"]
    regression: bool
    line: str


class Comparison(BaseModel):
    baseline: str
    candidate: str
    config: CompareConfig
    metrics: list[MetricDelta] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def regressions(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.regression]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def table(self) -> str:
        rows = [("metric", "baseline", "candidate", "change", f"{self.config.confidence:.0%} CI", "verdict")]
        for m in self.metrics:
            ci = "" if m.ci_low is None or m.ci_high is None else f"{m.ci_low:+.1%} .. {m.ci_high:+.1%}"
            change = "" if m.rel_delta is None else f"{m.rel_delta:+.1%}"
            verdict = "REGRESSION" if m.regression else m.direction
            rows.append((m.label, _fmt_value(m.baseline, m.unit), _fmt_value(m.candidate, m.unit), change, ci, verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@dataclass
class RunData:
    """One run as the comparison sees it."""

    name: str
    results: RunResult
    latencies_ms: dict[str, np.ndarray] = field(default_factory=dict)  # ttft_ms / tpot_ms / latency_ms
    accuracy: AccuracyReport | None = None
    fidelity: FidelityReport | None = None


def _fmt_value(v: float, unit: str) -> str:
    if unit == "ms":
        return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms" if v >= 1 else f"{v:.3f} ms"
    if unit == "%":
        return f"{v:.1%}"
    text = f"{v:.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return f"{text} {unit}".rstrip()


def latencies_from_records(records: np.ndarray) -> dict[str, np.ndarray]:
    """TTFT, TPOT and end-to-end latency in ms from per-query records of completed queries."""
    names = records.dtype.names or ()
    ok = np.ones(records.shape[0], dtype=bool)
    if "status" in names:
        ok &= records["status"] == 0
    issue, first, done = (records[k].astype(np.int64) for k in ("issue_ns", "first_token_ns", "done_ns"))
    ok &= (issue >= 0) & (done >= issue)
    out: dict[str, np.ndarray] = {"latency_ms": (done[ok] - issue[ok]) / 1e6}
    has_first = ok & (first >= issue) & (first <= done)
    if np.any(has_first):
        out["ttft_ms"] = (first[has_first] - issue[has_first]) / 1e6
    n = records["n_tokens"].astype(np.int64) if "n_tokens" in names else None
    if n is not None:
        multi = has_first & (n > 1)
        if np.any(multi):
            out["tpot_ms"] = (done[multi] - first[multi]) / (n[multi] - 1) / 1e6
    return out


def bootstrap_rel_change(
    base: np.ndarray, cand: np.ndarray, q: float, cfg: CompareConfig, rng: np.random.Generator
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of pct_q(cand) / pct_q(base) - 1, resampling each run independently."""
    if base.size < 20 or cand.size < 20:
        return None
    if base.size > cfg.max_queries:
        base = rng.choice(base, cfg.max_queries, replace=False)
    if cand.size > cfg.max_queries:
        cand = rng.choice(cand, cfg.max_queries, replace=False)
    stats = np.empty(cfg.resamples)
    # Resample in blocks so memory stays bounded (block x n indices at a time).
    block = max(1, min(cfg.resamples, 2_000_000 // max(base.size, cand.size)))
    for start in range(0, cfg.resamples, block):
        k = min(block, cfg.resamples - start)
        b = np.percentile(base[rng.integers(0, base.size, (k, base.size))], q, axis=1)
        c = np.percentile(cand[rng.integers(0, cand.size, (k, cand.size))], q, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            stats[start : start + k] = c / b - 1.0
    stats = stats[np.isfinite(stats)]
    if stats.size < cfg.resamples // 2:
        return None
    alpha = (1 - cfg.confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _delta(
    name: str,
    label: str,
    unit: str,
    better: Better,
    base: float,
    cand: float,
    tolerance: float,
    absolute: bool = False,
    ci: tuple[float, float] | None = None,
) -> MetricDelta:
    rel = (cand - base) / base if base else (0.0 if cand == base else math.copysign(math.inf, cand - base))
    change = (cand - base) if absolute else rel
    worse_sign = 1.0 if better == "lower" else -1.0
    significant = None if ci is None else not (ci[0] <= 0.0 <= ci[1])
    # Below half a percent (or a tenth of a point) a change is reported as unchanged whatever its sign.
    negligible = abs(change) < (0.001 if absolute else 0.005)
    if negligible or (significant is False and abs(change) <= tolerance):
        direction: Literal["better", "worse", "same"] = "same"
    else:
        direction = "worse" if change * worse_sign > 0 else "better"
    regression = direction == "worse" and abs(change) > tolerance and significant is not False
    verb = {"worse": "regressed", "better": "improved", "same": "unchanged"}[direction]
    amount = f"{abs(change) * 100:.1f} points" if absolute else (f"{abs(rel):.0%}" if math.isfinite(rel) else "")
    line = f"{label} {verb}"
    if direction != "same" and amount:
        line += f" {amount}"
    line += f" ({_fmt_value(base, unit)} -> {_fmt_value(cand, unit)})"
    if ci is not None:
        line += f" [{rel_ci_text(ci)}]"
    return MetricDelta(
        name=name,
        label=label,
        unit=unit,
        better=better,
        baseline=base,
        candidate=cand,
        rel_delta=rel if math.isfinite(rel) else None,
        ci_low=None if ci is None else ci[0],
        ci_high=None if ci is None else ci[1],
        significant=significant,
        direction=direction,
        regression=regression,
        line=line,
    )


def rel_ci_text(ci: tuple[float, float]) -> str:
    return f"CI {ci[0]:+.0%}..{ci[1]:+.0%}"


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _latency_sections(r: RunResult) -> tuple[tuple[str, str, Percentiles], ...]:
    return (("ttft_ms", "TTFT", r.ttft_ms), ("tpot_ms", "TPOT", r.tpot_ms), ("latency_ms", "latency", r.latency_ms))


def compare_runs(base: RunData, cand: RunData, cfg: CompareConfig | None = None) -> Comparison:
    """Every metric both runs report, baseline first."""
    cfg = cfg or CompareConfig()
    rng = np.random.default_rng(cfg.seed)
    out = Comparison(baseline=base.name, candidate=cand.name, config=cfg)
    rb, rc = base.results, cand.results
    if rb.valid and not rc.valid:
        reasons = "; ".join(x for x in rc.validity_reasons if x) or "see mlperf_log_summary.txt"
        out.metrics.append(
            MetricDelta(
                name="valid",
                label="LoadGen result",
                better="higher",
                baseline=1.0,
                candidate=0.0,
                direction="worse",
                regression=True,
                line=f"LoadGen result regressed (VALID -> INVALID): {reasons}",
            )
        )
    if rb.scenario != rc.scenario:
        out.notes.append(f"scenarios differ: {rb.scenario} vs {rc.scenario}")
    for (field_name, label, sb), (_, _, sc) in zip(_latency_sections(rb), _latency_sections(rc), strict=True):
        ab, ac = base.latencies_ms.get(field_name), cand.latencies_ms.get(field_name)
        for pct, q in _PCTS:
            vb, vc = _finite(sb.at(pct)), _finite(sc.at(pct))
            if vb is None or vc is None:
                continue
            ci = bootstrap_rel_change(ab, ac, q, cfg, rng) if ab is not None and ac is not None else None
            out.metrics.append(
                _delta(f"{field_name}.{pct}", f"{label} {pct}", "ms", "lower", vb, vc, cfg.tolerance, ci=ci)
            )
    for key, label, unit, vb, vc in (
        ("tokens_per_second", "tokens/s", "tok/s", _finite(rb.tokens_per_second), _finite(rc.tokens_per_second)),
        ("completed_qps", "completed QPS", "qps", _finite(rb.completed_qps), _finite(rc.completed_qps)),
    ):
        if vb is not None and vc is not None and vb > 0:
            out.metrics.append(_delta(key, label, unit, "higher", vb, vc, cfg.tolerance))
    if rb.n_queries and rc.n_queries:
        out.metrics.append(
            _delta(
                "error_rate",
                "error rate",
                "%",
                "lower",
                rb.n_errors / rb.n_queries,
                rc.n_errors / rc.n_queries,
                cfg.error_rate_tolerance,
                absolute=True,
            )
        )
    if base.accuracy is not None and cand.accuracy is not None:
        cand_scores = cand.accuracy.scores_percent
        for metric, vb in base.accuracy.scores_percent.items():
            vc = cand_scores.get(metric)
            if vc is not None and vb > 0:
                out.metrics.append(
                    _delta(f"accuracy.{metric}", f"accuracy {metric}", "", "higher", vb, vc, cfg.accuracy_tolerance)
                )
    if base.fidelity is not None and cand.fidelity is not None:
        for category in fidelity_categories(base.fidelity, cand.fidelity):
            fb, fc = fidelity_section(base.fidelity, category), fidelity_section(cand.fidelity, category)
            if fb is None or fc is None:
                continue
            tag = "all" if category == "*" else category
            out.metrics.append(
                _delta(
                    f"fidelity.exact_match[{tag}]",
                    f"exact match vs FP32 [{tag}]",
                    "%",
                    "higher",
                    fb.exact_match_fraction,
                    fc.exact_match_fraction,
                    cfg.fidelity_tolerance,
                    absolute=True,
                )
            )
    elif base.fidelity is not None or cand.fidelity is not None:
        out.notes.append("fidelity report present for only one run: not compared")
    return out


def fidelity_categories(*reports: FidelityReport) -> list[str]:
    """ "*" (all samples) first, then every category any report names, in first-seen order."""
    cats: list[str] = ["*"]
    for rep in reports:
        cats += [c for c in rep.by_category if c not in cats]
    return cats


def fidelity_section(report: FidelityReport, category: str) -> CategoryFidelity | None:
    """The aggregate for ``category``; "*" is the report's overall section."""
    return report.overall if category == "*" else report.by_category.get(category)


def load_run_data(run_dir: str | Path) -> RunData:
    """results.json, queries.npz and any accuracy/fidelity reports of one run directory, each as its model."""
    from gate import discover_reports, read_accuracy, read_fidelity, read_results, results_file

    res = results_file(run_dir)
    d = res.parent
    data = RunData(name=str(d), results=read_results(res))
    if (d / "queries.npz").is_file():
        data.latencies_ms = latencies_from_records(_load_records(d))
    found = discover_reports(d)
    if found.accuracy is not None:
        data.accuracy = read_accuracy(found.accuracy)
    if found.fidelity is not None:
        data.fidelity = read_fidelity(found.fidelity)
    return data


def _load_records(run_dir: Path) -> np.ndarray:
    from loadgen_harness import load_query_records

    return np.asarray(load_query_records(run_dir))
