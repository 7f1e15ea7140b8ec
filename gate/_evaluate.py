"""The SLO gate: apply an :class:`SloSpec` to a run's results and its accuracy/compliance reports.

Inputs are the models the stages write (:class:`RunResult`, :class:`AccuracyReport`,
:class:`FidelityReport`, :class:`ComplianceOutcome`), read field by field with the units their names
state: fractions are 0..1, ``*_percent`` fields 0..100. An objective whose evidence is missing FAILS
and its line names the missing report: a gate that cannot see a number must not wave the artifact
through.

Every outcome renders as one line with value, limit and margin, for example
``ttft_p99 1480.0 ms > 1200.0 ms limit: over by 280.0 ms (23.3%)``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from accuracy import AccuracyReport, CategoryFidelity, FidelityReport
from common import write_atomic
from compliance import ComplianceCheck, ComplianceOutcome
from evals import ScoreDelta, TaskScore
from gate._load import client_verdict, is_load_run, load_checks
from gate._slo import PercentileLimits, SloSpec
from loadgen_harness import Percentiles, RunResult, keep_up_ratio

Direction = Literal["max", "min", "pass"]


class ObjectiveOutcome(BaseModel):
    name: str
    direction: Direction
    passed: bool
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    margin: float | None = None  # positive = headroom, negative = violation, in `unit`
    line: str


class GateReport(BaseModel):
    slo: str
    source: str = ""
    passed: bool
    objectives: list[ObjectiveOutcome] = Field(default_factory=list)

    @property
    def violations(self) -> list[ObjectiveOutcome]:
        return [o for o in self.objectives if not o.passed]

    def to_junit_xml(self) -> str:
        suite = ET.Element(
            "testsuite",
            name=f"slo:{self.slo}",
            tests=str(len(self.objectives)),
            failures=str(len(self.violations)),
            errors="0",
        )
        for o in self.objectives:
            case = ET.SubElement(suite, "testcase", classname=f"slo.{self.slo}", name=o.name)
            if o.passed:
                ET.SubElement(case, "system-out").text = o.line
            else:
                ET.SubElement(case, "failure", message=o.line, type="SloViolation").text = o.line
        suites = ET.Element("testsuites")
        suites.append(suite)
        ET.indent(suites)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

    def write(self, json_path: str | Path | None = None, junit_path: str | Path | None = None) -> None:
        if json_path is not None:
            write_atomic(json_path, self.model_dump_json(indent=2) + "\n")
        if junit_path is not None:
            write_atomic(junit_path, self.to_junit_xml())


def fmt_number(x: float) -> str:
    """One decimal from 10 up, two from 1 up, three significant digits below."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def _u(unit: str) -> str:
    return f" {unit}" if unit else ""


def _pct(margin: float, limit: float) -> str:
    return f" ({abs(margin) / limit * 100:.1f}%)" if limit else ""


def check_max(
    name: str, value: float | None, limit: float, unit: str = "", missing: str = "no value in the results"
) -> ObjectiveOutcome:
    """``value`` must not exceed ``limit``; ``missing`` says why there is no value when it is None."""
    if value is None or not math.isfinite(value):
        return ObjectiveOutcome(
            name=name,
            direction="max",
            passed=False,
            limit=limit,
            unit=unit,
            line=f"{name}: {missing} (limit {fmt_number(limit)}{_u(unit)})",
        )
    margin = limit - value
    pct = _pct(margin, limit)
    if value > limit:
        line = f"{name} {fmt_number(value)}{_u(unit)} > {fmt_number(limit)}{_u(unit)} limit: over by {fmt_number(-margin)}{_u(unit)}{pct}"
    else:
        line = f"{name} {fmt_number(value)}{_u(unit)} <= {fmt_number(limit)}{_u(unit)} limit: margin {fmt_number(margin)}{_u(unit)}{pct}"
    return ObjectiveOutcome(
        name=name, direction="max", passed=value <= limit, value=value, limit=limit, unit=unit, margin=margin, line=line
    )


def check_min(
    name: str,
    value: float | None,
    limit: float,
    unit: str = "",
    what: str = "minimum",
    missing: str = "no value in the results",
) -> ObjectiveOutcome:
    """``value`` must reach ``limit``; ``missing`` says why there is no value when it is None."""
    if value is None or not math.isfinite(value):
        return ObjectiveOutcome(
            name=name,
            direction="min",
            passed=False,
            limit=limit,
            unit=unit,
            line=f"{name}: {missing} ({what} {fmt_number(limit)}{_u(unit)})",
        )
    margin = value - limit
    pct = _pct(margin, limit)
    if value < limit:
        line = f"{name} {fmt_number(value)}{_u(unit)} < {fmt_number(limit)}{_u(unit)} {what}: under by {fmt_number(-margin)}{_u(unit)}{pct}"
    else:
        line = f"{name} {fmt_number(value)}{_u(unit)} >= {fmt_number(limit)}{_u(unit)} {what}: margin {fmt_number(margin)}{_u(unit)}{pct}"
    return ObjectiveOutcome(
        name=name, direction="min", passed=value >= limit, value=value, limit=limit, unit=unit, margin=margin, line=line
    )


def check_pass(name: str, passed: bool | None, detail: str) -> ObjectiveOutcome:
    if passed is None:
        return ObjectiveOutcome(name=name, direction="pass", passed=False, line=f"{name}: no evidence ({detail})")
    return ObjectiveOutcome(
        name=name, direction="pass", passed=passed, line=f"{name} {'PASS' if passed else 'FAIL'}: {detail}"
    )


class GateInputs(BaseModel):
    """What the gate reads: each stage's own report model, None (or no entry) where a report is missing."""

    model_config = ConfigDict(extra="forbid")

    results: RunResult | None = None
    accuracy: AccuracyReport | None = None
    # The scores the accuracy objectives are relative to: a baseline run's report or the shipped FP32 values.
    baseline_accuracy: AccuracyReport | None = None
    fidelity: FidelityReport | None = None
    compliance: dict[ComplianceCheck, ComplianceOutcome] = Field(default_factory=dict)
    source: str = ""
    # Eval suites: the candidate's task scores and its deltas against the baseline (None: no suite ran).
    evals: list[TaskScore] | None = None
    eval_deltas: list[ScoreDelta] | None = None


# Where the gate expects each report when it is missing (see gate._discover and ``lpuperf gate --help``),
# and the command that writes it there: a missing report is named as missing, with the way to make it.
MISSING_RESULTS = "no run results (results.json of the performance run)"


def _run_coordinates(r: RunResult | None) -> tuple[str, str, str] | None:
    """(OUT, RUN_ID, SCENARIO) of an lpuperf run at OUT/<run-id>/<scenario>/<mode>/; None for other directories."""
    if r is None:
        return "OUT", "RUN_ID", "SCENARIO"
    d = Path(r.log_dir) if r.log_dir else None
    if d is None or len(d.parents) < 3 or d.parent.parent.name != r.run_id:
        return None  # not laid out by lpuperf (e.g. a published MLPerf result): only the flag helps
    return str(d.parents[2]), r.run_id, d.parent.name


def missing_accuracy(r: RunResult | None, what: str = "accuracy") -> str:
    """Why there is no accuracy (or fidelity) report, and the command that writes one next to the run."""
    name, flag = ("accuracy.json", "--accuracy") if what == "accuracy" else ("fidelity*.json", "--fidelity")
    if r is not None and is_load_run(r):
        # A load shape's scenario (Concurrency, Trace, ...) is no LoadGen scenario an accuracy pass can run.
        return (
            f"no {what} report next to the run ({name}): a run beside LoadGen ({r.scenario}) logs no outputs to "
            f"score; give {flag} PATH from a LoadGen accuracy run of the same artifact"
        )
    where = _run_coordinates(r)
    if where is None:
        return f"no {what} report next to the run ({name}); give {flag} PATH"
    out, run_id, scenario = where
    return (
        f"no {what} report next to the run ({name}): run `lpuperf accuracy --results {out} --run-id {run_id} "
        f"--scenario {scenario}` (with the run's --sut or --artifact) first, or give {flag} PATH"
    )


def missing_compliance(check: ComplianceCheck, r: RunResult | None) -> str:
    """Why there is no compliance report for ``check``, and the command that writes one next to the run."""
    where = _run_coordinates(r)
    if r is not None and is_load_run(r) and check != "context":
        # TEST06/07/09 and the strict checks are LoadGen passes: a load shape's scenario has none of its own.
        return (
            f"no {check} report next to the run: {check} is a LoadGen pass, which a run beside LoadGen "
            f"({r.scenario}) does not make; give --compliance {check}=PATH from a LoadGen run of the same artifact"
        )
    if where is None:
        return f"no {check} report next to the run; give --compliance {check}=PATH"
    out, run_id, scenario = where
    if check == "context":
        cmd = f"lpuperf compliance context --out {out} --run-id {run_id}"
    elif check in ("TEST07", "TEST09"):
        bench = f" --benchmark {r.benchmark}" if r is not None else ""
        cmd = f"lpuperf compliance {check.lower()} --out {out} --run-id {run_id} --scenario {scenario}{bench}"
    else:  # TEST06 writes the strict checks' report too
        cmd = f"lpuperf compliance test06 --out {out} --run-id {run_id} --scenario {scenario}"
    return f"no {check} report next to the run: run `{cmd}` (with the run's --sut or --artifact) first, or give --compliance {check}=PATH"


def _accuracy_score(report: AccuracyReport | None, metric: str, r: RunResult | None = None) -> tuple[float | None, str]:
    """(score 0..100, why missing) for ``metric`` in an accuracy report."""
    if report is None:
        return None, missing_accuracy(r)
    value = report.scores_percent.get(metric)
    known = ", ".join(sorted(report.scores_percent)) or "none"
    return value, f"no '{metric}' in the accuracy report's scores_percent (has: {known})"


def _fidelity_category(
    report: FidelityReport | None, category: str, r: RunResult | None = None
) -> tuple[CategoryFidelity | None, str]:
    """The section for ``category`` ("*" = overall) and why it is missing when it is."""
    if report is None:
        return None, missing_accuracy(r, "fidelity")
    if category == "*":
        return report.overall, "no finite value in the fidelity report's overall section"
    known = ", ".join(sorted(report.by_category)) or "none"
    return report.by_category.get(category), f"no category '{category}' in the fidelity report (has: {known})"


def _results_objectives(slo: SloSpec, r: RunResult | None) -> list[ObjectiveOutcome]:
    """The objectives read from the run's own results; every one fails, naming the gap, without them."""
    missing = MISSING_RESULTS if r is None else "no value in the results"

    def value(get: Callable[[RunResult], float | None]) -> float | None:
        return None if r is None else get(r)

    out: list[ObjectiveOutcome] = []
    if slo.require_valid:
        if r is None:
            out.append(check_pass("result_valid", None, MISSING_RESULTS))
        else:
            detail = _valid_detail(r)
            reasons = [x for x in r.validity_reasons if x]
            if reasons and not r.valid:
                detail += ": " + "; ".join(reasons)
            out.append(check_pass("result_valid", r.valid, detail))
    latencies: tuple[tuple[str, PercentileLimits | None, Callable[[RunResult], Percentiles]], ...] = (
        ("ttft", slo.ttft_ms, lambda x: x.ttft_ms),
        ("tpot", slo.tpot_ms, lambda x: x.tpot_ms),
        ("latency", slo.latency_ms, lambda x: x.latency_ms),
    )
    for short, limits, section in latencies:
        for pct, limit in limits.items() if limits is not None else []:
            v = None if r is None else section(r).at(pct)
            out.append(check_max(f"{short}_{pct}", v, limit, "ms", missing=missing))
    out += _reasoning_objectives(slo, r, missing)
    if slo.max_error_rate is not None:
        rate = value(lambda x: x.n_errors / x.n_queries if x.n_queries else (0.0 if x.n_errors == 0 else None))
        out.append(check_max("error_rate", rate, slo.max_error_rate, missing=missing))
    if slo.min_tokens_per_second is not None:
        tps = value(lambda x: x.tokens_per_second)
        out.append(check_min("tokens_per_second", tps, slo.min_tokens_per_second, "tok/s", missing=missing))
    if slo.min_qps is not None:
        out.append(check_min("completed_qps", value(lambda x: x.completed_qps), slo.min_qps, "qps", missing=missing))
    if slo.min_completed_ratio is not None:
        ratio = value(keep_up_ratio)
        out.append(check_min("completed_over_scheduled", ratio, slo.min_completed_ratio, missing=missing))
    return out + _load_objectives(slo, r, missing) + _energy_objectives(slo, r, missing)


def _valid_detail(r: RunResult) -> str:
    verdict = "VALID" if r.valid else "INVALID"
    if not is_load_run(r):
        return f"LoadGen result {verdict}"
    basis = r.load.validity_basis if r.load is not None and r.load.validity_basis else "the run's own limits"
    return f"result {verdict} (not a LoadGen verdict: {basis})"


def _load_objectives(slo: SloSpec, r: RunResult | None, missing: str) -> list[ObjectiveOutcome]:
    """A run beside LoadGen: the SLO's dispatch-lag, session and prefix-cache objectives, and, whatever the SLO
    sets, that its client kept its schedule (a client-limited run measured the client, not the SUT)."""
    out: list[ObjectiveOutcome] = []
    for c in load_checks(slo, r, missing):
        check = check_max if c.direction == "max" else check_min
        o = check(c.name, c.value, c.limit, c.unit, missing=c.missing)
        if c.detail:
            o.line = o.line.replace(c.name, c.name + c.detail, 1)
        out.append(o)
    verdict = None if r is None else client_verdict(r)
    if verdict is not None:
        out.append(check_pass("client_on_schedule", *verdict))
    return out


NO_ENERGY = (
    "no energy measured (results.json has no energy block: the run had no power source; give the artifact a power "
    "model or scrape a power exporter)"
)


def _energy_objectives(slo: SloSpec, r: RunResult | None, missing: str) -> list[ObjectiveOutcome]:
    """Energy per token, per query, power and performance per watt, from results.json's ``energy``."""
    e = None if r is None else r.energy
    why = missing if r is None else NO_ENERGY
    figures: tuple[tuple[str, Direction, float | None, float | None, str], ...] = (
        ("joules_per_token", "max", slo.max_joules_per_token, None if e is None else e.joules_per_token, "J/token"),
        ("tokens_per_joule", "min", slo.min_tokens_per_joule, None if e is None else e.tokens_per_joule, "tok/J"),
        ("joules_per_query", "max", slo.max_joules_per_query, None if e is None else e.joules_per_query, "J"),
        ("average_watts", "max", slo.max_average_watts, None if e is None else e.average_watts, "W"),
        ("qps_per_watt", "min", slo.min_qps_per_watt, None if e is None else e.queries_per_second_per_watt, "qps/W"),
    )
    out: list[ObjectiveOutcome] = []
    for name, direction, limit, value, unit in figures:
        if limit is None:
            continue
        gap = why if e is None else f"the results' energy block ({e.source}) has no {name} (no completed output)"
        check = check_max if direction == "max" else check_min
        out.append(check(name, value, limit, unit, missing=gap))
    return out


_NO_REASONING = "no reasoning figures in the results (the run streamed no reasoning tokens)"


def _reasoning_objectives(slo: SloSpec, r: RunResult | None, missing: str) -> list[ObjectiveOutcome]:
    """TTFA percentiles and the mean reasoning tokens per query, from results.json's ``reasoning``."""
    reasoning = None if r is None else r.reasoning
    why = missing if r is None else _NO_REASONING
    out: list[ObjectiveOutcome] = []
    for pct, limit in slo.ttfa_ms.items() if slo.ttfa_ms is not None else []:
        v = None if reasoning is None else reasoning.ttfa_ms.at(pct)
        out.append(check_max(f"ttfa_{pct}", v, limit, "ms", missing=why))
    mean = None if reasoning is None else reasoning.reasoning_tokens.mean
    if slo.max_reasoning_tokens_mean is not None:
        out.append(check_max("reasoning_tokens_mean", mean, slo.max_reasoning_tokens_mean, "tokens", missing=why))
    if slo.min_reasoning_tokens_mean is not None:
        out.append(check_min("reasoning_tokens_mean", mean, slo.min_reasoning_tokens_mean, "tokens", missing=why))
    return out


def evaluate_slo(slo: SloSpec, inputs: GateInputs) -> GateReport:
    """Check every objective the spec sets; the report passes only if all of them pass."""
    out = _results_objectives(slo, inputs.results)
    for acc in slo.accuracy:
        name = f"accuracy_{acc.metric}"
        value, missing = _accuracy_score(inputs.accuracy, acc.metric, inputs.results)
        if acc.min_value is not None:
            out.append(check_min(name, value, acc.min_value, missing=missing))
        if acc.min_fraction_of_baseline is not None:
            base = acc.baseline
            if base is None and inputs.baseline_accuracy is not None:
                base = inputs.baseline_accuracy.scores_percent.get(acc.metric)
            if base is None:
                why = f"no baseline {acc.metric}; set 'baseline' or give a baseline report"
                out.append(check_pass(name, None, why if value is not None else f"{why}; {missing}"))
            else:
                floor = base * acc.min_fraction_of_baseline
                what = f"minimum ({acc.min_fraction_of_baseline:.1%} of baseline {fmt_number(base)})"
                out.append(check_min(name, value, floor, what=what, missing=missing))
    for fid in slo.fidelity:
        tag = "all" if fid.category == "*" else fid.category
        section, missing = _fidelity_category(inputs.fidelity, fid.category, inputs.results)
        if fid.min_exact_match_fraction is not None:
            v = None if section is None else section.exact_match_fraction
            out.append(check_min(f"fidelity_exact_match[{tag}]", v, fid.min_exact_match_fraction, missing=missing))
        if fid.min_rouge_l_percent is not None:
            v = None if section is None else section.rouge_l_percent
            out.append(check_min(f"fidelity_rouge_l[{tag}]", v, fid.min_rouge_l_percent, missing=missing))
    for check in slo.compliance_must_pass:
        outcome = inputs.compliance.get(check)
        if outcome is None:
            out.append(check_pass(f"compliance_{check}", None, missing_compliance(check, inputs.results)))
        else:
            out.append(check_pass(f"compliance_{check}", outcome.passed, outcome.message))
    from gate._evals import eval_objectives  # gate._evals builds on this module's checks: imported once here

    out += eval_objectives(slo, inputs.evals, inputs.eval_deltas)
    return GateReport(slo=slo.name, source=inputs.source, passed=all(o.passed for o in out), objectives=out)
