"""RunResult, the parsers that fill it from LoadGen's own logs, and how it is shown on the console.

``mlperf_log_detail.txt`` holds one ``:::MLLOG {json}`` record per line; it is the source of truth
for validity, rates and percentiles. The summary is only read for the two labels whose wording
changed across LoadGen versions ("time to output token" vs "time per output token").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import write_atomic
from loadgen_harness._replicas import FleetResult
from loadgen_harness._shard import ShardedRun, ShardInfo

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


class LatencyLimits(BaseModel):
    """The per-query latency limits LoadGen judged the run against (ms), from its detail log.

    A Server run with token latencies is judged on TTFT and TPOT; one without on end-to-end latency.
    LoadGen compares the ``percentile`` (99th) of each against its limit.
    """

    model_config = ConfigDict(extra="forbid")

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    latency_ms: float | None = None
    percentile: float = 99.0


class EarlyStoppingNeed(BaseModel):
    """LoadGen's early-stopping verdict that a run had too few queries to judge one percentile."""

    model_config = ConfigDict(extra="forbid")

    metric: Literal["ttft", "tpot", "latency"]
    processed_queries: int
    needed_queries: int  # in all: processed plus the "at least N more" LoadGen asked for


class TokenStats(BaseModel):
    """A per-query token count's mean and distribution (tokens)."""

    model_config = ConfigDict(extra="forbid")

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: int | None = None


class ReasoningStats(BaseModel):
    """Reasoning models: how each successful query split into reasoning and answer, and when the answer began.

    ``ttfa_ms`` is the time to the first answer token (from the query's issue, like TTFT); TTFT stays
    MLPerf's, the first token of any kind. ``n_without_answer`` counts successful queries whose answer
    never started (the output ended inside the reasoning, e.g. at max_new_tokens).
    """

    model_config = ConfigDict(extra="forbid")

    n_queries: int = Field(default=0, description="successful queries")
    n_with_reasoning: int = Field(default=0, description="successful queries with at least one reasoning token")
    n_without_answer: int = 0
    reasoning_tokens: TokenStats = Field(default_factory=TokenStats)
    answer_tokens: TokenStats = Field(default_factory=TokenStats)
    reasoning_fraction: float | None = Field(default=None, description="reasoning tokens / all output tokens, 0..1")
    ttfa_ms: Percentiles = Field(default_factory=Percentiles)


class Goodput(BaseModel):
    """Queries that succeeded within every per-query limit (TTFT and TPOT, or end-to-end latency)."""

    model_config = ConfigDict(extra="forbid")

    n_good_queries: int
    n_queries: int  # every finished query, failed ones included
    fraction: float | None = None  # n_good_queries / n_queries, 0..1
    qps: float | None = None  # good queries over LoadGen's window
    ttft_limit_ms: float | None = None
    tpot_limit_ms: float | None = None
    latency_limit_ms: float | None = None


class InterTokenLatency(BaseModel):
    """Inter-token latency as the harness sees the stream, distributions over successful queries.

    ``itl_ms``: per query, (last streamed message - first) / (tokens after the first message), i.e.
    the mean wait per token once the first arrived. ``max_gap_ms``: per query, the longest wait
    between two consecutive messages (the worst stall its user saw). A message may carry several
    tokens, so the gaps are between messages, not single tokens.
    """

    model_config = ConfigDict(extra="forbid")

    n_queries: int = 0
    itl_ms: Percentiles = Field(default_factory=Percentiles)
    max_gap_ms: Percentiles = Field(default_factory=Percentiles)


RunState = Literal["complete", "interrupted", "failed"]


class OverloadStop(BaseModel):
    """A Server run stopped early: more queries were outstanding than its in-flight limit (results.json ``overload``).

    LoadGen stops issuing past its outstanding-query limit and would wait for every query still out,
    however far behind the SUT is; the harness then fails them all (status ``OVERLOADED``) so the run
    ends now, with memory bounded by the limit.
    """

    model_config = ConfigDict(extra="forbid")

    at_s: float = Field(description="seconds since the run started (queries.npz's clock)")
    outstanding: int = Field(description="queries outstanding when the limit was crossed")
    limit: int = Field(description="the run's in-flight limit (LoadGen's server_max_async_queries)")
    completed_ok: int = Field(default=0, description="queries the SUT answered successfully before the stop")
    planned_queries: int | None = Field(default=None, description="queries LoadGen's schedule held")
    completed_fraction: float | None = Field(default=None, description="completed_ok / planned_queries, 0..1")

    def reason(self) -> str:
        done = (
            f"the SUT completed {100 * self.completed_fraction:.1f} % of the schedule "
            f"({self.completed_ok} of {self.planned_queries} queries)"
            if self.completed_fraction is not None
            else f"the SUT completed {self.completed_ok} queries"
        )
        return (
            f"overloaded: {done}; stopped at {self.at_s:.1f} s with {self.outstanding} outstanding "
            f"(limit {self.limit}, max_in_flight)"
        )


LOADGEN_NOTE = "not an MLPerf LoadGen run: latencies are from each query's due time, validity is the stated basis"


class LoadInfo(BaseModel):
    """How a run beside LoadGen sent its queries (results.json ``load``); None for a LoadGen run."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="the load shape: concurrency, rate, trace or sessions")
    spec: str = Field(description="the --load value as given")
    note: str = LOADGEN_NOTE
    concurrency: int | None = Field(default=None, description="requests (or sessions) kept in flight")
    ramp_up_s: float | None = None
    rate_qps: float | None = Field(default=None, description="an open loop's target rate")
    arrival: Literal["poisson", "constant"] | None = None
    duration_s: float | None = Field(default=None, description="how long new requests were sent")
    max_requests: int | None = None
    trace: str | None = Field(default=None, description="the replayed trace or session file")
    trace_format: str | None = None
    speed: float | None = None
    planned_requests: int | None = Field(default=None, description="requests the trace or session file held")
    sent_requests: int = 0
    validity_basis: str = Field(default="", description="what ``valid`` was judged by")


class DispatchLag(BaseModel):
    """Actual send time minus due time, over the queries that were sent (results.json ``dispatch_lag``).

    A client that cannot keep its schedule sends late; latency still counts from the due time (no
    coordinated omission), and a lag p99 over ``bound_ms`` marks the run client-limited.
    """

    model_config = ConfigDict(extra="forbid")

    n_queries: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    bound_ms: float
    client_limited: bool = False


class TurnStats(BaseModel):
    """One turn index across every session: its requests' TTFT and how much of their prompts the SUT had cached."""

    model_config = ConfigDict(extra="forbid")

    turn: int
    n_queries: int = 0
    ttft_ms: Percentiles = Field(default_factory=Percentiles)
    prompt_tokens_mean: float | None = None
    cached_fraction: float | None = Field(default=None, description="cached prompt tokens / prompt tokens, 0..1")


class SessionStats(BaseModel):
    """Multi-turn and agentic sessions (results.json ``sessions``)."""

    model_config = ConfigDict(extra="forbid")

    n_sessions: int = 0
    completed_sessions: int = 0
    failed_sessions: int = Field(default=0, description="a turn failed; the session's later turns were not sent")
    cut_at_context: int = Field(default=0, description="sessions ended early: the next turn would not fit the context")
    cut_at_end: int = Field(default=0, description="sessions whose later turns fell after the run's end")
    n_requests: int = 0
    tool_calls: int = 0
    session_latency_ms: Percentiles = Field(
        default_factory=Percentiles, description="first turn due to last answer, completed sessions"
    )
    turns: list[TurnStats] = Field(default_factory=list)


class PrefixCacheStats(BaseModel):
    """What the SUT reported served from its prefix cache, over successful queries that state their prompt length."""

    model_config = ConfigDict(extra="forbid")

    n_queries: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    hit_fraction: float | None = Field(default=None, description="cached_tokens / prompt_tokens, 0..1")
    queries_with_hit: int = 0


EnergySource = Literal["sim", "dcgm", "rapl", "prometheus"]


class EnergyStats(BaseModel):
    """Energy over the run's measured window (results.json ``energy``), from one power source.

    ``sim``: the artifact's power model as the SUT's power gauge states it; ``dcgm``: an NVIDIA DCGM
    exporter's power; ``rapl``: the host's RAPL counters; ``prometheus``: another scraped power gauge.
    """

    model_config = ConfigDict(extra="forbid")

    source: EnergySource
    window_s: float = Field(description="the measured window the energy covers")
    joules: float
    average_watts: float
    n_queries: int = Field(default=0, description="successful queries in the window")
    output_tokens: int = Field(default=0, description="output tokens of those queries")
    joules_per_query: float | None = None
    joules_per_token: float | None = Field(default=None, description="joules per output token")
    tokens_per_joule: float | None = None
    queries_per_second_per_watt: float | None = Field(
        default=None, description="MLPerf-style performance per watt: completed QPS / average watts"
    )
    replicas: int = Field(default=1, description="replicas whose power is summed")
    warnings: list[str] = Field(default_factory=list)


class RunResult(BaseModel):
    """The machine-readable outcome of one run (results.json): a LoadGen test, or a load shape beside it (``load``)."""

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
    # The dataset spec the run used (the benchmark's unless overridden): ``lpuperf plan`` reads prompts from it.
    dataset: str = ""
    # Per-replica figures and outages of the replicas behind sut_address (one row for a single SUT).
    fleet: FleetResult | None = None
    limits: LatencyLimits | None = None
    early_stopping: list[EarlyStoppingNeed] = Field(default_factory=list)
    goodput: Goodput | None = None
    itl: InterTokenLatency | None = None
    # Set when a Server run stopped early because the SUT fell too far behind (see OverloadStop).
    overload: OverloadStop | None = None
    # Reasoning models only (None when no query streamed a reasoning token).
    reasoning: ReasoningStats | None = None
    # A run beside LoadGen (--load): how it sent, how late its client sent, its sessions.
    load: LoadInfo | None = None
    dispatch_lag: DispatchLag | None = None
    client_limited: bool = False
    sessions: SessionStats | None = None
    prefix_cache: PrefixCacheStats | None = None
    # Energy over the measured window when a power source was scraped (sim power model, DCGM, RAPL).
    energy: EnergyStats | None = None
    # A sharded load (--shard I/N): this shard's place and wall clock; on a merged run, its shards (lpuperf merge).
    shard: ShardInfo | None = None
    sharded: ShardedRun | None = None


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


def latency_limits(values: dict[str, JsonValue]) -> LatencyLimits | None:
    """The per-query limits of a Server run (TTFT/TPOT with token latencies, else end-to-end); None otherwise."""
    if values.get("effective_scenario") != "Server":
        return None
    fraction = _num(values, "effective_target_latency_percentile", "requested_server_target_latency_percentile")
    pct = round(fraction * 100, 4) if fraction else 99.0
    if values.get("requested_use_token_latencies") is True:
        ttft, tpot = _ms(values, "requested_server_ttft_latency"), _ms(values, "requested_server_tpot_latency")
        return LatencyLimits(ttft_ms=ttft, tpot_ms=tpot, percentile=pct) if ttft or tpot else None
    latency = _ms(values, "effective_target_latency_ns")
    return LatencyLimits(latency_ms=latency, percentile=pct) if latency else None


_ES_PROCESSED = re.compile(r"(?:Processed|Only processed)(?: at least)? (\d+) queries", re.IGNORECASE)
_ES_MORE = re.compile(r"at least (\d+) more queries", re.IGNORECASE)
_ES_TOTAL = re.compile(r"at least (\d+) total queries", re.IGNORECASE)


def early_stopping_needs(values: dict[str, JsonValue]) -> list[EarlyStoppingNeed]:
    """For each percentile LoadGen's early stopping could not judge, the queries it had and would need."""
    out: list[EarlyStoppingNeed] = []
    keys: tuple[tuple[str, Literal["ttft", "tpot", "latency"]], ...] = (
        ("early_stopping_ttft_result", "ttft"),
        ("early_stopping_tpot_result", "tpot"),
        ("early_stopping_result", "latency"),
    )
    for key, metric in keys:
        raw = values.get(key)
        if not isinstance(raw, str):
            continue
        text = " ".join(raw.replace("*", " ").split())
        processed = _ES_PROCESSED.search(text)
        more, total = _ES_MORE.search(text), _ES_TOTAL.search(text)
        if processed is None or (more is None and total is None):
            continue
        n = int(processed.group(1))
        needed = n + int(more.group(1)) if more is not None else int(total.group(1)) if total is not None else n
        out.append(EarlyStoppingNeed(metric=metric, processed_queries=n, needed_queries=needed))
    return out


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
    res.limits = latency_limits(v)
    res.early_stopping = early_stopping_needs(v) if res.loadgen_valid is False else []
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
    """The RunResult of a run directory (OUT/<run-id>/<scenario>/<mode>/) or its results.json.

    A plain MLPerf result directory (a scenario directory, ``performance/run_1/``, or the detail log
    itself) is read from LoadGen's logs instead (:mod:`loadgen_harness._mlperf_dir`).
    """
    from loadgen_harness._mlperf_dir import results_from_mlperf_logs, run_results_file

    p = run_results_file(path) if Path(path).is_dir() else Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: results.json not found")
    if p.name == DETAIL_FILE:
        return results_from_mlperf_logs(p.parent)
    return RunResult.model_validate_json(p.read_text(encoding="utf-8"))
