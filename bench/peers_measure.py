"""What bench/peers.py measures from outside each tool, and its tables.

A run's figures come from the server (its Prometheus count of OK answers) and from ``/proc`` (the CPU of
the tool's whole process tree and of the server), sampled every ``SAMPLE_S`` s while the tool runs, over
the steady window from ``warmup`` s after the server's first answer for ``step`` - ``END_SLACK_S`` s.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sut_cost import _proc_cpu_s

COMPLETION_FLOOR = 0.95
POISSON_SDS = 2.0  # slack under the floor for the Poisson noise of a count (10 req/s x 18 s: 15 %)
SAMPLE_S = 0.5
END_SLACK_S = 2.0  # the window closes this long before the load does
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    tool: str
    rate: float
    rep: int
    steady_rate: float = 0.0  # OK answers per second in the steady window, counted by the server
    window_s: float = 0.0
    answered: int = 0  # OK answers in the window
    client_cpu_ms_per_req: float | None = None  # the tool's process tree, in the window
    server_cpu_ms_per_req: float | None = None
    client_cpu_total_s: float = 0.0  # the whole run: start-up and shutdown included
    errors: int = 0  # answers that were not OK, whole run (server's count)
    ttft_p50_ms: float | None = None  # as the tool reports it
    ttft_sched_p50_ms: float | None = None  # from each request's scheduled time
    wall_s: float = 0.0
    load1: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and at the end
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion(self) -> float:
        return self.steady_rate / self.rate if self.rate else 0.0

    @property
    def sustained(self) -> bool:
        if self.window_s <= 0:
            return False
        slack = POISSON_SDS * math.sqrt(self.rate * self.window_s) / self.window_s
        return self.steady_rate >= COMPLETION_FLOOR * self.rate - slack


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and every descendant alive, with what each has reaped of its own children."""
    parent: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(name)
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / CLK_TCK


def server_answers(metrics_url: str) -> tuple[int, int]:
    """(OK answers, other answers) so far, from the server's ``lpuperf_sut_requests`` counter (both fronts)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    ok = bad = 0
    for line in text.splitlines():
        if line.startswith("lpuperf_sut_requests_total{"):
            value = int(float(line.rsplit(" ", 1)[1]))
            if 'status="OK"' in line or 'status="200"' in line:
                ok += value
            else:
                bad += value
    return ok, bad


@dataclass
class Sample:
    t: float
    ok: int
    bad: int
    client_cpu_s: float
    server_cpu_s: float


def sample_until_exit(
    proc: subprocess.Popen[bytes], server_pid: int, metrics_url: str, timeout_s: float
) -> list[Sample]:
    """Samples every SAMPLE_S s until the tool exits (killed, its whole group, past ``timeout_s``)."""
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            t = time.monotonic()
            ok, bad = server_answers(metrics_url)
            samples.append(Sample(t, ok, bad, tree_cpu_s(proc.pid), _proc_cpu_s(server_pid)))
            time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - t)))
    finally:
        if proc.poll() is None:  # past the deadline, or sampling failed: the tool and all it started go
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    ok, bad = server_answers(metrics_url)  # the tree is gone: its CPU stays as last seen
    last_cpu = samples[-1].client_cpu_s if samples else 0.0
    samples.append(Sample(time.monotonic(), ok, bad, last_cpu, _proc_cpu_s(server_pid)))
    return samples


def steady_window(run: Run, samples: list[Sample], warmup_s: float, step_s: float) -> None:
    """The server's answers and the CPU over the window [first answer + warmup, + step - END_SLACK_S]."""
    first = next((s for s in samples if s.ok > samples[0].ok), None)
    if first is None:
        run.note = run.note or "the server answered nothing"
        return
    start, end = first.t + warmup_s, first.t + warmup_s + step_s - END_SLACK_S
    a = next((s for s in samples if s.t >= start), None)
    inside = [s for s in samples if s.t <= end]
    b = inside[-1] if inside else None
    if a is None or b is None or b.t - a.t < 0.9 * (end - start) - 2 * SAMPLE_S:
        run.note = run.note or "the tool stopped before the window closed"
        return
    run.window_s = b.t - a.t
    run.answered = b.ok - a.ok
    run.steady_rate = run.answered / run.window_s
    if run.answered:
        run.client_cpu_ms_per_req = 1000 * (b.client_cpu_s - a.client_cpu_s) / run.answered
        run.server_cpu_ms_per_req = 1000 * (b.server_cpu_s - a.server_cpu_s) / run.answered


# ---- tables ------------------------------------------------------------------------------------------


def _max_passing(runs: list[Run], rep: int, valid_only: bool = False) -> float:
    ok = [r.rate for r in runs if r.rep == rep and r.sustained and (not valid_only or r.extra.get("loadgen_valid"))]
    return max(ok, default=0.0)


def summarize(runs: list[Run], tools: list[str], reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in tools:
        mine = [r for r in runs if r.tool == tool and r.rep > 0]
        maxes = [_max_passing(mine, rep) for rep in range(1, reps + 1)]
        lowest = min((r.rate for r in mine), default=0.0)
        out[tool] = {
            "max_rate_per_rep": maxes,
            "max_rate_median": statistics.median(maxes) if maxes else 0.0,
            # LoadGen VALID as well (TTFT and TPOT p99 within the benchmark's limits): lpuperf's runs only
            "valid_max_rate_per_rep": (
                [_max_passing(mine, rep, True) for rep in range(1, reps + 1)] if tool.startswith("lpuperf") else None
            ),
            "lowest_rate": lowest,
            "ttft_p50_at_lowest_ms": [r.ttft_p50_ms for r in mine if r.rate == lowest],
            "client_cpu_ms_per_req_at_lowest": [r.client_cpu_ms_per_req for r in mine if r.rate == lowest],
        }
    return out


def _med(values: list[float]) -> str:
    if not values:
        return "–"
    m = statistics.median(values)
    return f"{m:.3g} ({min(values):.3g}–{max(values):.3g})" if len(values) > 1 else f"{m:.3g}"


def _fig(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def table(runs: list[dict[str, Any]], tools: list[str]) -> str:
    """The Markdown tables of RESULTS.md from the runs: medians over repetitions with (min–max)."""
    lines = [
        "| tool | max sustained rate per rep, req/s | median | TTFT p50 at the lowest rate, ms | "
        "client CPU per request at the lowest / at the max rate, ms | server CPU per request at max, ms | "
        "load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for tool in tools:
        mine = [Run(**{**r, "load1": tuple(r["load1"])}) for r in runs if r["tool"] == tool and r["rep"] > 0]
        reps = sorted({r.rep for r in mine})
        maxes, at_max, valid = [], [], []
        for rep in reps:
            best = max((r for r in mine if r.rep == rep and r.sustained), key=lambda r: r.rate, default=None)
            maxes.append(best.rate if best else 0.0)
            valid.append(_max_passing(mine, rep, True))
            if best is not None:
                at_max.append(best)
        lowest = min((r.rate for r in mine), default=0.0)
        low = [r for r in mine if r.rate == lowest]
        loads = [x for r in mine for x in r.load1]
        per_rep = ", ".join(f"{m:g}" for m in maxes)
        if tool.startswith("lpuperf"):
            per_rep += f" (LoadGen VALID: {', '.join(f'{v:g}' for v in valid)})"
        lines.append(
            f"| {tool} | {per_rep} | {statistics.median(maxes) if maxes else 0:g} | "
            f"{_med(_fig([r.ttft_p50_ms for r in low]))} | "
            f"{_med(_fig([r.client_cpu_ms_per_req for r in low]))} / "
            f"{_med(_fig([r.client_cpu_ms_per_req for r in at_max]))} | "
            f"{_med(_fig([r.server_cpu_ms_per_req for r in at_max]))} | "
            f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} |"
        )
    twice = [r for r in runs if r["rep"] == 0]
    if twice:
        lines += [
            "",
            "| tool at 2x its max rate | rate | answered in the window, req/s | TTFT p50 the tool reports, ms | "
            "TTFT p50 from the scheduled time, ms | errors | load |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in twice:
            tool_ttft = "–" if r["ttft_p50_ms"] is None else f"{r['ttft_p50_ms']:.1f}"
            sched = "–" if r["ttft_sched_p50_ms"] is None else f"{r['ttft_sched_p50_ms']:.1f}"
            lines.append(
                f"| {r['tool']} | {r['rate']:g} | {r['steady_rate']:.0f} | {tool_ttft} | {sched} | {r['errors']} | "
                f"{max(r['load1']):.1f} |"
            )
    return "\n".join(lines)
