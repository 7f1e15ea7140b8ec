"""bench/peers.py judges every tool from outside it: the steady window leaves start-up out of the CPU per
request, the sustained rule allows a count's Poisson noise but not a tool that falls behind, and the
process-tree CPU includes what the tool's children burn."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.peers_measure import Run, Sample, steady_window, tree_cpu_s


def _samples(startup_cpu_s: float, rate: float, cpu_ms_per_req: float, load_s: float) -> list[Sample]:
    """A tool that burns ``startup_cpu_s`` before its first request, then answers ``rate`` req/s."""
    out = [Sample(t=0.0, ok=0, bad=0, client_cpu_s=0.0, server_cpu_s=0.0)]
    for i in range(1, int(2 * load_s) + 10):
        t = 0.5 * i
        busy = max(0.0, t - 3.0)  # start-up takes 3 s
        ok = int(rate * min(busy, load_s))
        cpu = startup_cpu_s * min(t, 3.0) / 3.0 + ok * cpu_ms_per_req / 1000
        out.append(Sample(t=t, ok=ok, bad=0, client_cpu_s=cpu, server_cpu_s=ok * 0.001))
    return out


def test_start_up_is_outside_the_window() -> None:
    run = Run(tool="t", rate=100.0, rep=1)
    steady_window(run, _samples(startup_cpu_s=20.0, rate=100.0, cpu_ms_per_req=4.0, load_s=25.0), 5.0, 20.0)
    assert 17.0 <= run.window_s <= 18.0 and abs(run.steady_rate - 100.0) < 3.0
    assert run.client_cpu_ms_per_req is not None and abs(run.client_cpu_ms_per_req - 4.0) < 0.2
    assert run.sustained


def test_a_tool_that_falls_behind_is_not_sustained_and_noise_is_allowed() -> None:
    behind = Run(tool="t", rate=1000.0, rep=1)
    steady_window(behind, _samples(0.0, rate=900.0, cpu_ms_per_req=1.0, load_s=25.0), 5.0, 20.0)
    assert not behind.sustained  # 90 % of the rate: no Poisson slack covers that at 1,000 req/s
    noisy = Run(tool="t", rate=10.0, rep=1, steady_rate=8.8, window_s=18.0)  # -1.6 sd of a Poisson count
    assert noisy.sustained
    stopped = Run(tool="t", rate=100.0, rep=1)
    steady_window(stopped, _samples(0.0, rate=100.0, cpu_ms_per_req=1.0, load_s=8.0)[:20], 5.0, 20.0)
    assert not stopped.sustained and "stopped" in stopped.note


def test_tree_cpu_counts_the_tools_children() -> None:
    burn = "import time; t = time.process_time(); exec('while time.process_time() - t < 0.6: pass')"
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"]
    )
    try:
        seen = 0.0
        deadline = time.monotonic() + 60
        while parent.poll() is None and time.monotonic() < deadline:
            seen = max(seen, tree_cpu_s(parent.pid))
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    assert seen >= 0.4, seen  # the grandchild's 0.6 s of CPU, seen through the parent's tree
