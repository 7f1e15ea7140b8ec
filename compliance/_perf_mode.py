"""TEST07 and TEST09 end to end: the audit.config, the performance pass with every sample logged, the verdict.

Both tests make one LoadGen performance pass with an audit.config (mode 2, unique issue, every sample
logged) and verify its accuracy log: TEST07 scores it with an accuracy script, TEST09 measures its mean
output length. Layout under ``OUT/<run-id>/``, as MLPerf's run_verification.py lays it out:

* ``TEST07/<scenario>/performance/`` (or ``TEST09/...``): the LoadGen pass (MLPerf logs, results.json, ...);
* ``<scenario>/TEST07/``: ``verify_accuracy.txt``, ``accuracy/mlperf_log_accuracy.json``,
  ``performance/run_1/{mlperf_log_summary.txt, mlperf_log_detail.txt}``, ``audit.config`` and
  ``test07_report.json``; ``<scenario>/TEST09/`` the same with ``verify_output_len.txt`` and
  ``test09_report.json``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from common import atomic_path, write_atomic
from compliance._accuracy_log import ComplianceInputError
from compliance._audit import (
    AUDIT_CONFIG_FILE,
    audit_config_text,
    audit_problem,
    coverage_problem,
    read_audit_value,
    sampling_target,
)
from compliance._runner import CompliancePassConfig
from compliance._test07 import DEFAULT_SCORE_PATTERN, AccuracyScript, Test07Report, verify_test07
from compliance._test07 import REPORT_FILE as TEST07_REPORT_FILE
from compliance._test07 import VERIFY_FILE as TEST07_VERIFY_FILE
from compliance._test09 import REPORT_FILE as TEST09_REPORT_FILE
from compliance._test09 import VERIFY_FILE as TEST09_VERIFY_FILE
from compliance._test09 import Test09Report, verify_test09
from loadgen_harness import accuracy_log_path, read_accuracy_log_entries
from scenarios import BenchmarkProfile, ScenarioName, get_benchmark

PerfModeTest = Literal["TEST07", "TEST09"]
_LOGS = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")


class PerfModeConfig(CompliancePassConfig):
    """One TEST07 or TEST09 pass (Offline by default)."""

    scenario: ScenarioName = "Offline"
    benchmark: str = "gpt-oss-120b"
    preset: Literal["quick", "submission"] = "quick"
    audit_config: Path | None = Field(default=None, description="an audit.config to use instead of the project's")


class Test07Config(PerfModeConfig):
    threshold: float | None = Field(default=None, description="overrides the audit.config's test07_accuracy_threshold")
    score_pattern: str = DEFAULT_SCORE_PATTERN


class Test09Config(PerfModeConfig):
    min_output_tokens: float | None = Field(default=None, ge=0, description="overrides test09_min_output_tokens")
    max_output_tokens: float | None = Field(default=None, ge=0, description="overrides test09_max_output_tokens")


class Test07Outcome(BaseModel):
    """TEST07's report and where it went; ``passed`` also needs the audit settings to have been in effect."""

    test07: Test07Report
    test07_dir: str
    run_dir: str = ""
    audit_problem: str = ""
    passed: bool
    message: str

    @property
    def verify_path(self) -> Path:
        return Path(self.test07_dir) / TEST07_VERIFY_FILE


class Test09Outcome(BaseModel):
    test09: Test09Report
    test09_dir: str
    run_dir: str = ""
    audit_problem: str = ""
    passed: bool
    message: str

    @property
    def verify_path(self) -> Path:
        return Path(self.test09_dir) / TEST09_VERIFY_FILE


# --- audit configs -------------------------------------------------------------------------------


def issued_samples(bench: BenchmarkProfile, dataset: str | None) -> int:
    """How many samples a performance pass with unique issue sends: the performance sample count the
    harness gives LoadGen, min(dataset size, the benchmark's count)."""
    from scenarios import DatasetError, resolve_dataset

    try:
        n = len(resolve_dataset(dataset or bench.dataset))
    except (DatasetError, ValueError) as exc:
        raise ComplianceInputError(str(exc).splitlines()[0]) from None
    return min(n, bench.total_sample_count)


def test07_threshold_default(bench: BenchmarkProfile) -> float | None:
    """MLPerf's TEST07 threshold for the benchmark; else its checker's exact_match target (None when neither)."""
    if bench.test07 is not None:
        return bench.test07.accuracy_threshold
    rules = bench.rules
    return rules.accuracy_targets.get("exact_match") if rules is not None else None


def test09_bounds_default(bench: BenchmarkProfile) -> tuple[float, float] | None:
    """MLPerf's TEST09 bounds; else the checker's TOKENS_PER_SAMPLE window (None when neither)."""
    if bench.test09 is not None:
        return bench.test09.min_output_tokens, bench.test09.max_output_tokens
    rules = bench.rules
    if rules is not None and "TOKENS_PER_SAMPLE" in rules.accuracy_targets:
        return rules.accuracy_targets["TOKENS_PER_SAMPLE"], rules.accuracy_upper_limits["TOKENS_PER_SAMPLE"]
    return None


def test07_audit_text(bench: BenchmarkProfile, n: int, threshold: float) -> str:
    upstream = bench.test07.accuracy_log_sampling_target if bench.test07 is not None else n
    return audit_config_text(
        f"TEST07 audit settings for {bench.name}",
        n,
        sampling_target(n, upstream),
        {"test07_accuracy_threshold": threshold},
    )


def test09_audit_text(bench: BenchmarkProfile, n: int, bounds: tuple[float, float]) -> str:
    upstream = bench.test09.accuracy_log_sampling_target if bench.test09 is not None else n
    return audit_config_text(
        f"TEST09 audit settings for {bench.name}",
        n,
        sampling_target(n, upstream),
        {"test09_min_output_tokens": bounds[0], "test09_max_output_tokens": bounds[1]},
    )


def expected_effective(audit: Path) -> dict[str, JsonValue]:
    """What LoadGen's detail log must show when ``audit`` was applied."""
    out: dict[str, JsonValue] = {
        "effective_test_mode": "PerformanceOnly",
        "effective_performance_issue_unique": True,
        "effective_sample_concatenate_permutation": False,
    }
    target, _ = read_audit_value(audit, "accuracy_log_sampling_target", strip_inline_comment=True)
    if target is not None:
        out["effective_accuracy_log_sampling_target"] = int(target)
    return out


# --- the pass and the layout ---------------------------------------------------------------------


def _run_pass(cfg: PerfModeConfig, test: PerfModeTest, audit_text: str) -> tuple[Path, str]:
    """The performance pass under ``audit_text`` (or the given audit.config); (its log dir, run problem)."""
    from loadgen_harness import RunConfig, run_benchmark

    run_cfg = RunConfig(
        scenario=cfg.scenario,
        mode="performance",
        benchmark=cfg.benchmark,
        dataset=cfg.dataset,
        preset=cfg.preset,
        sut=cfg.sut,
        transport=cfg.transport,
        backend=cfg.backend,
        qps=cfg.qps,
        max_new_tokens=cfg.max_new_tokens,
        out_dir=Path(cfg.out_dir) / cfg.run_id,
        run_id=test,
    )
    with tempfile.TemporaryDirectory(prefix=f"lpuperf-{test.lower()}-") as tmp:
        audit = cfg.audit_config or write_atomic(Path(tmp) / AUDIT_CONFIG_FILE, audit_text)
        res = run_benchmark(run_cfg.model_copy(update={"audit_config": audit}))
    problem = f"{res.n_errors} of {res.n_queries} queries failed: their outputs are not the SUT's answers"
    return Path(res.log_dir), problem if res.n_errors else ""


def _lay_out(log_dir: Path, out: Path, audit_text: str) -> None:
    """``<scenario>/TEST0x/``: the whole accuracy log, the performance logs and the audit.config (MLPerf's layout;
    the verify file follows once the verdict is known)."""
    out.mkdir(parents=True, exist_ok=True)
    log = log_dir / "mlperf_log_accuracy.json"
    dest = out / "accuracy" / "mlperf_log_accuracy.json"
    dest.parent.mkdir(exist_ok=True)
    if log.is_file() and log.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(log, tmp)
    for name in _LOGS:
        if (log_dir / name).is_file() and (log_dir / name).resolve() != (
            out / "performance" / "run_1" / name
        ).resolve():
            write_atomic(out / "performance" / "run_1" / name, (log_dir / name).read_bytes())
    if audit_text:
        write_atomic(out / AUDIT_CONFIG_FILE, audit_text)


def _audit_check(log_dir: Path, audit: Path, what: str) -> str:
    from loadgen_harness import parse_detail_log

    detail = log_dir / "mlperf_log_detail.txt"
    if not detail.is_file():
        return f"{detail}: not found; cannot confirm {what}'s audit settings were applied"
    return audit_problem(parse_detail_log(detail).values, expected_effective(audit), what)


def _entries(log_dir: Path) -> tuple[Path, list[dict[str, JsonValue]]]:
    log = accuracy_log_path(log_dir)
    return log, read_accuracy_log_entries(log, ComplianceInputError)


def _qsl_indices(entries: list[dict[str, JsonValue]]) -> list[int]:
    return [v if isinstance(v := e.get("qsl_idx"), int) and not isinstance(v, bool) else -1 for e in entries]


def _audit_source(audit: Path | None, fallback_text: str) -> str:
    return (
        audit.read_text(encoding="utf-8", errors="replace") if audit is not None and audit.is_file() else fallback_text
    )


def verify_test07_log(
    log_dir: Path,
    test07_dir: Path,
    script: AccuracyScript,
    script_name: str,
    *,
    audit_config: Path | None = None,
    threshold: float | None = None,
    expected_samples: int | None = None,
    score_pattern: str = DEFAULT_SCORE_PATTERN,
    run_problem: str = "",
    audit_text: str = "",
) -> Test07Outcome:
    """Verify a finished performance pass's accuracy log with TEST07 and write the ``TEST07/`` layout.

    The threshold is ``threshold`` when given, else the audit config's ``test07_accuracy_threshold`` (read as
    MLPerf's script reads it). ``expected_samples`` (the samples the pass issued) adds the coverage check.
    """
    log_dir = log_dir.parent if log_dir.is_file() else log_dir
    log, entries = _entries(log_dir)
    _lay_out(log_dir, test07_dir, _audit_source(audit_config, audit_text))
    audit = test07_dir / AUDIT_CONFIG_FILE
    source = "given"
    if threshold is None:
        threshold, warning = read_audit_value(audit, "test07_accuracy_threshold", strip_inline_comment=False)
        source = "audit.config"
        if threshold is None:
            raise ComplianceInputError(
                f"{audit}: no test07_accuracy_threshold{f' ({warning})' if warning else ''}; give a threshold"
            )
    cover = coverage_problem(_qsl_indices(entries), expected_samples, "TEST07") if expected_samples else ""
    report = verify_test07(
        script(log),
        threshold,
        accuracy_log=str(log),
        n_entries=len(entries),
        script=script_name,
        threshold_source=source,
        score_pattern=score_pattern,
        coverage_problem=cover,
    )
    problem = "; ".join(
        p for p in (_audit_check(log_dir, audit, "TEST07") if audit_text or audit_config else "", run_problem) if p
    )
    write_atomic(test07_dir / TEST07_VERIFY_FILE, report.verify_text)
    write_atomic(test07_dir / TEST07_REPORT_FILE, report.model_dump_json(indent=2) + "\n")
    return Test07Outcome(
        test07=report,
        test07_dir=str(test07_dir),
        run_dir=str(log_dir),
        audit_problem=problem,
        passed=report.passed and not problem,
        message=" | ".join(m for m in (problem, report.message) if m),
    )


def verify_test09_log(
    log_dir: Path,
    test09_dir: Path,
    *,
    audit_config: Path | None = None,
    bounds: tuple[float | None, float | None] = (None, None),
    expected_samples: int | None = None,
    run_problem: str = "",
    audit_text: str = "",
    bounds_note: str = "",
) -> Test09Outcome:
    """Verify a finished performance pass's accuracy log with TEST09 and write the ``TEST09/`` layout.

    Each bound is the given one, else the audit config's (read as MLPerf's script reads it, inline comments
    stripped).
    """
    log_dir = log_dir.parent if log_dir.is_file() else log_dir
    log, entries = _entries(log_dir)
    _lay_out(log_dir, test09_dir, _audit_source(audit_config, audit_text))
    audit = test09_dir / AUDIT_CONFIG_FILE
    lo, hi = bounds
    if lo is None:
        lo, _ = read_audit_value(audit, "test09_min_output_tokens", strip_inline_comment=True)
    if hi is None:
        hi, _ = read_audit_value(audit, "test09_max_output_tokens", strip_inline_comment=True)
    if lo is None or hi is None:
        raise ComplianceInputError(
            f"{audit}: output token thresholds not specified (test09_min_output_tokens, test09_max_output_tokens); "
            "give both bounds"
        )
    cover = coverage_problem(_qsl_indices(entries), expected_samples, "TEST09") if expected_samples else ""
    report = verify_test09(entries, lo, hi, str(log), cover, bounds_note)
    problem = "; ".join(
        p for p in (_audit_check(log_dir, audit, "TEST09") if audit_text or audit_config else "", run_problem) if p
    )
    write_atomic(test09_dir / TEST09_VERIFY_FILE, report.verify_text)
    write_atomic(test09_dir / TEST09_REPORT_FILE, report.model_dump_json(indent=2) + "\n")
    return Test09Outcome(
        test09=report,
        test09_dir=str(test09_dir),
        run_dir=str(log_dir),
        audit_problem=problem,
        passed=report.passed and not problem,
        message=" | ".join(m for m in (problem, report.message) if m),
    )


def _scenario_dir(cfg: PerfModeConfig, test: PerfModeTest) -> Path:
    return Path(cfg.out_dir) / cfg.run_id / cfg.scenario / test


def run_test07(cfg: Test07Config, script: AccuracyScript, script_name: str) -> Test07Outcome:
    """TEST07: a performance pass with every sample logged, scored by ``script``, against the threshold."""
    bench = get_benchmark(cfg.benchmark)
    default = test07_threshold_default(bench)
    if default is None and cfg.threshold is None and cfg.audit_config is None:
        raise ComplianceInputError(
            f"benchmark '{bench.name}': MLPerf sets no TEST07 threshold and it has no exact_match target; give a threshold"
        )
    n = issued_samples(bench, cfg.dataset)
    text = test07_audit_text(bench, n, default if default is not None else float(cfg.threshold or 0.0))
    log_dir, run_problem = _run_pass(cfg, "TEST07", text)
    return verify_test07_log(
        log_dir,
        _scenario_dir(cfg, "TEST07"),
        script,
        script_name,
        audit_config=cfg.audit_config,
        threshold=cfg.threshold,
        expected_samples=n,
        score_pattern=cfg.score_pattern,
        run_problem=run_problem,
        audit_text=text,
    )


def _sut_reasoning_scale(log_dir: Path) -> float:
    """The reasoning scale the pass's SUT declares in its manifest (1.0: none, or not a reasoning artifact)."""
    from common import read_json_object

    path = log_dir / "artifact.json"
    if not path.is_file():
        return 1.0
    reasoning = read_json_object(path, "artifact manifest", ComplianceInputError).get("reasoning")
    scale = reasoning.get("reasoning_scale") if isinstance(reasoning, dict) else None
    return float(scale) if isinstance(scale, int | float) and not isinstance(scale, bool) and 0 < scale < 1 else 1.0


def scaled_bounds(
    bounds: tuple[float, float], dataset: str, scale: float, n: int
) -> tuple[tuple[float, float], str] | None:
    """TEST09's bounds for a SUT that shortens its reasoning on purpose (a quick sim), and why; None when the
    dataset has no reference at that scale (a packaged reasoning set ``reasoning:<model>`` has one).

    The bounds keep their place around the reference mean: each is multiplied by the ratio of the reference
    mean output length at ``scale`` to the unscaled one, over the ``n`` samples the pass issues.
    """
    from scenarios import DatasetError, resolve_dataset

    if not dataset.startswith("reasoning:"):
        return None
    base = ":".join(dataset.split(":")[:2])  # a spec may carry its own scale; the bounds are the unscaled set's
    try:
        full, short = resolve_dataset(base), resolve_dataset(f"{base}:{scale:g}")
    except (DatasetError, ValueError):
        return None
    mean_full = sum(len(r) for r in full.reference_ids[:n]) / n
    mean_short = sum(len(r) for r in short.reference_ids[:n]) / n
    ratio = mean_short / mean_full
    lo, hi = round(bounds[0] * ratio, 2), round(bounds[1] * ratio, 2)
    note = (
        f"the SUT declares reasoning_scale {scale:g} (shortened on purpose): bounds {bounds[0]}/{bounds[1]} scaled "
        f"x{ratio:.4f}, the reference mean output at that scale ({mean_short:.2f}) over the unscaled ({mean_full:.2f}); "
        "not MLPerf's bounds"
    )
    return (lo, hi), note


def sut_scaled_bounds(
    bounds: tuple[float, float], log_dir: Path, dataset: str, n: int
) -> tuple[tuple[float, float], str]:
    """The bounds a pass's SUT is held to: scaled when its manifest (``artifact.json`` next to the log)
    declares a reasoning scale below 1, with the note saying so; else ``bounds`` and no note."""
    scale = _sut_reasoning_scale(log_dir)
    if scale >= 1:
        return bounds, ""
    scaled = scaled_bounds(bounds, dataset, scale, n)
    if scaled is None:
        return bounds, f"the SUT declares reasoning_scale {scale:g} but '{dataset}' has no reference at that scale"
    return scaled


def run_test09(cfg: Test09Config) -> Test09Outcome:
    """TEST09: a performance pass with every sample logged; its mean output length within the bounds.

    A SUT whose manifest declares a reasoning scale below 1 (the quick sim) is held to bounds scaled by its
    reference (:func:`scaled_bounds`), written into the TEST09 audit.config with a note; given bounds or a
    given audit.config are used as they are.
    """
    bench = get_benchmark(cfg.benchmark)
    default = test09_bounds_default(bench)
    given = (cfg.min_output_tokens, cfg.max_output_tokens)
    if default is None and None in given and cfg.audit_config is None:
        raise ComplianceInputError(
            f"benchmark '{bench.name}': MLPerf sets no TEST09 bounds and it has no TOKENS_PER_SAMPLE window; "
            "give both bounds"
        )
    n = issued_samples(bench, cfg.dataset)
    bounds = default if default is not None else (float(given[0] or 0), float(given[1] or 0))
    text = test09_audit_text(bench, n, bounds)
    log_dir, run_problem = _run_pass(cfg, "TEST09", text)
    note = ""
    if cfg.audit_config is None and None in given:
        (lo, hi), note = sut_scaled_bounds(bounds, log_dir, cfg.dataset or bench.dataset, n)
        if (lo, hi) != bounds:
            text = test09_audit_text(bench, n, (lo, hi)).replace(
                "# read by the verification", f"# {note}\n# read by the verification"
            )
    return verify_test09_log(
        log_dir,
        _scenario_dir(cfg, "TEST09"),
        audit_config=cfg.audit_config,
        bounds=given,
        expected_samples=n,
        run_problem=run_problem,
        audit_text=text,
        bounds_note=note,
    )
