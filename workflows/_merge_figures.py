"""The per-record figures of a merged sharded run: shifting rows onto one timeline, measuring a shard's
clock against the SUT's, rates over a window, and the load shape's own figures over the union of records.

Everything here is a pure function of numpy arrays and RunResults, so it is tested exactly on records
built in the test; ``workflows._merge`` reads and writes the run directories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from loadgen_harness import (
    CACHE_FIELDS,
    LAG_FIELDS,
    SESSION_FIELDS,
    LoadInfo,
    RunResult,
    dispatch_lag,
    prefix_cache_stats,
    session_stats,
)

if TYPE_CHECKING:
    from workflows._merge import Shard

# queries.npz columns on the harness's run clock (ns since the shard's start; -1 = not reached). The sut_*
# columns are the SUT's own clock and are never shifted.
HARNESS_TIME_COLUMNS = ("issue_ns", "first_token_ns", "done_ns", "last_msg_ns", "first_answer_ns", "sent_ns")


def shifted(records: np.ndarray, shift_ns: int, copy: bool = True) -> np.ndarray:
    """``records`` (a copy, or itself with ``copy=False``) with every reached harness time moved ``shift_ns``
    later (-1 stays -1)."""
    out = records.copy() if copy else records
    for name in HARNESS_TIME_COLUMNS:
        col = out[name]
        col[col >= 0] += shift_ns
    return out


def clock_offset_ns(records: np.ndarray, wall_t0_unix_ns: int) -> tuple[float, float] | None:
    """(SUT clock minus this shard's wall clock, error bound), both ns, or None without SUT timestamps.

    NTP's estimate from one exchange: the request left at T1 (shard), arrived at T2 (SUT), the first token
    left at T3 (SUT) and arrived at T4 (shard); offset ((T2 - T1) + (T3 - T4)) / 2, wrong by at most
    half the network delay (T4 - T1) - (T3 - T2). The exchange with the least delay is the best one.
    """
    t1 = records["sent_ns"].astype(np.int64)
    t4 = records["first_token_ns"].astype(np.int64)
    t2 = records["sut_arrival_ns"].astype(np.int64)
    t3 = records["sut_first_token_ns"].astype(np.int64)
    usable = (records["status"] == 0) & (t1 >= 0) & (t4 >= t1) & (t2 > 0) & (t3 >= t2)
    if not usable.any():
        return None
    t1, t2, t3, t4 = (c[usable] for c in (t1, t2, t3, t4))
    delay = (t4 - t1) - (t3 - t2)
    best = int(np.argmin(delay))
    # Harness times are relative to the shard's start: Unix time is wall_t0 + t. Differences in Python ints
    # first: a Unix time in ns does not fit a float's 53 bits.
    out_ns = int(t2[best]) - wall_t0_unix_ns - int(t1[best])
    back_ns = int(t3[best]) - wall_t0_unix_ns - int(t4[best])
    offset = (out_ns + back_ns) / 2
    return offset, max(0.0, float(delay[best])) / 2


def window_rates(records: np.ndarray, lo_ns: int, hi_ns: int) -> tuple[int, int]:
    """Successful queries completed within [lo, hi] on the records' clock, and their output tokens."""
    done = records["done_ns"]
    mine = (records["status"] == 0) & (records["issue_ns"] >= 0) & (done >= lo_ns) & (done <= hi_ns)
    return int(mine.sum()), int(records["n_tokens"][mine].clip(0).sum())


def load_figures(res: RunResult, shards: Sequence[Shard], records: np.ndarray) -> None:
    """The load's description summed over the shards, and its dispatch lag, sessions and cache hits re-derived
    from the union of records."""
    first = shards[0].result
    assert first.load is not None
    infos = [s.result.load for s in shards if s.result.load is not None]
    res.load = _summed_load(first.load, infos)
    bound = first.dispatch_lag.bound_ms if first.dispatch_lag is not None else None
    res.dispatch_lag = dispatch_lag({k: records[k] for k in LAG_FIELDS}, *(() if bound is None else (bound,)))
    res.client_limited = (res.dispatch_lag is not None and res.dispatch_lag.client_limited) or any(
        s.result.client_limited for s in shards
    )
    sessions = [s.result.sessions for s in shards if s.result.sessions is not None]
    res.sessions = session_stats(
        {k: records[k] for k in SESSION_FIELDS},
        sum(x.n_sessions for x in sessions),
        sum(x.cut_at_context for x in sessions),
        sum(x.cut_at_end for x in sessions),
    )
    res.prefix_cache = prefix_cache_stats({k: records[k] for k in CACHE_FIELDS})
    res.scheduled_qps = res.load.rate_qps


def _total(values: Sequence[float | int | None]) -> float | int | None:
    known = [v for v in values if v is not None]
    return sum(known) if len(known) == len(values) and known else None


def _summed_load(first: LoadInfo, infos: Sequence[LoadInfo]) -> LoadInfo:
    """Shard 0's load description with the shards' rates, concurrency and counts added up."""
    # A trace's max_rate caps the whole replay's timeline (each shard keeps it); an open loop's rate is split.
    rate = first.rate_qps if first.kind == "trace" else _total([i.rate_qps for i in infos])
    concurrency = _total([i.concurrency for i in infos])
    planned = _total([i.planned_requests for i in infos])
    max_requests = _total([i.max_requests for i in infos])
    return first.model_copy(
        update={
            "rate_qps": None if rate is None else round(float(rate), 6),
            "concurrency": None if concurrency is None else int(concurrency),
            "planned_requests": None if planned is None else int(planned),
            "max_requests": None if max_requests is None else int(max_requests),
            "sent_requests": sum(i.sent_requests for i in infos),
        }
    )
