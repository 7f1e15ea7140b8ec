"""TEST06 end to end: write the audit.config, make the performance pass, verify, lay out the results.

Layout under ``OUT/<run-id>/``:

* ``TEST06/<scenario>/performance/``: the LoadGen pass (MLPerf logs, results.json, artifact.json,
  queries.npz), kept apart from the ordinary performance run of the same run id;
* ``<scenario>/TEST06/``: the submission layout: ``verify_accuracy.txt``,
  ``accuracy/mlperf_log_accuracy.json``, ``audit.config``, plus ``test06_report.json`` and
  ``strict_report.json`` naming the failing samples.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import BackendSpec, RunId, read_json_object
from compliance._accuracy_log import (
    ComplianceInputError,
    eos_from_artifact,
    eos_from_manifest,
    load_accuracy_log,
)
from compliance._strict import STRICT_REPORT_FILE, StrictReport, strict_checks
from compliance._test06 import AUDIT_CONFIG_TEXT, Test06Report, verify_test06, write_test06_outputs
from loadgen_harness import TransportSecurity, accuracy_log_path
from scenarios import ScenarioName, loadgen_scenario

AUDIT_CONFIG_FILE = "audit.config"
# What LoadGen's detail log must show when TEST06's audit.config was applied.
AUDIT_EFFECTIVE = {
    "effective_test_mode": "PerformanceOnly",
    "effective_accuracy_log_sampling_target": 100,
    "effective_accuracy_log_rng_seed": 720381539243781796,
    "effective_min_query_count": 100,
    "effective_sample_concatenate_permutation": False,
}


class CompliancePassConfig(BaseModel):
    """What every compliance pass (TEST06, TEST07, TEST09) needs to reach its SUT and write its run:
    ``sut=None`` spawns an embedded SUT with the ``backend`` config (default: the sim)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: str | None = None
    sut: str | None = None
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT (sut)"
    )
    backend: BackendSpec = Field(default_factory=dict, description="spawned SUT's backend config (SutTarget)")
    qps: float | None = Field(default=None, gt=0)
    max_new_tokens: int | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    run_id: RunId = "compliance"


class Test06Config(CompliancePassConfig):
    """One TEST06 pass (Server by default)."""

    scenario: ScenarioName = "Server"
    benchmark: str = "embedded"


class Test06Outcome(BaseModel):
    """Both reports and where they went; ``passed`` needs TEST06 and the strict checks to pass."""

    test06: Test06Report
    strict: StrictReport
    test06_dir: str
    run_dir: str = ""
    audit_problem: str = Field(default="", description="set when LoadGen's log shows TEST06's settings were not used")
    passed: bool
    message: str


def write_audit_config(directory: Path) -> Path:
    from common import write_atomic

    return write_atomic(directory / AUDIT_CONFIG_FILE, AUDIT_CONFIG_TEXT)


def audit_problem(detail_log: Path, scenario: str = "Server") -> str:
    """'' when the detail log shows TEST06's effective settings, else what differs (one line).

    Offline issues one query, so LoadGen reports min_query_count 1 there; TEST06's 100 shows up as
    samples per query instead.
    """
    if not detail_log.is_file():
        return f"{detail_log}: not found; cannot confirm TEST06's audit settings were applied"
    expected = dict(AUDIT_EFFECTIVE)
    if scenario == "Offline":
        del expected["effective_min_query_count"]
    from loadgen_harness import parse_detail_log

    seen = parse_detail_log(detail_log).values
    wrong = [f"{k} = {seen.get(k, 'missing')!r} (expected {v!r})" for k, v in expected.items() if seen.get(k) != v]
    if scenario == "Offline":
        spq = seen.get("effective_samples_per_query")
        if not isinstance(spq, int) or spq < 100:
            wrong.append(f"effective_samples_per_query = {spq!r} (expected >= 100)")
    return f"{detail_log.name}: TEST06 audit settings not in effect: " + "; ".join(wrong) if wrong else ""


def _records_for(log_dir: Path) -> np.ndarray | None:
    if not (log_dir / "queries.npz").is_file():
        return None
    from loadgen_harness import load_query_records

    try:
        return load_query_records(log_dir)
    except (OSError, ValueError) as exc:
        raise ComplianceInputError(f"{log_dir / 'queries.npz'}: {exc}") from None


def verify_log(
    accuracy_log: Path,
    scenario: str,
    test06_dir: Path,
    eos_token_id: int | None = None,
    records: np.ndarray | None = None,
    run_dir: str = "",
    audit_problem: str = "",
) -> Test06Outcome:
    """Verify an existing accuracy log and write the TEST06 layout into ``test06_dir``.

    The EOS id comes from ``eos_token_id`` or else the ``artifact.json`` next to the log; per-query
    records default to the ``queries.npz`` next to it (the strict stream checks are skipped without).
    """
    log = accuracy_log_path(accuracy_log)
    samples = load_accuracy_log(log)
    if eos_token_id is None:
        artifact = log.parent / "artifact.json"
        if not artifact.is_file():
            raise ComplianceInputError(
                f"{log}: no artifact.json next to the log to take the EOS id from; give --eos-id or --artifact-json"
            )
        eos_token_id = eos_from_artifact(artifact)
    if records is None:
        records = _records_for(log.parent)
    report = verify_test06(samples, scenario, eos_token_id, str(log))
    strict = strict_checks(samples, eos_token_id, records)
    write_test06_outputs(report, log, test06_dir)
    from common import write_atomic

    write_atomic(test06_dir / STRICT_REPORT_FILE, strict.model_dump_json(indent=2) + "\n")
    return Test06Outcome(
        test06=report,
        strict=strict,
        test06_dir=str(test06_dir),
        run_dir=run_dir or str(log.parent),
        audit_problem=audit_problem,
        passed=report.passed and strict.passed and not audit_problem,
        message=" | ".join(m for m in (audit_problem, report.message, strict.message) if m),
    )


def run_test06(cfg: Test06Config) -> Test06Outcome:
    """Make TEST06's performance pass through ``run_benchmark`` with the audit.config, then verify it."""
    from loadgen_harness import RunConfig, run_benchmark

    test06_dir = Path(cfg.out_dir) / cfg.run_id / cfg.scenario / "TEST06"
    run_cfg = RunConfig(
        scenario=cfg.scenario,
        mode="performance",
        benchmark=cfg.benchmark,
        dataset=cfg.dataset,
        preset="quick",
        sut=cfg.sut,
        transport=cfg.transport,
        backend=cfg.backend,
        qps=cfg.qps,
        max_new_tokens=cfg.max_new_tokens,
        # OUT/<run-id>/TEST06/<scenario>/performance: no directory name twice for the default run id "compliance".
        out_dir=Path(cfg.out_dir) / cfg.run_id,
        run_id="TEST06",
    )
    # The pass reads the audit.config from a temp dir; TEST06/ gets its copy once the pass ran, so a
    # run refused before it starts leaves nothing behind.
    with tempfile.TemporaryDirectory(prefix="lpuperf-test06-") as tmp:
        res = run_benchmark(run_cfg.model_copy(update={"audit_config": write_audit_config(Path(tmp))}))
    write_audit_config(test06_dir)
    log_dir = Path(res.log_dir)
    artifact: dict[str, JsonValue] = dict(res.artifact)
    if not artifact and (log_dir / "artifact.json").is_file():
        artifact = read_json_object(log_dir / "artifact.json", "artifact manifest", ComplianceInputError)
    eos = eos_from_manifest(artifact, f"{log_dir}/artifact.json")
    # LoadGen's scenario name: Interactive runs as Server, which keeps the first-token check.
    scenario = loadgen_scenario(cfg.scenario)
    problem = audit_problem(log_dir / "mlperf_log_detail.txt", scenario)
    return verify_log(
        log_dir / "mlperf_log_accuracy.json", scenario, test06_dir, eos, run_dir=str(log_dir), audit_problem=problem
    )
