"""find-peak: the highest ``server_target_qps`` whose Server run is VALID under the benchmark's limits.

1. **Bound.** A short Offline run gives the SUT's throughput X (samples/s): no Server rate above it can
   be sustained. A short SingleStream run gives the unloaded service time S and TTFT. Little's law at
   saturation gives the SUT's effective parallelism c = X * S; an M/M/c (Erlang C) queue with that c
   and mean service S then estimates the rate at which the p99 queueing delay still fits the TTFT
   budget (limit minus unloaded TTFT). That estimate is the first probe; 1.15 X is the upper bound.
2. **Search.** Short Server runs, each at least ``min_probe_queries`` long so LoadGen's early
   stopping can judge p99 (a probe INVALID only for lack of queries is rerun once, twice as long). A probe PASSES when LoadGen says VALID, no query failed, and the completed
   rate reaches ``completed_ratio`` of what a keeping-up SUT shows, and TTFT does not trend upward
   through the run (:func:`ttft_growth_s`): a short overloaded run can still say VALID (its backlog has not yet
   pushed the completed queries' latency percentiles over the limit),
   so "VALID but completed below scheduled" or "VALID with a growing backlog" counts as overloaded. The search
   steps geometrically until it brackets the peak, then bisects until the bracket is within
   ``resolution``.
3. **Confirm.** The best passing rate is re-run at full (preset) length, and never shorter than the
   longest probe (a shorter run gives LoadGen's early stopping fewer queries than the probe it
   confirms). A confirm run INVALID only for lack of queries is rerun once, twice as long. Any other
   failure steps the rate down, by ``resolution`` and then by twice the previous step (bounded), so a
   confirmable rate is reached in a few runs; the result is the best confirmed rate with the reasons
   the higher ones failed (``confirm_failures``).

Every run goes under one directory, ``OUT/<run-id>/probes/<nn>-<kind>/``, next to ``find_peak.json``
and ``find_peak.html`` (the sweep chart: each rate's TTFT p99 and verdict against the limit).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import BackendSpec, RunId
from loadgen_harness import RunResult, TransportSecurity

Verdict = Literal["PASS", "OVERLOADED", "INVALID", "ERRORS"]
PEAK_REPORT_FILE = "find_peak.html"
# What a run costs beyond its LoadGen duration (connect, GetArtifact, LoadGen set-up, logs), and how many
# probes a search usually takes (bracketing plus bisection to 3 %): the basis of the time estimate.
RUN_OVERHEAD_S = 1.5
TYPICAL_PROBES = 5


class FindPeakConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    benchmark: str = "embedded"
    dataset: str | None = None
    preset: Literal["quick", "submission"] = "quick"
    sut: str | None = Field(
        default=None,
        description="host:port, a list or a gRPC target URI (a fleet); None spawns embedded SUT(s) for every run",
    )
    replicas: int = Field(default=1, ge=1, le=32, description="embedded SUT processes driven as one fleet (no sut)")
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT (sut)"
    )
    backend: BackendSpec = Field(default_factory=dict, description="spawned SUT's backend config (SutTarget)")
    max_new_tokens: int | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    run_id: RunId | None = None
    bound_duration_s: float = Field(default=3.0, gt=0)
    probe_duration_s: float = Field(default=5.0, gt=0)
    max_probe_duration_s: float = Field(default=30.0, gt=0)
    # Early stopping needs ~500 queries to call p99 VALID; the margin keeps a clean probe from failing on it.
    min_probe_queries: int = Field(default=800, ge=1, description="queries per probe and per confirm run")
    confirm_duration_s: float | None = Field(default=None, gt=0, description="None: the preset's full duration")
    resolution: float = Field(default=0.03, gt=0, lt=0.5)
    # Completed rate / the rate a keeping-up SUT shows (drain tail removed); below it a probe is overloaded.
    completed_ratio: float = Field(default=0.95, gt=0, le=1)
    max_probes: int = Field(default=10, ge=2, le=40)
    max_confirms: int = Field(default=5, ge=1, le=10)
    time_budget_s: float = Field(default=1800.0, gt=0)


ProbeKind = Literal["offline", "singlestream", "probe", "confirm"]


class Probe(BaseModel):
    kind: ProbeKind
    qps: float | None = None
    duration_s: float | None = None
    verdict: Verdict | None = None
    valid: bool = False
    scheduled_qps: float | None = None
    completed_qps: float | None = None
    tokens_per_second: float | None = None
    ttft_p99_ms: float | None = None
    tpot_p99_ms: float | None = None
    latency_p50_ms: float | None = None
    n_queries: int = 0
    n_errors: int = 0
    reasons: list[str] = Field(default_factory=list)
    kept_up: bool | None = None  # completed rate reached completed_ratio of what a keeping-up SUT shows
    ttft_growth_ms: float | None = None  # median TTFT, last quarter of the run minus first quarter
    log_dir: str = ""

    def line(self) -> str:
        """One console line: the figures this kind of run measures, and none it has no value for (Offline
        has no first-token latency; its sample latency is the time into one batch, not a service time)."""
        if self.kind == "offline":
            return f"bound   Offline: {_join(_figure('', self.completed_qps, ' samples/s'))}"
        if self.kind == "singlestream":
            figures = _join(
                _figure("", self.completed_qps, " samples/s"),
                _figure("latency p50 ", self.latency_p50_ms, " ms"),
                _figure("TTFT p99 ", self.ttft_p99_ms, " ms"),
            )
            return f"bound   SingleStream: {figures}"
        why = f" ({'; '.join(self.reasons)})" if self.reasons and self.verdict != "PASS" else ""
        # LoadGen draws Poisson arrivals: over a short run its schedule comes out a few % off the target rate,
        # so that figure is named as LoadGen's, never shown as the run's rate.
        done = (
            _figure("completed ", self.completed_qps, "")
            + _figure(" of the ", self.scheduled_qps, " qps LoadGen scheduled")
            if self.scheduled_qps is not None
            else _figure("completed ", self.completed_qps, " qps")
        )
        figures = _join(
            done,
            _figure("TTFT p99 ", self.ttft_p99_ms, " ms"),
            _figure("TPOT p99 ", self.tpot_p99_ms, " ms"),
            _figure("TTFT growth ", self.ttft_growth_ms, " ms"),
            f"{self.n_errors} errors",
        )
        head = f"{self.kind:<7} Server {fmt_rate(self.qps)} qps for {fmt_rate(self.duration_s)} s"
        return f"{head} -> {self.verdict}: {figures}{why}"


class PeakEstimate(BaseModel):
    offline_qps: float
    service_time_s: float
    unloaded_ttft_s: float
    parallelism: float
    ttft_budget_s: float
    erlang_qps: float
    upper_bound_qps: float


class FindPeakResult(BaseModel):
    peak_qps: float | None
    confirmed: bool
    bracket: tuple[float, float | None]
    # "<rate> qps: <verdict and reason>" for each confirm run that failed, highest rate first.
    confirm_failures: list[str] = Field(default_factory=list)
    out_dir: str = ""  # OUT/<run-id>: find_peak.json, find_peak.html and probes/
    estimate: PeakEstimate | None = None
    ttft_limit_ms: float | None = None
    tpot_limit_ms: float | None = None
    trace: list[Probe] = Field(default_factory=list)
    evidence: Probe | None = None
    artifact: dict[str, JsonValue] = Field(default_factory=dict)
    elapsed_s: float = 0.0

    def summary_lines(self, confirm_duration_given: bool = False) -> list[str]:
        """The lines find-peak ends with: why higher confirm runs failed, then the peak and the run that passed at
        it, every rate written as the run lines write it."""
        out = [f"find-peak: confirm run failed at {failure}" for failure in self.confirm_failures]
        ev = self.evidence
        if self.peak_qps is None or ev is None:
            lo, hi = self.bracket
            out.append(
                f"find-peak: no VALID Server rate confirmed (probes passed up to {fmt_rate(lo)} qps, failed from "
                f"{fmt_rate(hi)} qps; every confirm run failed, see above)"
            )
            return out
        figures = _join(
            _figure("completed ", ev.completed_qps, " qps"),
            _figure("LoadGen scheduled ", ev.scheduled_qps, " qps"),
            _figure("TTFT p99 ", ev.ttft_p99_ms, " ms"),
            _figure("TPOT p99 ", ev.tpot_p99_ms, " ms"),
        )
        length = (
            f"at least as long as the preset{', --confirm-duration' if confirm_duration_given else ''} and every probe"
        )
        verdict = "VALID" if ev.valid else "INVALID"
        out.append(
            f"find-peak: peak {fmt_rate(self.peak_qps)} qps, the highest rate a confirm run passed at: a "
            f"{ev.duration_s or 0:.0f} s run ({length}), {verdict}, {figures}; logs {ev.log_dir}"
        )
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def fmt_rate(x: float | None) -> str:
    """A rate or time as every find-peak line shows it (the peak and its runs alike): 93.3, 9.94."""
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def _figure(label: str, x: float | None, unit: str) -> str:
    """``label value unit``, or '' when the run has no value for it."""
    return "" if x is None or not math.isfinite(x) else f"{label}{fmt_rate(x)}{unit}"


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


# --- queueing estimate -------------------------------------------------------------------------


def erlang_c(c: int, offered: float) -> float:
    """Probability an arrival waits in an M/M/c queue with offered load ``offered`` = lambda/mu (< c)."""
    from scipy.special import gammaln, logsumexp

    if offered <= 0:
        return 0.0
    if offered >= c:
        return 1.0
    k = list(range(c))
    log_terms = [i * math.log(offered) - float(gammaln(i + 1)) for i in k]
    log_last = c * math.log(offered) - float(gammaln(c + 1)) + math.log(c / (c - offered))
    return float(math.exp(log_last - float(logsumexp([*log_terms, log_last]))))


def erlang_rate_for_wait(c: int, service_s: float, wait_s: float, quantile: float = 0.99) -> float:
    """Largest arrival rate whose ``quantile`` of the M/M/c queueing delay is at most ``wait_s``."""
    from scipy.optimize import brentq

    mu = 1.0 / service_s
    cap = c * mu

    def excess(lam: float) -> float:
        # P(W > t) = C(c, a) * exp(-(c mu - lambda) t)
        return erlang_c(c, lam / mu) * math.exp(-(cap - lam) * wait_s) - (1.0 - quantile)

    lo, hi = cap * 1e-6, cap * (1 - 1e-9)
    if excess(hi) <= 0:
        return hi
    if excess(lo) > 0:
        return lo
    return float(brentq(excess, lo, hi, xtol=cap * 1e-6))


def estimate_peak(
    offline_qps: float, service_s: float, unloaded_ttft_s: float, ttft_limit_s: float | None
) -> PeakEstimate:
    parallelism = max(1.0, offline_qps * service_s)
    budget = max(0.0, (ttft_limit_s or 10 * service_s) - unloaded_ttft_s)
    c = max(1, round(parallelism))
    # Scale so c / service == offline throughput exactly (parallelism is rarely an integer).
    erlang = erlang_rate_for_wait(c, c / offline_qps, budget) if budget > 0 else 0.5 * offline_qps
    return PeakEstimate(
        offline_qps=offline_qps,
        service_time_s=service_s,
        unloaded_ttft_s=unloaded_ttft_s,
        parallelism=parallelism,
        ttft_budget_s=budget,
        erlang_qps=erlang,
        upper_bound_qps=1.15 * offline_qps,
    )


# --- the search --------------------------------------------------------------------------------


def _probe_from_result(
    kind: ProbeKind, qps: float | None, duration: float | None, res: RunResult, ratio: float
) -> Probe:
    probe = Probe(
        kind=kind,
        qps=qps,
        duration_s=res.duration_s if duration is None else duration,
        valid=res.valid,
        scheduled_qps=res.scheduled_qps,
        completed_qps=res.completed_qps,
        tokens_per_second=res.tokens_per_second,
        ttft_p99_ms=res.ttft_ms.p99,
        tpot_p99_ms=res.tpot_ms.p99,
        latency_p50_ms=res.latency_ms.p50,
        n_queries=res.n_queries,
        n_errors=res.n_errors,
        reasons=list(res.validity_reasons),
        log_dir=res.log_dir,
    )
    if kind in ("probe", "confirm"):
        from loadgen_harness import keep_up_ratio

        sched = probe.scheduled_qps or qps or 0.0
        done = probe.completed_qps or 0.0
        kept = keep_up_ratio(res)
        loadgen_valid = res.loadgen_valid
        overloaded = kept is not None and kept < ratio
        probe.kept_up = None if kept is None else not overloaded
        if probe.n_errors:
            probe.verdict = "ERRORS"
        elif overloaded and loadgen_valid:
            # LoadGen said VALID, but the SUT fell behind the schedule: a short run hides the backlog.
            probe.verdict = "OVERLOADED"
            probe.reasons = [
                f"LoadGen VALID but completed {done:.1f} of scheduled {sched:.1f} qps is {kept:.1%} of the rate "
                f"a keeping-up SUT shows (< {ratio:.0%})"
            ]
        elif not probe.valid or overloaded:
            probe.verdict = "INVALID"
        else:
            probe.verdict = "PASS"
    return probe


def ttft_growth_s(log_dir: str) -> float | None:
    """Median TTFT of the last quarter of queries (in issue order) minus that of the first quarter.

    A SUT that keeps up has no trend; an overloaded one builds a backlog, so queueing delay, and with
    it TTFT, grows through the run. This sees overload that a short run's completed rate hides.
    """
    import numpy as np

    from loadgen_harness import load_query_records

    try:
        rec = load_query_records(Path(log_dir))
    except (OSError, ValueError):
        return None
    ok = (rec["status"] == 0) & (rec["first_token_ns"] >= rec["issue_ns"]) & (rec["issue_ns"] >= 0)
    rec = rec[ok]
    if rec.shape[0] < 40:
        return None
    rec = rec[np.argsort(rec["issue_ns"], kind="stable")]
    ttft = (rec["first_token_ns"] - rec["issue_ns"]).astype(np.float64) / 1e9
    k = ttft.size // 4
    return float(np.median(ttft[-k:]) - np.median(ttft[:k]))


def _short_of_evidence(p: Probe) -> bool:
    """INVALID only because early stopping lacked queries, with every latency limit met."""
    text = " ".join(p.reasons).lower()
    return "early stopping" in text and "latency limits" not in text and "min duration" not in text


class PeakSearch:
    """Runs the bound, search and confirmation against one SUT address."""

    def __init__(self, cfg: FindPeakConfig, address: str, echo: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.address = address
        self.echo = echo
        self.run_id = cfg.run_id or time.strftime("peak-%Y%m%d-%H%M%S")
        self.trace: list[Probe] = []
        self.artifact: dict[str, JsonValue] = {}
        self.growth_limit_s = 0.05
        self.ttft_limit_ms: float | None = None
        self._n = 0

    @property
    def probes_dir(self) -> Path:
        """Where every run of this search goes: one directory, not siblings of other runs in OUT."""
        return Path(self.cfg.out_dir) / self.run_id / "probes"

    def _run(self, scenario: str, kind: ProbeKind, qps: float | None, duration: float | None) -> Probe:
        from loadgen_harness import RunConfig, run_benchmark

        self._n += 1
        cfg = RunConfig.model_validate(
            {
                "scenario": scenario,
                "mode": "performance",
                "benchmark": self.cfg.benchmark,
                "preset": self.cfg.preset,
                "dataset": self.cfg.dataset,
                "sut": self.address,
                "transport": self.cfg.transport,
                "qps": qps,
                "duration_s": duration,
                "out_dir": self.probes_dir,
                "run_id": f"{self._n:02d}-{kind}",
                "max_new_tokens": self.cfg.max_new_tokens,
            }
        )
        res = run_benchmark(cfg)
        if not self.artifact:
            self.artifact = dict(res.artifact)
        probe = _probe_from_result(kind, qps, duration, res, self.cfg.completed_ratio)
        if kind in ("probe", "confirm") and probe.log_dir:
            probe.ttft_growth_ms = _ms(ttft_growth_s(probe.log_dir))
            limit_ms = self.growth_limit_s * 1000.0
            growth = probe.ttft_growth_ms
            # A probe starts with an empty queue, so near capacity its TTFT rises while the queue fills to its
            # steady state even when the SUT keeps up (at 90-95% load that warm-up alone is 150-250 ms here).
            # Count the rise as a backlog only when it is large AND, continued for two more probe lengths,
            # would carry TTFT p99 past the limit; the completed-rate check catches runs past capacity.
            headroom = 2 * (self.ttft_limit_ms - (probe.ttft_p99_ms or 0.0)) if self.ttft_limit_ms else 0.0
            if probe.verdict == "PASS" and growth is not None and growth > max(limit_ms, headroom):
                probe.verdict = "OVERLOADED"
                probe.kept_up = False
                probe.reasons = [
                    f"LoadGen VALID but TTFT grew {growth:.0f} ms from the first to the last quarter "
                    f"of the run (> {max(limit_ms, headroom):.0f} ms, twice the headroom to the TTFT limit): "
                    "a backlog was building"
                ]
        self.trace.append(probe)
        self.echo(probe.line())
        return probe

    def _time_left(self, qps: float) -> str:
        """The rest of the search at about ``qps``: its probes' and confirm run's length, in words."""
        probe_s, confirm_s = self._probe_duration(qps), self._confirm_duration(qps)
        if confirm_s is None:
            confirm_s = preset_duration_s(self.cfg.benchmark, self.cfg.preset, qps) or probe_s
        n = min(TYPICAL_PROBES, self.cfg.max_probes)
        total = n * (probe_s + RUN_OVERHEAD_S) + confirm_s + RUN_OVERHEAD_S
        return f"next about {n} probes of {probe_s:.0f} s and a {confirm_s:.0f} s confirm run: ~{_minutes(total)} more"

    def _probe_duration(self, qps: float) -> float:
        return min(self.cfg.max_probe_duration_s, max(self.cfg.probe_duration_s, self.cfg.min_probe_queries / qps))

    def run(self, ttft_limit_ms: float | None, tpot_limit_ms: float | None) -> FindPeakResult:
        t0 = time.monotonic()
        cfg = self.cfg
        off = self._run("Offline", "offline", None, cfg.bound_duration_s)
        single = self._run("SingleStream", "singlestream", None, cfg.bound_duration_s)
        x = off.completed_qps or 0.0
        if x <= 0:
            raise RuntimeError(f"Offline bound run completed no samples (logs: {off.log_dir})")
        service_s = (single.latency_p50_ms or 1.0) / 1000.0
        # Least queueing growth that can count as a backlog: a tenth of the TTFT limit, or 5x the unloaded TTFT.
        unloaded = (single.ttft_p99_ms or 0.0) / 1000.0
        self.ttft_limit_ms = ttft_limit_ms
        self.growth_limit_s = max(0.1 * ttft_limit_ms / 1000.0 if ttft_limit_ms else 5 * unloaded, 0.01)
        est = estimate_peak(x, service_s, (single.ttft_p99_ms or 0.0) / 1000.0, (ttft_limit_ms or 0) / 1000.0 or None)
        q = min(max(est.erlang_qps, 0.3 * x), 0.97 * est.upper_bound_qps)
        self.echo(
            f"estimate: Offline {x:.1f}/s x service {service_s * 1000:.1f} ms -> parallelism {est.parallelism:.1f}; "
            f"Erlang-C rate for p99 wait <= {est.ttft_budget_s * 1000:.0f} ms: {est.erlang_qps:.1f} qps; "
            f"upper bound {est.upper_bound_qps:.1f} qps; {self._time_left(q)}"
        )
        lo: float | None = None  # highest passing rate
        hi: float | None = est.upper_bound_qps  # lowest failing rate (the bound counts as failing)
        hi_seen_fail = False
        probes = 0
        while probes < cfg.max_probes and time.monotonic() - t0 < cfg.time_budget_s:
            probes += 1
            p = self._run("Server", "probe", q, self._probe_duration(q))
            if p.verdict == "INVALID" and _short_of_evidence(p):
                # Too few queries for early stopping to judge, not a latency violation: once more, longer.
                p = self._run("Server", "probe", q, 2 * self._probe_duration(q))
            elif p.verdict == "INVALID" and p.kept_up and lo is None:
                # Latency over the limit while the SUT kept up with the schedule, before any rate passed: a stall
                # on a shared host looks like this, and it would drag the whole search down. Judge it twice.
                p = self._run("Server", "probe", q, self._probe_duration(q))
            if p.verdict == "PASS":
                lo = q
            else:
                hi, hi_seen_fail = q, True
            if lo is None:
                q = q * 0.7 if not hi_seen_fail or hi is None else hi * 0.7
                continue
            if hi is None or (not hi_seen_fail and q >= 0.97 * est.upper_bound_qps):
                break  # passing right up to the throughput bound
            if hi / lo - 1.0 <= cfg.resolution:
                break
            q = math.sqrt(lo * hi) if hi_seen_fail else min(lo * 1.25, 0.99 * hi)
        _, failures = self._confirm(lo, t0)
        # The peak is the highest rate a confirm run passed at (the confirm run named as evidence), whatever
        # order the runs came in; the lowest failed confirm above it bounds it.
        passed = [p for p in self.trace if p.kind == "confirm" and p.verdict == "PASS" and p.qps]
        evidence = max(passed, key=lambda p: p.qps or 0.0) if passed else None
        confirmed = evidence is not None
        if evidence is not None:
            lo = evidence.qps
            failed = [p.qps for p in self.trace if p.kind == "confirm" and p.verdict != "PASS" and p.qps]
            above = [f for f in failed if lo is not None and f > lo]
            hi = min(above) if above else hi
        return FindPeakResult(
            peak_qps=lo if confirmed else None,
            confirmed=confirmed,
            bracket=(round(lo or 0.0, 4), None if hi is None else round(hi, 4)),
            confirm_failures=failures,
            estimate=est,
            ttft_limit_ms=ttft_limit_ms,
            tpot_limit_ms=tpot_limit_ms,
            trace=self.trace,
            evidence=evidence,
            artifact=self.artifact,
            elapsed_s=time.monotonic() - t0,
        )

    def _confirm_duration(self, qps: float) -> float | None:
        """At least the preset's length and the longest probe's; None keeps the preset (and its submittability)."""
        longest = max((p.duration_s or 0.0 for p in self.trace if p.kind == "probe"), default=0.0)
        longest = max(longest, self.cfg.min_probe_queries / qps)
        if self.cfg.confirm_duration_s is not None:
            return max(self.cfg.confirm_duration_s, longest)
        preset_s = preset_duration_s(self.cfg.benchmark, self.cfg.preset, qps)
        return None if preset_s is not None and preset_s >= longest else max(preset_s or 0.0, longest)

    def _confirm(self, lo: float | None, t0: float) -> tuple[Probe | None, list[str]]:
        """Confirm ``lo`` at full length, stepping down on failure; (the passing run or None, failure lines)."""
        failures: list[str] = []
        step = self.cfg.resolution
        runs = 0
        while lo is not None and runs < self.cfg.max_confirms:
            if runs and time.monotonic() - t0 > self.cfg.time_budget_s:
                failures.append(
                    f"time budget of {self.cfg.time_budget_s:.0f} s spent before {lo:.1f} qps was confirmed"
                )
                break
            runs += 1
            duration = self._confirm_duration(lo)
            p = self._run("Server", "confirm", lo, duration)
            if p.verdict == "INVALID" and _short_of_evidence(p) and runs < self.cfg.max_confirms:
                runs += 1
                p = self._run("Server", "confirm", lo, 2 * (duration or p.duration_s or 0.0) or None)
            if p.verdict == "PASS":
                return p, failures
            why = "; ".join(p.reasons) or "see its logs"
            failures.append(f"{lo:.1f} qps: {p.verdict} for {p.duration_s or 0:.0f} s ({why})")
            lo = lo * (1.0 - step)
            step = min(2 * step, 0.25)
        return None, failures


def _minutes(seconds: float) -> str:
    m = seconds / 60.0
    return f"{m:.1f} min" if m < 10 else f"{m:.0f} min"


def plan_line(cfg: FindPeakConfig) -> str:
    """What the search will run and for about how long, before anything runs (rates are not known yet:
    a probe lasts between ``probe_duration_s`` and ``max_probe_duration_s``, longer for a slower SUT)."""
    n = min(TYPICAL_PROBES, cfg.max_probes)
    probe_lo, probe_hi = cfg.probe_duration_s, max(cfg.probe_duration_s, cfg.max_probe_duration_s)
    # The preset's length is its minimum duration at a high rate and grows at a low one (its query count);
    # a confirm run also lasts at least as long as the longest probe.
    if cfg.confirm_duration_s is not None:
        confirm_lo = confirm_hi = cfg.confirm_duration_s
    else:
        confirm_lo = preset_duration_s(cfg.benchmark, cfg.preset, 1e4) or probe_lo
        confirm_hi = preset_duration_s(cfg.benchmark, cfg.preset, 1.0) or confirm_lo
    bound = 2 * (cfg.bound_duration_s + RUN_OVERHEAD_S)
    low = bound + n * (probe_lo + RUN_OVERHEAD_S) + confirm_lo + RUN_OVERHEAD_S
    high = bound + n * (probe_hi + RUN_OVERHEAD_S) + max(confirm_hi, probe_hi) + RUN_OVERHEAD_S
    return (
        f"find-peak: 2 bound runs of {cfg.bound_duration_s:g} s, about {n} Server probes (at most {cfg.max_probes}) "
        f"of {probe_lo:g}-{probe_hi:g} s, then a confirm run of at least {confirm_lo:g} s ({cfg.preset} preset"
        f"{', --confirm-duration' if cfg.confirm_duration_s else ''}): expect {_minutes(low)} to {_minutes(high)}"
        f" (the search stops probing after {_minutes(cfg.time_budget_s)})"
    )


def preset_duration_s(benchmark: str, preset: str, qps: float) -> float | None:
    """The Server run length the preset gives at ``qps`` (s); None when the benchmark is unknown here."""
    from pydantic import ValidationError

    from scenarios import SettingsError, SettingsOverrides, plan_settings

    try:
        plan = plan_settings("Server", benchmark, preset, "performance", SettingsOverrides(qps=qps))
    except (SettingsError, ValidationError):  # an unknown benchmark or preset, or a qps no run could have
        return None
    return plan.min_duration_ms / 1000.0


def find_peak(cfg: FindPeakConfig, echo: Callable[[str], None] = print) -> FindPeakResult:
    """Run the whole search; spawns one embedded SUT for all runs when ``cfg.sut`` is None."""
    from common import write_atomic

    ttft, tpot = benchmark_limits_ms(cfg.benchmark)
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness import RunError, SutTarget, launch_sut

    try:
        target = SutTarget(
            address=cfg.sut,
            backend={} if cfg.sut else cfg.backend,
            dataset=cfg.dataset,
            transport=cfg.transport,
            replicas=1 if cfg.sut else cfg.replicas,
        )
    except ValidationError as exc:
        raise RunError(first_error_line(exc, "sut")) from None
    echo(plan_line(cfg))
    with launch_sut(target) as running:
        search = PeakSearch(cfg, running.address, echo)
        result = search.run(ttft, tpot)
    out = Path(cfg.out_dir) / search.run_id
    result.out_dir = str(out)
    write_atomic(out / "find_peak.json", result.model_dump_json(indent=2) + "\n")
    from workflows._peak_chart import write_peak_report

    write_peak_report(result, out / PEAK_REPORT_FILE)
    return result


def benchmark_limits_ms(benchmark: str) -> tuple[float | None, float | None]:
    """The Server TTFT/TPOT p99 limits (ms) of a benchmark profile, when the profile states them."""
    from scenarios import BenchmarkError, get_benchmark

    try:
        prof = get_benchmark(benchmark)
    except BenchmarkError:
        return None, None
    return prof.ttft_ms or prof.server_ttft_ms, prof.tpot_ms or prof.server_tpot_ms
