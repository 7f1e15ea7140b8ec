"""Console output: a live progress line for long runs and the final human summary."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from loadgen_harness._results import Percentiles, RunResult

PROGRESS_INTERVAL_S = 2.0


class ProgressTicker:
    """Calls ``callback(elapsed_s, completed, rate_per_s)`` every ~2 s until stopped."""

    def __init__(self, bridge: Any, callback: Callable[[float, int, float], None]) -> None:
        self.bridge = bridge
        self.callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lpuperf-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        t0 = time.monotonic()
        last_t, last_n = t0, 0
        while not self._stop.wait(PROGRESS_INTERVAL_S):
            now = time.monotonic()
            n = int(self.bridge.completed)
            rate = (n - last_n) / max(now - last_t, 1e-9)
            last_t, last_n = now, n
            self.callback(now - t0, n, rate)


def progress_printer(stream: TextIO = sys.stderr) -> Callable[[float, int, float], None]:
    """A callback that rewrites one status line (carriage return) on ``stream``."""

    def show(elapsed: float, completed: int, rate: float) -> None:
        stream.write(f"\r  {elapsed:7.1f} s  completed {completed:8d}  rate {rate:9.1f}/s ")
        stream.flush()

    return show


def _p(p: Percentiles) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    return f"p50 {f(p.p50)}  p90 {f(p.p90)}  p99 {f(p.p99)} ms"


def format_summary(res: RunResult) -> str:
    """The final human summary: verdict with reasons, rates, token latencies, errors, where the results are."""
    verdict = "VALID" if res.valid else "INVALID"
    if res.mode == "accuracy":
        verdict = "ACCURACY RUN COMPLETE" if res.valid else "ACCURACY RUN FAILED"
    lines = [
        f"lpuperf {res.scenario} {res.mode} run '{res.run_id}' ({res.benchmark}, preset {res.preset}"
        f"{'' if res.submittable else ', not submittable'}): {verdict}",
    ]
    lines += [f"  {r}" if r.startswith("warning:") else f"  reason: {r}" for r in res.validity_reasons]

    def num(v: float | None, unit: str) -> str:
        return "-" if v is None else f"{v:.2f}{unit}"

    lines.append(
        f"  QPS completed {num(res.completed_qps, '')} / scheduled {num(res.scheduled_qps, '')}"
        f"   tokens/s {num(res.tokens_per_second, '')}"
    )
    lines.append(f"  TTFT     {_p(res.ttft_ms)}")
    lines.append(f"  TPOT     {_p(res.tpot_ms)}")
    lines.append(f"  latency  {_p(res.latency_ms)}")
    errs = ", ".join(f"{k} {n}" for k, n in sorted(res.errors_by_status.items()))
    lines.append(f"  queries {res.n_queries}, errors {res.n_errors}{f' ({errs})' if errs else ''}")
    lines.append(f"  results: {res.log_dir}/results.json")
    return "\n".join(lines)
