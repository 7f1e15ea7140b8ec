"""The scheduler of every load shape beside LoadGen (``--load``): one client, one driving coroutine, one verdict.

The shape's ``drive`` runs on the client's event loop; the main thread waits for it as it waits for
LoadGen's test (``run_test``), so SIGINT/SIGTERM work the same: the first signal fails what is in flight
and cancels the drive, the run ends within a second with its records written. After sending stops,
what is in flight finishes (bounded by the RPC timeout).

Without LoadGen there is no LoadGen verdict, and the results say so (``load.note``): a run is judged on
the benchmark's TTFT/TPOT limits (``_load_stats.judge_load_run``), or only on its failures when the
benchmark has none; the basis is stated in ``load.validity_basis``. ``lpuperf gate --slo`` judges it on
an SLO file like any run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from loadgen_harness._bridge import serialise_requests
from loadgen_harness._interrupt import TestOutcome, run_test
from loadgen_harness._load_client import LoadClient
from loadgen_harness._load_shapes import LoadContext, RunClock, SampleSet, make_shape, parse_load
from loadgen_harness._load_stats import (
    CACHE_FIELDS,
    LAG_FIELDS,
    SESSION_FIELDS,
    dispatch_lag,
    judge_load_run,
    prefix_cache_stats,
    session_stats,
)
from loadgen_harness._preflight import manifest_count
from loadgen_harness._results import LatencyLimits, RunResult
from loadgen_harness._run_config import RunConfig, RunError
from loadgen_harness._scheduler import ClientTarget, RunPlan, mark_outcome, mark_overload
from loadgen_harness._shard import ShardClock, sharded_note
from scenarios import BenchmarkProfile, Dataset

# Without a duration or request count, a concurrency or rate run sends for this long (the quick preset's).
DEFAULT_DURATION_S = 10.0


class ShapeScheduler:
    """A load shape (concurrency, rate, trace, sessions) driving the load client."""

    def __init__(self, cfg: RunConfig, bench: BenchmarkProfile, dataset: Dataset) -> None:
        assert cfg.load is not None
        self.cfg = cfg
        self.bench = bench
        self.dataset = dataset
        self.shape = make_shape(parse_load(cfg.load))
        if cfg.shard is not None:
            self.shape.shard(cfg.shard)
        self.ctx: LoadContext | None = None
        self.clock = ShardClock(cfg.start_at_unix_ns)

    def prepare(self) -> RunPlan:
        cfg = self.cfg
        if cfg.mode != "performance":
            raise RunError("load: accuracy runs use LoadGen's scenarios (leave --load out with --mode accuracy)")
        for name in ("user_conf", "audit_config", "qps", "min_query_count"):
            if getattr(cfg, name) is not None:
                raise RunError(f"{name}: applies to LoadGen's scenarios only, not to --load {self.shape.config.kind}")
        self.shape.check()
        self.max_new = cfg.max_new_tokens or self.bench.max_new_tokens_for("performance")
        return RunPlan(
            scenario=self.shape.scenario,
            submittable=False,
            max_new_tokens=self.max_new,
            expected_queries=4096,
            target_qps=getattr(self.shape.config, "rate", None),
            sends_dataset=self.shape.uses_dataset,
        )

    def open_client(self, target: ClientTarget) -> LoadClient:
        cfg = self.cfg
        fleet = target.fleet
        pins = [r.address for r in fleet.replicas] if fleet is not None and len(fleet.replicas) > 1 else []
        client = LoadClient(
            target.address,
            max_in_flight=cfg.max_in_flight,
            pin_addresses=pins,
            rpc_timeout_s=cfg.rpc_timeout_s,
            metrics=target.metrics,
            transport=cfg.transport,
            replica_ids=fleet.replica_ids if fleet is not None else (),
            opener=target.opener,
        )
        self.ctx = LoadContext(
            clock=RunClock(client.t0_ns),
            sender=client,
            samples=self._samples() if self.shape.uses_dataset else SampleSet((), ()),
            duration_s=self._duration_s(),
            max_requests=None,
            max_new_tokens=self.max_new,
            eos_token_id=self.dataset.eos_token_id,
            max_context_tokens=manifest_count(target.artifact, "max_context_tokens") or 1 << 30,
            pins=client.pins,
            max_in_flight=cfg.max_in_flight,
        )
        self.clock.opened(client.t0_ns)
        return client

    def _samples(self) -> SampleSet:
        ds = self.dataset
        requests = serialise_requests(
            ds.input_ids, ds.prompts, [self.max_new] * len(ds), ds.eos_token_id, self.cfg.ignore_eos
        )
        return SampleSet(requests, [len(ids) for ids in ds.input_ids])

    def _duration_s(self) -> float | None:
        if self.cfg.duration_s is not None:
            return self.cfg.duration_s
        if not self.shape.uses_dataset or getattr(self.shape.config, "requests", None) is not None:
            return None  # a trace or session file ends by itself; a request count ends the run
        return DEFAULT_DURATION_S

    def execute(self, client: LoadClient, log_dir: Path) -> TestOutcome:
        ctx = self.ctx
        assert ctx is not None

        async def main() -> None:
            client.drive_task = asyncio.current_task()  # type: ignore[assignment]
            try:
                await self.clock.wait_for_start()
                await self.shape.drive(ctx)
                await client.drained(self.cfg.rpc_timeout_s)
            except asyncio.CancelledError:
                pass  # an interrupt: the client fails what is in flight

        def start() -> None:
            asyncio.run_coroutine_threadsafe(main(), client._loop).result()

        outcome = run_test(start, client, self.cfg.drain_timeout_s, who="the load")
        outcome.error_source = f"the {self.shape.config.kind} load"
        return outcome

    def finish(self, res: RunResult, client: LoadClient, outcome: TestOutcome, log_dir: Path) -> None:
        cfg, ctx = self.cfg, self.ctx
        assert ctx is not None and cfg.load is not None
        records = client.records
        res.load = self.shape.info(cfg.load)
        res.load.sent_requests = records.n
        res.load.duration_s = ctx.duration_s
        res.warnings += self.clock.late_warning()
        if cfg.shard is not None:
            res.shard = self.clock.info(cfg.shard)
            res.load.note = sharded_note(f"shard {cfg.shard}")
        res.dispatch_lag = dispatch_lag(records.columns(LAG_FIELDS), cfg.max_dispatch_lag_ms)
        res.client_limited = res.dispatch_lag is not None and res.dispatch_lag.client_limited
        cols = records.columns(SESSION_FIELDS)
        res.sessions = session_stats(
            cols,
            ctx.counters.get("sessions", 0),
            ctx.counters.get("cut_at_context", 0),
            ctx.counters.get("cut_at_end", 0),
        )
        res.prefix_cache = prefix_cache_stats({k: cols[k] for k in CACHE_FIELDS})
        ok = res.successful
        if ok is not None:  # no LoadGen summary: the run's own figures are its successful queries'
            res.completed_qps, res.tokens_per_second = ok.qps, ok.tokens_per_second
            res.ttft_ms, res.tpot_ms, res.latency_ms = ok.ttft_ms, ok.tpot_ms, ok.latency_ms
        res.scheduled_qps = getattr(self.shape.config, "rate", None)
        limits, basis = self._limits()
        res.limits = limits
        res.goodput = records.goodput(limits)
        res.settings.update(self._settings())
        judge_load_run(res, limits, basis)
        mark_overload(res, client.overload)
        mark_outcome(res, outcome, "the load stopped sending")
        if res.overload is not None:
            res.validity_reasons.insert(0, res.overload.reason())
        for name, count in sorted(ctx.counters.items()):
            if name.startswith("clipped") and count:
                res.warnings.append(f"{count} requests {name.replace('_', ' ')} (prompt cut so prompt + output fit)")
        if cfg.ignore_eos:
            res.warnings.append(
                f"ignore_eos: every answer was held to {self.max_new} tokens; not the model's own answers"
            )

    def _limits(self) -> tuple[LatencyLimits | None, str]:
        ttft, tpot = self.bench.ttft_ms, self.bench.tpot_ms
        if ttft is None and tpot is None:
            return None, f"{self.bench.name} has no per-query latency limits: judged on failures and dispatch lag only"
        limits = LatencyLimits(ttft_ms=ttft, tpot_ms=tpot, percentile=99.0)
        parts = [f"TTFT {ttft:g} ms" if ttft is not None else "", f"TPOT {tpot:g} ms" if tpot is not None else ""]
        return limits, f"{self.bench.name}'s limits at p99: {', '.join(p for p in parts if p)} (not LoadGen's verdict)"

    def _settings(self) -> dict[str, str | int | float | None]:
        return {
            "load": self.cfg.load,
            "harness_max_in_flight": self.cfg.max_in_flight,
            "max_dispatch_lag_ms": self.cfg.max_dispatch_lag_ms,
            "max_new_tokens": self.max_new,
        }

    def release(self, outcome: TestOutcome) -> None:
        return None
