"""The console side of a run: the live progress line and the final human summary.

Everything here reads a :class:`RunResult` (or the bridge's counters while a run goes on); nothing
here is part of what a run writes.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from loadgen_harness._energy import energy_line
from loadgen_harness._replicas import fleet_summary_lines
from loadgen_harness._results import Percentiles, ReasoningStats, RunResult, TokenStats

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


_LIMIT_LABELS = {"ttft": "TTFT", "tpot": "TPOT", "latency": "latency"}


def _limit_ms(res: RunResult, metric: str) -> float | None:
    lim = res.limits
    if lim is None:
        return None
    return {"ttft": lim.ttft_ms, "tpot": lim.tpot_ms, "latency": lim.latency_ms}[metric]


def _fmt_ms(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def verdict_basis(res: RunResult) -> list[str]:
    """What decided a performance run's verdict against its limits, one line each (empty: nothing to say).

    The limits are judged on LoadGen's own p99 (what LoadGen compared); early stopping that lacked
    queries names the count LoadGen would have needed.
    """
    if res.mode != "performance" or res.state != "complete":
        return []
    out: list[str] = []
    met: list[str] = []
    sections = {"ttft": res.ttft_ms, "tpot": res.tpot_ms, "latency": res.latency_ms}
    pct = f"p{(res.limits.percentile if res.limits else 99.0):g}"
    for metric, label in _LIMIT_LABELS.items():
        limit = _limit_ms(res, metric)
        value = sections[metric].p99
        if limit is None or value is None:
            continue
        if value > limit:
            out.append(f"{label} {pct} {value:.1f} ms > {_fmt_ms(limit)} ms limit")
        else:
            met.append(f"{label} {pct} {value:.1f} ms <= {_fmt_ms(limit)} ms")
    for need in res.early_stopping:
        line = (
            f"{_LIMIT_LABELS[need.metric]} early stopping: the run had {need.processed_queries} queries; LoadGen "
            f"needs at least {need.needed_queries} (every further one within the limit) to call {pct} within it"
        )
        if res.scheduled_qps:
            line += f" (~{math.ceil(need.needed_queries / res.scheduled_qps)} s at {res.scheduled_qps:.3g} qps)"
        out.append(line)
    if out:
        return [f"decided by: {x}" for x in out]
    if met and res.valid:
        return [f"within limits: {', '.join(met)}"]
    return []


def _limit_note(res: RunResult, metric: str) -> str:
    limit = _limit_ms(res, metric)
    if limit is None:
        return ""
    pct = res.limits.percentile if res.limits else 99.0
    return f"   limit p{pct:g} <= {_fmt_ms(limit)} ms"


def _extra_lines(res: RunResult) -> list[str]:
    lines: list[str] = []
    g = res.goodput
    if g is not None and g.fraction is not None:
        within = " and ".join(
            f"{name} <= {_fmt_ms(v)} ms"
            for name, v in (("TTFT", g.ttft_limit_ms), ("TPOT", g.tpot_limit_ms), ("latency", g.latency_limit_ms))
            if v is not None
        )
        qps = "-" if g.qps is None else f"{g.qps:.2f}"
        lines.append(
            f"  goodput  {g.fraction:.1%} of queries ({g.n_good_queries}/{g.n_queries}) with {within}: {qps} qps"
        )
    itl = res.itl
    if itl is not None and itl.n_queries:
        lines.append(f"  ITL      {_p(itl.itl_ms)}  (per query: mean per token after the first message)")
        lines.append(f"  max gap  {_p(itl.max_gap_ms)}  (per query: longest wait between two stream messages)")
    if res.reasoning is not None:
        lines += reasoning_lines(res.reasoning)
    return lines + load_lines(res)


def load_lines(res: RunResult) -> list[str]:
    """A run beside LoadGen: how it sent, how late, its sessions and the SUT's prefix-cache hits."""
    if res.load is None:
        return []
    lines = [f"  load     {res.load.spec}: {res.load.note}"]
    if res.load.validity_basis:
        lines.append(f"  judged   on {res.load.validity_basis}")
    lag = res.dispatch_lag
    if lag is not None:
        flag = (
            f"  CLIENT-LIMITED (p99 over {lag.bound_ms:g} ms)"
            if lag.client_limited
            else f"  (bound {lag.bound_ms:g} ms)"
        )
        lines.append(f"  dispatch lag p50 {lag.p50_ms:.2f}  p99 {lag.p99_ms:.2f}  max {lag.max_ms:.2f} ms{flag}")
    sess = res.sessions
    if sess is not None:
        lines.append(
            f"  sessions {sess.n_sessions} ({sess.completed_sessions} completed, {sess.failed_sessions} failed, "
            f"{sess.cut_at_context} cut at the context, {sess.cut_at_end} cut at the end), {sess.n_requests} "
            f"requests, {sess.tool_calls} tool calls; session latency {_p(sess.session_latency_ms)}"
        )
        by_turn = "  ".join(
            f"t{t.turn} {'-' if t.ttft_ms.p50 is None else f'{t.ttft_ms.p50:.1f}'}"
            + (f" ({t.cached_fraction:.0%} cached)" if t.cached_fraction else "")
            for t in sess.turns[:12]
        )
        lines.append(f"  TTFT p50 by turn (ms): {by_turn}")
    cache = res.prefix_cache
    if cache is not None and cache.cached_tokens:
        lines.append(
            f"  prefix cache {cache.hit_fraction or 0:.1%} of prompt tokens served from the SUT's cache "
            f"({cache.queries_with_hit} of {cache.n_queries} queries hit)"
        )
    return lines


def _tokens(t: TokenStats) -> str:
    if t.mean is None:
        return "-"
    return f"mean {t.mean:,.0f} (p50 {t.p50:,.0f}, p99 {t.p99:,.0f}, max {t.max:,})"


def reasoning_lines(r: ReasoningStats) -> list[str]:
    """Reasoning and answer tokens per query and the time to the first answer token (TTFA)."""
    share = "" if r.reasoning_fraction is None else f", {r.reasoning_fraction:.0%} of output tokens"
    lines = [
        f"  TTFA     {_p(r.ttfa_ms)}  (time to the first answer token)",
        f"  reasoning tokens {_tokens(r.reasoning_tokens)}{share}",
        f"  answer tokens    {_tokens(r.answer_tokens)}",
    ]
    if r.n_without_answer:
        lines.append(f"  {r.n_without_answer} of {r.n_queries} queries ended inside their reasoning (no answer)")
    return lines


def format_summary(res: RunResult) -> str:
    """The final human summary: verdict with reasons, rates, token latencies, errors, where the results are.

    With failed queries the rates and percentiles shown are over successful queries only: LoadGen
    counts a failed query as completed (fast), so its own figures would headline an inflated rate
    and short latencies. LoadGen's figures follow in brackets, labelled as including the failures.
    """
    verdict = "VALID" if res.valid else "INVALID"
    if res.mode == "accuracy":
        verdict = "ACCURACY RUN COMPLETE" if res.valid else "ACCURACY RUN FAILED"
    if res.state != "complete":
        verdict = f"{res.state.upper()}{f' by {res.interrupted_by}' if res.interrupted_by else ''}"
    lines = [
        f"lpuperf {res.scenario} {res.mode} run '{res.run_id}' ({res.benchmark}, preset {res.preset}"
        f"{'' if res.submittable else ', not submittable'}): {verdict}",
    ]
    lines += [f"  {r}" if r.startswith("warning:") else f"  reason: {r}" for r in res.validity_reasons]
    lines += [f"  warning: {w}" for w in res.warnings]
    lines += [f"  {b}" for b in verdict_basis(res)]

    def num(v: float | None, unit: str) -> str:
        return "-" if v is None else f"{v:.2f}{unit}"

    ok = res.successful
    errs = ", ".join(f"{k} {n}" for k, n in sorted(res.errors_by_status.items()))
    if not res.n_errors and (ok is None or res.completed_qps is not None):
        lines.append(
            f"  QPS completed {num(res.completed_qps, '')} / scheduled {num(res.scheduled_qps, '')}"
            f"   tokens/s {num(res.tokens_per_second, '')}"
        )
        lines.append(f"  TTFT     {_p(res.ttft_ms)}{_limit_note(res, 'ttft')}")
        lines.append(f"  TPOT     {_p(res.tpot_ms)}{_limit_note(res, 'tpot')}")
        lines.append(f"  latency  {_p(res.latency_ms)}{_limit_note(res, 'latency')}")
        lines += _extra_lines(res)
        lines.append(f"  queries {res.n_queries}, errors 0")
    elif ok is None:  # results.json from before per-query success figures: no rate can be headlined
        lines.append(
            f"  LoadGen completed {num(res.completed_qps, '')}/s incl. {res.n_errors} failed (successful rate "
            f"unknown) / scheduled {num(res.scheduled_qps, '')}"
        )
        lines.append(f"  LoadGen latencies incl. failed: TTFT {_p(res.ttft_ms)}")
        lines.append(f"  queries {res.n_queries}, errors {res.n_errors} ({errs})")
    else:
        # Also when LoadGen reported nothing (an abandoned test): the records still tell.
        lines.append(
            f"  successful QPS {num(ok.qps, '')} (LoadGen completed {num(res.completed_qps, '')} incl. "
            f"{res.n_errors} failed) / scheduled {num(res.scheduled_qps, '')}"
            f"   successful tokens/s {num(ok.tokens_per_second, '')}"
        )
        for label, metric, mine, theirs in (
            ("TTFT    ", "ttft", ok.ttft_ms, res.ttft_ms),
            ("TPOT    ", "tpot", ok.tpot_ms, res.tpot_ms),
            ("latency ", "latency", ok.latency_ms, res.latency_ms),
        ):
            lines.append(
                f"  {label} {_p(mine)}  [LoadGen incl. failed: p50 {num(theirs.p50, '')}]{_limit_note(res, metric)}"
            )
        lines += _extra_lines(res)
        lines.append(
            f"  queries {res.n_queries}: {ok.n_queries} succeeded (figures above), {res.n_errors} failed ({errs})"
        )
    if res.fleet is not None and (len(res.fleet.replicas) > 1 or res.fleet.events or res.fleet.unattributed):
        lines += fleet_summary_lines(res.fleet)
    if res.energy is not None:
        lines.append(f"  {energy_line(res.energy)}")
    lines.append(f"  results: {res.log_dir}/results.json")
    return "\n".join(lines)
