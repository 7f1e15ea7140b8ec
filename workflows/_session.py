"""One measuring session on one running SUT: performance run(s), the accuracy run and its scores, compliance.

``lpuperf validate`` and ``lpuperf submission run`` both measure an artifact this way; they differ
only in the :class:`SessionConfig` they build (which scenarios, which compliance tests, whether each
LoadGen run gets a process of its own, whether a failing step stops the session). Every result is the
model its stage produces: :class:`RunResult`, :class:`AccuracyReport`, :class:`FidelityReport`,
:class:`Test06Outcome`, :class:`Test07Outcome`, :class:`Test09Outcome`. TEST07 scores its log with the
benchmark's own scorer (``workflows._compliance_runs.ScorerScript``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from accuracy import AccuracyReport, FidelityReport
from compliance import Test06Outcome, Test07Outcome, Test09Outcome
from loadgen_harness import RunConfig, RunError, RunResult, TransportSecurity, load_results
from scenarios import Preset, ScenarioName

# A submission-preset performance run is 600 s plus drain; bound a child run generously.
CHILD_RUN_TIMEOUT_S = 3600.0


class RunStep(BaseModel):
    """One LoadGen run of a session."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="label in the session's messages and results")
    scenario: ScenarioName
    qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)


class SessionConfig(BaseModel):
    """What to measure on one SUT and where the runs go (``OUT/<run_id>/<scenario>/<mode>/``)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1)
    benchmark: str = "embedded"
    dataset: str | None = None
    preset: Preset = "quick"
    max_new_tokens: int | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    user_conf: Path | None = None
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT"
    )
    performance: list[RunStep] = Field(default_factory=list)
    accuracy: RunStep | None = Field(default=None, description="accuracy-mode run, scored into its run directory")
    test06: RunStep | None = Field(default=None, description="TEST06's scenario and rate")
    test07: RunStep | None = Field(default=None, description="TEST07's scenario (accuracy in performance mode)")
    test09: RunStep | None = Field(default=None, description="TEST09's scenario (mean output length)")
    # LoadGen loads a user.conf once per process, so runs with one each get a process of their own.
    own_process: bool = False
    keep_going: bool = Field(default=False, description="record a failing step in errors and go on, else raise")

    @property
    def isolated(self) -> bool:
        return self.own_process or self.user_conf is not None


class SessionResult(BaseModel):
    """Each step's result; a step that failed (with ``keep_going``) is absent and named in ``errors``."""

    performance: dict[str, RunResult] = Field(default_factory=dict, description="by RunStep.name")
    accuracy_run: RunResult | None = None
    accuracy: AccuracyReport | None = None
    fidelity: FidelityReport | None = Field(default=None, description="per-sample rows dropped")
    test06: Test06Outcome | None = None
    test07: Test07Outcome | None = None
    test09: Test09Outcome | None = None
    errors: list[str] = Field(default_factory=list)


class Session:
    """Runs a :class:`SessionConfig` against the SUT at ``address``."""

    def __init__(self, cfg: SessionConfig, address: str, echo: Callable[[str], None] = print, label: str = "") -> None:
        self.cfg, self.address, self.echo = cfg, address, echo
        self.prefix = f"[{label}] " if label else ""

    def run(self) -> SessionResult:
        out = SessionResult()
        cfg = self.cfg
        for step in cfg.performance:
            self._step(out, f"{step.name} performance", self._performance, step)
        if cfg.accuracy is not None:
            self._step(out, "accuracy", self._accuracy, cfg.accuracy)
        if cfg.test06 is not None:
            self._step(out, "TEST06", self._test06, cfg.test06)
        if cfg.test07 is not None:
            self._step(out, "TEST07", self._test07, cfg.test07)
        if cfg.test09 is not None:
            self._step(out, "TEST09", self._test09, cfg.test09)
        return out

    def _step(self, out: SessionResult, what: str, fn: Callable[[SessionResult, RunStep], None], step: RunStep) -> None:
        t0 = time.monotonic()
        try:
            fn(out, step)
        except Exception as exc:  # with keep_going, a broken step is evidence against the SUT, not a crash
            if not self.cfg.keep_going:
                raise
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            out.errors.append(f"{what}: {msg}")
            self.echo(f"{self.prefix}{what}: ERROR {msg}")
            return
        self.echo(f"{self.prefix}{what}: done in {time.monotonic() - t0:.1f} s")

    def _performance(self, out: SessionResult, step: RunStep) -> None:
        res = self.run_one(step, "performance")
        out.performance[step.name] = res
        self.echo(f"{self.prefix}{step.name}: {'VALID' if res.valid else 'INVALID'} in {res.log_dir}")

    def _accuracy(self, out: SessionResult, step: RunStep) -> None:
        from accuracy import score_accuracy_log

        res = self.run_one(step.model_copy(update={"duration_s": None}), "accuracy")
        out.accuracy_run = res
        log_dir = Path(res.log_dir)
        # accuracy.txt/json and fidelity.json land in the run directory, where the gate finds them.
        scored = score_accuracy_log(
            log_dir, dataset_spec=self.cfg.dataset, benchmark=self.cfg.benchmark, out_dir=log_dir
        )
        out.accuracy = scored.report
        out.fidelity = scored.fidelity.model_copy(update={"samples": []}) if scored.fidelity else None
        r = scored.report
        scores = ", ".join(f"{name} {r.scores_percent[name]:.2f}" for name in sorted(r.scores_percent))
        self.echo(
            f"{self.prefix}accuracy: {scores} (%), {r.gen_num} samples, "
            f"{r.tokens_per_sample:.1f} tokens/sample in {log_dir}"
        )

    def _test06(self, out: SessionResult, step: RunStep) -> None:
        from compliance import ComplianceOutcome, Test06Config, run_test06

        cfg = self.cfg
        out.test06 = run_test06(
            Test06Config(
                scenario=step.scenario,
                benchmark=cfg.benchmark,
                dataset=cfg.dataset,
                sut=self.address,
                transport=cfg.transport,
                qps=step.qps,
                max_new_tokens=cfg.max_new_tokens,
                out_dir=cfg.out_dir,
                run_id=cfg.run_id,
            )
        )
        # The reports' messages open with their own verdict; the outcome's message is the detail alone.
        outcome = ComplianceOutcome.from_report(out.test06)
        self.echo(f"{self.prefix}TEST06 {'PASS' if outcome.passed else 'FAIL'}: {outcome.message}")

    def _perf_mode_fields(self, step: RunStep) -> dict[str, object]:
        cfg = self.cfg
        return {
            "scenario": step.scenario,
            "benchmark": cfg.benchmark,
            "dataset": cfg.dataset,
            "sut": self.address,
            "transport": cfg.transport,
            "preset": cfg.preset,
            "qps": step.qps,
            "max_new_tokens": cfg.max_new_tokens,
            "out_dir": cfg.out_dir,
            "run_id": cfg.run_id,
        }

    def _test07(self, out: SessionResult, step: RunStep) -> None:
        from compliance import ComplianceOutcome, Test07Config, run_test07
        from workflows._compliance_runs import ScorerScript

        script = ScorerScript(self.cfg.benchmark, self.cfg.dataset)
        out.test07 = run_test07(Test07Config.model_validate(self._perf_mode_fields(step)), script, script.name)
        outcome = ComplianceOutcome.from_report(out.test07)
        self.echo(f"{self.prefix}TEST07 {'PASS' if outcome.passed else 'FAIL'}: {outcome.message}")

    def _test09(self, out: SessionResult, step: RunStep) -> None:
        from compliance import ComplianceOutcome, Test09Config, run_test09

        out.test09 = run_test09(Test09Config.model_validate(self._perf_mode_fields(step)))
        outcome = ComplianceOutcome.from_report(out.test09)
        self.echo(f"{self.prefix}TEST09 {'PASS' if outcome.passed else 'FAIL'}: {outcome.message}")

    def run_config(self, step: RunStep, mode: str) -> RunConfig:
        cfg = self.cfg
        return RunConfig.model_validate(
            {
                "scenario": step.scenario,
                "mode": mode,
                "benchmark": cfg.benchmark,
                "preset": cfg.preset,
                "dataset": cfg.dataset,
                "sut": self.address,
                "transport": cfg.transport,
                "qps": step.qps,
                "duration_s": step.duration_s,
                "out_dir": cfg.out_dir,
                "run_id": cfg.run_id,
                "user_conf": cfg.user_conf,
                "max_new_tokens": cfg.max_new_tokens,
            }
        )

    def run_one(self, step: RunStep, mode: str) -> RunResult:
        run_cfg = self.run_config(step, mode)
        if not self.cfg.isolated:
            from loadgen_harness import run_benchmark

            return run_benchmark(run_cfg)
        return run_in_child(run_cfg)


_CHILD = """\
import sys
from loadgen_harness import RunConfig, RunError, run_benchmark
try:
    run_benchmark(RunConfig.model_validate_json(sys.argv[1]))
except RunError as exc:
    sys.exit(f"run: {exc}")
"""


def run_in_child(cfg: RunConfig, timeout_s: float = CHILD_RUN_TIMEOUT_S) -> RunResult:
    """``run_benchmark(cfg)`` in a fresh process (the RunConfig travels as one JSON document)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    run_id = cfg.run_id or time.strftime("run-%Y%m%d-%H%M%S")
    cfg = cfg.model_copy(update={"run_id": run_id})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, cfg.model_dump_json()],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
    )
    log_dir = cfg.log_dir(run_id)
    if proc.returncode != 0 or not (log_dir / "results.json").is_file():
        lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
        raise RunError(f"{cfg.scenario} {cfg.mode} run failed (exit {proc.returncode}): {lines[-1]}")
    return load_results(log_dir)


def run_session(
    cfg: SessionConfig, address: str, echo: Callable[[str], None] = print, label: str = ""
) -> SessionResult:
    """Performance run(s), the scored accuracy run and the compliance tests on the SUT at ``address``."""
    return Session(cfg, address, echo, label).run()
