"""Run orchestration: one run against one SUT or fleet, from RunConfig to results.json.

Steps: resolve the dataset, and let the run's scheduler (LoadGen's scenario, or a load shape beside it:
``_scheduler``) check its settings and inputs, so bad input fails before anything starts; start the
embedded SUT in its own process unless an address was given (so harness and SUT each get a core); fetch
the artifact manifest; let the scheduler send; then write ``results.json``, ``artifact.json`` and
``queries.npz`` (next to LoadGen's logs for a LoadGen run), and only then close anything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from common import BackendSpec, write_json_atomic
from loadgen_harness._fleet import Fleet
from loadgen_harness._interrupt import RunInterrupted, TestOutcome, exit_if_stuck
from loadgen_harness._launcher import RunningSut
from loadgen_harness._replicas import ReplicaEvent, records_breakdown
from loadgen_harness._results import RunResult, save_results
from loadgen_harness._run_config import NO_AUDIT_CONFIG, RunConfig, RunError, resolve_inputs
from loadgen_harness._run_telemetry import check_telemetry, finish_telemetry, start_telemetry, wants_sut_metrics
from loadgen_harness._scheduler import ClientTarget, Scheduler
from loadgen_harness._transport import TransportSecurity
from loadgen_harness._watch import ReplicaWatch

__all__ = ["NO_AUDIT_CONFIG", "RunConfig", "RunError", "fetch_artifact", "run_benchmark"]


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
            metrics=wants_sut_metrics(cfg),
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


def make_scheduler(cfg: RunConfig, bench: Any, dataset: Any) -> Scheduler:
    """The run's scheduler: LoadGen's scenario, or the load shape ``cfg.load`` names."""
    if cfg.workers > 1 and cfg.load is not None:
        raise RunError(f"workers: {cfg.workers} worker processes stream LoadGen's queries; a --load shape runs in one")
    if cfg.load is None:
        from loadgen_harness._sched_loadgen import LoadGenScheduler

        return LoadGenScheduler(cfg, bench, dataset)
    from loadgen_harness._sched_shapes import ShapeScheduler

    return ShapeScheduler(cfg, bench, dataset)


def run_benchmark(cfg: RunConfig, on_progress: Callable[[float, int, float], None] | None = None) -> RunResult:
    """Run one test; returns the RunResult also written to ``<log_dir>/results.json``.

    ``on_progress(elapsed_s, completed, rate)`` is called about every 2 s from a helper thread;
    with ``cfg.progress`` and no callback, a status line goes to stderr.
    """
    from loadgen_harness._console import ProgressTicker, progress_printer
    from loadgen_harness._preflight import context_overflow_error

    cfg, bench, dataset = resolve_inputs(cfg)
    check_telemetry(cfg)  # a bad token file or unreadable RAPL is one line before any SUT starts
    scheduler = make_scheduler(cfg, bench, dataset)
    plan = scheduler.prepare()
    run_id = cfg.run_id or time.strftime("run-%Y%m%d-%H%M%S")
    log_dir = cfg.log_dir(run_id, plan.scenario)
    metrics = _start_metrics(cfg, plan.scenario, bench.name, plan.target_qps)
    res = RunResult(
        run_id=run_id,
        scenario=plan.scenario,
        mode=cfg.mode,
        benchmark=bench.name,
        preset=cfg.preset,
        submittable=plan.submittable,
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
            if plan.sends_dataset and not cfg.allow_context_overflow:
                overflow = context_overflow_error(dataset, plan.max_new_tokens, artifact)
                if overflow is not None:
                    raise RunError(overflow)
            # Created only once the SUT answered: a run that cannot start leaves nothing behind.
            log_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(log_dir / "artifact.json", artifact, sort_keys=True)
            client = scheduler.open_client(
                ClientTarget(address, artifact, fleet, metrics, _http_opener(cfg.http_endpoint, artifact))
            )
            # Each replica's health is watched off the query path: outages land in results.json.
            watch = ReplicaWatch(fleet.replicas, client.t0_ns, cfg.transport).start() if fleet is not None else None
            if on_progress is None and cfg.progress:
                on_progress = progress_printer()
            ticker = ProgressTicker(client, on_progress) if on_progress is not None else None
            telemetry = None
            try:
                # Server-side series on the records' clock, sampled off the query path (--scrape).
                telemetry = start_telemetry(cfg, running, client.t0_ns)
                if ticker is not None:
                    ticker.start()
                outcome = scheduler.execute(client, log_dir)
                if ticker is not None:
                    ticker.stop()
                # The records are final before anything is written; each step is bounded whatever grpc does.
                with exit_if_stuck(_TEARDOWN_LIMIT_S):
                    events = watch.stop() if watch is not None else []
                    client.quiesce()
                _finish_result(res, client, log_dir, fleet, events)
                finish_telemetry(telemetry, res, client, log_dir)
                telemetry = None
                scheduler.finish(res, client, outcome, log_dir)
                res.duration_s = round(time.monotonic() - t_start, 3)
                save_results(res, log_dir)
            finally:
                if ticker is not None:
                    ticker.stop()
                if telemetry is not None:  # the run failed before its results: the threads still end
                    telemetry.stop()
                with exit_if_stuck(_TEARDOWN_LIMIT_S, log_dir):  # results.json is written: now close
                    if watch is not None:
                        watch.stop()
                    client.close()
                scheduler.release(outcome)
        if outcome.interrupted_by is not None:
            raise RunInterrupted(res)
        if outcome.error is not None:
            raise RuntimeError(f"{outcome.error_source} failed: {outcome.error!r}") from outcome.error
        failed = False
        return res
    finally:
        if metrics is not None:
            metrics.run_finished(failed)
            if cfg.metrics_linger_s > 0 and outcome.interrupted_by is None:  # Ctrl-C means now
                time.sleep(cfg.metrics_linger_s)
            metrics.stop()


# Watch, client and channel teardown: far above what a healthy close takes (milliseconds), far below a hang.
_TEARDOWN_LIMIT_S = 20.0


def _start_metrics(cfg: RunConfig, scenario: str, benchmark: str, target_qps: float | None) -> Any:
    if cfg.metrics_port is None:
        return None
    from loadgen_harness._metrics import HarnessMetrics

    try:
        metrics = HarnessMetrics.start(cfg.metrics_port, addr=cfg.metrics_host, security=cfg.metrics_security)
    except OSError as exc:
        raise RunError(
            f"metrics_port: cannot listen on {cfg.metrics_host}:{cfg.metrics_port} ({exc.strerror or exc})"
        ) from None
    metrics.run_started(scenario, benchmark, cfg.mode, cfg.preset, target_qps)
    return metrics


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


def _finish_result(
    res: RunResult,
    client: Any,
    log_dir: Path,
    fleet: Fleet | None = None,
    events: Sequence[ReplicaEvent] = (),
) -> None:
    """Fill ``res`` from the client's records (every scheduler alike); writes queries.npz."""
    res.n_queries = client.records.n
    res.n_errors = client.errors
    res.errors_by_status = dict(client.errors_by_status)
    if fleet is not None:  # before the records are saved: attributing a failed stream may fill its replica
        stopped_ns = client.stopped_ns
        if stopped_ns is not None:  # the run's own stop (signal, overload) is no replica's outage
            events = [e for e in events if e.t_s * 1e9 < stopped_ns]
        res.fleet = records_breakdown(client.records, fleet, client.replica_ids, events, stopped_ns)
    client.records.save(log_dir)
    res.successful = client.records.success_stats()
    res.itl = client.records.inter_token_latency()
    res.reasoning = client.records.reasoning_stats()
