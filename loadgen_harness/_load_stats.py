"""Figures only a run beside LoadGen has: dispatch lag, sessions and turns, prefix-cache hits; and its verdict.

All are computed from the per-query columns after the run (never on the hot path). Dispatch lag is the
actual send time minus the due time of every query that was sent; the session figures group rows by
their session index; the prefix-cache share is over successful queries whose prompt length is known.
Without LoadGen there is no LoadGen verdict: a run is judged on the benchmark's TTFT/TPOT limits at their
percentile (or end-to-end latency where the benchmark has no token limits), over every query it sent,
failed ones counting against it, and is never valid when its client fell behind its own schedule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loadgen_harness._records import _pcts
from loadgen_harness._results import (
    DispatchLag,
    LatencyLimits,
    PrefixCacheStats,
    RunResult,
    SessionStats,
    TurnStats,
)

Columns = Mapping[str, np.ndarray]
LAG_FIELDS = ("issue_ns", "sent_ns")
SESSION_FIELDS = (
    "issue_ns",
    "first_token_ns",
    "done_ns",
    "status",
    "session",
    "turn",
    "tool_step",
    "finish_reason",
    "cached_tokens",
    "n_prompt",
)
CACHE_FIELDS = ("status", "done_ns", "cached_tokens", "n_prompt")
TOOL_CALL_REASON = 4  # proto FinishReason.FINISH_REASON_TOOL_CALL
# A client whose dispatch lag p99 is above this has not kept its own schedule (the default --max-dispatch-lag-ms).
DEFAULT_LAG_BOUND_MS = 10.0


def dispatch_lag(cols: Columns, bound_ms: float = DEFAULT_LAG_BOUND_MS) -> DispatchLag | None:
    """Send minus due over every sent query; None when nothing was sent."""
    due = np.asarray(cols["issue_ns"], dtype=np.int64)
    sent = np.asarray(cols["sent_ns"], dtype=np.int64)
    ok = (sent >= 0) & (due >= 0)
    if not ok.any():
        return None
    lag = np.clip(sent[ok] - due[ok], 0, None)
    p50, p99 = np.percentile(lag, [50, 99], method="higher") / 1e6
    p99_ms = round(float(p99), 4)
    return DispatchLag(
        n_queries=int(ok.sum()),
        p50_ms=round(float(p50), 4),
        p99_ms=p99_ms,
        max_ms=round(float(lag.max()) / 1e6, 4),
        bound_ms=bound_ms,
        client_limited=p99_ms > bound_ms,
    )


def prefix_cache_stats(cols: Columns) -> PrefixCacheStats | None:
    """The SUT's reported prefix-cache hits; None when no query stated its prompt length or no SUT reported a hit."""
    n_prompt = np.asarray(cols["n_prompt"], dtype=np.int64)
    cached = np.asarray(cols["cached_tokens"], dtype=np.int64)
    ok = (np.asarray(cols["status"], dtype=np.int64) == 0) & (np.asarray(cols["done_ns"]) >= 0) & (n_prompt > 0)
    if not ok.any():
        return None
    prompt_tokens = int(n_prompt[ok].sum())
    cached_tokens = int(np.clip(cached[ok], 0, None).sum())
    return PrefixCacheStats(
        n_queries=int(ok.sum()),
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        hit_fraction=round(cached_tokens / prompt_tokens, 6) if prompt_tokens else None,
        queries_with_hit=int((cached[ok] > 0).sum()),
    )


def session_stats(cols: Columns, n_sessions: int, cut_at_context: int = 0, cut_at_end: int = 0) -> SessionStats | None:
    """Per-session and per-turn figures; None for a run without sessions."""
    session = np.asarray(cols["session"], dtype=np.int64)
    mine = session >= 0
    if not mine.any():
        return None
    issue = np.asarray(cols["issue_ns"], dtype=np.int64)[mine]
    first = np.asarray(cols["first_token_ns"], dtype=np.int64)[mine]
    done = np.asarray(cols["done_ns"], dtype=np.int64)[mine]
    status = np.asarray(cols["status"], dtype=np.int64)[mine]
    session = session[mine]
    ok = (status == 0) & (done >= 0)
    failed_sessions = np.unique(session[~ok])
    started = np.unique(session)
    good = np.setdiff1d(started, failed_sessions)
    # A completed session's latency: its first request's due time to its last answer.
    order = np.argsort(session, kind="stable")
    s_sorted = session[order]
    bounds = np.flatnonzero(np.diff(s_sorted)) + 1
    starts = np.minimum.reduceat(issue[order], np.r_[0, bounds])
    ends = np.maximum.reduceat(done[order], np.r_[0, bounds])
    ids = s_sorted[np.r_[0, bounds]]
    keep = np.isin(ids, good)
    cut = cut_at_context + cut_at_end
    return SessionStats(
        n_sessions=n_sessions,
        completed_sessions=max(0, int(keep.sum()) - cut),
        failed_sessions=int(failed_sessions.size),
        cut_at_context=cut_at_context,
        cut_at_end=cut_at_end,
        n_requests=int(mine.sum()),
        tool_calls=int((np.asarray(cols["finish_reason"])[mine][ok] == TOOL_CALL_REASON).sum()),
        session_latency_ms=_pcts(ends[keep] - starts[keep]),
        turns=_turns(cols, mine, ok, issue, first),
    )


def _turns(cols: Columns, mine: np.ndarray, ok: np.ndarray, issue: np.ndarray, first: np.ndarray) -> list[TurnStats]:
    """TTFT by turn index over the user's messages (tool step 0): how history and caching change the first token."""
    turn = np.asarray(cols["turn"], dtype=np.int64)[mine]
    user = ok & (np.asarray(cols["tool_step"], dtype=np.int64)[mine] == 0) & (first >= issue)
    n_prompt = np.asarray(cols["n_prompt"], dtype=np.int64)[mine]
    cached = np.clip(np.asarray(cols["cached_tokens"], dtype=np.int64)[mine], 0, None)
    out: list[TurnStats] = []
    for t in np.unique(turn[user]):
        sel = user & (turn == t)
        prompt = int(n_prompt[sel].clip(0).sum())
        out.append(
            TurnStats(
                turn=int(t),
                n_queries=int(sel.sum()),
                ttft_ms=_pcts(first[sel] - issue[sel]),
                prompt_tokens_mean=round(float(n_prompt[sel].mean()), 2) if sel.any() else None,
                cached_fraction=round(int(cached[sel].sum()) / prompt, 6) if prompt else None,
            )
        )
    return out


def judge_load_run(res: RunResult, limits: LatencyLimits | None, basis: str) -> None:
    """Set ``valid`` and its reasons for a run beside LoadGen: per-query limits at their percentile, no
    failures, the client on schedule. ``basis`` says in words what the run was judged by."""
    reasons: list[str] = []
    if res.n_errors:
        reasons.append(f"{res.n_errors} of {res.n_queries} queries failed")
    if res.successful is None or res.successful.n_queries == 0:
        reasons.append("no query succeeded")
    elif limits is not None:
        reasons += _limit_breaches(res, limits)
    if res.dispatch_lag is not None and res.dispatch_lag.client_limited:
        lag = res.dispatch_lag
        reasons.append(
            f"client-limited: dispatch lag p99 {lag.p99_ms:g} ms > {lag.bound_ms:g} ms (the client sent late; "
            "the SUT's figures are not its own)"
        )
    res.valid = not reasons and res.state == "complete"
    res.validity_reasons[:0] = reasons
    if res.load is not None:
        res.load.validity_basis = basis


def _limit_breaches(res: RunResult, limits: LatencyLimits) -> list[str]:
    stats = res.successful
    if stats is None:
        return []
    out: list[str] = []
    pct = limits.percentile
    checks = (
        ("TTFT", stats.ttft_ms.p99 if pct >= 99 else stats.ttft_ms.p90, limits.ttft_ms),
        ("TPOT", stats.tpot_ms.p99 if pct >= 99 else stats.tpot_ms.p90, limits.tpot_ms),
        ("latency", stats.latency_ms.p99 if pct >= 99 else stats.latency_ms.p90, limits.latency_ms),
    )
    for name, seen, limit in checks:
        if limit is not None and seen is not None and seen > limit:
            out.append(f"{name} p{pct:g} {seen:g} ms > {limit:g} ms")
    return out
