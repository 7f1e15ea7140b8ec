"""Signals during LoadGen's test, and plans refused before anything starts."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen_harness._interrupt import (
    DEFAULT_MAX_IN_FLIGHT,
    MAX_PLANNED_SAMPLES,
    STUCK_EXIT_CODE,
    STUCK_STACKS_FILE,
    _SignalWatch,
    drain_estimate_s,
    plan_size_error,
    planned_samples,
    run_test,
    server_outstanding_limit,
)
from scenarios import SettingsOverrides, plan_settings


def _settings(scenario: str, mode: str = "performance", **overrides: Any) -> Any:
    return plan_settings(scenario, "embedded", "quick", mode, SettingsOverrides(**overrides)).to_test_settings()


def test_absurd_plans_are_refused_naming_qps_and_duration() -> None:
    msg = plan_size_error(_settings("Server", qps=1e9, duration_s=1))
    assert msg is not None and "\n" not in msg
    assert "qps 1e+09 x duration 1 s" in msg and "1.2e+09" not in msg and "1e+09 queries" in msg
    msg = plan_size_error(_settings("Offline", qps=10, duration_s=1e12))
    assert msg is not None and "duration 1e+12 s" in msg
    msg = plan_size_error(_settings("SingleStream", duration_s=1e12))
    assert msg is not None and "duration 1e+12 s / expected latency" in msg


def test_ordinary_plans_pass() -> None:
    for scenario in ("Server", "Offline", "SingleStream", "MultiStream"):
        assert plan_size_error(_settings(scenario)) is None, scenario
    # One hour at 1,000 QPS is 3.6M queries: allowed.
    planned = planned_samples(_settings("Server", qps=1000, duration_s=3600))
    assert planned is not None and planned[0] == pytest.approx(3.6e6) and planned[0] < MAX_PLANNED_SAMPLES
    assert planned_samples(_settings("Offline", mode="accuracy")) is None


def test_server_outstanding_limit_is_twice_the_compliant_backlog_within_the_memory_bound() -> None:
    s = _settings("Server", qps=12)  # embedded: TTFT 500 ms, TPOT 50 ms
    assert server_outstanding_limit(s, 16) == 32 + 16  # ceil(2 x 12 x (0.5 + 16 x 0.05)) + 16
    s.ttft_latency = 0
    assert server_outstanding_limit(s, 16) == 2 * 12 * 60 + 16
    # 20,000 QPS x 300 tokens would allow ~616,000 outstanding: the memory bound caps it.
    fast = _settings("Server", qps=2e4)
    assert server_outstanding_limit(fast, 300) == DEFAULT_MAX_IN_FLIGHT
    assert server_outstanding_limit(fast, 300, max_in_flight=500) == 500


def test_drain_estimates_follow_how_each_scenario_ends() -> None:
    server = _settings("Server", qps=40, duration_s=600)
    server.server_max_async_queries = 120
    assert drain_estimate_s(server, 10.0, 400) == pytest.approx(590.0)  # Server runs its schedule to its end
    assert drain_estimate_s(server, 599.0, 400) == pytest.approx(1.0)
    assert drain_estimate_s(_settings("Server", mode="accuracy"), 1.0, 5) == 0.0  # issued all at once
    assert drain_estimate_s(_settings("Offline", duration_s=600), 10.0, 5) == 0.0
    # Quick SingleStream expects 1 ms queries: 1.2M pre-generated for 600 s, ~240 s to run through.
    single = _settings("SingleStream", duration_s=600)
    assert drain_estimate_s(single, 10.0, 1000) == pytest.approx((1.2e6 - 1000) / 5000)
    assert drain_estimate_s(_settings("SingleStream", duration_s=100), 99.0, 1000) == pytest.approx(1.0)
    assert drain_estimate_s(_settings("MultiStream", duration_s=600), 10.0, 80) == pytest.approx(590.0)


class _FakeBridge:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.outstanding = 3

    def interrupt(self, reason: str) -> None:
        self.calls.append(f"interrupt:{reason}")

    def loadgen_done(self) -> None:
        self.calls.append("done")

    def abandon(self) -> None:
        self.calls.append("abandon")


@pytest.fixture(autouse=True)
def _sigint_not_ignored() -> Iterator[None]:
    # A shell starts background jobs with SIGINT ignored, and the watch rightly leaves an ignored signal
    # alone; these tests send SIGINT to this process, so they need it handled whatever started pytest.
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _signal_soon(sig: signal.Signals, after_s: float) -> threading.Timer:
    timer = threading.Timer(after_s, os.kill, (os.getpid(), sig))
    timer.start()
    return timer


def test_first_signal_interrupts_and_the_test_ends_by_itself_within_the_drain_timeout() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    bridge = _FakeBridge()

    def start() -> None:  # LoadGen's test: ends once the bridge was interrupted
        deadline = time.monotonic() + 30
        while not bridge.calls and time.monotonic() < deadline:
            time.sleep(0.01)

    _signal_soon(signal.SIGTERM, 0.2)
    out = run_test(start, bridge, drain_timeout_s=30)
    assert out.interrupted_by == "SIGTERM" and not out.abandoned and out.error is None
    assert bridge.calls == ["interrupt:SIGTERM", "done"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_second_signal_abandons_at_once() -> None:
    bridge = _FakeBridge()
    release = threading.Event()
    timers = [_signal_soon(signal.SIGINT, 0.2), _signal_soon(signal.SIGINT, 0.6)]
    t0 = time.monotonic()
    try:
        out = run_test(lambda: release.wait(60) and None, bridge, drain_timeout_s=60)
    finally:
        release.set()
        for t in timers:
            t.cancel()
    assert out.interrupted_by == "SIGINT" and out.abandoned
    assert bridge.calls == ["interrupt:SIGINT", "abandon"]  # never "done": LoadGen's test still runs
    assert time.monotonic() - t0 < 20


def test_a_drain_longer_than_the_timeout_is_not_waited_for() -> None:
    bridge = _FakeBridge()
    release = threading.Event()
    timer = _signal_soon(signal.SIGINT, 0.1)
    try:
        out = run_test(lambda: release.wait(60) and None, bridge, drain_timeout_s=30, drain_estimate=lambda _: 240.0)
    finally:
        release.set()
        timer.cancel()
    assert out.abandoned and out.drain_s is not None and out.drain_s < 20
    assert bridge.calls == ["interrupt:SIGINT", "abandon"]


def test_a_test_that_does_not_drain_is_abandoned_after_the_timeout() -> None:
    bridge = _FakeBridge()
    release = threading.Event()
    timer = _signal_soon(signal.SIGINT, 0.1)
    try:
        out = run_test(lambda: release.wait(60) and None, bridge, drain_timeout_s=0.5)
    finally:
        release.set()
        timer.cancel()
    assert out.abandoned and out.drain_s is not None and 0.5 <= out.drain_s < 20


def test_no_signal_no_interrupt_and_errors_are_reported() -> None:
    bridge = _FakeBridge()
    out = run_test(lambda: None, bridge, drain_timeout_s=1)
    assert out.interrupted_by is None and not out.abandoned and bridge.calls == ["done"]

    def boom() -> None:
        raise RuntimeError("loadgen broke")

    out = run_test(boom, _FakeBridge(), drain_timeout_s=1)
    assert isinstance(out.error, RuntimeError)


def test_ignored_signals_stay_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _SignalWatch(lambda *_: None):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # a background job's Ctrl-C is not ours
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)


_STUCK_CHILD = """
import ctypes, sys
from pathlib import Path
from loadgen_harness._interrupt import exit_if_stuck

with exit_if_stuck(1.0, Path(sys.argv[1])):
    if sys.argv[2] == "stuck":
        # A C call that blocks while holding the GIL, as grpc's channel close did: PyDLL keeps the GIL.
        ctypes.PyDLL(None).sleep(60)
print("left in time", flush=True)
"""


@pytest.mark.parametrize("how", ["stuck", "in-time"])
def test_a_stuck_shutdown_step_ends_the_process_whatever_holds_it(tmp_path: Path, how: str) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, "-c", _STUCK_CHILD, str(tmp_path), how], cwd=root, capture_output=True, text=True, timeout=60
    )
    stacks = tmp_path / STUCK_STACKS_FILE
    if how == "stuck":
        assert proc.returncode == STUCK_EXIT_CODE and "left in time" not in proc.stdout
        assert "most recent call first" in stacks.read_text()  # every thread's stack, for a bug report
        assert proc.stderr == ""  # nothing reaches the user's terminal but the exit status
    else:
        assert proc.returncode == 0 and "left in time" in proc.stdout
        assert not stacks.exists()
