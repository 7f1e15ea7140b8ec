"""RunResult, the parsers that fill it from LoadGen's own logs, and how it is shown on the console.

``mlperf_log_detail.txt`` holds one ``:::MLLOG {json}`` record per line; it is the source of truth
for validity, rates and percentiles. The summary is only read for the two labels whose wording
changed across LoadGen versions ("time to output token" vs "time per output token").
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import write_atomic

RESULTS_FILE = "results.json"
DETAIL_FILE = "mlperf_log_detail.txt"
SUMMARY_FILE = "mlperf_log_summary.txt"
# A VALID Server run whose completed rate is below this share of what a SUT that keeps up would
# complete is reported as overloaded (LoadGen can say VALID for a short overloaded run).
COMPLETED_RATE_WARN_RATIO = 0.95


class Percentiles(BaseModel):
    """Latency percentiles in milliseconds; None where LoadGen reported none."""

    model_config = ConfigDict(extra="forbid")

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    def at(self, pct: Literal["p50", "p90", "p99"]) -> float | None:
        return {"p50": self.p50, "p90": self.p90, "p99": self.p99}[pct]


class SuccessStats(BaseModel):
    """Figures over the queries that succeeded, from the per-query records (the harness's clock).

    LoadGen counts a failed query as completed, with its short time as a latency; these do not.
    The window is LoadGen's (first issue to last completion of any query).
    """

    model_config = ConfigDict(extra="forbid")

    n_queries: int = 0
    n_failed: int = 0
    window_s: float | None = None
    qps: float | None = None
    tokens_per_second: float | None = None
    ttft_ms: Percentiles = Field(default_factory=Percentiles)
    tpot_ms: Percentiles = Field(default_factory=Percentiles)
    latency_ms: Percentiles = Field(default_factory=Percentiles)


RunState = Literal["complete", "interrupted", "failed"]


class RunResult(BaseModel):
    """The machine-readable outcome of one LoadGen run (results.json)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    scenario: str
    mode: str
    benchmark: str
    preset: str
    submittable: bool = False
    valid: bool = False
    loadgen_valid: bool | None = None
    validity_reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    scheduled_qps: float | None = None
    completed_qps: float | None = None
    tokens_per_second: float | None = None
    ttft_ms: Percentiles = Field(default_factory=Percentiles)
    tpot_ms: Percentiles = Field(default_factory=Percentiles)
    latency_ms: Percentiles = Field(default_factory=Percentiles)
    n_queries: int = 0
    n_errors: int = 0
    errors_by_status: dict[str, int] = Field(default_factory=dict)
    loadgen_errors: int = 0
    # LoadGen's effective_*/requested_* values, as its detail log states them.
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    # The manifest GetArtifact returned, as the SUT stated it (a SUT of another make may add keys).
    artifact: dict[str, JsonValue] = Field(default_factory=dict)
    harness_version: str = ""
    log_dir: str = ""
    duration_s: float | None = None
    sut_address: str = ""
    # "interrupted": a signal stopped the run; outstanding queries were completed as failed.
    state: RunState = "complete"
    interrupted_by: Literal["SIGINT", "SIGTERM"] | None = None
    # False when LoadGen's test was abandoned (second signal or drain timeout): its logs are partial.
    loadgen_finished: bool = True
    successful: SuccessStats | None = None


class DetailLog(BaseModel):
    """What the harness reads out of mlperf_log_detail.txt."""

    values: dict[str, JsonValue] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


_MLLOG = ":::MLLOG "


def parse_detail_log(path: str | Path) -> DetailLog:
    """Read every ``:::MLLOG`` record; the last value of a key wins, errors and warnings are kept."""
    p = Path(path)
    if p.is_dir():
        p = p / DETAIL_FILE
    out = DetailLog()
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            pos = line.find(_MLLOG)
            if pos < 0:
                continue
            try:
                rec = json.loads(line[pos + len(_MLLOG) :])
            except json.JSONDecodeError:
                continue  # a line cut by a crash; the rest of the log still counts
            key = rec.get("key")
            if not isinstance(key, str):
                continue
            value = rec.get("value")
            meta = rec.get("metadata") or {}
            if key == "error" or meta.get("is_error"):
                out.errors.append(f"{key}: {value}" if key != "error" else str(value))
            elif key == "warning" or meta.get("is_warning"):
                out.warnings.append(f"{key}: {value}" if key != "warning" else str(value))
            if key not in ("error", "warning"):
                out.values[key] = value
    return out


_SUMMARY_TPOT = re.compile(
    r"^\s*(\d+(?:\.\d+)?) percentile time (?:to|per) output token \(ns\)\s*:\s*(\d+(?:\.\d+)?)", re.IGNORECASE
)
_SUMMARY_TTFT = re.compile(r"^\s*(\d+(?:\.\d+)?) percentile first token latency \(ns\)\s*:\s*(\d+(?:\.\d+)?)", re.I)


def parse_summary_token_latencies(path: str | Path) -> dict[str, dict[str, float]]:
    """{"ttft": {"99.00": ns, ...}, "tpot": {...}} from the summary; both TPOT label spellings accepted."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILE
    out: dict[str, dict[str, float]] = {"ttft": {}, "tpot": {}}
    if not p.is_file():
        return out
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _SUMMARY_TPOT.match(line)
        if m:
            out["tpot"][f"{float(m.group(1)):.2f}"] = float(m.group(2))
            continue
        m = _SUMMARY_TTFT.match(line)
        if m:
            out["ttft"][f"{float(m.group(1)):.2f}"] = float(m.group(2))
    return out


def _ms(values: dict[str, JsonValue], key: str) -> float | None:
    v = values.get(key)
    return round(float(v) / 1e6, 4) if isinstance(v, int | float) else None


def _percentiles(values: dict[str, JsonValue], pattern: str) -> Percentiles:
    return Percentiles(
        p50=_ms(values, pattern.format("50.00")),
        p90=_ms(values, pattern.format("90.00")),
        p99=_ms(values, pattern.format("99.00")),
    )


def _from_summary(ns_by_pct: dict[str, float]) -> Percentiles:
    def get(pct: str) -> float | None:
        v = ns_by_pct.get(pct)
        return None if v is None else round(v / 1e6, 4)

    return Percentiles(p50=get("50.00"), p90=get("90.00"), p99=get("99.00"))


def _num(values: dict[str, JsonValue], *keys: str) -> float | None:
    for k in keys:
        v = values.get(k)
        if isinstance(v, int | float):
            return float(v)
    return None


def fill_from_detail(res: RunResult, detail: DetailLog, summary: dict[str, dict[str, float]] | None = None) -> None:
    """Copy validity, rates, percentiles and effective settings out of the parsed detail log."""
    v = detail.values
    validity = v.get("result_validity")
    res.loadgen_valid = validity == "VALID" if validity is not None else None
    reasons: list[str] = []
    if validity is None and res.mode == "performance":
        reasons.append("LoadGen wrote no result_validity (run did not finish)")
    elif validity is not None and validity != "VALID":
        reasons.append(f"LoadGen: {validity}")
        for key, label in (
            ("result_min_duration_met", "min duration not met"),
            ("result_min_queries_met", "min query count not met"),
            ("result_perf_constraints_met", "performance constraints (latency limits) not met"),
            ("early_stopping_met", "early stopping criteria not met"),
        ):
            if v.get(key) is False:
                reasons.append(label)
    for key in ("early_stopping_ttft_result", "early_stopping_tpot_result", "early_stopping_result"):
        text = v.get(key)
        if isinstance(text, str) and res.loadgen_valid is False and text.strip() and "Run successful." not in text:
            reasons.append(f"{key}: {' '.join(text.replace('*', ' ').split())}")
    res.scheduled_qps = _num(v, "result_scheduled_samples_per_sec")
    res.completed_qps = _num(
        v, "result_completed_samples_per_sec", "result_samples_per_second", "result_qps_with_loadgen_overhead"
    )
    res.tokens_per_second = _num(v, "result_completed_tokens_per_second", "result_tokens_per_second")
    res.ttft_ms = _percentiles(v, "result_first_token_{}_percentile_latency_ns")
    res.tpot_ms = _percentiles(v, "result_time_per_output_token_{}_percentile_ns")
    res.latency_ms = _percentiles(v, "result_{}_percentile_latency_ns")
    if summary is not None:
        # Older LoadGen versions name TPOT "time to output token": fall back to the summary's figures.
        if res.tpot_ms.p99 is None and "99.00" in summary["tpot"]:
            res.tpot_ms = _from_summary(summary["tpot"])
        if res.ttft_ms.p99 is None and "99.00" in summary["ttft"]:
            res.ttft_ms = _from_summary(summary["ttft"])
    res.settings = {k: val for k, val in v.items() if k.startswith(("effective_", "requested_"))}
    res.loadgen_errors = len(detail.errors)
    if detail.errors:
        reasons.append(f"LoadGen logged {len(detail.errors)} error(s): {detail.errors[0]}")
    if res.n_errors:
        by = ", ".join(f"{k}: {n}" for k, n in sorted(res.errors_by_status.items()))
        reasons.append(f"{res.n_errors} of {res.n_queries} queries failed ({by})")
    warning = overload_warning(res, _num(v, "result_query_count"))
    res.validity_reasons = reasons
    res.valid = bool(res.loadgen_valid) and not reasons if res.mode == "performance" else not reasons
    if warning:
        # Reported next to the reasons, but LoadGen's verdict stands: the check is a heuristic.
        res.validity_reasons.append(warning)
        res.warnings.append(warning)


def keep_up_qps(res: RunResult, query_count: float | None = None) -> float | None:
    """The completed rate a SUT that keeps up would show in this run; None without a scheduled rate.

    LoadGen's completed rate divides by the time of the *last* completion, so even a SUT that keeps
    up shows a drain tail of about one query latency. The rate a keeping-up SUT would reach is
    therefore scheduled x D / (D + median latency), D = queries / scheduled rate; an overloaded SUT
    has a growing backlog and falls well below it.
    """
    if not res.scheduled_qps:
        return None
    n = query_count or res.n_queries
    span = n / res.scheduled_qps if n else 0.0
    tail = (res.latency_ms.p50 or 0.0) / 1000.0
    return res.scheduled_qps * span / (span + tail) if span > 0 else res.scheduled_qps


def keep_up_ratio(res: RunResult) -> float | None:
    """Completed rate over :func:`keep_up_qps`: well below 1 means the SUT did not keep up."""
    keep_up = keep_up_qps(res)
    return None if keep_up is None or res.completed_qps is None else res.completed_qps / keep_up


def overload_warning(res: RunResult, query_count: float | None) -> str | None:
    """A warning when a VALID Server run completed well below what a keeping-up SUT shows, else None."""
    if not res.loadgen_valid or res.completed_qps is None:
        return None
    keep_up = keep_up_qps(res, query_count)
    if keep_up is None or res.completed_qps >= COMPLETED_RATE_WARN_RATIO * keep_up:
        return None
    return (
        f"warning: completed {res.completed_qps:.2f} samples/s is well below the scheduled "
        f"{res.scheduled_qps:.2f} (a SUT keeping up would reach ~{keep_up:.2f}): the SUT did not keep up (overloaded)"
    )


def save_results(res: RunResult, directory: str | Path) -> Path:
    return write_atomic(Path(directory) / RESULTS_FILE, res.model_dump_json(indent=2) + "\n")


def load_results(path: str | Path) -> RunResult:
    """Load results.json from a run directory (OUT/<run-id>/<scenario>/<mode>/) or a file path."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p}: results.json not found")
    return RunResult.model_validate_json(p.read_text(encoding="utf-8"))


# ---- console: live progress line and final summary ----

PROGRESS_INTERVAL_S = 2.0


class ProgressTicker:
    """Calls ``callback(elapsed_s, completed, rate_per_s)`` every ~2 s until stopped."""

    def __init__(self, bridge: Any, callback: Callable[[float, int, float], None]) -> None:
        self.bridge = bridge
        self.callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lpuperf-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        t0 = time.monotonic()
        last_t, last_n = t0, 0
        while not self._stop.wait(PROGRESS_INTERVAL_S):
            now = time.monotonic()
            n = int(self.bridge.completed)
            rate = (n - last_n) / max(now - last_t, 1e-9)
            last_t, last_n = now, n
            self.callback(now - t0, n, rate)


def progress_printer(stream: TextIO = sys.stderr) -> Callable[[float, int, float], None]:
    """A callback that rewrites one status line (carriage return) on ``stream``."""

    def show(elapsed: float, completed: int, rate: float) -> None:
        stream.write(f"\r  {elapsed:7.1f} s  completed {completed:8d}  rate {rate:9.1f}/s ")
        stream.flush()

    return show


def _p(p: Percentiles) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    return f"p50 {f(p.p50)}  p90 {f(p.p90)}  p99 {f(p.p99)} ms"


def format_summary(res: RunResult) -> str:
    """The final human summary: verdict with reasons, rates, token latencies, errors, where the results are.

    With failed queries the rates and percentiles shown are over successful queries only: LoadGen
    counts a failed query as completed (fast), so its own figures would headline an inflated rate
    and short latencies. LoadGen's figures follow in brackets, labelled as including the failures.
    """
    verdict = "VALID" if res.valid else "INVALID"
    if res.mode == "accuracy":
        verdict = "ACCURACY RUN COMPLETE" if res.valid else "ACCURACY RUN FAILED"
    if res.state != "complete":
        verdict = f"{res.state.upper()}{f' by {res.interrupted_by}' if res.interrupted_by else ''}"
    lines = [
        f"lpuperf {res.scenario} {res.mode} run '{res.run_id}' ({res.benchmark}, preset {res.preset}"
        f"{'' if res.submittable else ', not submittable'}): {verdict}",
    ]
    lines += [f"  {r}" if r.startswith("warning:") else f"  reason: {r}" for r in res.validity_reasons]

    def num(v: float | None, unit: str) -> str:
        return "-" if v is None else f"{v:.2f}{unit}"

    ok = res.successful
    errs = ", ".join(f"{k} {n}" for k, n in sorted(res.errors_by_status.items()))
    if not res.n_errors and (ok is None or res.completed_qps is not None):
        lines.append(
            f"  QPS completed {num(res.completed_qps, '')} / scheduled {num(res.scheduled_qps, '')}"
            f"   tokens/s {num(res.tokens_per_second, '')}"
        )
        lines.append(f"  TTFT     {_p(res.ttft_ms)}")
        lines.append(f"  TPOT     {_p(res.tpot_ms)}")
        lines.append(f"  latency  {_p(res.latency_ms)}")
        lines.append(f"  queries {res.n_queries}, errors 0")
    elif ok is None:  # results.json from before per-query success figures: no rate can be headlined
        lines.append(
            f"  LoadGen completed {num(res.completed_qps, '')}/s incl. {res.n_errors} failed (successful rate "
            f"unknown) / scheduled {num(res.scheduled_qps, '')}"
        )
        lines.append(f"  LoadGen latencies incl. failed: TTFT {_p(res.ttft_ms)}")
        lines.append(f"  queries {res.n_queries}, errors {res.n_errors} ({errs})")
    else:
        # Also when LoadGen reported nothing (an abandoned test): the records still tell.
        lines.append(
            f"  successful QPS {num(ok.qps, '')} (LoadGen completed {num(res.completed_qps, '')} incl. "
            f"{res.n_errors} failed) / scheduled {num(res.scheduled_qps, '')}"
            f"   successful tokens/s {num(ok.tokens_per_second, '')}"
        )
        for label, mine, theirs in (
            ("TTFT    ", ok.ttft_ms, res.ttft_ms),
            ("TPOT    ", ok.tpot_ms, res.tpot_ms),
            ("latency ", ok.latency_ms, res.latency_ms),
        ):
            lines.append(f"  {label} {_p(mine)}  [LoadGen incl. failed: p50 {num(theirs.p50, '')}]")
        lines.append(
            f"  queries {res.n_queries}: {ok.n_queries} succeeded (figures above), {res.n_errors} failed ({errs})"
        )
    lines.append(f"  results: {res.log_dir}/results.json")
    return "\n".join(lines)
