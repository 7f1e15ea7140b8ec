"""Running a sweep: one SUT for every point, one load run per point, Ctrl-C keeping what finished.

The SUT is started once (the embedded sim, its fleet, or the running ``sut``; none for an OpenAI-compatible
endpoint) and each point is ``run_benchmark`` with its ``--load`` against that address, under
``OUT/<sweep-id>/points/<label>/``. A signal during a point's run ends that run as ``lpuperf run`` ends
(its results are written, marked interrupted); one between runs stops the sweep at once. Either way
``sweep.json`` (state ``interrupted``) and ``sweep.html`` are written with every finished point before
:class:`SweepInterrupted` leaves, and the exit status is 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from common import first_error_line, write_atomic
from workflows._sweep import (
    POINTS_DIR,
    SWEEP_FILE,
    SWEEP_PAGE,
    SweepConfig,
    SweepError,
    SweepPoint,
    SweepResult,
    auto_stop_reason,
    choose_best,
    detect_saturation,
    fmt_load,
    next_auto_load,
    point_from_result,
)

if TYPE_CHECKING:
    from gate import SloSpec
    from loadgen_harness import RunConfig
    from scenarios import BenchmarkProfile

# A point costs its duration plus this (connect, GetArtifact, drain of what is in flight, files).
POINT_OVERHEAD_S = 2.0
_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class SweepInterrupted(KeyboardInterrupt):
    """A signal stopped the sweep; raised after sweep.json and sweep.html are written (exit 130 or 143)."""

    def __init__(self, result: SweepResult, signal_name: str, must_exit: bool = False) -> None:
        super().__init__(f"sweep interrupted by {signal_name}")
        self.result = result
        self.signal_name = signal_name
        self.exit_code = _EXIT_CODES.get(signal_name, 130)
        self.must_exit = must_exit  # a run's abandoned test still holds a thread (see RunInterrupted)


class _Terminated(KeyboardInterrupt):
    """SIGTERM between two runs (a run's own handlers take it during its test)."""

    signal_name = "SIGTERM"


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM ends the sweep like Ctrl-C does (its default would end the process with nothing written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _judging(cfg: SweepConfig, bench: BenchmarkProfile) -> tuple[SloSpec | None, str, float | None, float | None]:
    """(SLO file or None, what the points are judged by in words, TTFT p99 limit, TPOT p99 limit)."""
    if cfg.slo is not None:
        from gate import SloError, load_slo

        try:
            slo = load_slo(cfg.slo)
        except SloError as exc:
            raise SweepError(f"--slo {exc}") from None
        text = f"SLO {slo.name} ({cfg.slo}; its results objectives, as lpuperf gate judges them)"
        return slo, text, slo.ttft_ms.p99 if slo.ttft_ms else None, slo.tpot_ms.p99 if slo.tpot_ms else None
    ttft, tpot = bench.ttft_ms, bench.tpot_ms
    limits = [f"TTFT {ttft:g} ms" if ttft else "", f"TPOT {tpot:g} ms" if tpot else ""]
    named = ", ".join(x for x in limits if x)
    head = f"{bench.name}'s limits at p99 ({named})" if named else f"{bench.name} (no latency limits stated)"
    return None, f"{head}, no failed query, the client on schedule", ttft, tpot


class _Sweep:
    """The points of one sweep, run against one address."""

    def __init__(self, cfg: SweepConfig, slo: SloSpec | None, dataset: str | None, echo: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.slo = slo
        self.dataset = dataset
        self.echo = echo
        self.dir = Path(cfg.out_dir) / cfg.run_id
        self.points: list[SweepPoint] = []
        self.address: str | None = None
        self.artifact_id = ""
        self.stop_reason = ""
        self.t0 = time.monotonic()

    def run_config(self, label: str, spec: str) -> RunConfig:
        from loadgen_harness import RunConfig

        cfg = self.cfg
        spawned = cfg.sut is None and cfg.http_endpoint is None
        raw: dict[str, Any] = {
            "mode": "performance",
            "benchmark": cfg.benchmark,
            "preset": cfg.preset,
            "dataset": self.dataset,
            "sut": self.address,
            "allow_mixed": cfg.allow_mixed,
            "transport": {} if spawned else cfg.transport,
            "http_endpoint": cfg.http_endpoint,
            "duration_s": cfg.duration_s,
            "out_dir": self.dir / POINTS_DIR,
            "run_id": label,
            "max_new_tokens": cfg.max_new_tokens,
            "ignore_eos": cfg.ignore_eos,
            "metrics_linger_s": 0.0,
            "load": spec,
        }
        if cfg.max_in_flight is not None:
            raw["max_in_flight"] = cfg.max_in_flight
        if cfg.max_dispatch_lag_ms is not None:
            raw["max_dispatch_lag_ms"] = cfg.max_dispatch_lag_ms
        try:
            return RunConfig.model_validate(raw)
        except ValidationError as exc:
            raise SweepError(first_error_line(exc, "sweep")) from None

    def run_point(self, value: float) -> SweepPoint:
        from loadgen_harness import RunInterrupted, run_benchmark
        from workflows._sweep_page import format_row

        loads = self.cfg.loads
        index = len(self.points) + 1
        label = loads.label(index, value)
        try:
            res = run_benchmark(self.run_config(label, loads.spec(value)))
        except RunInterrupted as stop:  # its results are written: the point stays, marked interrupted
            self.points.append(point_from_result(index, label, loads, value, stop.result, self.dir, self.slo))
            self.echo(format_row(self.points[-1]))
            raise
        if not self.artifact_id:
            self.artifact_id = str(res.artifact.get("artifact_id", ""))
        point = point_from_result(index, label, loads, value, res, self.dir, self.slo)
        self.points.append(point)
        return point

    def run_points(self) -> None:
        from workflows._sweep_page import format_row, table_header

        cfg = self.cfg
        self.echo(table_header(cfg.loads.kind))
        if not cfg.auto:
            for value in cfg.loads.values:
                self.echo(format_row(self.run_point(value)))
            self.stop_reason = f"all {len(cfg.loads.values)} points run"
            return
        value = cfg.loads.values[0]
        while True:
            started = time.monotonic()
            self.echo(format_row(self.run_point(value)))
            took = time.monotonic() - started
            reason = auto_stop_reason(self.points, cfg, time.monotonic() - self.t0, took)
            if reason is not None:
                self.stop_reason = reason
                return
            value = next_auto_load(cfg.loads.kind, value, cfg.factor)

    def result(self, benchmark: str, slo_text: str, limits: tuple[float | None, float | None]) -> SweepResult:
        cfg = self.cfg
        best, why = choose_best(self.points)
        return SweepResult(
            sweep_id=cfg.run_id,
            kind=cfg.loads.kind,
            auto=cfg.auto,
            benchmark=benchmark,
            sut_address=self.address or "",
            artifact_id=self.artifact_id,
            point_duration_s=cfg.duration_s,
            slo=slo_text,
            ttft_limit_ms=limits[0],
            tpot_limit_ms=limits[1],
            points=self.points,
            best=best,
            best_reason=why,
            saturation=detect_saturation(self.points, cfg.min_gain, cfg.min_latency_rise),
            stop_reason=self.stop_reason,
            elapsed_s=round(time.monotonic() - self.t0, 3),
            out_dir=str(self.dir),
        )


@contextlib.contextmanager
def _sut(cfg: SweepConfig, backend: dict[str, Any], dataset: str | None) -> Iterator[str | None]:
    """The address every point runs against: the running SUT, or embedded SUT(s) spawned once; None for an
    OpenAI-compatible endpoint (each run talks to it directly)."""
    if cfg.http_endpoint is not None:
        yield None
        return
    from loadgen_harness import RunError, SutTarget, launch_sut

    try:
        target = SutTarget(
            address=cfg.sut,
            backend={} if cfg.sut else backend,
            dataset=dataset,
            transport=cfg.transport,
            replicas=1 if cfg.sut else cfg.replicas,
            allow_mixed=cfg.allow_mixed,
        )
    except ValidationError as exc:
        raise RunError(first_error_line(exc, "sut")) from None
    with launch_sut(target) as running:
        yield running.address


def plan_line(cfg: SweepConfig, slo_text: str) -> str:
    loads = cfg.loads
    unit = "" if loads.kind == "concurrency" else " requests/s"
    each = f"{cfg.duration_s:g} s"
    if cfg.auto:
        what = (
            f"auto from {loads.kind} {fmt_load(loads.values[0])}{unit}, x{cfg.factor:g} a step, until throughput "
            f"gains < {cfg.min_gain:.0%} while TTFT/latency p99 rises >= {cfg.min_latency_rise:.0%}, the SLO breaks, "
            f"{cfg.max_points} points or {cfg.time_budget_s:g} s; {each} a point"
        )
    else:
        n = len(loads.values)
        about = n * (cfg.duration_s + POINT_OVERHEAD_S)
        listed = ", ".join(fmt_load(v) for v in loads.values)
        what = f"{loads.kind} {listed}{unit}: {n} point{_s(n)} of {each} (about {about:.0f} s)"
    return f"sweep: {what}; judged on {slo_text}"


def run_sweep(cfg: SweepConfig, echo: Callable[[str], None] = print) -> SweepResult:
    """Run every point and write sweep.json and sweep.html; SweepInterrupted after a signal (files written)."""
    from loadgen_harness import RunInterrupted
    from scenarios import BenchmarkError, embedded_dataset, embedded_sut_backend, get_benchmark

    try:
        bench = get_benchmark(cfg.benchmark)
    except BenchmarkError as exc:
        raise SweepError(f"--benchmark: {str(exc).removeprefix('benchmark: ')}") from None
    slo, slo_text, ttft, tpot = _judging(cfg, bench)
    spawned = cfg.sut is None and cfg.http_endpoint is None
    # A spawned sim serves the benchmark's own set, as `lpuperf run` spawns it.
    backend = embedded_sut_backend(bench, cfg.preset, cfg.backend)[0] if spawned else {}
    dataset = embedded_dataset(bench, cfg.preset, cfg.dataset) if spawned else cfg.dataset
    sweep = _Sweep(cfg, slo, dataset, echo)
    sweep.run_config(cfg.loads.label(1, cfg.loads.values[0]), cfg.loads.spec(cfg.loads.values[0]))  # bad input: now
    echo(plan_line(cfg, slo_text))
    stop: KeyboardInterrupt | None = None
    failure: Exception | None = None
    with _sigterm_stops():
        try:
            with _sut(cfg, backend, dataset) as address:
                sweep.address = address
                sweep.run_points()
        except KeyboardInterrupt as exc:
            stop = exc
        except Exception as exc:
            failure = exc
            if not sweep.points:
                raise  # nothing ran: the error alone says it
        result = sweep.result(bench.name, slo_text, (ttft, tpot))
        if stop is not None:
            result.state = "interrupted"
            result.interrupted_by = getattr(stop, "signal_name", "SIGINT")
            done = sum(p.state == "complete" for p in result.points)
            result.stop_reason = f"interrupted by {result.interrupted_by} after {done} finished point{_s(done)}"
            if len(result.points) > done:
                result.stop_reason += " (the point running then is kept, marked interrupted)"
        elif failure is not None:
            result.state = "failed"
            result.error = str(failure).strip().splitlines()[0] if str(failure).strip() else repr(failure)
            result.stop_reason = f"a point failed: {result.error}"
        write_sweep(result)
    for line in summary_lines(result):
        echo(line)
    if stop is not None:
        must_exit = isinstance(stop, RunInterrupted) and stop.must_exit
        raise SweepInterrupted(result, result.interrupted_by or "SIGINT", must_exit) from None
    if failure is not None:
        raise failure
    return result


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def write_sweep(result: SweepResult) -> tuple[Path, Path]:
    """sweep.json, then sweep.html, each written atomically (a signal now cannot leave half a file)."""
    from workflows._sweep_page import write_sweep_page

    out = Path(result.out_dir)
    json_path = write_atomic(out / SWEEP_FILE, result.model_dump_json(indent=2) + "\n")
    return json_path, write_sweep_page(result, out / SWEEP_PAGE)


def summary_lines(result: SweepResult) -> list[str]:
    """What the console shows after the table: the best point, the knee, why it stopped, the files."""
    from workflows._sweep_page import point_figures

    out: list[str] = []
    best = result.point(result.best)
    if best is not None:
        out.append(f"sweep: best {best.load}: {point_figures(best)} ({result.best_reason})")
    else:
        out.append(f"sweep: no best point: {result.best_reason} ({result.slo})")
    if result.saturation is not None:
        out.append(f"sweep: knee {result.saturation.reason}")
    if result.stop_reason:
        out.append(f"sweep: stopped: {result.stop_reason}")
    out.append(f"sweep: {result.note}")
    out.append(
        f"sweep: results {Path(result.out_dir) / SWEEP_FILE}, page {Path(result.out_dir) / SWEEP_PAGE}, "
        f"runs {Path(result.out_dir) / POINTS_DIR}"
    )
    return out
