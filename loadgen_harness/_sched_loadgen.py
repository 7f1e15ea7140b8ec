"""LoadGen as a scheduler: MLPerf's scenarios (Server, Offline, SingleStream, MultiStream, Interactive).

LoadGen decides when each query is issued; the bridge (``_bridge.Bridge``) streams it and reports every
completion back. Settings come from the scenario preset and the benchmark (``scenarios.plan_settings``),
a Server run's outstanding queries are bounded by ``max_in_flight``, and after the test LoadGen's detail
log is the source of the verdict (``loadgen_valid``), its limits and its early-stopping needs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from loadgen_harness._bridge import Bridge, DatasetQSL
from loadgen_harness._interrupt import (
    TestOutcome,
    drain_estimate_s,
    plan_size_error,
    planned_samples,
    run_test,
    server_outstanding_limit,
)
from loadgen_harness._preflight import manifest_count
from loadgen_harness._results import (
    DETAIL_FILE,
    SUMMARY_FILE,
    RunResult,
    fill_from_detail,
    parse_detail_log,
    parse_summary_token_latencies,
)
from loadgen_harness._run_config import NO_AUDIT_CONFIG, RunConfig, RunError
from loadgen_harness._scheduler import ClientTarget, RunPlan, mark_outcome, mark_overload
from loadgen_harness._workers import WorkerBridge, worker_specs
from scenarios import BenchmarkProfile, Dataset

TRACE_FILE = "mlperf_log_trace.json"


class LoadGenScheduler:
    """One LoadGen test: its settings, QSL and SUT handles, and its logs read back into the result."""

    def __init__(self, cfg: RunConfig, bench: BenchmarkProfile, dataset: Dataset) -> None:
        import mlperf_loadgen as lg

        self.lg = lg
        self.cfg = cfg
        self.bench = bench
        self.dataset = dataset
        self.qsl: DatasetQSL | None = None
        self.sut_handle: Any = None

    def prepare(self) -> RunPlan:
        from scenarios import SettingsError, SettingsOverrides, UserConfError, plan_settings

        cfg, bench = self.cfg, self.bench
        try:
            self.plan = plan_settings(
                cfg.scenario,
                bench,
                cfg.preset,
                cfg.mode,
                SettingsOverrides(qps=cfg.qps, duration_s=cfg.duration_s, min_query_count=cfg.min_query_count),
                sample_count=min(len(self.dataset), bench.total_sample_count),
            )
            if cfg.user_conf is not None and not Path(cfg.user_conf).is_file():
                raise RunError(f"user_conf: {cfg.user_conf}: file not found")
            if cfg.audit_config is not None and not Path(cfg.audit_config).is_file():
                raise RunError(f"audit_config: {cfg.audit_config}: file not found")
            self.settings = self.plan.to_test_settings(cfg.user_conf)
        except (SettingsError, UserConfError, ValueError) as exc:
            raise RunError(str(exc)) from None
        too_big = plan_size_error(self.settings)
        if too_big is not None:
            raise RunError(too_big)
        self.max_new = cfg.max_new_tokens or bench.max_new_tokens_for(cfg.mode)
        self.max_in_flight: int | None = None
        if self.plan.loadgen_scenario == "Server" and cfg.mode == "performance":
            user_limit = int(self.settings.server_max_async_queries)  # a user.conf value stands, up to the bound
            self.settings.server_max_async_queries = (
                min(user_limit, cfg.max_in_flight)
                if user_limit
                else server_outstanding_limit(self.settings, self.max_new, cfg.max_in_flight)
            )
            self.max_in_flight = int(self.settings.server_max_async_queries)
        return RunPlan(
            scenario=cfg.scenario,
            submittable=self.plan.submittable and not cfg.ignore_eos,
            max_new_tokens=self.max_new,
            expected_queries=self.plan.expected_queries() * self.plan.samples_per_query,
            target_qps=self.plan.server_target_qps,
        )

    def open_client(self, target: ClientTarget) -> Bridge | WorkerBridge:
        cfg = self.cfg
        max_batch = manifest_count(target.artifact, "max_batch") or 32
        # Offline's pool keeps every replica's batch full: two batches per replica behind the target.
        n_replicas = len(target.fleet.replicas) if target.fleet is not None else 1
        concurrency = cfg.offline_concurrency or max(8, min(512, 2 * max_batch * n_replicas))
        self.qsl = DatasetQSL(self.dataset, self.max_new, self.plan.performance_sample_count_override, cfg.ignore_eos)
        if cfg.workers > 1:
            return self._open_workers(target, concurrency)
        return Bridge(
            target.address,
            self.qsl.requests,
            offline=self.plan.loadgen_scenario == "Offline",
            offline_concurrency=concurrency,
            rpc_timeout_s=cfg.rpc_timeout_s,
            expected_queries=self.plan.expected_queries() * self.plan.samples_per_query,
            metrics=target.metrics,
            max_in_flight=self.max_in_flight,
            transport=cfg.transport,
            replica_ids=target.fleet.replica_ids if target.fleet is not None else (),
            opener=target.opener,
        )

    def _open_workers(self, target: ClientTarget, offline_concurrency: int) -> WorkerBridge:
        """``--workers N``: the same queries streamed by N worker processes (``_workers``)."""
        cfg = self.cfg
        endpoint = None
        if cfg.http_endpoint is not None:  # the model the probe found, pinned as the one-process opener does
            endpoint = {**cfg.http_endpoint, "model": target.artifact.get("model", "")}
        specs = worker_specs(
            cfg.workers,
            address=target.address,
            dataset=cfg.dataset or self.bench.dataset,
            max_new_tokens=self.max_new,
            offline=self.plan.loadgen_scenario == "Offline",
            offline_concurrency=offline_concurrency,
            rpc_timeout_s=cfg.rpc_timeout_s,
            ignore_eos=cfg.ignore_eos,
            transport=cfg.transport,
            http_endpoint=endpoint,
            replica_ids=tuple(target.fleet.replica_ids) if target.fleet is not None else (),
        )
        return WorkerBridge(
            specs,
            offline=self.plan.loadgen_scenario == "Offline",
            expected_queries=self.plan.expected_queries() * self.plan.samples_per_query,
            metrics=target.metrics,
            max_in_flight=self.max_in_flight,
        )

    def execute(self, client: Bridge | WorkerBridge, log_dir: Path) -> TestOutcome:
        lg, qsl = self.lg, self.qsl
        assert qsl is not None
        self.sut_handle = lg.ConstructSUT(client.issue, client.flush)
        return run_test(
            lambda: lg.StartTestWithLogSettings(
                self.sut_handle, qsl.handle, self.settings, self._log_settings(log_dir), self._audit_path()
            ),
            client,
            self.cfg.drain_timeout_s,
            lambda elapsed_s: drain_estimate_s(self.settings, elapsed_s, client.records.n),
        )

    def finish(self, res: RunResult, client: Bridge | WorkerBridge, outcome: TestOutcome, log_dir: Path) -> None:
        """LoadGen's verdict and limits from its logs, the overload stop, and the notes on how the run ended."""
        detail = log_dir / DETAIL_FILE
        if detail.is_file():  # LoadGen writes it from the start; an abandoned test leaves it partial
            fill_from_detail(res, parse_detail_log(detail), parse_summary_token_latencies(log_dir))
        # Over the same records as ``successful``, against the limits LoadGen judged the run by.
        res.goodput = client.records.goodput(res.limits)
        if client.max_in_flight is not None:
            res.settings["harness_max_in_flight"] = client.max_in_flight
        mark_overload(res, client.overload)
        if isinstance(client, WorkerBridge):
            client.annotate(res)
        if outcome.interrupted_by is not None:
            res.loadgen_finished = not outcome.abandoned
        how = "LoadGen's test was abandoned, its logs are partial" if outcome.abandoned else "LoadGen ended its test"
        mark_outcome(res, outcome, how)
        res.settings.update(self.plan.results_settings())  # keys the harness supplied, and why settings differ
        self._notes(res, log_dir)

    def release(self, outcome: TestOutcome) -> None:
        if outcome.abandoned:  # an abandoned test still uses both: freeing them would crash it
            return
        if self.sut_handle is not None:
            self.lg.DestroySUT(self.sut_handle)
            self.sut_handle = None
        if self.qsl is not None:
            self.qsl.destroy()

    # ---- LoadGen's files ----

    def _log_settings(self, log_dir: Path) -> Any:
        out = self.lg.LogOutputSettings()
        out.outdir = str(log_dir.resolve())
        out.copy_summary_to_stdout = False
        log_settings = self.lg.LogSettings()
        log_settings.log_output = out
        log_settings.enable_trace = self.cfg.trace
        return log_settings

    def _audit_path(self) -> str:
        return str(Path(self.cfg.audit_config).resolve()) if self.cfg.audit_config else NO_AUDIT_CONFIG

    def _notes(self, res: RunResult, log_dir: Path) -> None:
        if self.cfg.ignore_eos:
            res.warnings.append(
                f"ignore_eos: every answer was held to {self.max_new} tokens; not the model's own answers"
            )
        if res.overload is not None:
            planned = planned_samples(self.settings)
            if planned is not None:
                res.overload.planned_queries = int(planned[0])
                res.overload.completed_fraction = round(res.overload.completed_ok / max(1.0, planned[0]), 6)
            res.validity_reasons.insert(0, res.overload.reason())
        # LoadGen opens these at the start: the trace stays empty without tracing, and the summary of an
        # abandoned test is never written. An empty file there only misleads (a reader takes it for a result).
        for name in (SUMMARY_FILE,) if self.cfg.trace else (TRACE_FILE, SUMMARY_FILE):
            with contextlib.suppress(FileNotFoundError):
                if (log_dir / name).stat().st_size == 0:
                    (log_dir / name).unlink()
