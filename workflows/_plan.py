"""``lpuperf plan``: how many replicas of one artifact a target QPS needs under a TTFT/TPOT SLO.

From a measured run (its per-query records and artifact manifest) the plan builds the service one
replica gives (:class:`ServiceProfile`): the statically scheduled batcher's decode step and batch
size, and per query its prefill time and output length. The manifest's static schedule gives the
step and the prefill exactly (``service: manifest``); a SUT whose manifest states no schedule is
fitted from the records' SUT-side timestamps (``service: records``). The measured output lengths
and prompts are the query mix either way, and the harness's own share of TTFT (network, client) is
the run's median of harness TTFT minus SUT TTFT.

The prediction is a discrete-event simulation (workflows/_plan_des.py) of that batcher under
Poisson arrivals split round-robin over R replicas, as LoadGen and gRPC's round_robin produce them.
Service is deterministic (the LPU's point), so queueing, not jitter, sets the tail: p99 is the
queue's, and the simulation says where it crosses the SLO. The plan then takes the fewest replicas
meeting the SLO at the target, adds the redundancy rule's spares (N+1 by default: one may fail and
the rest still meet the SLO), and reports utilisation, the predicted percentiles, the fleet's
highest rate within the SLO (the headroom) and, given chips per replica and replicas per rack,
chips and racks. With measured energy or a manifest power model it adds kW per replica, per rack and
for the fleet, and racks under a power budget (workflows/_plan_power.py).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import UsageError
from workflows._plan_power import PowerPlan, PowerPlanError, PowerSource, power_plan, replica_draw

if TYPE_CHECKING:
    from loadgen_harness import LatencyLimits, RunResult

MODEL_STATEMENT = (
    "discrete-event simulation of the statically scheduled batcher (continuous batching up to max_batch, "
    "prefills back to back at step boundaries, one token per active sequence per decode step) under Poisson "
    "arrivals split round-robin over the replicas; service is deterministic, so queueing, not jitter, sets the tail"
)
_PCTS = (50.0, 90.0, 99.0)
Pct = Literal["p50", "p90", "p99"]
_MIN_QUERIES = 20
_BISECT_STEPS = 14


class PlanError(UsageError):
    """Bad plan input (run directory, SLO, redundancy rule): one line."""


class Limits(BaseModel):
    """Per-query latency limits (ms) the plan must meet, by percentile."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: dict[Pct, float] = Field(default_factory=dict)
    tpot_ms: dict[Pct, float] = Field(default_factory=dict)
    ttfa_ms: dict[Pct, float] = Field(default_factory=dict, description="reasoning models: time to first answer")
    source: str = ""

    def describe(self) -> str:
        parts = [f"TTFT {k} <= {v:g} ms" for k, v in self.ttft_ms.items()]
        parts += [f"TPOT {k} <= {v:g} ms" for k, v in self.tpot_ms.items()]
        parts += [f"TTFA {k} <= {v:g} ms" for k, v in self.ttfa_ms.items()]
        return ", ".join(parts) or "none"


class PlanConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run_dir: Path
    target_qps: float = Field(gt=0)
    ttft_ms: float | None = Field(default=None, gt=0, description="TTFT p99 limit; default the SLO's or the run's")
    tpot_ms: float | None = Field(default=None, gt=0, description="TPOT p99 limit; default the SLO's or the run's")
    ttfa_ms: float | None = Field(default=None, gt=0, description="TTFA p99 limit (reasoning models); default none")
    slo: str | None = Field(default=None, description="SLO file (or packaged name) whose TTFT/TPOT limits apply")
    redundancy: str = Field(default="N+1", pattern=r"^[Nn]\s*\+\s*\d{1,3}$")
    chips_per_replica: int | None = Field(default=None, gt=0)
    replicas_per_rack: int | None = Field(default=None, gt=0)
    service: Literal["auto", "manifest", "records"] = "auto"
    max_batch: int | None = Field(default=None, gt=0, description="batch size when the manifest states none")
    # Near capacity the queue takes long to reach its steady state: fewer queries than this predict too well.
    queries: int = Field(default=20000, ge=10000, le=1_000_000, description="simulated queries per prediction")
    seed: int = 0
    max_replicas: int = Field(default=1000, ge=1, le=100_000)
    loadgen_queries: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="judge each limit as LoadGen's early stopping judges a run of this many queries "
        "(what a VALID run of that length needs), not at the steady-state percentile",
    )
    rack_kw: float | None = Field(default=None, gt=0, description="a rack's power budget in kW")
    pue: float = Field(default=1.0, ge=1.0, le=5.0, description="facility power over IT power")
    power_source: PowerSource = "auto"

    @property
    def spares(self) -> int:
        return int(re.split(r"\+", self.redundancy)[1])


class ServiceSummary(BaseModel):
    source: Literal["manifest", "records"]
    max_batch: int
    decode_step_ms: float
    mean_prefill_ms: float
    mean_output_tokens: float
    mean_reasoning_tokens: float | None = Field(default=None, description="reasoning models: of the output tokens")
    overhead_ttft_ms: float = Field(description="harness TTFT minus SUT TTFT in the run (network, client)")
    capacity_qps_per_replica: float = Field(description="a replica kept full: its most queries per second")
    queries_sampled: int
    note: str = ""


class Prediction(BaseModel):
    replicas: int
    qps: float
    utilisation: float = Field(description="offered rate over the replicas' full-batch capacity")
    stable: bool
    ttft_ms: dict[str, float | None] = Field(default_factory=dict)
    tpot_ms: dict[str, float | None] = Field(default_factory=dict)
    ttfa_ms: dict[str, float | None] = Field(default_factory=dict)
    meets_slo: bool
    busy_fraction: float = Field(
        default=1.0, description="share of the time a replica's chips run prefills or decode steps (DES; 1 unstable)"
    )


class PlanResult(BaseModel):
    run_dir: str
    model: str = MODEL_STATEMENT
    service: ServiceSummary
    target_qps: float
    limits: Limits
    redundancy: str
    spare_replicas: int
    loadgen_queries: int | None = Field(default=None, description="limits judged as LoadGen judges a run this long")
    replicas_for_slo: int = Field(description="fewest replicas meeting the SLO at the target")
    replicas: int = Field(description="replicas_for_slo plus the redundancy rule's spares")
    at_plan: Prediction
    degraded: Prediction = Field(description="with the spares failed")
    max_valid_qps: float = Field(description="highest rate the planned replicas carry within the SLO")
    headroom: float = Field(description="max_valid_qps / target_qps - 1")
    chips_per_replica: int | None = None
    replicas_per_rack: int | None = None
    chips: int | None = None
    racks: int | None = None
    curve: list[Prediction] = Field(default_factory=list, description="predictions at the target per replica count")
    power: PowerPlan | None = Field(default=None, description="None: neither measured energy nor a power model")


@dataclass
class ServiceProfile:
    """What one replica does with a query: per query prefill (s) and output length, plus the batcher."""

    prefill_s: np.ndarray
    n_out: np.ndarray
    decode_step_s: float
    max_batch: int
    overhead_ttft_s: float
    source: Literal["manifest", "records"]
    note: str = ""
    # Reasoning models: per query, how many of its n_out tokens are reasoning (they come first).
    n_reasoning: np.ndarray | None = None

    @property
    def capacity_qps(self) -> float:
        from workflows._plan_des import full_batch_capacity_qps

        return full_batch_capacity_qps(self.prefill_s, self.n_out, self.decode_step_s, self.max_batch)

    def summary(self) -> ServiceSummary:
        return ServiceSummary(
            source=self.source,
            max_batch=self.max_batch,
            decode_step_ms=round(self.decode_step_s * 1e3, 4),
            mean_prefill_ms=round(float(np.mean(self.prefill_s)) * 1e3, 4),
            mean_output_tokens=round(float(np.mean(self.n_out)), 3),
            mean_reasoning_tokens=None if self.n_reasoning is None else round(float(np.mean(self.n_reasoning)), 3),
            overhead_ttft_ms=round(self.overhead_ttft_s * 1e3, 4),
            capacity_qps_per_replica=round(self.capacity_qps, 4),
            queries_sampled=int(self.n_out.size),
            note=self.note,
        )


# ---- the service a replica gives, from a run ----------------------------------------------------


def _prompt_lengths(res: object, indices: np.ndarray) -> np.ndarray | None:
    from scenarios import DatasetError, get_benchmark, resolve_dataset

    spec = getattr(res, "dataset", "") or ""
    try:
        spec = spec or get_benchmark(str(getattr(res, "benchmark", ""))).dataset
        ds = resolve_dataset(spec)
    except (DatasetError, ValueError, OSError):
        return None
    sizes = np.fromiter((ids.size for ids in ds.input_ids), dtype=np.int64, count=len(ds))
    if indices.size and (indices.min() < 0 or indices.max() >= sizes.size):
        return None
    lengths: np.ndarray = sizes[indices]
    return lengths


def _seconds(timing: dict[str, JsonValue], key: str) -> float:
    v = timing.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def load_profile(
    run_dir: str | Path, service: Literal["auto", "manifest", "records"] = "auto", max_batch: int | None = None
) -> ServiceProfile:
    """The service of one replica as the run at ``run_dir`` measured it; PlanError (one line) on bad input."""
    from loadgen_harness import load_query_records, load_results, manifest_count

    run = Path(run_dir)
    try:
        res = load_results(run)
        rec = load_query_records(run)
    except (OSError, ValueError) as exc:
        raise PlanError(f"plan: {run}: {str(exc).splitlines()[0]}") from None
    ok = (rec["status"] == 0) & (rec["done_ns"] >= 0) & (rec["n_tokens"] > 0)
    if int(ok.sum()) < _MIN_QUERIES:
        raise PlanError(f"plan: {run}: {int(ok.sum())} successful queries; a plan needs a run with >= {_MIN_QUERIES}")
    rec = rec[ok]
    n_out = rec["n_tokens"].astype(np.int64)
    artifact = res.artifact
    batch = max_batch or manifest_count(artifact, "max_batch")
    if batch is None:
        raise PlanError("plan: the artifact manifest states no max_batch; pass --max-batch")
    stamped = (rec["sut_arrival_ns"] > 0) & (rec["sut_first_token_ns"] >= rec["sut_arrival_ns"])
    stamped &= rec["first_token_ns"] >= rec["issue_ns"]
    harness_ttft = (rec["first_token_ns"] - rec["issue_ns"]) / 1e9
    sut_ttft = (rec["sut_first_token_ns"] - rec["sut_arrival_ns"]) / 1e9
    overhead = max(0.0, float(np.median((harness_ttft - sut_ttft)[stamped]))) if stamped.any() else 0.0
    timing = artifact.get("timing")
    prompts = _prompt_lengths(res, rec["sample_index"])
    has_schedule = isinstance(timing, dict) and isinstance(timing.get("decode_step_s"), int | float)
    if service == "manifest" or (service == "auto" and has_schedule and prompts is not None):
        if not has_schedule or not isinstance(timing, dict):
            raise PlanError("plan: --service manifest: the artifact manifest states no timing (decode_step_s)")
        step, base, per_token = (
            _seconds(timing, k) for k in ("decode_step_s", "prefill_base_s", "prefill_per_token_s")
        )
        lengths = prompts if prompts is not None else np.zeros(n_out.size)
        note = "" if prompts is not None else "prompt lengths unknown (dataset not found): prefill_base_s only"
        prefill = base + per_token * lengths
        source: Literal["manifest", "records"] = "manifest"
    else:
        multi = stamped & (n_out > 1) & (rec["sut_last_token_ns"] >= rec["sut_first_token_ns"])
        if int(multi.sum()) < _MIN_QUERIES:
            raise PlanError("plan: the run's records carry too few SUT timestamps to fit a schedule")
        tpot = (rec["sut_last_token_ns"] - rec["sut_first_token_ns"])[multi] / (n_out[multi] - 1) / 1e9
        # The least-disturbed queries: later joiners' prefills stretch the steps of a loaded batch.
        step = float(np.percentile(tpot, 10))
        prefill = np.full(n_out.size, float(np.percentile(sut_ttft[stamped], 10)))
        source = "records"
        note = "schedule fitted from the records (p10 SUT TPOT as the step, p10 SUT TTFT as the prefill)"
    if step <= 0:
        raise PlanError("plan: the artifact's decode step is 0 s: a zero-time artifact has no capacity to plan")
    n_out, n_reasoning, scaled = _full_length_reasoning(rec, n_out, artifact)
    note = "; ".join(x for x in (note, scaled) if x)
    return ServiceProfile(prefill, n_out, step, int(batch), overhead, source, note, n_reasoning)


def _full_length_reasoning(
    rec: np.ndarray, n_out: np.ndarray, artifact: Mapping[str, JsonValue]
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(output tokens, reasoning tokens, note) per query at the benchmark's full reasoning length.

    A reasoning model's service time is mostly its reasoning: a query's length is what it cost. A run
    on a sim that scaled its reasoning down (``reasoning.reasoning_scale`` < 1 in the manifest, the
    quick preset) is planned at full length: each query's reasoning is scaled back up, its answer kept.
    """
    names = rec.dtype.names or ()
    if "n_reasoning" not in names or not (rec["n_reasoning"] > 0).any():
        return n_out, None, ""
    reasoning = np.clip(rec["n_reasoning"].astype(np.int64), 0, n_out)
    info = artifact.get("reasoning")
    scale = info.get("reasoning_scale") if isinstance(info, dict) else None
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 < scale < 1:
        return n_out, reasoning, ""
    full = np.rint(reasoning / float(scale)).astype(np.int64)
    note = f"the run's reasoning was scaled to {scale:g} of the benchmark's length: planned at full length"
    return n_out - reasoning + full, full, note


# ---- predictions ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def loadgen_allowed_share(percentile: float, run_queries: int, confidence: float = 0.99) -> float:
    """The share of queries over a limit that LoadGen's early stopping still calls VALID in a run of ``run_queries``.

    LoadGen passes a percentile limit when, with ``t`` queries over it, the chance of seeing ``t`` or
    fewer if the true share over were ``1 - percentile`` is below ``1 - confidence`` (a binomial test,
    loadgen/early_stopping.cc). A short run therefore needs a far smaller share over the limit than the
    percentile says: 800 queries at p99 allow 2 (0.25 %); below 459 queries none suffices (-1.0).
    """
    from scipy.stats import binom

    allowed = -1
    # t grows until the binomial tail stops being unlikely enough; bounded by the run's size.
    while allowed + 1 <= run_queries and binom.cdf(allowed + 1, run_queries, 1.0 - percentile) < 1.0 - confidence:
        allowed += 1
    return allowed / run_queries if allowed >= 0 else -1.0


def _within(values_s: np.ndarray, limits: Mapping[Pct, float], run_queries: int | None) -> bool:
    for name, limit_ms in limits.items():
        pct = float(name[1:]) / 100.0
        if run_queries is None:
            if float(np.percentile(values_s, 100 * pct, method="higher")) * 1e3 > limit_ms:
                return False
        elif float(np.mean(values_s * 1e3 > limit_ms)) > loadgen_allowed_share(pct, run_queries):
            return False
    return True


def predict(
    profile: ServiceProfile,
    qps: float,
    replicas: int,
    limits: Limits,
    queries: int = 20000,
    seed: int = 0,
    loadgen_queries: int | None = None,
) -> Prediction:
    """TTFT/TPOT percentiles of ``replicas`` round-robin replicas at ``qps`` in all, from the DES.

    The limits are met at the steady-state percentiles, or with ``loadgen_queries`` as LoadGen's early
    stopping judges a run of that many queries (:func:`loadgen_allowed_share`).
    """
    from workflows._plan_des import round_robin_arrivals, simulate_batcher_busy

    utilisation = qps / (replicas * profile.capacity_qps)
    if utilisation >= 1.0:
        return Prediction(replicas=replicas, qps=qps, utilisation=round(utilisation, 4), stable=False, meets_slo=False)
    rng = np.random.default_rng(seed + 1)
    pick = rng.integers(0, profile.n_out.size, queries)
    arrivals = round_robin_arrivals(qps, replicas, queries, seed)
    first, done, busy_s = simulate_batcher_busy(
        arrivals, profile.prefill_s[pick], profile.n_out[pick], profile.decode_step_s, profile.max_batch
    )
    warm = queries // 10  # the queue starts empty; steady state is what a long run sees
    ttft = (first - arrivals)[warm:] + profile.overhead_ttft_s
    n = profile.n_out[pick][warm:]
    multi = n > 1
    tpot = (done[warm:] - first[warm:])[multi] / (n[multi] - 1)
    ttfa = _ttfa_s(profile, pick, first, arrivals, warm)
    meets = _within(ttft, limits.ttft_ms, loadgen_queries) and _within(tpot, limits.tpot_ms, loadgen_queries)
    if limits.ttfa_ms:
        meets = meets and ttfa is not None and _within(ttfa, limits.ttfa_ms, loadgen_queries)
    return Prediction(
        replicas=replicas,
        qps=qps,
        utilisation=round(utilisation, 4),
        stable=True,
        ttft_ms=_percentiles_ms(ttft),
        tpot_ms=_percentiles_ms(tpot),
        ttfa_ms=_percentiles_ms(ttfa) if ttfa is not None else {},
        meets_slo=meets,
        busy_fraction=round(min(1.0, busy_s / float(max(done.max(), arrivals[-1]))), 4),
    )


def _percentiles_ms(values_s: np.ndarray) -> dict[str, float | None]:
    if not values_s.size:
        return {}
    pcts = np.percentile(values_s, _PCTS, method="higher") * 1e3
    return {k: round(float(v), 3) for k, v in zip(("p50", "p90", "p99"), pcts, strict=True)}


def _ttfa_s(
    profile: ServiceProfile, pick: np.ndarray, first: np.ndarray, arrivals: np.ndarray, warm: int
) -> np.ndarray | None:
    """Time to the first answer token per simulated query that has one: its first token, then one token a
    decode step (the batcher's static schedule) through its reasoning. None for a model without reasoning."""
    if profile.n_reasoning is None:
        return None
    reasoning = profile.n_reasoning[pick][warm:]
    answered = reasoning < profile.n_out[pick][warm:]
    ttfa = (first - arrivals)[warm:] + reasoning * profile.decode_step_s + profile.overhead_ttft_s
    out: np.ndarray = ttfa[answered]
    return out


def max_valid_qps(
    profile: ServiceProfile,
    replicas: int,
    limits: Limits,
    queries: int = 20000,
    seed: int = 0,
    loadgen_queries: int | None = None,
) -> float:
    """The highest total rate ``replicas`` replicas carry within the limits (bisection on the DES)."""
    lo, hi = 0.0, replicas * profile.capacity_qps
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        if predict(profile, mid, replicas, limits, queries, seed, loadgen_queries).meets_slo:
            lo = mid
        else:
            hi = mid
    return lo


def resolve_limits(cfg: PlanConfig, benchmark: str, scenario: str, run_limits: LatencyLimits | None = None) -> Limits:
    """--ttft-ms/--tpot-ms, else the SLO file's, else the limits the run's benchmark judges its scenario by, else
    (a load run beside LoadGen: Concurrency, Rate, ...) the TTFT/TPOT limits the run itself was judged by."""
    limits = _base_limits(cfg, benchmark, scenario, run_limits)
    if cfg.ttfa_ms is not None:
        limits.ttfa_ms["p99"] = cfg.ttfa_ms
    return limits


def _base_limits(cfg: PlanConfig, benchmark: str, scenario: str, run_limits: LatencyLimits | None) -> Limits:
    if cfg.ttft_ms is not None or cfg.tpot_ms is not None:
        limits = Limits(source="command line")
        if cfg.ttft_ms is not None:
            limits.ttft_ms["p99"] = cfg.ttft_ms
        if cfg.tpot_ms is not None:
            limits.tpot_ms["p99"] = cfg.tpot_ms
        return limits
    if cfg.slo is not None:
        from gate import SloError, load_slo

        try:
            slo = load_slo(cfg.slo)
        except SloError as exc:
            raise PlanError(str(exc)) from None
        limits = Limits(source=f"SLO {slo.name}")
        for name, pct in slo.ttft_ms.items() if slo.ttft_ms else []:
            limits.ttft_ms[name] = pct
        for name, pct in slo.tpot_ms.items() if slo.tpot_ms else []:
            limits.tpot_ms[name] = pct
        for name, pct in slo.ttfa_ms.items() if slo.ttfa_ms else []:
            limits.ttfa_ms[name] = pct
        if not limits.ttft_ms and not limits.tpot_ms:
            raise PlanError(f"--slo {cfg.slo}: states no TTFT or TPOT limit to plan for")
        return limits
    from scenarios import BenchmarkError, get_benchmark

    try:
        found = get_benchmark(benchmark).limits_for(scenario)
    except (BenchmarkError, ValueError):
        found = None
    if found is None and run_limits is not None and run_limits.ttft_ms and run_limits.tpot_ms:
        at: Pct = "p90" if run_limits.percentile == 90 else "p50" if run_limits.percentile == 50 else "p99"
        source = f"the {scenario} run's limits ({benchmark})"
        return Limits(ttft_ms={at: run_limits.ttft_ms}, tpot_ms={at: run_limits.tpot_ms}, source=source)
    if found is None:
        raise PlanError(f"plan: benchmark '{benchmark}' states no TTFT/TPOT limits; pass --ttft-ms/--tpot-ms or --slo")
    return Limits(ttft_ms={"p99": found[0]}, tpot_ms={"p99": found[1]}, source=f"benchmark {benchmark}")


def plan_capacity(cfg: PlanConfig) -> PlanResult:
    """The whole plan (see the module docstring); PlanError for bad input or a target out of reach."""
    from loadgen_harness import load_results

    profile = load_profile(cfg.run_dir, cfg.service, cfg.max_batch)
    res = load_results(cfg.run_dir)
    limits = resolve_limits(cfg, res.benchmark, res.scenario, res.limits)
    if limits.ttfa_ms and profile.n_reasoning is None:
        raise PlanError(f"plan: {cfg.run_dir}: a TTFA limit needs a run of a reasoning model (no reasoning tokens)")
    q, seed, lg = cfg.queries, cfg.seed, cfg.loadgen_queries
    n = max(1, math.ceil(cfg.target_qps / profile.capacity_qps))
    tried: dict[int, Prediction] = {}
    while True:
        if n > cfg.max_replicas:
            raise PlanError(
                f"plan: {cfg.target_qps:g} qps needs more than {cfg.max_replicas} replicas under {limits.describe()}"
            )
        tried[n] = predict(profile, cfg.target_qps, n, limits, queries=q, seed=seed, loadgen_queries=lg)
        if tried[n].meets_slo:
            break
        if (
            n == 1
            and tried[n].stable
            and not predict(profile, 1e-3, 1, limits, queries=q, seed=seed, loadgen_queries=lg).meets_slo
        ):
            raise PlanError(f"plan: even an idle replica misses {limits.describe()}; no replica count helps")
        n += 1
    total = n + cfg.spares
    curve = [
        tried.get(r) or predict(profile, cfg.target_qps, r, limits, queries=q, seed=seed, loadgen_queries=lg)
        for r in range(max(1, n - 3), total + 3)
    ]
    at_plan = next(p for p in curve if p.replicas == total)
    peak = max_valid_qps(profile, total, limits, queries=q, seed=seed, loadgen_queries=lg)
    chips = total * cfg.chips_per_replica if cfg.chips_per_replica else None
    power = _power(cfg, res, profile, at_plan, total)
    racks = math.ceil(total / cfg.replicas_per_rack) if cfg.replicas_per_rack else None
    racks = power.racks if power is not None and power.racks is not None else racks
    return PlanResult(
        run_dir=str(cfg.run_dir),
        service=profile.summary(),
        target_qps=cfg.target_qps,
        limits=limits,
        redundancy=cfg.redundancy.replace(" ", "").upper(),
        spare_replicas=cfg.spares,
        loadgen_queries=lg,
        replicas_for_slo=n,
        replicas=total,
        at_plan=at_plan,
        degraded=tried[n],
        max_valid_qps=round(peak, 3),
        headroom=round(peak / cfg.target_qps - 1.0, 4),
        chips_per_replica=cfg.chips_per_replica,
        replicas_per_rack=cfg.replicas_per_rack,
        chips=chips,
        racks=racks,
        curve=curve,
        power=power,
    )


def _power(
    cfg: PlanConfig, res: RunResult, profile: ServiceProfile, at_plan: Prediction, total: int
) -> PowerPlan | None:
    """The plan's power section (workflows/_plan_power.py); --rack-kw without any power source is an error."""
    from sut import PowerModel

    raw = res.artifact.get("power")
    model = PowerModel.model_validate(raw) if isinstance(raw, dict) else None
    tokens = float(np.mean(profile.n_out))
    draw = replica_draw(
        cfg.power_source, res.energy, model, cfg.target_qps / total * tokens, profile.capacity_qps * tokens,
        at_plan.busy_fraction,
    )  # fmt: skip
    if draw is None:
        if cfg.rack_kw is not None:
            raise PowerPlanError(
                "--rack-kw: the run measured no energy and its artifact manifest states no power model"
            )
        return None
    return power_plan(draw, total, cfg.replicas_per_rack, cfg.rack_kw, cfg.pue)
