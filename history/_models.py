"""What the run store holds for one recorded run: the typed contract between the commands and the store.

A :class:`RunRecord` is built from the models the stages write (``RunResult``, ``AccuracyReport``,
``FidelityReport``, ``ComplianceOutcome``, ``GateReport``, ...) and stored as one row plus its metrics
and verdicts. Per-query data stays in the run directory; ``run_dir`` points at it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PlainValidator

# Where a verdict came from: the run's compliance checks, an SLO gate, `validate`'s DEPLOY verdict,
# the accuracy gates (99 / 99.9 % of FP32), find-peak's confirm run, the submission checker.
VerdictKind = Literal["compliance", "gate", "validate", "accuracy-gate", "find-peak", "submission", "eval-under-load"]

# Metrics whose value is a share of 0..1 and those on a 0..100 scale, by name (without a [category]).
FRACTION_METRICS = (
    "error_rate",
    "goodput.fraction",
    "fidelity.exact_match",
    "reasoning.fraction",
    "prefix_cache.hit_fraction",
    "eval.score",  # an eval task's (or category's) mean sample score, 0..1
    "eval.score_under_load",
    "eval.score_idle",
)
PERCENT_METRIC_PREFIXES = ("accuracy.", "fidelity.rouge_l")
FRACTION_UNIT = "fraction"
# Energy figures (results.json's ``energy``), named as ``lpuperf compare`` names them, and their units.
ENERGY_UNITS = {
    "energy.joules": "J",
    "energy.average_watts": "W",
    "energy.joules_per_query": "J",
    "energy.joules_per_token": "J/token",
    "energy.tokens_per_joule": "tok/J",
    "energy.qps_per_watt": "qps/W",
}


def metric_unit(name: str) -> str:
    """The unit a metric's name states (``lpuperf compare``'s names): ms, qps, tok/s, s, an energy unit (J, W,
    J/token, tok/J, qps/W), a fraction of 0..1 ("fraction") or a 0..100 score ("%"); '' for a count or a name
    without a stated unit."""
    base = name.split("[", 1)[0]
    if base in ENERGY_UNITS:
        return ENERGY_UNITS[base]
    if base in FRACTION_METRICS:
        return FRACTION_UNIT
    if base.startswith(PERCENT_METRIC_PREFIXES):
        return "%"
    if "_ms." in base or base.endswith("_ms"):
        return "ms"
    if base.endswith("tokens_per_second"):
        return "tok/s"
    if base.endswith("qps"):
        return "qps"
    if base.endswith("_s"):
        return "s"
    return ""


def _document(module: str, name: str) -> Any:
    """A field holding the document one stage wrote, validated by that stage's model on first use.

    The record's documents are the harness's and accuracy's own models; importing those packages costs
    a second (numpy, nltk, scipy), which ``history list``/``show`` never need: they read no document.
    """

    def validate(value: object) -> object:
        model = getattr(importlib.import_module(module), name)
        return value if isinstance(value, model) else model.model_validate(value)

    return Annotated[Any, PlainValidator(validate)]


if TYPE_CHECKING:
    from accuracy import AccuracyReport, FidelityReport
    from loadgen_harness import RunResult

    ResultsDocument: TypeAlias = RunResult
    AccuracyDocument: TypeAlias = AccuracyReport
    FidelityDocument: TypeAlias = FidelityReport
else:
    ResultsDocument = _document("loadgen_harness", "RunResult")
    AccuracyDocument = _document("accuracy", "AccuracyReport")
    FidelityDocument = _document("accuracy", "FidelityReport")


class ArtifactBuild(BaseModel):
    """The SUT's artifact as its manifest states it; (name, manifest_sha256) identifies one build."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    backend: str = ""
    model: str = ""
    precision: str = ""
    manifest_sha256: str = Field(default="", description="sha256 of the manifest JSON (sorted keys): the build")
    toolchain_version: str = ""
    target: str = ""
    checksum: str = ""
    build_id: str = ""
    build: dict[str, str] = Field(default_factory=dict, description="compiler/build fields of the manifest")

    @property
    def build_key(self) -> str:
        """A short label for the build: its build_id when the manifest names one, else the hash prefix."""
        return self.build_id or self.manifest_sha256[:12]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, JsonValue]) -> ArtifactBuild:
        """Read the fields the store tracks; a SUT of another make may omit any of them or add others."""

        def text(key: str) -> str:
            v = manifest.get(key)
            return v if isinstance(v, str) else ("" if v is None else json.dumps(v))

        raw_build = manifest.get("build")
        build = {str(k): str(v) for k, v in raw_build.items()} if isinstance(raw_build, dict) else {}
        digest = hashlib.sha256(json.dumps(dict(manifest), sort_keys=True).encode()).hexdigest() if manifest else ""
        return cls(
            name=text("artifact_id"),
            backend=text("backend"),
            model=text("model"),
            precision=text("precision"),
            manifest_sha256=digest,
            toolchain_version=text("toolchain_version"),
            target=text("target"),
            checksum=text("checksum"),
            build_id=text("build_id"),
            build=build,
        )


class MetricValue(BaseModel):
    """One figure of a run. Names follow ``lpuperf compare`` (``ttft_ms.p99``, ``accuracy.rougeL``,
    ``fidelity.exact_match[all]``); the interval, where one exists, is a confidence interval of the value."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    value: float
    unit: str = Field(default="", description="the unit its name states (metric_unit)")
    ci_low: float | None = None
    ci_high: float | None = None


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: VerdictKind
    name: str = Field(min_length=1)
    passed: bool
    message: str = ""
    command: str = ""


class RunRecord(BaseModel):
    """One recorded run (or, for the context probe, one check without a LoadGen run)."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, description="the lpuperf command that recorded it first")
    run_id: str = ""
    run_at: datetime = Field(description="when the run finished (results.json written), timezone-aware")
    scenario: str = ""
    load_kind: str = Field(default="", description="a run beside LoadGen: its load shape (concurrency, rate, ...)")
    load_spec: str = Field(default="", description="a run beside LoadGen: its --load value")
    mode: str = ""
    benchmark: str = ""
    preset: str = ""
    state: str = ""
    valid: bool | None = None
    validity_reasons: list[str] = Field(default_factory=list)
    artifact: ArtifactBuild = Field(default_factory=ArtifactBuild)
    run_dir: str = ""
    lpuperf_version: str = ""
    loadgen_version: str = ""
    results_sha256: str = Field(default="", description="sha256 of results.json: the same run recorded twice is one")
    metrics: list[MetricValue] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    results: ResultsDocument | None = None
    accuracy: AccuracyDocument | None = None
    fidelity: FidelityDocument | None = Field(default=None, description="per-sample rows dropped")

    def metric(self, name: str) -> MetricValue | None:
        return next((m for m in self.metrics if m.name == name), None)

    def add_metrics(self, metrics: list[MetricValue]) -> None:
        """Add or replace figures by name."""
        names = {m.name for m in metrics}
        self.metrics = [m for m in self.metrics if m.name not in names] + metrics

    def add_verdicts(self, verdicts: list[Verdict]) -> None:
        """Add or replace verdicts by (kind, name); each keeps the command it came from."""
        keys = {(v.kind, v.name) for v in verdicts}
        self.verdicts = [v for v in self.verdicts if (v.kind, v.name) not in keys] + [
            v if v.command else v.model_copy(update={"command": self.command}) for v in verdicts
        ]


class StoredRun(RunRecord):
    """A record as the store returns it: its number, when it was recorded, whether it is marked good."""

    id: int
    recorded_at: datetime
    good: bool = False
    good_note: str = ""


class RunFilter(BaseModel):
    """Which records a listing, trend or report covers; None/empty matches everything."""

    model_config = ConfigDict(extra="forbid")

    artifact: str | None = None
    benchmark: str | None = None
    scenario: str | None = None
    load_kind: str | None = None
    mode: str | None = None
    command: str | None = None
    since: datetime | None = None
    limit: int | None = Field(default=None, gt=0)
