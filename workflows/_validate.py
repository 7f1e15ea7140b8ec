"""``lpuperf validate``: may a candidate compiled artifact replace the baseline? DEPLOY or NO DEPLOY.

For each artifact (a sim preset such as ``sim-bf16``, a manifest JSON, ``backend:precision`` such as
``transformers:int8``, or ``host:port`` of a running SUT) one SUT is started and kept for all runs:

* performance: a Server run at ``qps`` and an Offline run;
* accuracy: an accuracy-mode run scored with ROUGE, plus fidelity of the outputs against the FP32
  reference outputs (per category, exact match and ROUGE-L);
* compliance: TEST06 and the context-length probe, and TEST07/TEST09 (Offline) for the benchmarks whose
  MLPerf submissions carry them (gpt-oss-120b): a failing one is a NO DEPLOY reason even where the SLO
  does not list it.

The candidate is gated with the SLO (accuracy objectives relative to the baseline's scores), the
baseline through the same SLO for reference, and the two are compared metric by metric. The verdict
table has one row per objective; NO DEPLOY lists every violated objective with value, limit and
margin, and the per-category fidelity slippage is named.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from accuracy import AccuracyReport, FidelityReport
from common import BackendSpec, RunId, write_atomic
from compliance import (
    CONTEXT_REPORT_FILE,
    ComplianceCheck,
    ComplianceOutcome,
    ContextVerdict,
    Test06Outcome,
    Test07Outcome,
    Test09Outcome,
)
from evals import InspectRun, LmEvalRun, ScoreDelta, TaskScore
from gate import GateInputs, GateReport, ObjectiveOutcome, SloSpec, evaluate_slo, fmt_number
from loadgen_harness import RunResult, SutTarget, TransportSecurity, launch_sut
from workflows._compare import (
    CompareConfig,
    Comparison,
    RunData,
    compare_runs,
    fidelity_categories,
    fidelity_section,
)
from workflows._session import RunStep, SessionConfig, run_session
from workflows._stats import RateBins
from workflows._validate_evals import VerdictRow, eval_deltas, eval_rows, eval_slippage, run_eval_suites

_ADDRESS = re.compile(r"^[A-Za-z0-9_.-]+:\d+$")


class ValidateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline: str = Field(min_length=1)
    candidate: str = Field(min_length=1)
    benchmark: str = "embedded"
    dataset: str | None = None
    preset: Literal["quick", "submission"] = "quick"
    qps: float | None = Field(default=None, gt=0, description="Server target QPS; None = the benchmark default")
    duration_s: float | None = Field(default=None, gt=0, description="performance run length; None = preset")
    offline_duration_s: float | None = Field(default=None, gt=0, description="Offline run length; None = duration_s")
    max_new_tokens: int | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    run_id: RunId | None = None
    backend: BackendSpec = Field(default_factory=dict, description="backend options for both spawned SUTs")
    candidate_backend: BackendSpec = Field(default_factory=dict, description="backend options, candidate only")
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a SUT given as host:port"
    )
    fail_on_regression: bool = False
    compare: CompareConfig = Field(default_factory=CompareConfig)
    # Eval suites run on both SUTs (--inspect TASK): per-task and per-category deltas in the verdict table.
    inspect: list[InspectRun] = Field(default_factory=list)
    lm_eval: list[LmEvalRun] = Field(default_factory=list, description="lm-eval tasks run on both SUTs (--lm-eval)")
    evals_only: bool = Field(default=False, description="run only the eval suites (no performance/compliance)")


class ArtifactEvidence(BaseModel):
    """Everything measured on one artifact, each as the model its stage writes; None where it did not run."""

    model_config = ConfigDict(extra="forbid")

    name: str
    server: RunResult | None = None
    offline: RunResult | None = None
    accuracy: AccuracyReport | None = None
    fidelity: FidelityReport | None = Field(default=None, description="per-sample rows dropped")
    test06: Test06Outcome | None = None
    test07: Test07Outcome | None = None
    test09: Test09Outcome | None = None
    context: ContextVerdict | None = None
    context_report: str = Field(default="", description="where the context verdict was written")
    evals: list[TaskScore] = Field(default_factory=list)
    manifest: dict[str, JsonValue] = Field(default_factory=dict, description="the SUT's artifact (eval-only runs)")
    errors: list[str] = Field(default_factory=list)  # a stage that could not run at all

    @property
    def server_dir(self) -> str:
        return self.server.log_dir if self.server is not None else ""


class ValidateReport(BaseModel):
    verdict: Literal["DEPLOY", "NO DEPLOY"]
    baseline: ArtifactEvidence
    candidate: ArtifactEvidence
    slo: str
    gate: GateReport
    baseline_gate: GateReport
    comparison: Comparison
    rows: list[VerdictRow] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    slippage: list[str] = Field(default_factory=list)
    eval_deltas: list[ScoreDelta] = Field(default_factory=list)

    def table(self) -> str:
        head = ("objective", "baseline", "candidate", "limit", "result")
        rows = [head] + [
            (r.objective, r.baseline, r.candidate, r.limit, "PASS" if r.passed else "FAIL") for r in self.rows
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(lines)


def target_for(
    artifact: str, backend: BackendSpec | None = None, transport: TransportSecurity | None = None
) -> SutTarget:
    """The SUT for an artifact spec: a running SUT's address, ``kind:precision``, else the sim's artifact.

    ``backend`` adds options for a spawned SUT (e.g. a dataset or timing); the spec's own fields win.
    ``transport`` (TLS, token) reaches a running SUT only.
    """
    from sut import backends

    if _ADDRESS.match(artifact) and artifact.partition(":")[0] not in backends.names():
        return SutTarget(address=artifact, transport=transport or TransportSecurity())
    kind, sep, precision = artifact.partition(":")
    if sep and kind in backends.names():
        spec: BackendSpec = {"kind": kind, "precision": precision}
    else:
        spec = {"artifact": artifact}  # a preset name or a manifest file, for the default backend
    return SutTarget(backend={**(backend or {}), **spec})


@contextmanager
def sut_for(
    artifact: str, backend: BackendSpec | None = None, transport: TransportSecurity | None = None
) -> Iterator[str]:
    from loadgen_harness import launch_sut

    with launch_sut(target_for(artifact, backend, transport)) as running:
        yield running.address


class ArtifactRunner:
    """Runs every stage against one SUT address; a failing stage is recorded, never silently skipped."""

    def __init__(
        self,
        cfg: ValidateConfig,
        label: str,
        address: str,
        echo: Callable[[str], None],
        transport: TransportSecurity | None = None,
    ) -> None:
        self.cfg, self.label, self.address, self.echo = cfg, label, address, echo
        self.transport = transport or TransportSecurity()
        self.run_id = f"{cfg.run_id or 'validate'}-{label}"

    def session_config(self) -> SessionConfig:
        """Server and Offline performance, the scored Offline accuracy run, TEST06 as Server, and TEST07/TEST09
        as Offline where the benchmark's MLPerf submission carries them."""
        from workflows._compliance_runs import required_checks

        cfg = self.cfg
        checks = required_checks(cfg.benchmark)
        server_s = cfg.duration_s
        if server_s is not None and cfg.qps:
            # Early stopping needs ~500 queries before it can call p99 VALID.
            server_s = max(server_s, 550.0 / cfg.qps)
        return SessionConfig(
            run_id=self.run_id,
            benchmark=cfg.benchmark,
            dataset=cfg.dataset,
            preset=cfg.preset,
            max_new_tokens=cfg.max_new_tokens,
            out_dir=cfg.out_dir,
            transport=self.transport,
            performance=[
                RunStep(name="Server", scenario="Server", qps=cfg.qps, duration_s=server_s),
                RunStep(name="Offline", scenario="Offline", duration_s=cfg.offline_duration_s or cfg.duration_s),
            ],
            accuracy=RunStep(name="accuracy", scenario="Offline"),
            test06=RunStep(name="TEST06", scenario="Server", qps=cfg.qps),
            test07=RunStep(name="TEST07", scenario="Offline") if "TEST07" in checks else None,
            test09=RunStep(name="TEST09", scenario="Offline") if "TEST09" in checks else None,
            keep_going=True,
        )

    def collect(self, name: str) -> ArtifactEvidence:
        got = run_session(self.session_config(), self.address, self.echo, self.label)
        ev = ArtifactEvidence(
            name=name,
            server=got.performance.get("Server"),
            offline=got.performance.get("Offline"),
            accuracy=got.accuracy,
            fidelity=got.fidelity,
            test06=got.test06,
            test07=got.test07,
            test09=got.test09,
            errors=list(got.errors),
        )
        t0 = time.monotonic()
        try:
            self._context(ev)
        except Exception as exc:  # a broken stage is evidence against the artifact, not a crash
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            ev.errors.append(f"context probe: {msg}")
            self.echo(f"[{self.label}] context probe: ERROR {msg}")
        else:
            self.echo(f"[{self.label}] context probe: done in {time.monotonic() - t0:.1f} s")
        return ev

    def _context(self, ev: ArtifactEvidence) -> None:
        ev.context = run_context_probe(self.address, self.cfg, self.run_id, self.transport)
        ev.context_report = str(context_report_path(self.cfg, self.run_id))
        if not ev.context.passed:
            self.echo(f"[{self.label}] context probe: FAIL {ev.context.message}")


# --- adapters onto the compliance package ------------------------------------------------------


def context_report_path(cfg: ValidateConfig, run_id: str) -> Path:
    return Path(cfg.out_dir) / run_id / CONTEXT_REPORT_FILE


def run_context_probe(
    address: str, cfg: ValidateConfig, run_id: str, transport: TransportSecurity | None = None
) -> ContextVerdict:
    """The context-length probe; its message names the first failing length."""
    from compliance import probe_context

    verdict = probe_context(address, transport=transport)
    write_atomic(context_report_path(cfg, run_id), verdict.model_dump_json(indent=2) + "\n")
    return verdict


# --- verdict -----------------------------------------------------------------------------------


def _inputs(ev: ArtifactEvidence, baseline_accuracy: AccuracyReport | None) -> GateInputs:
    compliance: dict[ComplianceCheck, ComplianceOutcome] = {}
    if ev.test06 is not None:
        compliance["TEST06"] = ComplianceOutcome.from_report(ev.test06)
    if ev.test07 is not None:
        compliance["TEST07"] = ComplianceOutcome.from_report(ev.test07)
    if ev.test09 is not None:
        compliance["TEST09"] = ComplianceOutcome.from_report(ev.test09)
    if ev.context is not None:
        compliance["context"] = ComplianceOutcome.from_report(ev.context, ev.context_report)
    return GateInputs(
        results=ev.server,
        accuracy=ev.accuracy,
        baseline_accuracy=baseline_accuracy,
        fidelity=ev.fidelity,
        compliance=compliance,
        source=ev.server_dir,
    )


def _cell(o: ObjectiveOutcome | None) -> str:
    if o is None:
        return "-"
    if o.value is None:
        return "PASS" if o.passed and o.direction == "pass" else ("FAIL" if o.direction == "pass" else "missing")
    return f"{fmt_number(float(o.value))} {o.unit}".rstrip()


def slippage_lines(base: FidelityReport | None, cand: FidelityReport | None) -> list[str]:
    """Per-category fidelity change, worst first: 'arithmetic: exact match 100.0% -> 62.0% (-38.0 points), ...'.

    Without a baseline report the FP32 reference itself is the baseline: it matches itself exactly.
    """
    if cand is None:
        return []
    out: list[tuple[float, str]] = []
    for cat in fidelity_categories(*(r for r in (base, cand) if r is not None)):
        c = fidelity_section(cand, cat)
        if c is None:
            continue
        b_section = fidelity_section(base, cat) if base is not None else None
        b = 1.0 if b_section is None else b_section.exact_match_fraction
        tag = "all samples" if cat == "*" else cat
        delta = c.exact_match_fraction - b
        out.append(
            (
                delta,
                f"{tag}: exact match vs FP32 {b:.1%} -> {c.exact_match_fraction:.1%} ({delta * 100:+.1f} points), "
                f"ROUGE-L vs FP32 {c.rouge_l_percent:.1f}",
            )
        )
    return [line for _, line in sorted(out, key=lambda t: t[0])]


def _samples(ev: ArtifactEvidence) -> tuple[dict[str, np.ndarray], RateBins | None]:
    """Per-query latencies and binned throughput of the Server run, so the comparison has confidence intervals."""
    from loadgen_harness import load_query_records
    from workflows._compare import records_samples

    records = Path(ev.server_dir) / "queries.npz"
    if not ev.server_dir or not records.is_file():
        return {}, None
    try:
        return records_samples(load_query_records(Path(ev.server_dir)))
    except (OSError, ValueError):
        return {}, None


def _compare(cfg: ValidateConfig, base: ArtifactEvidence, cand: ArtifactEvidence) -> Comparison:
    if base.server is None or cand.server is None:
        missing = ", ".join(e.name for e in (base, cand) if e.server is None)
        return Comparison(
            baseline=base.name,
            candidate=cand.name,
            config=cfg.compare,
            notes=[f"no Server run for {missing}: not compared"],
        )
    (lat_b, rates_b), (lat_c, rates_c) = _samples(base), _samples(cand)
    return compare_runs(
        RunData(base.name, base.server, lat_b, base.accuracy, base.fidelity, rates_b),
        RunData(cand.name, cand.server, lat_c, cand.accuracy, cand.fidelity, rates_c),
        cfg.compare,
    )


def benchmark_compliance_rows(slo: SloSpec, base: ArtifactEvidence, cand: ArtifactEvidence) -> list[VerdictRow]:
    """A row for each TEST07/TEST09 the benchmark required and the SLO does not list (the gate has its own)."""

    def cell(ev: ArtifactEvidence, check: str) -> tuple[str, ComplianceOutcome | None]:
        report = ev.test07 if check == "TEST07" else ev.test09
        if report is None:
            return "-", None
        outcome = ComplianceOutcome.from_report(report)
        return ("PASS" if outcome.passed else "FAIL"), outcome

    rows: list[VerdictRow] = []
    for check in ("TEST07", "TEST09"):
        if check in slo.compliance_must_pass:
            continue
        (b_cell, _), (c_cell, outcome) = cell(base, check), cell(cand, check)
        if outcome is None:
            continue
        state = "PASS" if outcome.passed else "FAIL"
        rows.append(
            VerdictRow(
                objective=f"compliance_{check}",
                baseline=b_cell,
                candidate=c_cell,
                limit="pass",
                passed=outcome.passed,
                line=f"compliance_{check}: {state} {outcome.message} (required by the benchmark's MLPerf rules)",
            )
        )
    return rows


def decide(cfg: ValidateConfig, slo: SloSpec, base: ArtifactEvidence, cand: ArtifactEvidence) -> ValidateReport:
    deltas = eval_deltas(base.evals, cand.evals)
    evals_in = {"evals": cand.evals or None, "eval_deltas": deltas or None} if base.evals or cand.evals else {}
    gate = evaluate_slo(slo, _inputs(cand, base.accuracy).model_copy(update=evals_in))
    base_evals = {"evals": base.evals or None, "eval_deltas": eval_deltas(base.evals, base.evals) or None}
    base_gate = evaluate_slo(slo, _inputs(base, base.accuracy).model_copy(update=base_evals if evals_in else {}))
    comparison = _compare(cfg, base, cand)
    by_name = {o.name: o for o in base_gate.objectives}
    rows = [
        VerdictRow(
            objective=o.name,
            baseline=_cell(by_name.get(o.name)),
            candidate=_cell(o),
            limit="-" if o.limit is None else f"{fmt_number(o.limit)} {o.unit}".rstrip(),
            passed=o.passed,
            line=o.line,
        )
        for o in gate.objectives
        if not o.name.startswith("task_drop[")  # shown as the eval rows below, with their intervals
    ]
    rows += eval_rows(slo, gate, deltas)
    extra = benchmark_compliance_rows(slo, base, cand)
    rows += extra
    reasons = [o.line for o in gate.violations]
    reasons += [r.line for r in extra if not r.passed]
    reasons += [f"{cand.name}: {e}" for e in cand.errors]
    if cfg.fail_on_regression:
        reasons += [m.line for m in comparison.regressions]
    return ValidateReport(
        verdict="NO DEPLOY" if reasons else "DEPLOY",
        baseline=base,
        candidate=cand,
        slo=slo.name,
        gate=gate,
        baseline_gate=base_gate,
        comparison=comparison,
        rows=rows,
        reasons=reasons,
        slippage=slippage_lines(base.fidelity, cand.fidelity) + eval_slippage(deltas),
        eval_deltas=deltas,
    )


def _benchmark_sut(cfg: ValidateConfig, target: SutTarget, echo: Callable[[str], None], label: str) -> SutTarget:
    """A spawned SUT serves the benchmark's dataset, and a reasoning sim the preset's reasoning scale: TEST07 and
    TEST09 read the benchmark's answers and lengths (the reasoning sim otherwise defaults to deepseek-r1's set)."""
    from scenarios import embedded_dataset, embedded_sut_backend, get_benchmark

    if not target.embedded:
        return target
    bench = get_benchmark(cfg.benchmark)
    backend, notes = embedded_sut_backend(bench, cfg.preset, target.backend)
    for note in notes:
        echo(f"[{label}] {note}")
    dataset = embedded_dataset(bench, cfg.preset, target.dataset or cfg.dataset)
    return target.model_copy(update={"backend": backend, "dataset": dataset})


def validate(
    cfg: ValidateConfig,
    slo: SloSpec,
    echo: Callable[[str], None] = print,
    baseline_evidence: ArtifactEvidence | None = None,
) -> ValidateReport:
    """Measure both artifacts, gate the candidate, compare, and write validate.json.

    ``baseline_evidence`` from an earlier call skips re-measuring the baseline when several
    candidates are validated against it.
    """
    cfg = cfg.model_copy(update={"run_id": cfg.run_id or time.strftime("validate-%Y%m%d-%H%M%S")})
    evidence: list[ArtifactEvidence] = []
    for label, artifact in (("baseline", cfg.baseline), ("candidate", cfg.candidate)):
        if label == "baseline" and baseline_evidence is not None:
            evidence.append(baseline_evidence)
            continue
        backend = {**cfg.backend, **(cfg.candidate_backend if label == "candidate" else {})}
        echo(f"[{label}] {artifact}: starting")
        target = _benchmark_sut(cfg, target_for(artifact, backend, cfg.transport), echo, label)
        # The runs read the dataset the SUT serves (a quick reasoning sim's is the scaled set).
        run_cfg = cfg if target.dataset is None else cfg.model_copy(update={"dataset": target.dataset})
        with launch_sut(target) as running:
            runner = ArtifactRunner(run_cfg, label, running.address, echo, target.transport)
            ev = ArtifactEvidence(name=artifact) if cfg.evals_only else runner.collect(artifact)
            ev.manifest = running.artifact
            if cfg.inspect or cfg.lm_eval:
                log_root = Path(cfg.out_dir) / runner.run_id
                transport = target.transport if not running.embedded else None
                suites: list[InspectRun | LmEvalRun] = [*cfg.inspect, *cfg.lm_eval]
                ev.evals, errors = run_eval_suites(suites, running.address, transport, log_root, label, echo)
                ev.errors += errors
            evidence.append(ev)
    report = decide(cfg, slo, evidence[0], evidence[1])
    path = write_atomic(Path(cfg.out_dir) / str(cfg.run_id) / "validate.json", report.model_dump_json(indent=2) + "\n")
    echo(f"wrote {path}")
    return report
