"""``lpuperf sweep``: one load run per point, the latency-throughput curve, its knee and its best point.

A sweep steps one load shape beside LoadGen (``concurrency:N`` closed loops or ``rate:R`` open loops)
over a list of loads, or, with ``auto``, from a start upwards by a factor until the SUT saturates. Each
point is an ordinary load run (``OUT/<sweep-id>/points/<label>/<Scenario>/performance/``); the sweep
reads back each point's results and per-query records into :class:`SweepPoint` and writes
``sweep.json`` (:class:`SweepResult`) and ``sweep.html`` beside them.

* **Throughput** is output tokens per second over the successful queries (``tokens_per_second`` of the
  point's results); completed queries per second is shown beside it.
* **Per-user tokens/s** (:data:`PER_USER_DEFINITION`) is what one request sees: the successful queries'
  output tokens over the sum of their latencies. By Little's law that is throughput divided by the mean
  number of requests in flight, so a closed loop of N at steady state gives about throughput / N.
* **Meeting the SLO**: by default a point meets it when its run is valid (the benchmark's TTFT/TPOT
  limits at p99, no failed query, the client on schedule); with an SLO file, when the gate's objectives
  read from results.json all pass (accuracy, fidelity and compliance objectives need runs a sweep does
  not make and are left out).
* **Best point**: the highest throughput among complete points that meet the SLO and whose client kept
  its schedule (a client-limited point measured the client, not the SUT). A point over the SLO is never
  best, however high its throughput.
* **Saturation** (:func:`detect_saturation`): the first step whose throughput gain is below
  ``min_gain`` (5 %) while TTFT p99 or latency p99 rose by at least ``min_latency_rise`` (10 %): more
  load bought queueing, not throughput. The knee is the point before that step.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common import BackendSpec, RunId, UsageError, first_error_line
from loadgen_harness import RunResult, TransportSecurity

if TYPE_CHECKING:
    from gate import SloSpec

SWEEP_FILE = "sweep.json"
SWEEP_PAGE = "sweep.html"
POINTS_DIR = "points"
MAX_POINTS = 64
LoadKind = Literal["concurrency", "rate"]
SweepState = Literal["complete", "interrupted", "failed"]
PER_USER_DEFINITION = (
    "per-user output tokens/s: the successful queries' output tokens over the sum of their latencies (due time "
    "to last token), i.e. output tokens/s divided by the mean number of requests in flight (Little's law); a "
    "closed loop of N at steady state gives about output tokens/s / N"
)
THROUGHPUT_DEFINITION = "throughput: output tokens per second over the successful queries"
SWEEP_NOTE = (
    "not an MLPerf LoadGen run: each point is a load run beside LoadGen, latencies from each query's due time, "
    "judged on the stated SLO"
)


class SweepError(UsageError):
    """Bad sweep input (a load list, an SLO, a sweep directory): one line, exit 2."""


# ---- what to sweep ---------------------------------------------------------------------------


class SweepLoads(BaseModel):
    """The loads of a sweep: one shape, its values (ascending), options every point's --load carries."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: LoadKind
    values: list[float] = Field(min_length=1, max_length=MAX_POINTS)
    options: str = Field(default="", description="extra --load parts for every point, e.g. 'constant:seed=3'")

    def spec(self, value: float) -> str:
        """The --load value of the point at ``value`` (``concurrency:8``, ``rate:12.5:constant``)."""
        return f"{self.kind}:{fmt_load(value)}" + (f":{self.options}" if self.options else "")

    def label(self, index: int, value: float) -> str:
        """The point's run id: its place in the sweep and its load (``03-concurrency-4``)."""
        return f"{index:02d}-{self.kind}-{fmt_load(value)}"


def fmt_load(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.10g}"


def _numbers(kind: LoadKind, text: str, flag: str) -> list[float]:
    """The comma-separated loads of ``flag``, ascending; SweepError naming the bad item otherwise."""
    what = "concurrencies such as 1,2,4,8" if kind == "concurrency" else "rates (requests/s) such as 10,20,40"
    if not text.strip():
        raise SweepError(f"{flag}: expected a comma-separated list of {what}, got nothing")
    values: list[float] = []
    for item in (x.strip() for x in text.split(",")):
        if kind == "concurrency":
            try:
                n = int(item)
            except ValueError:
                raise SweepError(f"{flag}: expected whole numbers of requests in flight, got '{item}'") from None
            if n < 1:
                raise SweepError(f"{flag}: a concurrency is at least 1, got {n}")
            values.append(float(n))
        else:
            try:
                r = float(item)
            except ValueError:
                raise SweepError(f"{flag}: expected rates in requests per second, got '{item}'") from None
            if not math.isfinite(r) or r <= 0:
                raise SweepError(f"{flag}: a rate is a positive number of requests per second, got '{item}'")
            values.append(r)
    if len(set(values)) != len(values):
        raise SweepError(f"{flag}: each load once, got '{text}'")
    if len(values) > MAX_POINTS:
        raise SweepError(f"{flag}: at most {MAX_POINTS} points, got {len(values)}")
    return sorted(values)


def _checked(loads: SweepLoads, flag: str) -> SweepLoads:
    """Each point's --load as the run will read it: a bad option is refused before anything runs."""
    from loadgen_harness import LoadError, parse_load

    for value in loads.values:
        try:
            parse_load(loads.spec(value))
        except LoadError as exc:
            raise SweepError(str(exc).replace("--load", flag, 1)) from None
    return loads


def _kind(name: str) -> LoadKind | None:
    if name == "concurrency":
        return "concurrency"
    return "rate" if name == "rate" else None


def parse_sweep_load(text: str, flag: str = "--load") -> SweepLoads:
    """``concurrency:1,2,4,8[:ramp=S]`` or ``rate:10,20,40[:poisson|constant][:seed=S]``."""
    name, _, rest = text.strip().partition(":")
    kind = _kind(name)
    if kind is None:
        raise SweepError(f"{flag}: expected concurrency:N1,N2,... or rate:R1,R2,...[:poisson|constant], got '{text}'")
    head, _, options = rest.partition(":")
    loads = SweepLoads(kind=kind, values=_numbers(kind, head, f"{flag} {kind}"), options=options)
    return _checked(loads, flag)


def parse_rates(text: str) -> SweepLoads:
    """``--rates 10,20,40``: Poisson open loops at those rates."""
    return _checked(SweepLoads(kind="rate", values=_numbers("rate", text, "--rates")), "--rates")


def parse_auto(text: str) -> SweepLoads:
    """``--auto``'s start: ``concurrency`` (from 1), ``concurrency:N`` or ``rate:R[:poisson|constant]``."""
    name, _, rest = text.strip().partition(":")
    kind = _kind(name)
    if kind is None:
        raise SweepError(f"--auto: expected concurrency[:START] or rate:START[:poisson|constant], got '{text}'")
    head, _, options = rest.partition(":")
    if kind == "rate" and not head.strip():
        raise SweepError("--auto rate: expected a starting rate, e.g. --auto rate:5")
    start = _numbers(kind, head or "1", f"--auto {kind}")
    if len(start) != 1:
        raise SweepError(f"--auto {kind}: expected one starting load, got '{head}'")
    return _checked(SweepLoads(kind=kind, values=start, options=options), "--auto")


# ---- configuration ---------------------------------------------------------------------------


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    loads: SweepLoads
    auto: bool = Field(default=False, description="step from loads.values[0] by factor until saturation")
    factor: float = Field(default=2.0, gt=1.0, le=10.0, description="auto: each load is the previous times this")
    max_points: int = Field(default=10, ge=1, le=MAX_POINTS, description="auto: most points")
    time_budget_s: float = Field(default=900.0, gt=0, description="auto: no new point starts past this")
    min_gain: float = Field(default=0.05, ge=0, lt=1, description="saturated below this throughput gain per step")
    min_latency_rise: float = Field(default=0.10, ge=0, description="... while TTFT/latency p99 rose this much")
    duration_s: float = Field(default=10.0, gt=0, le=86_400, description="seconds each point sends for")
    slo: str | None = Field(default=None, description="SLO file or packaged name; None: the benchmark's limits")
    benchmark: str = "embedded"
    preset: Literal["quick", "submission"] = "quick"
    dataset: str | None = None
    sut: str | None = None
    replicas: int = Field(default=1, ge=1, le=32)
    allow_mixed: bool = False
    transport: TransportSecurity = Field(default_factory=TransportSecurity)
    backend: BackendSpec = Field(default_factory=dict)
    http_endpoint: BackendSpec | None = None
    max_new_tokens: int | None = Field(default=None, gt=0)
    ignore_eos: bool = False
    max_in_flight: int | None = Field(default=None, ge=16)
    max_dispatch_lag_ms: float | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    run_id: RunId


# ---- results ---------------------------------------------------------------------------------


class SweepPoint(BaseModel):
    """One point of the sweep: its load and what its run measured (ms; tokens and queries per second)."""

    model_config = ConfigDict(extra="forbid")

    index: int
    label: str
    load: str = Field(description="the point's --load value")
    concurrency: int | None = None
    rate_qps: float | None = Field(default=None, description="an open loop's target rate")
    state: Literal["complete", "interrupted"] = "complete"
    duration_s: float | None = None
    n_queries: int = 0
    n_errors: int = 0
    completed_qps: float | None = None
    output_tokens_per_s: float | None = None
    per_user_output_tokens_per_s: float | None = Field(default=None, description=PER_USER_DEFINITION)
    mean_in_flight: float | None = Field(default=None, description="sum of latencies over the window")
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p99_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    dispatch_lag_p99_ms: float | None = None
    client_limited: bool = False
    valid: bool = False
    meets_slo: bool = False
    slo_violations: list[str] = Field(default_factory=list)
    run_dir: str = Field(default="", description="the point's run directory, relative to the sweep's")

    @property
    def load_value(self) -> float:
        return float(self.concurrency if self.concurrency is not None else self.rate_qps or 0.0)

    @property
    def throughput(self) -> float | None:
        """Output tokens/s; completed qps for a SUT that reports no tokens."""
        return self.output_tokens_per_s if self.output_tokens_per_s is not None else self.completed_qps


class Saturation(BaseModel):
    """Where more load stopped buying throughput: ``knee`` is the last point before the flat step."""

    model_config = ConfigDict(extra="forbid")

    knee: str = Field(description="label of the point where throughput stopped rising")
    detected_at: str = Field(description="label of the next point, whose gain was below min_gain")
    throughput_gain: float = Field(description="detected_at over knee, minus 1")
    latency_rise: float = Field(description="the larger of TTFT p99 and latency p99 growth, as a fraction")
    reason: str


class SweepResult(BaseModel):
    """sweep.json: every point, the SLO they were judged by, the best point and the knee."""

    model_config = ConfigDict(extra="forbid")

    sweep_id: str
    note: str = SWEEP_NOTE
    kind: LoadKind
    auto: bool = False
    benchmark: str
    sut_address: str = ""
    artifact_id: str = ""
    point_duration_s: float
    slo: str = Field(description="what each point was judged by, in words")
    ttft_limit_ms: float | None = Field(default=None, description="the TTFT p99 limit of that SLO, if any")
    tpot_limit_ms: float | None = Field(default=None, description="the TPOT p99 limit of that SLO, if any")
    throughput_definition: str = THROUGHPUT_DEFINITION
    per_user_definition: str = PER_USER_DEFINITION
    points: list[SweepPoint] = Field(default_factory=list)
    best: str | None = Field(default=None, description="label of the highest-throughput point meeting the SLO")
    best_reason: str = ""
    saturation: Saturation | None = None
    stop_reason: str = Field(default="", description="why no further point ran")
    state: SweepState = "complete"
    interrupted_by: str | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    out_dir: str = Field(default="", description="OUT/<sweep-id>: sweep.json, sweep.html and points/")

    def point(self, label: str | None) -> SweepPoint | None:
        return next((p for p in self.points if p.label == label), None) if label else None

    def point_dir(self, p: SweepPoint) -> Path:
        return Path(self.out_dir) / p.run_dir


# ---- judging a point -------------------------------------------------------------------------


def results_objectives(slo: SloSpec) -> SloSpec:
    """The SLO's objectives a single load run can show: those read from its results.json."""
    return slo.model_copy(update={"accuracy": [], "fidelity": [], "compliance_must_pass": []})


def judge_point(res: RunResult, slo: SloSpec | None) -> tuple[bool, list[str]]:
    """(meets, why not): the run's verdict on the benchmark's limits, or the gate's on an SLO file.

    The benchmark's limits are checked again on the figures themselves, so a results.json that says
    valid with a p99 over its own limit still does not meet them.
    """
    if slo is not None:
        from gate import GateInputs, evaluate_slo

        report = evaluate_slo(results_objectives(slo), GateInputs(results=res))
        return report.passed, [o.line for o in report.violations]
    why = [] if res.valid else list(res.validity_reasons) or ["not valid"]
    lim = res.limits
    checks = (
        ("TTFT", res.ttft_ms.p99, lim.ttft_ms if lim else None),
        ("TPOT", res.tpot_ms.p99, lim.tpot_ms if lim else None),
    )
    for name, seen, limit in checks:
        line = f"{name} p99 {seen:g} ms > {limit:g} ms"
        if seen is not None and limit is not None and seen > limit and line not in why:
            why.append(line)
    if res.state != "complete":
        why.append(f"the run was {res.state}")
    return not why, why


def per_user_rate(run_dir: str | Path) -> tuple[float | None, float | None]:
    """(per-user output tokens/s, mean requests in flight) from a run's records (see PER_USER_DEFINITION)."""
    import numpy as np

    from loadgen_harness import load_query_records

    try:
        rec = load_query_records(run_dir)
    except (OSError, ValueError):
        return None, None
    ok = (rec["status"] == 0) & (rec["issue_ns"] >= 0) & (rec["done_ns"] >= rec["issue_ns"])
    if not ok.any():
        return None, None
    busy_s = float(np.sum(rec["done_ns"][ok] - rec["issue_ns"][ok])) / 1e9
    tokens = float(np.sum(rec["n_tokens"][ok]))
    done = rec["done_ns"] >= 0
    window_s = (float(rec["done_ns"][done].max()) - float(rec["issue_ns"][rec["issue_ns"] >= 0].min())) / 1e9
    per_user = tokens / busy_s if busy_s > 0 else None
    in_flight = busy_s / window_s if window_s > 0 else None
    return per_user, in_flight


def point_from_result(
    index: int, label: str, loads: SweepLoads, value: float, res: RunResult, sweep_dir: Path, slo: SloSpec | None
) -> SweepPoint:
    meets, why = judge_point(res, slo)
    per_user, in_flight = per_user_rate(res.log_dir)
    try:
        run_dir = str(Path(res.log_dir).relative_to(sweep_dir))
    except ValueError:
        run_dir = res.log_dir
    lag = res.dispatch_lag
    return SweepPoint(
        index=index,
        label=label,
        load=loads.spec(value),
        concurrency=int(value) if loads.kind == "concurrency" else None,
        rate_qps=value if loads.kind == "rate" else None,
        state="complete" if res.state == "complete" else "interrupted",
        duration_s=res.duration_s,
        n_queries=res.n_queries,
        n_errors=res.n_errors,
        completed_qps=res.completed_qps,
        output_tokens_per_s=res.tokens_per_second,
        per_user_output_tokens_per_s=_round(per_user),
        mean_in_flight=_round(in_flight),
        ttft_p50_ms=res.ttft_ms.p50,
        ttft_p99_ms=res.ttft_ms.p99,
        tpot_p50_ms=res.tpot_ms.p50,
        tpot_p99_ms=res.tpot_ms.p99,
        latency_p50_ms=res.latency_ms.p50,
        latency_p99_ms=res.latency_ms.p99,
        dispatch_lag_p99_ms=None if lag is None else lag.p99_ms,
        client_limited=res.client_limited,
        valid=res.valid,
        meets_slo=meets,
        slo_violations=why,
        run_dir=run_dir,
    )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# ---- the knee and the best point -------------------------------------------------------------


def _measured(points: list[SweepPoint]) -> list[SweepPoint]:
    """Complete points with a throughput, lightest load first."""
    done = [p for p in points if p.state == "complete" and p.throughput is not None]
    return sorted(done, key=lambda p: p.load_value)


def _rise(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None or before <= 0 else now / before - 1.0


def detect_saturation(
    points: list[SweepPoint], min_gain: float = 0.05, min_latency_rise: float = 0.10
) -> Saturation | None:
    """The first step (lightest first) whose throughput gain is below ``min_gain`` while TTFT p99 or
    latency p99 rose by at least ``min_latency_rise``; None while throughput still rises (or latency
    stays flat: a step that bought nothing and cost nothing is noise, not a knee)."""
    done = _measured(points)
    for before, now in itertools.pairwise(done):
        gain = _rise(now.throughput, before.throughput)
        rises = [
            r
            for r in (_rise(now.ttft_p99_ms, before.ttft_p99_ms), _rise(now.latency_p99_ms, before.latency_p99_ms))
            if r is not None
        ]
        if gain is None or not rises:
            continue
        rise = max(rises)
        if gain < min_gain and rise >= min_latency_rise:
            reason = (
                f"throughput {gain:+.1%} from {before.load} to {now.load} (< {min_gain:.0%}) while "
                f"TTFT/latency p99 rose {rise:+.0%}: saturated at {before.load}"
            )
            return Saturation(
                knee=before.label,
                detected_at=now.label,
                throughput_gain=round(gain, 4),
                latency_rise=round(rise, 4),
                reason=reason,
            )
    return None


def choose_best(points: list[SweepPoint]) -> tuple[str | None, str]:
    """(label, why) of the highest-throughput complete point meeting the SLO with its client on schedule;
    ties go to the lighter load. (None, why) when no point qualifies."""
    eligible = [p for p in _measured(points) if p.meets_slo and not p.client_limited]
    if not eligible:
        tried = len([p for p in points if p.state == "complete"])
        return None, f"none of the {tried} complete points meets the SLO with its client on schedule"
    best = max(eligible, key=lambda p: (p.throughput or 0.0, -p.load_value))
    over = [p for p in _measured(points) if (p.throughput or 0.0) > (best.throughput or 0.0) and not p.meets_slo]
    n = len(eligible)
    why = f"highest throughput of the {n} points meeting the SLO" if n > 1 else "the only point meeting the SLO"
    if over:
        why += f"; {', '.join(p.load for p in over)} went higher but missed it"
    return best.label, why


def auto_stop_reason(points: list[SweepPoint], cfg: SweepConfig, elapsed_s: float, next_point_s: float) -> str | None:
    """Why an auto sweep runs no further point, or None to go on (checked after each point)."""
    last = points[-1]
    sat = detect_saturation(points, cfg.min_gain, cfg.min_latency_rise)
    if sat is not None:
        return f"saturated: {sat.reason}"
    if not last.meets_slo:
        why = last.slo_violations[0] if last.slo_violations else "see its results"
        return f"the SLO broke at {last.load} ({why})"
    if last.client_limited:
        return f"the client fell behind at {last.load} (dispatch lag p99 {last.dispatch_lag_p99_ms} ms): it, not the SUT, is the limit"
    if len(points) >= cfg.max_points:
        return f"max points ({cfg.max_points}) reached before saturation"
    if elapsed_s + next_point_s > cfg.time_budget_s:
        return f"time budget ({cfg.time_budget_s:g} s) would be exceeded by another point"
    return None


def next_auto_load(kind: LoadKind, last: float, factor: float) -> float:
    """The next load of an auto sweep: ``factor`` times the last (a concurrency at least one more)."""
    if kind == "concurrency":
        return float(max(int(last) + 1, round(last * factor)))
    return float(f"{last * factor:.6g}")


# ---- reading a sweep back --------------------------------------------------------------------


def sweep_file(path: str | Path) -> Path:
    p = Path(path)
    return p / SWEEP_FILE if p.is_dir() else p


def is_sweep(path: str | Path) -> bool:
    return sweep_file(path).is_file() and sweep_file(path).name == SWEEP_FILE


def load_sweep(path: str | Path) -> SweepResult:
    """The SweepResult of a sweep directory (OUT/<sweep-id>) or its sweep.json; SweepError (one line) otherwise."""
    f = sweep_file(path)
    if not f.is_file():
        raise SweepError(f"{path}: no {SWEEP_FILE} (expected a sweep directory OUT/<sweep-id>)")
    try:
        result = SweepResult.model_validate_json(f.read_bytes())
    except ValidationError as exc:
        raise SweepError(first_error_line(exc, str(f))) from None
    except OSError as exc:
        raise SweepError(f"{f}: cannot read ({exc.__class__.__name__})") from None
    result.out_dir = str(f.parent)  # the directory may have moved since it was written
    return result


def best_run_dir(path: str | Path) -> tuple[Path, str]:
    """(run directory, one line saying which point) of a sweep's best point; SweepError when it has none."""
    sweep = load_sweep(path)
    best = sweep.point(sweep.best)
    if best is None:
        raise SweepError(f"{path}: no point of the sweep meets its SLO ({sweep.slo}); nothing to plan from")
    run_dir = sweep.point_dir(best)
    if not (run_dir / "results.json").is_file():
        raise SweepError(f"{path}: the best point's run directory {run_dir} has no results.json")
    line = f"from sweep {sweep.out_dir}: best point {best.load} ({sweep.best_reason}), run {run_dir}"
    return run_dir, line


def peak_lines(sweep: SweepResult) -> list[str]:
    """find-peak's answer from a sweep, without new runs: the best point in find-peak's words."""
    from workflows._find_peak import fmt_rate

    best = sweep.point(sweep.best)
    head = f"find-peak: from sweep {sweep.out_dir} ({len(sweep.points)} points, no new runs)"
    if best is None:
        return [f"{head}: no point meets {sweep.slo}"]
    figures = ", ".join(
        x
        for x in (
            f"{best.output_tokens_per_s:.1f} output tokens/s" if best.output_tokens_per_s is not None else "",
            f"TTFT p99 {fmt_rate(best.ttft_p99_ms)} ms",
            f"TPOT p99 {fmt_rate(best.tpot_p99_ms)} ms",
        )
        if x
    )
    return [
        f"{head}: peak {fmt_rate(best.completed_qps)} qps completed at {best.load}, the highest-throughput point "
        f"meeting {sweep.slo}: {figures}; logs {sweep.point_dir(best)}",
        f"find-peak: a {sweep.kind} load run, not a LoadGen Server run: {sweep.note}",
    ]
