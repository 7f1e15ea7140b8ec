"""The SLO gate: apply an :class:`SloSpec` to a run's results and its accuracy/compliance reports.

Inputs are plain mappings (``results.json``, ``accuracy.json``, a fidelity report, compliance
reports) so this module depends on no other package. An objective whose evidence is missing FAILS:
a gate that cannot see a number must not wave the artifact through.

Every outcome renders as one line with value, limit and margin, for example
``ttft_p99 1480.0 ms > 1200.0 ms limit: over by 280.0 ms (23.3%)``.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from gate._slo import SloSpec

Direction = Literal["max", "min", "pass"]


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


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
    name: str, value: float | None, limit: float, unit: str = "", source: str = "results"
) -> ObjectiveOutcome:
    """``value`` must not exceed ``limit``."""
    if value is None or not math.isfinite(value):
        return ObjectiveOutcome(
            name=name,
            direction="max",
            passed=False,
            limit=limit,
            unit=unit,
            line=f"{name}: no value in the {source} (limit {fmt_number(limit)}{_u(unit)})",
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
    name: str, value: float | None, limit: float, unit: str = "", what: str = "minimum", source: str = "results"
) -> ObjectiveOutcome:
    """``value`` must reach ``limit``."""
    if value is None or not math.isfinite(value):
        return ObjectiveOutcome(
            name=name,
            direction="min",
            passed=False,
            limit=limit,
            unit=unit,
            line=f"{name}: no value in the {source} ({what} {fmt_number(limit)}{_u(unit)})",
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


# --- tolerant readers for reports written by other stages -------------------------------------


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def find_metric(report: Mapping[str, Any] | None, key: str, depth: int = 3) -> float | None:
    """A numeric ``key`` at the top level of a report or inside nested sections (scores, metrics...)."""
    if not report:
        return None
    if key in report and _number(report[key]) is not None:
        return _number(report[key])
    if depth == 0:
        return None
    for section in ("scores", "metrics", "result", "summary", "rouge", "accuracy"):
        sub = report.get(section)
        if isinstance(sub, Mapping):
            found = find_metric(sub, key, depth - 1)
            if found is not None:
                return found
    return None


_EXACT_KEYS = ("exact_match_rate", "exact_match", "exact_match_fraction", "exact")
_ROUGE_KEYS = ("rouge_l", "rougeL", "mean_rouge_l", "rouge_l_mean")


def _as_fraction(x: float | None) -> float | None:
    # Reports may state a rate as 0..1 or as a percentage; SLO limits are fractions.
    return None if x is None else (x / 100.0 if x > 1.0 else x)


def fidelity_value(report: Mapping[str, Any] | None, category: str, what: Literal["exact", "rouge"]) -> float | None:
    """Exact-match fraction (0..1) or ROUGE-L (0..100) for ``category`` ("*" = overall) from a fidelity report."""
    if not report:
        return None
    keys = _EXACT_KEYS if what == "exact" else _ROUGE_KEYS
    section: Mapping[str, Any] | None = report
    if category != "*":
        section = None
        for name in ("by_category", "categories", "per_category"):
            cats = report.get(name)
            if isinstance(cats, Mapping) and isinstance(cats.get(category), Mapping):
                section = cats[category]
                break
            if isinstance(cats, list):
                for row in cats:
                    if isinstance(row, Mapping) and row.get("category") == category:
                        section = row
                        break
            if section is not None:
                break
    if section is None:
        return None
    if category == "*":
        for name in ("overall", "all", "total"):
            sub = section.get(name)
            if isinstance(sub, Mapping):
                section = sub
                break
    for key in keys:
        v = find_metric(section, key, depth=1)
        if v is not None:
            return _as_fraction(v) if what == "exact" else (v * 100.0 if v <= 1.0 else v)
    return None


def compliance_verdict(report: Mapping[str, Any] | None) -> tuple[bool | None, str]:
    """(passed, one-line detail) from a compliance report of any of the shapes the checks write."""
    if report is None:
        return None, "expected a report next to the run, or --compliance NAME=PATH"
    passed: bool | None = None
    for key in ("passed", "ok", "pass", "success"):
        if isinstance(report.get(key), bool):
            passed = bool(report[key])
            break
    verdict = report.get("verdict")
    if passed is None and isinstance(verdict, str):
        passed = verdict.strip().upper() in ("PASS", "PASSED", "OK", "COMPLETE")
    detail = ""
    for key in ("message", "reason", "summary", "detail"):
        if isinstance(report.get(key), str) and report[key]:
            detail = report[key]
            break
    if not detail and isinstance(verdict, str):
        detail = verdict
    line = detail.splitlines()[0] if detail else ("passed" if passed else "failed")
    # Reports often open with their own verdict ("TEST06 PASS: ..."); the gate line states it already.
    return passed, re.sub(r"^[\w-]+ (?:PASS|FAIL): ", "", line)


class GateInputs(BaseModel):
    """What the gate reads. ``results`` is a RunResult as a dict."""

    results: dict[str, Any] = Field(default_factory=dict)
    accuracy: dict[str, Any] | None = None
    baseline_accuracy: dict[str, Any] | None = None
    fidelity: dict[str, Any] | None = None
    compliance: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source: str = ""


def keep_up_ratio(results: Mapping[str, Any]) -> float | None:
    """Completed rate over the rate a SUT that keeps up would show, for a Server run.

    LoadGen divides completions by the time of the last one, so even a SUT that keeps up shows a
    drain tail of about one query latency: it would reach scheduled x D / (D + median latency), with
    D = queries / scheduled rate. An overloaded SUT's backlog pushes the ratio well below 1.
    """
    sched, done = _number(results.get("scheduled_qps")), _number(results.get("completed_qps"))
    if not sched or done is None:
        return None
    n = _number(results.get("n_queries")) or 0.0
    span = n / sched
    tail = (_percentile(results, "latency_ms", "p50") or 0.0) / 1000.0
    keep_up = sched * span / (span + tail) if span > 0 else sched
    return done / keep_up


def _percentile(results: Mapping[str, Any], field: str, pct: str) -> float | None:
    section = results.get(field)
    return _number(section.get(pct)) if isinstance(section, Mapping) else None


def evaluate_slo(slo: SloSpec, inputs: GateInputs) -> GateReport:
    """Check every objective the spec sets; the report passes only if all of them pass."""
    r = inputs.results
    out: list[ObjectiveOutcome] = []
    if slo.require_valid:
        valid = r.get("valid")
        reasons = [str(x) for x in r.get("validity_reasons", []) if x]
        detail = "LoadGen result VALID" if valid else "LoadGen result INVALID"
        if reasons and not valid:
            detail += ": " + "; ".join(reasons)
        out.append(check_pass("result_valid", valid if isinstance(valid, bool) else None, detail))
    for field, short in (("ttft_ms", "ttft"), ("tpot_ms", "tpot"), ("latency_ms", "latency")):
        limits = getattr(slo, field)
        if limits is None:
            continue
        for pct, limit in limits.items():
            out.append(check_max(f"{short}_{pct}", _percentile(r, field, pct), limit, "ms"))
    if slo.max_error_rate is not None:
        n = _number(r.get("n_queries"))
        errors = _number(r.get("n_errors"))
        rate = errors / n if n and errors is not None else (0.0 if n == 0 and errors == 0 else None)
        out.append(check_max("error_rate", rate, slo.max_error_rate))
    if slo.min_tokens_per_second is not None:
        out.append(
            check_min("tokens_per_second", _number(r.get("tokens_per_second")), slo.min_tokens_per_second, "tok/s")
        )
    if slo.min_qps is not None:
        out.append(check_min("completed_qps", _number(r.get("completed_qps")), slo.min_qps, "qps"))
    if slo.min_completed_ratio is not None:
        out.append(check_min("completed_over_scheduled", keep_up_ratio(r), slo.min_completed_ratio))
    for acc in slo.accuracy:
        value = find_metric(inputs.accuracy, acc.metric)
        if acc.min_value is not None:
            out.append(check_min(f"accuracy_{acc.metric}", value, acc.min_value, source="accuracy report"))
        if acc.min_fraction_of_baseline is not None:
            base = acc.baseline if acc.baseline is not None else find_metric(inputs.baseline_accuracy, acc.metric)
            name = f"accuracy_{acc.metric}"
            if base is None:
                out.append(
                    check_pass(name, None, f"no baseline {acc.metric}; set 'baseline' or give a baseline report")
                )
            else:
                floor = base * acc.min_fraction_of_baseline
                what = f"minimum ({acc.min_fraction_of_baseline:.1%} of baseline {fmt_number(base)})"
                out.append(check_min(name, value, floor, what=what, source="accuracy report"))
    for fid in slo.fidelity:
        tag = "all" if fid.category == "*" else fid.category
        if fid.min_exact_match is not None:
            v = fidelity_value(inputs.fidelity, fid.category, "exact")
            out.append(check_min(f"fidelity_exact_match[{tag}]", v, fid.min_exact_match, source="fidelity report"))
        if fid.min_rouge_l is not None:
            v = fidelity_value(inputs.fidelity, fid.category, "rouge")
            out.append(check_min(f"fidelity_rouge_l[{tag}]", v, fid.min_rouge_l, source="fidelity report"))
    for check in slo.compliance_must_pass:
        passed, detail = compliance_verdict(inputs.compliance.get(check))
        out.append(check_pass(f"compliance_{check}", passed, detail))
    return GateReport(slo=slo.name, source=inputs.source, passed=all(o.passed for o in out), objectives=out)


def load_json_report(path: str | Path) -> dict[str, Any]:
    """Read a JSON report; a non-object or unreadable file raises ValueError naming the file."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: cannot read JSON report ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a JSON object")
    return raw
