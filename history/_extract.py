"""Build a :class:`RunRecord` from what the stages wrote: a run directory and the reports next to it.

Everything after a run reads files from its directory (``OUT/<run-id>/<scenario>/<mode>/``); so does
the store. ``results.json`` gives the headline figures, ``queries.npz`` the confidence intervals of the
latency percentiles, and the reports the gate would find next to the run (accuracy, fidelity,
compliance, ``gate.json``) their scores and verdicts. Each file is read with the model that wrote it.

An interrupted run is recorded from its results.json alone (:func:`record_interrupted`), as Ctrl-C ends
``lpuperf run``: its percentiles are no measurement to compare (no intervals), no stage ran after it
(no reports), and the gate's readers and scipy, which load the accuracy stack (a second and more), stay
unloaded; they are imported where a complete run's record needs them.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from common import file_sha256, read_json_object
from history._models import ArtifactBuild, MetricValue, RunRecord, Verdict, metric_unit
from loadgen_harness import QUERIES_FILE, RunResult, load_query_records

if TYPE_CHECKING:
    from accuracy import AccuracyReport, FidelityReport
    from compliance import ComplianceOutcome
    from evals import TaskScore
    from gate import GateReport

GATE_FILE = "gate.json"
ARTIFACT_FILE = "artifact.json"
# The level of the confidence interval stored with each latency percentile.
INTERVAL_CONFIDENCE = 0.95
# Below this many queries a percentile's interval says little; none is stored.
MIN_QUERIES_FOR_INTERVAL = 20
_PCTS: tuple[tuple[Literal["p50", "p90", "p99"], float], ...] = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
# A run beside LoadGen's per-query figures that get intervals like the latencies'.
_LOAD_INTERVALS = ("dispatch_lag_ms", "session_latency_ms")
_VERSIONS = re.compile(r"lpuperf (?P<lpuperf>[^,\s]+), mlcommons-loadgen (?P<loadgen>[^,\s]+)")


def installed_versions() -> tuple[str, str]:
    """(lpuperf, mlcommons-loadgen) versions of this installation; '' where unknown."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("lpuperf", "mlcommons-loadgen"):
        try:
            out.append(version(dist))
        except PackageNotFoundError:
            out.append("")
    return out[0], out[1]


def run_versions(res: RunResult) -> tuple[str, str]:
    """The versions that made a run, from its ``harness_version``; this installation's when it names none."""
    m = _VERSIONS.search(res.harness_version)
    return (m["lpuperf"], m["loadgen"]) if m else installed_versions()


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def percentile_intervals(run_dir: Path, load_run: bool = False) -> dict[str, tuple[float | None, float | None]]:
    """Distribution-free confidence intervals of TTFT/TPOT/latency percentiles from ``queries.npz``; a run beside
    LoadGen (``load_run``) adds its dispatch lag's and session latency's.

    An order-statistic interval (scipy's ``quantile_test``): no resampling, exact for any distribution.
    A side is None where the run has too few queries beyond the percentile to bound it (p99 needs a few
    hundred queries for an upper bound).
    """
    from scipy.stats import quantile_test

    from workflows import latencies_from_records, load_samples

    if not (run_dir / QUERIES_FILE).is_file():
        return {}
    records = np.asarray(load_query_records(run_dir))
    samples = latencies_from_records(records)
    if load_run:
        samples |= {k: v for k, v in load_samples(records).items() if k in _LOAD_INTERVALS}
    out: dict[str, tuple[float | None, float | None]] = {}
    for field, values in samples.items():
        if values.size < MIN_QUERIES_FOR_INTERVAL:
            continue
        for pct, p in _PCTS:
            ci = quantile_test(values, q=float(np.quantile(values, p)), p=p).confidence_interval(INTERVAL_CONFIDENCE)
            out[f"{field}.{pct}"] = (_finite(float(ci.low)), _finite(float(ci.high)))
    return out


def run_figures(res: RunResult, intervals: dict[str, tuple[float | None, float | None]]) -> list[MetricValue]:
    """The headline figures of a run, named as ``lpuperf compare`` names them."""
    out: list[MetricValue] = []

    def add(name: str, value: float | None) -> None:
        v = _finite(value)
        if v is not None:
            low, high = intervals.get(name, (None, None))
            out.append(MetricValue(name=name, value=v, unit=metric_unit(name), ci_low=low, ci_high=high))

    for field, section in (("ttft_ms", res.ttft_ms), ("tpot_ms", res.tpot_ms), ("latency_ms", res.latency_ms)):
        for pct, _ in _PCTS:
            add(f"{field}.{pct}", section.at(pct))
    add("tokens_per_second", res.tokens_per_second)
    add("completed_qps", res.completed_qps)
    add("scheduled_qps", res.scheduled_qps)
    add("duration_s", res.duration_s)
    if res.n_queries:
        add("error_rate", res.n_errors / res.n_queries)  # a fraction of 0..1, as its unit says
        add("n_queries", float(res.n_queries))
    if res.goodput is not None:
        # Queries that met every per-query limit: the share (0..1) of all finished queries, and their rate.
        add("goodput.fraction", res.goodput.fraction)
        add("goodput.qps", res.goodput.qps)
    if res.itl is not None:
        for pct, _ in _PCTS:
            add(f"itl_ms.{pct}", res.itl.itl_ms.at(pct))
    if res.reasoning is not None:
        # Reasoning models: time to the first answer token, and how the output split (tokens; a 0..1 share).
        for pct, _ in _PCTS:
            add(f"ttfa_ms.{pct}", res.reasoning.ttfa_ms.at(pct))
        add("reasoning_tokens.mean", res.reasoning.reasoning_tokens.mean)
        add("answer_tokens.mean", res.reasoning.answer_tokens.mean)
        add("reasoning.fraction", res.reasoning.reasoning_fraction)
    for name, v in load_run_figures(res) + energy_figures(res):
        add(name, v)
    ok = res.successful
    if ok is not None and res.n_errors:
        # With failed queries LoadGen's rates count the failures; these are the successful queries' own.
        add("successful.qps", ok.qps)
        add("successful.tokens_per_second", ok.tokens_per_second)
    return out


def load_run_figures(res: RunResult) -> list[tuple[str, float | None]]:
    """A run beside LoadGen: its client's dispatch lag, its sessions and turns, the SUT's prefix-cache hits
    (named as ``lpuperf compare`` names them); none for a LoadGen run."""
    if res.load is None:
        return []
    out: list[tuple[str, float | None]] = [("client_limited", float(res.client_limited))]  # 1: client fell behind
    lag = res.dispatch_lag
    if lag is not None:
        out += [
            ("dispatch_lag_ms.p50", lag.p50_ms),
            ("dispatch_lag_ms.p99", lag.p99_ms),
            ("dispatch_lag_ms.max", lag.max_ms),
        ]
    s = res.sessions
    if s is not None:
        out += [(f"session_latency_ms.{pct}", s.session_latency_ms.at(pct)) for pct, _ in _PCTS]
        out += [
            ("sessions.completed", float(s.completed_sessions)),
            ("sessions.failed", float(s.failed_sessions)),
            ("sessions.cut", float(s.cut_at_context + s.cut_at_end)),
            ("sessions.tool_calls", float(s.tool_calls)),
        ]
        for t in s.turns:
            out += [(f"turn_ttft_ms.{pct}[turn={t.turn}]", t.ttft_ms.at(pct)) for pct in ("p50", "p99")]
    if res.prefix_cache is not None:
        out.append(("prefix_cache.hit_fraction", res.prefix_cache.hit_fraction))  # 0..1
    return out


def energy_figures(res: RunResult) -> list[tuple[str, float | None]]:
    """Energy over the measured window (results.json's ``energy``), named as ``lpuperf compare`` names it;
    none for a run that measured no energy."""
    e = res.energy
    if e is None:
        return []
    return [
        ("energy.joules", e.joules),
        ("energy.average_watts", e.average_watts),
        ("energy.joules_per_query", e.joules_per_query),
        ("energy.joules_per_token", e.joules_per_token),
        ("energy.tokens_per_joule", e.tokens_per_joule),
        ("energy.qps_per_watt", e.queries_per_second_per_watt),
    ]


def _figure(name: str, value: float) -> MetricValue:
    return MetricValue(name=name, value=value, unit=metric_unit(name))


def accuracy_figures(report: AccuracyReport) -> list[MetricValue]:
    """The accuracy scores, 0..100 as the report states them (``scores_percent``)."""
    return [_figure(f"accuracy.{k}", v) for k, v in sorted(report.scores_percent.items())]


def fidelity_figures(report: FidelityReport) -> list[MetricValue]:
    """Exact match (a fraction of 0..1) and ROUGE-L (0..100) against FP32, overall ("all") and per category."""
    out: list[MetricValue] = []
    for tag, section in (("all", report.overall), *sorted(report.by_category.items())):
        out.append(_figure(f"fidelity.exact_match[{tag}]", section.exact_match_fraction))
        out.append(_figure(f"fidelity.rouge_l[{tag}]", section.rouge_l_percent))
    return out


def eval_figures(scores: list[TaskScore], name: str = "eval.score") -> list[MetricValue]:
    """Each eval task's score and each category's, 0..1, with its 95% interval: ``eval.score[task/category]``."""
    from evals import ALL_CATEGORIES

    out: list[MetricValue] = []
    for score in scores:
        for c in score.categories:
            tag = score.task if c.category == ALL_CATEGORIES else f"{score.task}/{c.category}"
            out.append(
                MetricValue(
                    name=f"{name}[{tag}]", value=c.score, unit=metric_unit(name), ci_low=c.ci_low, ci_high=c.ci_high
                )
            )
    return out


def eval_under_load_record(rec: RunRecord, path: Path) -> None:
    """A run's ``--eval-during`` result (eval_under_load.json): idle and under-load scores and its verdict."""
    from gate import read_report
    from workflows import EvalUnderLoad

    verdict = read_report(path, lambda p: EvalUnderLoad.model_validate_json(p.read_text()), "eval under load")
    rec.add_metrics(
        eval_figures([verdict.idle], "eval.score_idle") + eval_figures([verdict.under_load], "eval.score_under_load")
    )
    rec.add_verdicts([Verdict(kind="eval-under-load", name=verdict.task, passed=verdict.passed, message=verdict.line)])


def compliance_verdict(outcome: ComplianceOutcome) -> Verdict:
    return Verdict(kind="compliance", name=outcome.check, passed=outcome.passed, message=outcome.message)


def gate_verdict(report: GateReport) -> Verdict:
    bad = report.violations
    met = f"{len(report.objectives) - len(bad)}/{len(report.objectives)} objectives met"
    return Verdict(kind="gate", name=report.slo, passed=report.passed, message=f"{met}; {bad[0].line}" if bad else met)


def _load_gate_report(path: Path) -> GateReport:
    from gate import GateReport

    return GateReport.model_validate_json(path.read_text(encoding="utf-8"))


def _manifest(res: RunResult, run_dir: Path) -> ArtifactBuild:
    if res.artifact:
        return ArtifactBuild.from_manifest(res.artifact)
    path = run_dir / ARTIFACT_FILE
    return ArtifactBuild.from_manifest(read_json_object(path)) if path.is_file() else ArtifactBuild()


def _run_identity(path: Path, res: RunResult) -> str:
    """sha256 of results.json: the same run recorded twice is one record. A plain MLPerf directory is read
    from LoadGen's detail log, whose bytes alone two benchmarks' runs can share (tests, synthetic logs):
    there the RunResult read from it (benchmark, scenario, system) is hashed with it."""
    if path.name == "results.json":
        return file_sha256(path)
    # The directories the logs sit in name the result (llama2-70b-99 and -99.9 read as one profile).
    parts = path.parent.parts
    where = "/".join(parts[parts.index("results") + 1 :] if "results" in parts else parts[-4:])
    identity = file_sha256(path) + res.model_dump_json(exclude={"log_dir"}) + where
    return hashlib.sha256(identity.encode()).hexdigest()


def _record_results(
    path: Path, res: RunResult, command: str, intervals: dict[str, tuple[float | None, float | None]]
) -> RunRecord:
    """The record of the run whose results ``path`` holds: its row and headline figures."""
    d = path.parent
    lpuperf_version, loadgen_version = run_versions(res)
    rec = RunRecord(
        command=command,
        run_id=res.run_id,
        run_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        scenario=res.scenario,
        load_kind="" if res.load is None else res.load.kind,
        load_spec="" if res.load is None else res.load.spec,
        mode=res.mode,
        benchmark=res.benchmark,
        preset=res.preset,
        state=res.state,
        valid=res.valid,
        validity_reasons=list(res.validity_reasons),
        artifact=_manifest(res, d),
        run_dir=str(d.resolve()),
        lpuperf_version=lpuperf_version,
        loadgen_version=loadgen_version,
        results_sha256=_run_identity(path, res),
        results=res,
    )
    rec.add_metrics(run_figures(res, intervals))
    return rec


def record_interrupted(res: RunResult, command: str) -> RunRecord:
    """The record of a run a signal stopped, from the results.json it wrote: no intervals, no reports."""
    return _record_results(Path(res.log_dir) / "results.json", res, command, {})


def record_run_dir(run_dir: str | Path, command: str) -> RunRecord:
    """The record of one run directory (or its results.json) and every report found next to it.

    A malformed file is a UsageError naming the file and field (the gate's readers).
    """
    from gate import discover_reports, read_accuracy, read_compliance, read_fidelity, read_report, read_results
    from gate import results_file as find_results_file

    path = find_results_file(run_dir)
    d = path.parent
    res = read_results(path)
    # A stopped run's percentiles are no measurement to compare: no intervals for them.
    complete = res.state == "complete"
    rec = _record_results(path, res, command, percentile_intervals(d, res.load is not None) if complete else {})
    found = discover_reports(d)
    if found.accuracy is not None:
        rec.accuracy = read_accuracy(found.accuracy)
        rec.add_metrics(accuracy_figures(rec.accuracy))
    if found.fidelity is not None:
        rec.fidelity = read_fidelity(found.fidelity)
        rec.add_metrics(fidelity_figures(rec.fidelity))
    rec.add_verdicts([compliance_verdict(read_compliance(c, p)) for c, p in sorted(found.compliance.items())])
    if (d / GATE_FILE).is_file():
        rec.add_verdicts([gate_verdict(read_report(d / GATE_FILE, _load_gate_report, "gate report"))])
    from workflows import EVAL_UNDER_LOAD_FILE

    if (d / EVAL_UNDER_LOAD_FILE).is_file():
        eval_under_load_record(rec, d / EVAL_UNDER_LOAD_FILE)
    return rec


def record_check(command: str, verdict: Verdict, artifact: dict[str, object], run_id: str = "") -> RunRecord:
    """A record for a check that made no LoadGen run (the context probe): its verdict and the SUT's artifact."""
    from pydantic import JsonValue, TypeAdapter

    manifest = TypeAdapter(dict[str, JsonValue]).validate_python(artifact)
    lpuperf_version, loadgen_version = installed_versions()
    rec = RunRecord(
        command=command,
        run_id=run_id,
        run_at=datetime.now(UTC),
        mode="check",
        artifact=ArtifactBuild.from_manifest(manifest),
        lpuperf_version=lpuperf_version,
        loadgen_version=loadgen_version,
    )
    rec.add_verdicts([verdict])
    return rec
