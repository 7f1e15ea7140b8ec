"""Service-level objectives a run must meet before an artifact may be deployed.

An SLO file is YAML or JSON and validates into :class:`SloSpec`. Every objective is optional; a
spec names only what its owner cares about::

    name: embedded-serving
    require_valid: true              # LoadGen must say VALID
    ttft_ms: {p99: 1200}             # time to first token, per percentile, in ms
    tpot_ms: {p99: 80}               # time per output token
    latency_ms: {p90: 5000}          # end-to-end query latency
    ttfa_ms: {p99: 30000}            # reasoning models: time to the first answer token
    max_reasoning_tokens_mean: 4300  # reasoning models: mean reasoning tokens per query (and a min_)
    max_error_rate: 0.001            # failed queries / all queries
    min_tokens_per_second: 500
    min_qps: 10                      # completed queries per second
    accuracy:                        # vs a baseline (the FP32 reference) or an absolute floor
      - {metric: rougeL, min_fraction_of_baseline: 0.99}
    fidelity:                        # vs the FP32 reference outputs, per category or "*" (all samples)
      - {category: arithmetic, min_exact_match_fraction: 0.9}   # identical token ids, 0..1
      - {category: "*", min_rouge_l_percent: 95}                 # ROUGE-L F x 100 vs FP32 text, 0..100
    compliance_must_pass: [TEST06, context]
    # Runs beside LoadGen (lpuperf run --load); a LoadGen run has none of these figures and fails them, by name.
    dispatch_lag_ms: {p99: 5, max: 50}   # send time minus due time (the client's own lateness)
    session_latency_ms: {p99: 60000}     # sessions: first turn due to last answer
    turn_ttft_ms: {p99: 1500}            # sessions: TTFT of every turn index (the worst turn is judged)
    min_prefix_cache_hit_fraction: 0.3   # prompt tokens the SUT served from its prefix cache, 0..1
    # Energy over the measured window (results.json's energy); a run that measured none fails these, by name.
    max_joules_per_token: 0.5            # joules per output token
    min_tokens_per_joule: 2.0            # output tokens per joule
    max_joules_per_query: 60
    max_average_watts: 2500              # the SUT's average draw over the window
    min_qps_per_watt: 0.004              # MLPerf-style performance per watt: completed QPS / average watts

A run beside LoadGen whose client fell behind its schedule (client-limited) fails every gate, whatever
the spec sets: its figures are not the SUT's own.

The gate that applies a spec to run results is :func:`gate.evaluate_slo`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common import first_error_line
from compliance import COMPLIANCE_CHECKS, ComplianceCheck

SLO_DIR = Path(__file__).with_name("slo")
"""Example SLO files shipped with the package; ``load_slo("embedded")`` finds them by stem."""

Percentile = Literal["p50", "p90", "p99"]


class SloError(ValueError):
    """An SLO file is missing or malformed; the message is one line naming the file and field."""


class PercentileLimits(BaseModel):
    """Upper limits in milliseconds for some of p50/p90/p99."""

    model_config = ConfigDict(extra="forbid")

    p50: float | None = Field(default=None, gt=0)
    p90: float | None = Field(default=None, gt=0)
    p99: float | None = Field(default=None, gt=0)

    def items(self) -> list[tuple[Percentile, float]]:
        pairs: tuple[tuple[Percentile, float | None], ...] = (("p50", self.p50), ("p90", self.p90), ("p99", self.p99))
        return [(name, float(value)) for name, value in pairs if value is not None]


class DispatchLagLimits(BaseModel):
    """Upper limits in milliseconds for a load run's dispatch lag: its p50, p99 and max (no p90 is recorded)."""

    model_config = ConfigDict(extra="forbid")

    p50: float | None = Field(default=None, gt=0)
    p99: float | None = Field(default=None, gt=0)
    max: float | None = Field(default=None, gt=0)

    def items(self) -> list[tuple[Literal["p50", "p99", "max"], float]]:
        pairs: tuple[tuple[Literal["p50", "p99", "max"], float | None], ...] = (
            ("p50", self.p50),
            ("p99", self.p99),
            ("max", self.max),
        )
        return [(name, float(value)) for name, value in pairs if value is not None]


class AccuracyObjective(BaseModel):
    """``metric`` (e.g. rougeL) must reach a fraction of the baseline's value, or an absolute floor."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1)
    min_fraction_of_baseline: float | None = Field(default=None, gt=0, le=1.5)
    min_value: float | None = None
    # The baseline value; None means "take it from the baseline run's accuracy report".
    baseline: float | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> AccuracyObjective:
        if self.min_fraction_of_baseline is None and self.min_value is None:
            raise ValueError("expected min_fraction_of_baseline or min_value")
        return self


class FidelityObjective(BaseModel):
    """Outputs vs the FP32 reference in ``category`` ("*" = all samples): exact-match fraction and/or ROUGE-L."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(default="*", min_length=1)
    min_exact_match_fraction: float | None = Field(default=None, ge=0, le=1, description="identical ids, 0..1")
    min_rouge_l_percent: float | None = Field(default=None, ge=0, le=100, description="ROUGE-L F x 100, 0..100")

    @model_validator(mode="after")
    def _one_limit(self) -> FidelityObjective:
        if self.min_exact_match_fraction is None and self.min_rouge_l_percent is None:
            raise ValueError("expected min_exact_match_fraction or min_rouge_l_percent")
        return self


class SloSpec(BaseModel):
    """A set of objectives; the gate checks every one that is set."""

    model_config = ConfigDict(extra="forbid")

    name: str = "slo"
    require_valid: bool = True
    ttft_ms: PercentileLimits | None = None
    tpot_ms: PercentileLimits | None = None
    latency_ms: PercentileLimits | None = None
    # Reasoning models (results.json's ``reasoning``): a run without reasoning figures fails these, by name.
    ttfa_ms: PercentileLimits | None = None
    max_reasoning_tokens_mean: float | None = Field(default=None, gt=0)
    min_reasoning_tokens_mean: float | None = Field(default=None, ge=0)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    min_tokens_per_second: float | None = Field(default=None, ge=0)
    min_qps: float | None = Field(default=None, ge=0)
    # Completed rate over what a keeping-up SUT would show (drain tail removed, see loadgen_harness.keep_up_ratio);
    # below this a Server run was overloaded even when LoadGen says VALID.
    min_completed_ratio: float | None = Field(default=None, ge=0, le=1)
    # Runs beside LoadGen (results.json's dispatch_lag, sessions, prefix_cache): a run without them fails these.
    dispatch_lag_ms: DispatchLagLimits | None = None
    session_latency_ms: PercentileLimits | None = None
    turn_ttft_ms: PercentileLimits | None = Field(default=None, description="every turn index's TTFT percentiles")
    min_prefix_cache_hit_fraction: float | None = Field(default=None, ge=0, le=1)
    # Energy (results.json's ``energy``, from a power source during the run): a run without it fails these.
    max_joules_per_token: float | None = Field(default=None, gt=0)
    min_tokens_per_joule: float | None = Field(default=None, gt=0)
    max_joules_per_query: float | None = Field(default=None, gt=0)
    max_average_watts: float | None = Field(default=None, gt=0)
    min_qps_per_watt: float | None = Field(default=None, gt=0)
    accuracy: list[AccuracyObjective] = Field(default_factory=list)
    fidelity: list[FidelityObjective] = Field(default_factory=list)
    compliance_must_pass: list[ComplianceCheck] = Field(default_factory=list)
    # Eval suites (validate --inspect / --lm-eval): every task's score (0..1) at least this, and no task or
    # category of a task losing more than this against the baseline (gate/_evals.py).
    min_task_score: float | None = Field(default=None, ge=0, le=1)
    max_task_drop: float | None = Field(default=None, ge=0, le=1)

    @field_validator("compliance_must_pass", mode="before")
    @classmethod
    def _known_checks(cls, names: object) -> object:
        # A named error instead of pydantic's literal listing, which reads poorly for a typo'd check.
        for name in names if isinstance(names, list) else []:
            if name not in COMPLIANCE_CHECKS:
                raise ValueError(f"unknown compliance check '{name}'; expected one of {', '.join(COMPLIANCE_CHECKS)}")
        return names

    def count(self) -> int:
        """How many objectives the spec sets (a spec with none would gate nothing)."""
        n = int(self.require_valid) + len(self.accuracy) + len(self.fidelity) + len(self.compliance_must_pass)
        for limits in (
            self.ttft_ms,
            self.tpot_ms,
            self.latency_ms,
            self.ttfa_ms,
            self.session_latency_ms,
            self.turn_ttft_ms,
        ):
            n += len(limits.items()) if limits else 0
        n += len(self.dispatch_lag_ms.items()) if self.dispatch_lag_ms else 0
        for value in (
            self.max_error_rate,
            self.min_tokens_per_second,
            self.min_qps,
            self.min_completed_ratio,
            self.max_reasoning_tokens_mean,
            self.min_reasoning_tokens_mean,
            self.min_prefix_cache_hit_fraction,
            self.max_joules_per_token,
            self.min_tokens_per_joule,
            self.max_joules_per_query,
            self.max_average_watts,
            self.min_qps_per_watt,
            self.min_task_score,
            self.max_task_drop,
        ):
            n += value is not None
        return n


def _resolve_path(spec: str | Path) -> Path:
    p = Path(spec)
    if p.is_file():
        return p
    for suffix in (".yaml", ".yml", ".json"):
        packaged = SLO_DIR / f"{spec}{suffix}"
        if packaged.is_file():
            return packaged
    shipped = ", ".join(sorted(f.stem for f in SLO_DIR.glob("*.yaml"))) or "none"
    raise SloError(f"{spec}: SLO file not found (packaged SLOs: {shipped})")


def load_slo(spec: str | Path) -> SloSpec:
    """Load an SLO from a YAML/JSON path or a packaged name; raise SloError with one line on bad input."""
    p = _resolve_path(spec)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SloError(f"{p}: cannot read SLO file ({exc.__class__.__name__})") from None
    try:
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SloError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'} ({first})") from None
    if not isinstance(raw, dict):
        raise SloError(f"{p}: expected a mapping of objectives at the top level")
    try:
        slo = SloSpec.model_validate(raw)
    except ValidationError as exc:
        raise SloError(first_error_line(exc, str(p))) from None
    if slo.count() == 0:
        raise SloError(f"{p}: no objectives set; expected at least one of ttft_ms, tpot_ms, ... require_valid")
    return slo
