"""Ending a run cleanly: SIGINT/SIGTERM while LoadGen runs, and plans too large to start at all.

LoadGen's StartTest blocks until its test ends and has no abort call. A completion sent after it
returned, or a Python exception unwinding through it, crashes the process. So:

* The test runs on its own thread and the main thread waits for it. Python runs signal handlers
  only in the main thread between bytecodes, never inside a C++ call, and LoadGen issues Server
  queries on the thread that called StartTest: a KeyboardInterrupt raised in that callback used to
  tear LoadGen down under the bridge (exit 139).
* The first SIGINT/SIGTERM interrupts the bridge: every query in flight is completed as failed
  (exactly once), and so is every query LoadGen issues afterwards. An interrupted run is never
  submittable, so waiting for LoadGen's own end buys nothing: LoadGen gets ``drain_timeout_s``
  (1 s by default) to end its test by itself (Offline does at once, with whole logs), and is
  abandoned when it would need longer (Server runs its schedule to its minimum duration,
  SingleStream/MultiStream their pre-generated queries). A second signal abandons it at once.
* An abandoned test: nothing reaches LoadGen any more, the harness writes what it recorded (LoadGen's
  logs stay as far as they got) and stops the SUT, and the process must then exit without returning
  to LoadGen (``RunInterrupted.must_exit``).
* Whatever grpc does while the harness shuts down, the process ends: :func:`exit_if_stuck` arms
  faulthandler's watchdog, a native thread that needs no GIL, around each step that closes grpc
  objects.
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from loadgen_harness._results import RunResult

# More samples than this in one plan is refused before anything starts: LoadGen generates its
# whole query list up front, and a plan of 1e9 queries exhausts memory before the first is issued.
MAX_PLANNED_SAMPLES = 100_000_000
# Queries a Server run may have outstanding before it stops early: the harness peaks near 0.7 GB at this
# many (about 18 KiB a query in flight: task, grpc call, buffers; bench/RESULTS.md "When the SUT cannot keep up").
DEFAULT_MAX_IN_FLIGHT = 32_768
# Without token-latency limits a Server query is assumed to finish within this.
_DEFAULT_SERVER_LATENCY_BOUND_S = 60.0
_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
# Failed-at-once queries the bridge and LoadGen go through per second, conservatively: measured
# ~13,000/s on a shared 2-core machine for SingleStream.
_DRAIN_QUERIES_PER_S = 5000.0


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped the run; raised by ``run_benchmark`` after results.json and queries.npz are written.

    It derives from KeyboardInterrupt so a workflow that runs several tests stops on it as it would
    on Ctrl-C. ``exit_code`` is 130 (SIGINT) or 143 (SIGTERM). With ``must_exit`` LoadGen's test was
    abandoned and still runs on its thread: the process must end with ``os._exit`` (a normal
    interpreter shutdown would run Python callbacks from LoadGen's thread mid-finalisation).
    """

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"run interrupted by {result.interrupted_by}")
        self.result = result
        self.signal_name = result.interrupted_by or "SIGINT"
        self.exit_code = _EXIT_CODES.get(self.signal_name, 130)
        self.must_exit = not result.loadgen_finished


def planned_samples(settings: Any) -> tuple[float, str] | None:
    """(samples LoadGen will generate, what that comes from) for a performance run; None in accuracy mode."""
    import mlperf_loadgen as lg

    if settings.mode == lg.TestMode.AccuracyOnly:
        return None  # one pass over the dataset
    dur_s = settings.min_duration_ms / 1000.0
    spq = max(1, int(settings.multi_stream_samples_per_query))
    scenario = settings.scenario
    if scenario == lg.TestScenario.Server:
        qps = float(settings.server_target_qps)
        n, what = qps * dur_s, f"qps {qps:g} x duration {dur_s:g} s"
    elif scenario == lg.TestScenario.Offline:
        qps = float(settings.offline_expected_qps)
        n, what = qps * dur_s * 1.1, f"qps {qps:g} x duration {dur_s:g} s"
    else:
        multi = scenario == lg.TestScenario.MultiStream
        lat_ns = settings.multi_stream_expected_latency_ns if multi else settings.single_stream_expected_latency_ns
        lat_s = max(float(lat_ns), 1.0) / 1e9
        # LoadGen generates twice the expected count here, in case the SUT is faster than expected.
        n = 2 * dur_s / lat_s * (spq if multi else 1)
        what = f"duration {dur_s:g} s / expected latency {lat_s * 1000:g} ms"
    n = max(n, float(settings.min_query_count) * (spq if scenario == lg.TestScenario.MultiStream else 1))
    if settings.max_query_count:
        n = min(n, float(settings.max_query_count) * spq)
    return n, what


def plan_size_error(settings: Any) -> str | None:
    """One line refusing a plan of more than MAX_PLANNED_SAMPLES samples, else None."""
    planned = planned_samples(settings)
    if planned is None or planned[0] <= MAX_PLANNED_SAMPLES:
        return None
    n, what = planned
    return (
        f"qps/duration: {what} plans about {n:.3g} queries, more than the {MAX_PLANNED_SAMPLES:.0e} a run may "
        "issue; lower --qps or --duration"
    )


def server_outstanding_limit(settings: Any, max_new_tokens: int, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> int:
    """LoadGen's outstanding-query limit for a Server run: twice what a run within its latency limits holds,
    and at most ``max_in_flight`` (the harness's memory bound).

    A query that meets both token limits finishes within TTFT + max_new_tokens x TPOT, so by
    Little's law a run meeting them has about QPS x that bound in flight. Twice that (plus 16 for
    arrival bursts) is only crossed by a run that is hopelessly behind, which LoadGen's limits
    would fail anyway. Crossing it ends the run early (the bridge's overload stop).
    """
    qps = float(settings.server_target_qps)
    ttft_s = float(settings.ttft_latency) / 1e9
    tpot_s = float(settings.tpot_latency) / 1e9
    bound_s = ttft_s + max_new_tokens * tpot_s if ttft_s > 0 and tpot_s > 0 else _DEFAULT_SERVER_LATENCY_BOUND_S
    return min(math.ceil(2 * qps * bound_s) + 16, max_in_flight)


def drain_estimate_s(settings: Any, elapsed_s: float, issued: int) -> float:
    """About how long LoadGen needs to end its test once every query it issues completes at once.

    Offline: no time (its one query is all issued). Server: its schedule's end (an accuracy pass
    issues everything at once: no time). SingleStream: its minimum duration or the rest of its
    pre-generated queries at ~5,000/s, whichever ends first. MultiStream: its minimum duration (it
    issues on a fixed tick).
    """
    import mlperf_loadgen as lg

    dur_left = max(0.0, settings.min_duration_ms / 1000.0 - elapsed_s)
    scenario = settings.scenario
    if scenario == lg.TestScenario.Offline:
        return 0.0
    if scenario == lg.TestScenario.Server:
        return 0.0 if settings.mode == lg.TestMode.AccuracyOnly else dur_left
    if scenario == lg.TestScenario.SingleStream:
        planned = planned_samples(settings)
        left = max(0.0, planned[0] - issued) if planned is not None else 0.0
        return min(dur_left, left / _DRAIN_QUERIES_PER_S)
    return dur_left


@dataclass
class TestOutcome:
    """How LoadGen's test ended: on its own, interrupted (``interrupted_by``) and/or abandoned."""

    interrupted_by: str | None = None
    abandoned: bool = False
    error: BaseException | None = None
    drain_s: float | None = None
    error_source: str = "LoadGen's test"  # what failed, in the reason and the error raised


def _say(text: str) -> None:
    # os.write: a signal handler may run while sys.stderr is mid-write (a re-entrant write raises).
    with contextlib.suppress(OSError):
        os.write(2, (text + "\n").encode())


class _SignalWatch:
    """Installs SIGINT/SIGTERM handlers in the main thread for its block, and restores the previous ones.

    A signal whose disposition is SIG_IGN is left alone: a shell starts background jobs that way so
    that Ctrl-C in the terminal is not meant for them.
    """

    def __init__(self, handler: Callable[[int, FrameType | None], None]) -> None:
        self._handler = handler
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> _SignalWatch:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            prev = signal.getsignal(sig)
            if prev is None or prev == signal.SIG_IGN:
                continue
            self._previous[sig] = prev
            signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)
        self._previous.clear()


def run_test(
    start: Callable[[], None],
    bridge: Any,
    drain_timeout_s: float,
    drain_estimate: Callable[[float], float] | None = None,
    who: str = "LoadGen",
) -> TestOutcome:
    """Run ``start`` (LoadGen's StartTest) on its own thread until it returns or is abandoned.

    ``bridge`` needs ``interrupt(reason)``, ``outstanding``, ``loadgen_done()`` and ``abandon()``.
    ``drain_estimate(elapsed_s)``: seconds LoadGen would need to end its test after an interrupt;
    over ``drain_timeout_s`` the test is abandoned at once rather than after the timeout.
    """
    outcome = TestOutcome()
    abandon = threading.Event()
    interrupted_at: list[float] = []
    started = time.monotonic()

    def target() -> None:
        try:
            start()
        except BaseException as exc:  # reported by the caller; an exception must not end the thread silently
            outcome.error = exc

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if outcome.interrupted_by is not None:
            _say(f"lpuperf: {name} again: {who} abandoned; writing what was recorded")
            abandon.set()
            return
        outcome.interrupted_by = name
        interrupted_at.append(time.monotonic())
        n = bridge.outstanding
        bridge.interrupt(name)
        estimate = drain_estimate(interrupted_at[0] - started) if drain_estimate is not None else 0.0
        if estimate > drain_timeout_s:
            _say(
                f"lpuperf: {name}: stopping now; {n} outstanding queries completed as failed; LoadGen's test is "
                f"abandoned (it would need ~{estimate:.0f} s more; its logs stay as far as they got)"
            )
            abandon.set()
            return
        ending = "LoadGen ends its test" if who == "LoadGen" else f"{who} stops sending"
        _say(
            f"lpuperf: {name}: stopping; {n} outstanding queries completed as failed while {ending} "
            f"(at most {drain_timeout_s:g} s); signal again to exit at once"
        )

    runner = threading.Thread(target=target, name="lpuperf-loadgen", daemon=True)
    with _SignalWatch(on_signal):
        runner.start()
        while runner.is_alive():
            runner.join(0.1)
            if not runner.is_alive():
                break
            late = bool(interrupted_at) and time.monotonic() - interrupted_at[0] > drain_timeout_s
            if abandon.is_set() or late:
                outcome.abandoned = True
                bridge.abandon()
                if not abandon.is_set():
                    _say(f"lpuperf: {who} did not stop within {drain_timeout_s:g} s: abandoned it")
                break
    if not outcome.abandoned:
        bridge.loadgen_done()
    if interrupted_at:
        outcome.drain_s = round(time.monotonic() - interrupted_at[0], 3)
    return outcome


# Exit status when the watchdog fires: the run's outputs are written, but a grpc close never returned.
STUCK_EXIT_CODE = 1
STUCK_STACKS_FILE = "shutdown_stacks.txt"


@contextlib.contextmanager
def exit_if_stuck(timeout_s: float, log_dir: Path | None = None) -> Iterator[None]:
    """End the process (status 1) if the block has not finished within ``timeout_s``, whatever holds the GIL.

    grpc closes channels in C while holding the GIL; a close that blocks there stops every Python
    thread, so no Python timeout can fire. faulthandler's watchdog is a native thread: it writes every
    thread's stack to ``log_dir/shutdown_stacks.txt`` (for a bug report; removed when the block ends in
    time) and calls ``_exit``. Blocks guarded this way run after results.json is written. It replaces
    any faulthandler timer already armed.
    """
    path = Path(log_dir) / STUCK_STACKS_FILE if log_dir is not None and Path(log_dir).is_dir() else None
    try:
        sink = open(path or os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (closed below, after the timer)
    except OSError:
        path, sink = None, open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    faulthandler.dump_traceback_later(timeout_s, repeat=False, file=sink, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        sink.close()
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
