"""Compare two runs: per-metric changes with bootstrap intervals, and verdicts only where the data decide.

Every figure that can carry an interval does, computed from the same data and the same estimator as
the change it qualifies (:mod:`workflows._stats`):

- **Latency percentiles** from the per-query records (``queries.npz``): the values shown are the
  records' percentiles (successful queries, the harness's clock, LoadGen's "higher" rank) and the
  change is their ratio, bootstrapped. LoadGen's own percentiles are kept on the metric for reference.
- **Throughput** (successful QPS, tokens/s) from the records too: completions binned over the
  measured window, bins resampled. In a Server run the rate is the schedule's, so when the two
  runs' scheduled rates differ the comparison is per scheduled query (completed / scheduled).
- **Error rate** and **fidelity** exact-match rates as binomial proportions (absolute points).
- **Accuracy** scores come without per-sample scores: the change is shown, marked "no CI".
- **Energy** (results.json ``energy``): joules per token and per query, tokens per joule, QPS per watt,
  with the throughput's interval (:mod:`workflows._compare_energy`); average watts without one.
- **Runs beside LoadGen** (``--load``) add dispatch lag, session latency, TTFT by turn and the prefix-cache
  hit fraction (:mod:`workflows._compare_load`); a candidate whose client fell behind is a regression.

A metric gets a verdict (better / worse) only when its interval excludes zero; an interval that
spans zero is "no significant change", a metric without one "no CI". A **regression** is a
significant change the wrong way by more than the tolerance. Runs of different modes, scenarios or
benchmarks are refused (``CompareError``) unless ``force`` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from common import UsageError
from loadgen_harness import Percentiles, RunResult
from workflows._compare_energy import energy_figures, energy_note
from workflows._compare_load import Bootstrap, client_regression, load_figures, load_notes, load_samples
from workflows._stats import Estimate, RateBins, mean_change, percentile_change, proportion_change, rate_bins, scaled

Better = Literal["lower", "higher"]
Direction = Literal["better", "worse", "same", "no CI"]
_PCTS: tuple[tuple[Literal["p50", "p90", "p99"], float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))
# Scheduled rates further apart than this make raw Server throughput incomparable.
_SCHEDULE_MATCH = 0.005


class CompareError(UsageError):
    """The two runs measure different things (mode, scenario, benchmark); one line, exit 2."""


class CompareConfig(BaseModel):
    """Tolerances are relative (0.05 = 5%) except fidelity and error rate, which are absolute rate changes."""

    model_config = ConfigDict(extra="forbid")

    tolerance: float = Field(default=0.05, ge=0, description="latency, throughput and energy, relative")
    accuracy_tolerance: float = Field(default=0.01, ge=0, description="accuracy scores, relative (MLPerf's 99%)")
    fidelity_tolerance: float = Field(default=0.02, ge=0, description="exact-match fraction, absolute")
    error_rate_tolerance: float = Field(default=0.001, ge=0, description="error rate, absolute")
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    resamples: int = Field(default=1000, ge=100, le=20000)
    max_queries: int = Field(default=20000, ge=100, description="per-query records used for the bootstrap")
    seed: int = 0
    force: bool = Field(default=False, description="compare runs of different modes/scenarios/benchmarks anyway")


class MetricDelta(BaseModel):
    name: str
    label: str
    unit: str = ""
    better: Better
    baseline: float
    candidate: float
    # The change: relative ((candidate - baseline) / baseline) or, for rates like error rate, absolute.
    change: float | None = None
    absolute: bool = False
    rel_delta: float | None = None  # relative change, also for absolute metrics where defined
    ci_low: float | None = None  # bootstrap interval of ``change``; it always holds ``change``
    ci_high: float | None = None
    significant: bool | None = None  # None: no interval
    direction: Direction
    regression: bool
    source: Literal["records", "loadgen", "report"] = "report"
    loadgen_baseline: float | None = None  # LoadGen's own figure where the values are the records'
    loadgen_candidate: float | None = None
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
            ci = "no CI" if m.ci_low is None or m.ci_high is None else _ci_text(m.ci_low, m.ci_high, m.absolute)
            change = "" if m.change is None else _change_text(m.change, m.absolute)
            rows.append(
                (m.label, _fmt_value(m.baseline, m.unit), _fmt_value(m.candidate, m.unit), change, ci, _verdict(m))
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _verdict(m: MetricDelta) -> str:
    if m.regression:
        return "REGRESSION"
    if m.direction == "same":
        return "no significant change" if m.significant is False else "same"
    if m.direction == "worse":
        return "worse (within tolerance)"
    return m.direction


@dataclass
class RunData:
    """One run as the comparison sees it."""

    name: str
    results: RunResult
    latencies_ms: dict[str, np.ndarray] = field(default_factory=dict)  # ttft_ms / tpot_ms / latency_ms
    accuracy: AccuracyReport | None = None
    fidelity: FidelityReport | None = None
    rates: RateBins | None = None  # successful completions per time bin, for throughput intervals
    load_samples: dict[str, np.ndarray] = field(default_factory=dict)  # a --load run's lag, sessions, turns, cache


def _fmt_value(v: float, unit: str) -> str:
    if unit == "ms":
        return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms" if v >= 1 else f"{v:.3f} ms"
    if unit == "%":
        return f"{v:.1%}"
    text = f"{v:.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return f"{text} {unit}".rstrip()


def _change_text(v: float, absolute: bool) -> str:
    return f"{v * 100:+.1f} points" if absolute else f"{v:+.1%}"


def _ci_text(lo: float, hi: float, absolute: bool) -> str:
    if absolute:
        return f"{lo * 100:+.1f}..{hi * 100:+.1f} points"
    return f"{lo:+.1%}..{hi:+.1%}"


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


def _delta(
    name: str,
    label: str,
    unit: str,
    better: Better,
    base: float,
    cand: float,
    tolerance: float,
    est: Estimate | None,
    *,
    absolute: bool = False,
    source: Literal["records", "loadgen", "report"] = "report",
) -> MetricDelta:
    """One metric's verdict: only an interval that excludes zero gives a direction."""
    rel = (cand - base) / base if base else (0.0 if cand == base else math.copysign(math.inf, cand - base))
    change = est.value if est is not None else ((cand - base) if absolute else rel)
    ci = est.ci if est is not None else None
    significant = None if ci is None else not (ci[0] <= 0.0 <= ci[1])
    worse_sign = 1.0 if better == "lower" else -1.0
    direction: Direction
    if significant is None:
        direction = "no CI"
    elif not significant:
        direction = "same"
    else:
        direction = "worse" if change * worse_sign > 0 else "better"
    regression = direction == "worse" and abs(change) > tolerance
    amount = _amount(change, absolute)
    values = f"({_fmt_value(base, unit)} -> {_fmt_value(cand, unit)})"
    if direction == "no CI":
        line = f"{label} changed {_change_text(change, absolute)} {values} [no CI: no verdict]"
    elif direction == "same":
        line = f"{label}: no significant change ({_change_text(change, absolute)}) {values}"
    else:
        verb = "regressed" if direction == "worse" else "improved"
        line = f"{label} {verb}{f' {amount}' if amount else ''} {values}"
    if ci is not None:
        line += f" [CI {_ci_text(ci[0], ci[1], absolute)}]"
    return MetricDelta(
        name=name,
        label=label,
        unit=unit,
        better=better,
        baseline=base,
        candidate=cand,
        change=change if math.isfinite(change) else None,
        absolute=absolute,
        rel_delta=rel if math.isfinite(rel) else None,
        ci_low=None if ci is None else ci[0],
        ci_high=None if ci is None else ci[1],
        significant=significant,
        direction=direction,
        regression=regression,
        source=source,
        line=line,
    )


def _amount(change: float, absolute: bool) -> str:
    if absolute:
        return f"{abs(change) * 100:.1f} points"
    return f"{abs(change):.0%}" if math.isfinite(change) else ""


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _latency_sections(r: RunResult) -> tuple[tuple[str, str, Percentiles], ...]:
    return (("ttft_ms", "TTFT", r.ttft_ms), ("tpot_ms", "TPOT", r.tpot_ms), ("latency_ms", "latency", r.latency_ms))


def check_comparable(base: RunResult, cand: RunResult, force: bool = False) -> list[str]:
    """Notes on what differs; raises CompareError when mode, scenario or benchmark differ (unless ``force``)."""
    diffs = [
        f"{what} {a} vs {b}"
        for what, a, b in (
            ("mode", base.mode, cand.mode),
            ("scenario", base.scenario, cand.scenario),
            ("benchmark", base.benchmark, cand.benchmark),
        )
        if a != b
    ]
    if diffs and not force:
        raise CompareError(f"the runs measure different things ({', '.join(diffs)}); --force compares them anyway")
    return [f"compared despite different {d} (--force)" for d in diffs]


def compare_runs(base: RunData, cand: RunData, cfg: CompareConfig | None = None) -> Comparison:
    """Every metric both runs report, baseline first."""
    cfg = cfg or CompareConfig()
    rng = np.random.default_rng(cfg.seed)
    out = Comparison(baseline=base.name, candidate=cand.name, config=cfg)
    rb, rc = base.results, cand.results
    out.notes += check_comparable(rb, rc, cfg.force)
    out.notes += load_notes(rb, rc)
    if rb.valid and not rc.valid:
        reasons = "; ".join(x for x in rc.validity_reasons if x) or "see mlperf_log_summary.txt"
        # A run beside LoadGen was judged by its stated basis, not by LoadGen.
        label = "LoadGen result" if rb.load is None and rc.load is None else "result"
        out.metrics.append(
            MetricDelta(
                name="valid",
                label=label,
                better="higher",
                baseline=1.0,
                candidate=0.0,
                direction="worse",
                regression=True,
                line=f"{label} regressed (VALID -> INVALID): {reasons}",
            )
        )
    limited = client_regression(rb, rc)
    if limited is not None:
        out.metrics.append(
            MetricDelta(
                name="client_on_schedule",
                label="client on schedule",
                better="higher",
                baseline=1.0,
                candidate=0.0,
                direction="worse",
                regression=True,
                line=limited,
            )
        )
    _latency_metrics(out, base, cand, cfg, rng)
    _throughput_metrics(out, base, cand, cfg, rng)
    if rb.n_queries and rc.n_queries:
        est = proportion_change(
            rb.n_errors,
            rb.n_queries,
            rc.n_errors,
            rc.n_queries,
            resamples=cfg.resamples,
            confidence=cfg.confidence,
            rng=rng,
        )
        out.metrics.append(
            _delta(
                "error_rate",
                "error rate",
                "%",
                "lower",
                rb.n_errors / rb.n_queries,
                rc.n_errors / rc.n_queries,
                cfg.error_rate_tolerance,
                est,
                absolute=True,
                source="report",
            )
        )
    _load_metrics(out, base, cand, cfg, rng)
    _accuracy_metrics(out, base, cand, cfg, rng)
    _energy_metrics(out, base, cand, cfg, rng)
    if any(
        m.direction == "no CI"
        for m in out.metrics
        if m.name not in ("valid", "client_on_schedule", "energy.average_watts")
    ):
        out.notes.append("metrics marked 'no CI' lack per-query records or per-sample scores: change shown, no verdict")
    return out


def _latency_metrics(
    out: Comparison, base: RunData, cand: RunData, cfg: CompareConfig, rng: np.random.Generator
) -> None:
    rb, rc = base.results, cand.results
    for (key, label, lb), (_, _, lc) in zip(_latency_sections(rb), _latency_sections(rc), strict=True):
        ab, ac = base.latencies_ms.get(key), cand.latencies_ms.get(key)
        for pct, q in _PCTS:
            name, text = f"{key}.{pct}", f"{label} {pct}"
            est = None
            if ab is not None and ac is not None:
                est = percentile_change(
                    ab, ac, q, resamples=cfg.resamples, confidence=cfg.confidence, rng=rng, max_values=cfg.max_queries
                )
            if est is not None:
                assert ab is not None and ac is not None
                vb, vc = (float(np.percentile(a, q, method="higher")) for a in (ab, ac))
                m = _delta(name, text, "ms", "lower", vb, vc, cfg.tolerance, est, source="records")
                m.loadgen_baseline, m.loadgen_candidate = _finite(lb.at(pct)), _finite(lc.at(pct))
                out.metrics.append(m)
                continue
            fb, fc = _finite(lb.at(pct)), _finite(lc.at(pct))
            if fb is not None and fc is not None:
                out.metrics.append(_delta(name, text, "ms", "lower", fb, fc, cfg.tolerance, None, source="loadgen"))


def _throughput_metrics(
    out: Comparison, base: RunData, cand: RunData, cfg: CompareConfig, rng: np.random.Generator
) -> None:
    rb, rc = base.results, cand.results
    sb, sc = _finite(rb.scheduled_qps), _finite(rc.scheduled_qps)
    per_scheduled = bool(
        rb.scenario in ("Server", "Interactive") and sb and sc and abs(sc / sb - 1.0) > _SCHEDULE_MATCH
    )
    if per_scheduled:
        assert sb and sc
        out.notes.append(
            f"scheduled rates differ ({sb:.4g} vs {sc:.4g} qps): throughput compared per scheduled query "
            "(completed / scheduled), not as raw rates"
        )
    bins_b, bins_c = base.rates, cand.rates
    for key, label, unit in (("completed_qps", "completed QPS", "qps"), ("tokens_per_second", "tokens/s", "tok/s")):
        if bins_b is not None and bins_c is not None:
            vb = bins_b.qps if key == "completed_qps" else bins_b.tokens_per_second
            vc = bins_c.qps if key == "completed_qps" else bins_c.tokens_per_second
            # Per-bin rates (not counts): the two runs' bins differ in width.
            arr_b = (bins_b.queries if key == "completed_qps" else bins_b.tokens) / bins_b.bin_s
            arr_c = (bins_c.queries if key == "completed_qps" else bins_c.tokens) / bins_c.bin_s
            est = mean_change(arr_b, arr_c, resamples=cfg.resamples, confidence=cfg.confidence, rng=rng)
            source: Literal["records", "loadgen"] = "records"
            name = key
        else:
            fb = _finite(rb.completed_qps if key == "completed_qps" else rb.tokens_per_second)
            fc = _finite(rc.completed_qps if key == "completed_qps" else rc.tokens_per_second)
            if fb is None or fc is None:
                continue
            vb, vc, est, source, name = fb, fc, None, "loadgen", key
        if vb <= 0:
            continue
        if per_scheduled:
            assert sb and sc
            vb, vc = vb / sb, vc / sc
            est = None if est is None else scaled(est, sb / sc)
            label, unit = (
                ("completed / scheduled", "") if key == "completed_qps" else ("tokens per scheduled query", "")
            )
            name = "completed_per_scheduled" if key == "completed_qps" else "tokens_per_scheduled_query"
        out.metrics.append(_delta(name, label, unit, "higher", vb, vc, cfg.tolerance, est, source=source))


def _load_metrics(out: Comparison, base: RunData, cand: RunData, cfg: CompareConfig, rng: np.random.Generator) -> None:
    boot = Bootstrap(resamples=cfg.resamples, confidence=cfg.confidence, max_values=cfg.max_queries, rng=rng)
    for f in load_figures(base.results, cand.results, base.load_samples, cand.load_samples, boot):
        # Dispatch lag measures the client: shown with its interval, never a regression by itself.
        tolerance = math.inf if f.informational else cfg.tolerance
        source: Literal["records", "report"] = "records" if f.est is not None else "report"
        out.metrics.append(
            _delta(
                f.name,
                f.label,
                f.unit,
                f.better,
                f.baseline,
                f.candidate,
                tolerance,
                f.est,
                absolute=f.absolute,
                source=source,
            )
        )


def _energy_metrics(
    out: Comparison, base: RunData, cand: RunData, cfg: CompareConfig, rng: np.random.Generator
) -> None:
    eb, ec = base.results.energy, cand.results.energy
    note = energy_note(eb, ec)
    if note is not None:
        out.notes.append(note)
    if eb is None or ec is None:
        return
    rates: dict[str, Estimate | None] = {}
    if base.rates is not None and cand.rates is not None:
        for per in ("tokens", "queries"):
            arr_b, arr_c = getattr(base.rates, per) / base.rates.bin_s, getattr(cand.rates, per) / cand.rates.bin_s
            rates[per] = mean_change(arr_b, arr_c, resamples=cfg.resamples, confidence=cfg.confidence, rng=rng)
    for f in energy_figures(eb, ec, rates):
        source: Literal["records", "report"] = "records" if f.est is not None else "report"
        out.metrics.append(
            _delta(f.name, f.label, f.unit, f.better, f.baseline, f.candidate, cfg.tolerance, f.est, source=source)
        )


def _accuracy_metrics(
    out: Comparison, base: RunData, cand: RunData, cfg: CompareConfig, rng: np.random.Generator
) -> None:
    if base.accuracy is not None and cand.accuracy is not None:
        cand_scores = cand.accuracy.scores_percent
        for metric, vb in base.accuracy.scores_percent.items():
            vc = cand_scores.get(metric)
            if vc is not None and vb > 0:
                # accuracy.json holds only the mean scores: no per-sample scores, so no interval.
                out.metrics.append(
                    _delta(
                        f"accuracy.{metric}", f"accuracy {metric}", "", "higher", vb, vc, cfg.accuracy_tolerance, None
                    )
                )
    elif base.accuracy is not None or cand.accuracy is not None:
        out.notes.append("accuracy report present for only one run: not compared")
    if base.fidelity is not None and cand.fidelity is not None:
        for category in fidelity_categories(base.fidelity, cand.fidelity):
            fb, fc = fidelity_section(base.fidelity, category), fidelity_section(cand.fidelity, category)
            if fb is None or fc is None:
                continue
            tag = "all" if category == "*" else category
            est = proportion_change(
                round(fb.exact_match_fraction * fb.n), fb.n, round(fc.exact_match_fraction * fc.n), fc.n,
                resamples=cfg.resamples, confidence=cfg.confidence, rng=rng,
            )  # fmt: skip
            out.metrics.append(
                _delta(
                    f"fidelity.exact_match[{tag}]",
                    f"exact match vs FP32 [{tag}]",
                    "%",
                    "higher",
                    fb.exact_match_fraction,
                    fc.exact_match_fraction,
                    cfg.fidelity_tolerance,
                    est,
                    absolute=True,
                )
            )
    elif base.fidelity is not None or cand.fidelity is not None:
        out.notes.append("fidelity report present for only one run: not compared")


def fidelity_categories(*reports: FidelityReport) -> list[str]:
    """ "*" (all samples) first, then every category any report names, in first-seen order."""
    cats: list[str] = ["*"]
    for rep in reports:
        cats += [c for c in rep.by_category if c not in cats]
    return cats


def fidelity_section(report: FidelityReport, category: str) -> CategoryFidelity | None:
    """The aggregate for ``category``; "*" is the report's overall section."""
    return report.overall if category == "*" else report.by_category.get(category)


def records_samples(records: np.ndarray) -> tuple[dict[str, np.ndarray], RateBins | None]:
    """Per-query latencies and binned throughput of one run's records: what its intervals are drawn from."""
    return latencies_from_records(records), rate_bins(records)


def load_run_data(run_dir: str | Path) -> RunData:
    """results.json, queries.npz and any accuracy/fidelity reports of one run directory, each as its model."""
    from gate import discover_reports, read_accuracy, read_fidelity, read_results, results_file

    res = results_file(run_dir)
    d = res.parent
    data = RunData(name=str(d), results=read_results(res))
    if (d / "queries.npz").is_file():
        records = _load_records(d)
        data.latencies_ms, data.rates = records_samples(records)
        if data.results.load is not None:
            data.load_samples = load_samples(records)
    found = discover_reports(d)
    if found.accuracy is not None:
        data.accuracy = read_accuracy(found.accuracy)
    if found.fidelity is not None:
        data.fidelity = read_fidelity(found.fidelity)
    return data


def _load_records(run_dir: Path) -> np.ndarray:
    from loadgen_harness import load_query_records

    return np.asarray(load_query_records(run_dir))
