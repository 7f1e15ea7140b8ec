"""Run orchestration: one LoadGen test against one SUT, from RunConfig to results.json.

Steps: resolve the dataset and settings (bad input fails before anything starts), start the
embedded SUT in its own process unless an address was given (so harness and SUT each get a core),
fetch the artifact manifest, run LoadGen with the bridge, then parse LoadGen's detail log into a
RunResult and write ``results.json``, ``artifact.json`` and ``queries.npz`` next to LoadGen's logs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from common import BackendSpec, ExporterSecurity, RunId, UsageError, write_json_atomic
from loadgen_harness._fleet import Fleet
from loadgen_harness._interrupt import (
    DEFAULT_MAX_IN_FLIGHT,
    RunInterrupted,
    TestOutcome,
    drain_estimate_s,
    exit_if_stuck,
    plan_size_error,
    planned_samples,
    run_test,
    server_outstanding_limit,
)
from loadgen_harness._launcher import RunningSut
from loadgen_harness._replicas import ReplicaEvent, records_breakdown
from loadgen_harness._results import (
    DETAIL_FILE,
    SUMMARY_FILE,
    OverloadStop,
    RunResult,
    fill_from_detail,
    parse_detail_log,
    parse_summary_token_latencies,
    save_results,
)
from loadgen_harness._transport import TransportSecurity
from loadgen_harness._watch import ReplicaWatch
from scenarios import ScenarioName

# LoadGen applies ./audit.config when it exists; a stray one must never alter a normal run, so
# normal runs name a file that cannot exist.
NO_AUDIT_CONFIG = "/nonexistent/lpuperf-no-audit.config"
TRACE_FILE = "mlperf_log_trace.json"


class RunError(UsageError):
    """A run could not start (bad config, unreachable SUT); the message is one line."""


class RunConfig(BaseModel):
    """Everything one run needs; usable programmatically and from ``lpuperf run``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    scenario: ScenarioName = "Server"
    mode: Literal["performance", "accuracy"] = "performance"
    benchmark: str = "embedded"
    preset: Literal["quick", "submission"] = "quick"
    dataset: str | None = Field(default=None, description="dataset spec; None = the benchmark's")
    sut: str | None = Field(
        default=None,
        description="host:port, a list of host:port or a gRPC target URI (dns:///name:port, ipv4:a:p,b:q): "
        "one SUT or a fleet balanced by gRPC's round_robin; None = spawn the embedded sim SUT",
    )
    replicas: int = Field(default=1, ge=1, le=32, description="embedded SUT processes to spawn (no sut)")
    allow_mixed: bool = Field(default=False, description="run against replicas serving different artifacts")
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT (sut)"
    )
    backend: BackendSpec = Field(
        default_factory=dict, description="backend config of the spawned SUT ({'kind': ..., ...}); see SutTarget"
    )
    http_endpoint: BackendSpec | None = Field(
        default=None,
        description="an openai backend config ({'kind': 'openai', 'base_url': ...}): the harness streams each query "
        "straight to that OpenAI-compatible endpoint (--transport openai-http), no SUT process, no gRPC",
    )
    qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    min_query_count: int | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    run_id: RunId | None = None
    user_conf: Path | None = None
    audit_config: Path | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1, description="address the metrics exporter binds")
    metrics_security: ExporterSecurity = Field(
        default_factory=ExporterSecurity, description="HTTPS and basic/bearer auth of the metrics exporter"
    )
    # Keep the exporter up briefly after the run so a scraper sees the final counts and run state.
    metrics_linger_s: float = Field(default=2.0, ge=0, le=300)
    max_new_tokens: int | None = Field(default=None, gt=0)
    offline_concurrency: int | None = Field(default=None, gt=0)
    rpc_timeout_s: float = Field(default=300.0, gt=0)
    # After SIGINT/SIGTERM, how long LoadGen may take to end its test before it is abandoned (an
    # interrupted run is never submittable: waiting longer buys nothing; Offline ends within it).
    drain_timeout_s: float = Field(default=1.0, gt=0, le=3600)
    # A Server run stops early once more queries than this are outstanding (LoadGen's
    # server_max_async_queries is at most this): the harness's memory stays bounded when the SUT falls behind.
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=16, le=10_000_000)
    progress: bool = False
    # LoadGen's trace log (mlperf_log_trace.json, megabytes per Server run) is written only when asked for:
    # queries.npz holds the per-query timings everything here reads.
    trace: bool = False
    # Samples over the SUT's advertised context are refused before the run unless this is set
    # (a test that wants to see the SUT's refusals sends them on purpose).
    allow_context_overflow: bool = False
    # Every answer held to exactly max_new_tokens (EOS suppressed until then), as fixed-length load tests
    # of other tools do; a performance-only setting: the outputs are no longer the model's own answers.
    ignore_eos: bool = False

    @field_validator("sut")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        from loadgen_harness._fleet import check_target

        return None if v is None else check_target(v)

    def log_dir(self, run_id: str) -> Path:
        return Path(self.out_dir) / run_id / self.scenario / self.mode


def _http_opener(endpoint: BackendSpec | None, artifact: dict[str, JsonValue]) -> Any:
    """The bridge's opener for --transport openai-http (None: gRPC), with the model the probe found pinned."""
    if endpoint is None:
        return None
    from loadgen_harness._http_transport import HttpCalls

    pinned: BackendSpec = {**endpoint, "model": artifact.get("model", "")}
    return lambda: HttpCalls.open(pinned)


def harness_version() -> str:
    try:
        from importlib.metadata import version

        return f"lpuperf {version('lpuperf')}, mlcommons-loadgen {version('mlcommons-loadgen')}"
    except Exception:
        return "lpuperf (unknown version)"


@contextlib.contextmanager
def _sut_address(cfg: RunConfig) -> Iterator[RunningSut]:
    """The run's SUT (its address, artifact manifest and replicas), through the one launcher."""
    from pydantic import ValidationError

    from common import first_error_line
    from loadgen_harness._launcher import SutTarget, launch_sut

    if cfg.http_endpoint is not None:  # no SUT: the endpoint's own manifest stands for the artifact
        from loadgen_harness._http_transport import probe_endpoint

        manifest = probe_endpoint(cfg.http_endpoint)
        yield RunningSut(address=str((manifest.get("extra") or {}).get("base_url", "")), artifact=manifest)
        return
    try:
        target = SutTarget(
            address=cfg.sut,
            backend=cfg.backend,
            dataset=cfg.dataset,
            transport=cfg.transport,
            replicas=cfg.replicas,
            allow_mixed=cfg.allow_mixed,
        )
    except ValidationError as exc:
        raise RunError(first_error_line(exc, "sut")) from None
    with launch_sut(target) as running:
        yield running


def fetch_artifact(
    address: str, timeout_s: float = 10.0, transport: TransportSecurity | None = None
) -> dict[str, JsonValue]:
    """GetArtifact over a short-lived channel; the manifest as JSON (manifest_json when it holds an object).

    The first call of a run to its SUT: a TLS or token failure here is one RunError line naming the cause.
    The same call as the fleet's per-replica check, without the replica's id.
    """
    from loadgen_harness._fleet import fetch_replica

    return fetch_replica(address, transport, timeout_s)[1]


def run_benchmark(cfg: RunConfig, on_progress: Callable[[float, int, float], None] | None = None) -> RunResult:
    """Run one LoadGen test; returns the RunResult also written to ``<log_dir>/results.json``.

    ``on_progress(elapsed_s, completed, rate)`` is called about every 2 s from a helper thread;
    with ``cfg.progress`` and no callback, a status line goes to stderr.
    """
    import mlperf_loadgen as lg

    from common import check_writable_dir
    from loadgen_harness._bridge import Bridge, DatasetQSL
    from loadgen_harness._console import ProgressTicker, progress_printer
    from loadgen_harness._preflight import context_overflow_error, manifest_count
    from scenarios import (
        DatasetError,
        SettingsError,
        SettingsOverrides,
        UserConfError,
        embedded_dataset,
        embedded_sut_backend,
        get_benchmark,
        plan_settings,
        resolve_dataset,
    )

    try:
        bench = get_benchmark(cfg.benchmark)
        if cfg.sut is None and cfg.http_endpoint is None:
            # A spawned sim serves the benchmark's own set (a reasoning benchmark: its reasoning artifact).
            backend, _ = embedded_sut_backend(bench, cfg.preset, cfg.backend)
            cfg = cfg.model_copy(
                update={"backend": backend, "dataset": embedded_dataset(bench, cfg.preset, cfg.dataset)}
            )
        dataset = resolve_dataset(cfg.dataset or bench.dataset)
        plan = plan_settings(
            cfg.scenario,
            bench,
            cfg.preset,
            cfg.mode,
            SettingsOverrides(qps=cfg.qps, duration_s=cfg.duration_s, min_query_count=cfg.min_query_count),
            sample_count=min(len(dataset), bench.total_sample_count),
        )
        if cfg.ignore_eos and cfg.mode == "accuracy":
            raise RunError("ignore_eos: a performance-only setting; accuracy needs the model's own answers")
        if cfg.user_conf is not None and not Path(cfg.user_conf).is_file():
            raise RunError(f"user_conf: {cfg.user_conf}: file not found")
        if cfg.audit_config is not None and not Path(cfg.audit_config).is_file():
            raise RunError(f"audit_config: {cfg.audit_config}: file not found")
        check_writable_dir(cfg.out_dir, "out_dir")  # before the SUT starts, not when results are written
        settings = plan.to_test_settings(cfg.user_conf)
    except (SettingsError, DatasetError, UserConfError, ValueError) as exc:
        raise RunError(str(exc)) from None
    too_big = plan_size_error(settings)
    if too_big is not None:
        raise RunError(too_big)
    max_new = cfg.max_new_tokens or bench.max_new_tokens_for(cfg.mode)
    max_in_flight: int | None = None
    if plan.loadgen_scenario == "Server" and cfg.mode == "performance":
        user_limit = int(settings.server_max_async_queries)  # a user.conf value stands, up to the memory bound
        settings.server_max_async_queries = (
            min(user_limit, cfg.max_in_flight)
            if user_limit
            else server_outstanding_limit(settings, max_new, cfg.max_in_flight)
        )
        max_in_flight = int(settings.server_max_async_queries)
    run_id = cfg.run_id or time.strftime("run-%Y%m%d-%H%M%S")
    log_dir = cfg.log_dir(run_id)

    metrics = None
    if cfg.metrics_port is not None:
        from loadgen_harness._metrics import HarnessMetrics

        try:
            metrics = HarnessMetrics.start(cfg.metrics_port, addr=cfg.metrics_host, security=cfg.metrics_security)
        except OSError as exc:
            raise RunError(
                f"metrics_port: cannot listen on {cfg.metrics_host}:{cfg.metrics_port} ({exc.strerror or exc})"
            ) from None
        metrics.run_started(cfg.scenario, cfg.benchmark, cfg.mode, cfg.preset, plan.server_target_qps)

    res = RunResult(
        run_id=run_id,
        scenario=cfg.scenario,
        mode=cfg.mode,
        benchmark=bench.name,
        preset=cfg.preset,
        submittable=plan.submittable and not cfg.ignore_eos,
        harness_version=harness_version(),
        log_dir=str(log_dir),
        dataset=cfg.dataset or bench.dataset,
    )
    t_start = time.monotonic()
    failed = True
    outcome = TestOutcome()
    try:
        with _sut_address(cfg) as running:
            address, artifact, fleet = running.address, running.artifact, running.fleet
            res.sut_address = address
            res.artifact = artifact
            res.warnings += _artifact_warnings(artifact, bench.name)
            overflow = None if cfg.allow_context_overflow else context_overflow_error(dataset, max_new, artifact)
            if overflow is not None:
                raise RunError(overflow)
            # Created only once the SUT answered: a run that cannot start leaves nothing behind.
            log_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(log_dir / "artifact.json", artifact, sort_keys=True)
            max_batch = manifest_count(artifact, "max_batch") or 32
            # Offline's pool keeps every replica's batch full: two batches per replica behind the target.
            n_replicas = len(fleet.replicas) if fleet is not None else 1
            concurrency = cfg.offline_concurrency or max(8, min(512, 2 * max_batch * n_replicas))
            qsl = DatasetQSL(dataset, max_new, plan.performance_sample_count_override, cfg.ignore_eos)
            bridge = Bridge(
                address,
                qsl.requests,
                offline=plan.loadgen_scenario == "Offline",
                offline_concurrency=concurrency,
                rpc_timeout_s=cfg.rpc_timeout_s,
                expected_queries=plan.expected_queries() * plan.samples_per_query,
                metrics=metrics,
                max_in_flight=max_in_flight,
                transport=cfg.transport,
                replica_ids=fleet.replica_ids if fleet is not None else (),
                opener=_http_opener(cfg.http_endpoint, artifact),
            )
            # Each replica's health is watched off the query path: outages land in results.json.
            watch = ReplicaWatch(fleet.replicas, bridge.t0_ns, cfg.transport).start() if fleet is not None else None
            sut_handle = lg.ConstructSUT(bridge.issue, bridge.flush)
            if on_progress is None and cfg.progress:
                on_progress = progress_printer()
            ticker = ProgressTicker(bridge, on_progress) if on_progress is not None else None
            try:
                if ticker is not None:
                    ticker.start()
                outcome = run_test(
                    lambda: lg.StartTestWithLogSettings(
                        sut_handle, qsl.handle, settings, _log_settings(lg, log_dir, cfg.trace), _audit_path(cfg)
                    ),
                    bridge,
                    cfg.drain_timeout_s,
                    lambda elapsed_s: drain_estimate_s(settings, elapsed_s, bridge.records.n),
                )
                if ticker is not None:
                    ticker.stop()
                # The records are final before anything is written; each step is bounded whatever grpc does.
                with exit_if_stuck(_TEARDOWN_LIMIT_S):
                    events = watch.stop() if watch is not None else []
                    bridge.quiesce()
                _finish_result(res, bridge, outcome, log_dir, fleet, events)
                res.settings.update(plan.results_settings())  # keys the harness supplied, and why settings differ
                _finish_notes(res, cfg, max_new, settings, log_dir)
                res.duration_s = round(time.monotonic() - t_start, 3)
                save_results(res, log_dir)
            finally:
                if ticker is not None:
                    ticker.stop()
                with exit_if_stuck(_TEARDOWN_LIMIT_S, log_dir):  # results.json is written: now close
                    if watch is not None:
                        watch.stop()
                    bridge.close()
                if not outcome.abandoned:  # an abandoned test still uses both: freeing them would crash it
                    lg.DestroySUT(sut_handle)
                    qsl.destroy()
        if outcome.interrupted_by is not None:
            raise RunInterrupted(res)
        if outcome.error is not None:
            raise RuntimeError(f"LoadGen's test failed: {outcome.error!r}") from outcome.error
        failed = False
        return res
    finally:
        if metrics is not None:
            metrics.run_finished(failed)
            if cfg.metrics_linger_s > 0 and outcome.interrupted_by is None:  # Ctrl-C means now
                time.sleep(cfg.metrics_linger_s)
            metrics.stop()


# Watch, bridge and channel teardown: far above what a healthy close takes (milliseconds), far below a hang.
_TEARDOWN_LIMIT_S = 20.0


def _log_settings(lg: Any, log_dir: Path, trace: bool) -> Any:
    out = lg.LogOutputSettings()
    out.outdir = str(log_dir.resolve())
    out.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = out
    log_settings.enable_trace = trace
    return log_settings


def _audit_path(cfg: RunConfig) -> str:
    return str(Path(cfg.audit_config).resolve()) if cfg.audit_config else NO_AUDIT_CONFIG


def _finish_notes(res: RunResult, cfg: RunConfig, max_new: int, settings: Any, log_dir: Path) -> None:
    """Warnings, reasons and files that depend on how the run was set up and how it ended."""
    if cfg.ignore_eos:
        res.warnings.append(f"ignore_eos: every answer was held to {max_new} tokens; not the model's own answers")
    if res.overload is not None:
        planned = planned_samples(settings)
        if planned is not None:
            res.overload.planned_queries = int(planned[0])
            res.overload.completed_fraction = round(res.overload.completed_ok / max(1.0, planned[0]), 6)
        res.validity_reasons.insert(0, res.overload.reason())
    # LoadGen opens these at the start: the trace stays empty without tracing, and the summary of an
    # abandoned test is never written. An empty file there only misleads (a reader takes it for a result).
    _drop_empty_logs(log_dir, (SUMMARY_FILE,) if cfg.trace else (TRACE_FILE, SUMMARY_FILE))


def _artifact_warnings(artifact: dict[str, JsonValue], benchmark: str) -> list[str]:
    """What the SUT's manifest says that makes its figures differ from the benchmark's (a scaled reasoning sim)."""
    info = artifact.get("reasoning")
    scale = info.get("reasoning_scale") if isinstance(info, dict) else None
    if isinstance(scale, int | float) and not isinstance(scale, bool) and 0 < scale < 1:
        return [
            f"reasoning_scale {scale:g}: the SUT shortens its reasoning to {scale:.0%} of {benchmark}'s length; output "
            "lengths and latencies are not the benchmark's (lpuperf plan scales them back)"
        ]
    return []


def _drop_empty_logs(log_dir: Path, names: Sequence[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            if (log_dir / name).stat().st_size == 0:
                (log_dir / name).unlink()


def _finish_result(
    res: RunResult,
    bridge: Any,
    outcome: TestOutcome,
    log_dir: Path,
    fleet: Fleet | None = None,
    events: Sequence[ReplicaEvent] = (),
) -> None:
    """Fill ``res`` from the bridge's records and LoadGen's logs; writes queries.npz."""
    res.n_queries = bridge.records.n
    res.n_errors = bridge.errors
    res.errors_by_status = dict(bridge.errors_by_status)
    if fleet is not None:  # before the records are saved: attributing a failed stream may fill its replica
        stopped_ns = bridge.stopped_ns
        if stopped_ns is not None:  # the run's own stop (signal, overload) is no replica's outage
            events = [e for e in events if e.t_s * 1e9 < stopped_ns]
        res.fleet = records_breakdown(bridge.records, fleet, bridge.replica_ids, events, stopped_ns)
    bridge.records.save(log_dir)
    res.successful = bridge.records.success_stats()
    detail = log_dir / DETAIL_FILE
    if detail.is_file():  # LoadGen writes it from the start; an abandoned test leaves it partial
        fill_from_detail(res, parse_detail_log(detail), parse_summary_token_latencies(log_dir))
    # Over the same records as ``successful``, against the limits LoadGen judged the run by.
    res.goodput = bridge.records.goodput(res.limits)
    res.itl = bridge.records.inter_token_latency()
    res.reasoning = bridge.records.reasoning_stats()
    if bridge.max_in_flight is not None:
        res.settings["harness_max_in_flight"] = bridge.max_in_flight
    if bridge.overload is not None:
        res.valid = False
        res.overload = OverloadStop(
            at_s=round(bridge.overload.at_ns / 1e9, 3),
            outstanding=bridge.overload.outstanding,
            limit=bridge.overload.limit,
            completed_ok=res.successful.n_queries if res.successful is not None else 0,
        )
    if outcome.error is not None:
        res.state = "failed"
        res.valid = False
        res.validity_reasons.insert(0, f"LoadGen's test failed: {outcome.error!r}")
    if outcome.interrupted_by is not None:
        res.state = "interrupted"
        res.interrupted_by = "SIGTERM" if outcome.interrupted_by == "SIGTERM" else "SIGINT"
        res.loadgen_finished = not outcome.abandoned
        res.valid = False
        how = "LoadGen's test was abandoned, its logs are partial" if outcome.abandoned else "LoadGen ended its test"
        res.validity_reasons.insert(
            0, f"interrupted by {res.interrupted_by}: outstanding queries completed as failed; {how}"
        )
