"""Compare figures only a run beside LoadGen has (``lpuperf run --load``): dispatch lag, sessions, prefix cache.

The values and their intervals come from the per-query records, like every latency in a comparison:

- **Dispatch lag** (send minus due time) p50/p99, bootstrapped as latencies are. It measures the client,
  not the SUT, so it never counts as a regression by itself; a candidate whose client fell behind its
  schedule (client-limited) while the baseline's did not is one, since its figures are not the SUT's.
- **Session latency** (first turn due to last answer, sessions without a failed request) p50/p90/p99 and
  **TTFT by turn index** p50/p99 (the users' messages), bootstrapped over sessions and queries.
- **Prefix-cache hit fraction** (cached / prompt tokens, successful queries), as absolute points, with
  queries resampled.

Runs whose results lack a figure (a LoadGen run has none of these) are not compared on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from loadgen_harness import Percentiles, RunResult
from workflows._stats import MIN_SAMPLES, Estimate, _interval, percentile_change

TOOL_STEP_USER = 0
_TURN_PCTS: tuple[tuple[Literal["p50", "p99"], float], ...] = (("p50", 50.0), ("p99", 99.0))
_SESSION_PCTS: tuple[tuple[Literal["p50", "p90", "p99"], float], ...] = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn (the comparison's settings)."""

    resamples: int
    confidence: float
    max_values: int
    rng: np.random.Generator


@dataclass(frozen=True)
class ComparedFigure:
    """One compared figure: ``informational`` ones get a direction but are never a regression."""

    name: str
    label: str
    unit: str
    better: Literal["lower", "higher"]
    baseline: float
    candidate: float
    est: Estimate | None
    absolute: bool = False
    informational: bool = False


def load_samples(records: np.ndarray) -> dict[str, np.ndarray]:
    """A load run's per-query (and per-session) values in issue order: what the intervals are drawn from."""
    names = records.dtype.names or ()
    if "sent_ns" not in names:
        return {}
    issue = records["issue_ns"].astype(np.int64)
    sent = records["sent_ns"].astype(np.int64)
    done = records["done_ns"].astype(np.int64)
    ok = (records["status"] == 0) & (done >= 0) & (issue >= 0)
    was_sent = (sent >= 0) & (issue >= 0)
    out = {"dispatch_lag_ms": np.clip(sent[was_sent] - issue[was_sent], 0, None) / 1e6}
    n_prompt = records["n_prompt"].astype(np.int64)
    cache_rows = ok & (n_prompt > 0)
    if cache_rows.any():
        out["prompt_tokens"] = n_prompt[cache_rows].astype(np.float64)
        out["cached_tokens"] = np.clip(records["cached_tokens"][cache_rows].astype(np.float64), 0, None)
    session = records["session"].astype(np.int64)
    if (session >= 0).any():
        out["session_latency_ms"] = _session_latencies(session, issue, done, ok)
        first = records["first_token_ns"].astype(np.int64)
        turn = records["turn"].astype(np.int64)
        user = ok & (session >= 0) & (records["tool_step"] == TOOL_STEP_USER) & (first >= issue)
        for t in np.unique(turn[user]):
            sel = user & (turn == t)
            out[f"turn_ttft_ms[{int(t)}]"] = (first[sel] - issue[sel]) / 1e6
    return out


def _session_latencies(session: np.ndarray, issue: np.ndarray, done: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """First request's due time to last answer of every session none of whose requests failed, by start time."""
    mine = session >= 0
    ids, where = np.unique(session[mine], return_inverse=True)
    failed = np.zeros(ids.size, dtype=bool)
    np.logical_or.at(failed, where, ~ok[mine])
    start = np.full(ids.size, np.iinfo(np.int64).max)
    np.minimum.at(start, where, issue[mine])
    end = np.full(ids.size, -1, dtype=np.int64)
    np.maximum.at(end, where, done[mine])
    keep = ~failed
    order = np.argsort(start[keep], kind="stable")
    latencies: np.ndarray = (end[keep] - start[keep]) / 1e6
    return latencies[order]


def ratio_change(
    num_b: np.ndarray, den_b: np.ndarray, num_c: np.ndarray, den_c: np.ndarray, boot: Bootstrap
) -> Estimate | None:
    """sum(num_c)/sum(den_c) - sum(num_b)/sum(den_b) (absolute), with both runs' queries resampled apart."""
    if den_b.size < MIN_SAMPLES or den_c.size < MIN_SAMPLES or den_b.sum() <= 0 or den_c.sum() <= 0:
        return None
    point = float(num_c.sum() / den_c.sum() - num_b.sum() / den_b.sum())
    ib = boot.rng.integers(0, den_b.size, (boot.resamples, den_b.size))
    ic = boot.rng.integers(0, den_c.size, (boot.resamples, den_c.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = num_c[ic].sum(axis=1) / den_c[ic].sum(axis=1) - num_b[ib].sum(axis=1) / den_b[ib].sum(axis=1)
    return Estimate(point, _interval(stats, point, boot.confidence))


def _pct_figure(
    name: str,
    label: str,
    pair: tuple[np.ndarray | None, np.ndarray | None],
    reported: tuple[float | None, float | None],
    q: float,
    boot: Bootstrap,
    informational: bool = False,
) -> ComparedFigure | None:
    """A percentile from both runs' values with an interval; else the reported figures without one."""
    ab, ac = pair
    if ab is not None and ac is not None and ab.size and ac.size:
        est = percentile_change(
            ab, ac, q, resamples=boot.resamples, confidence=boot.confidence, rng=boot.rng, max_values=boot.max_values
        )
        vb, vc = (float(np.percentile(a, q, method="higher")) for a in (ab, ac))
        return ComparedFigure(name, label, "ms", "lower", vb, vc, est, informational=informational)
    fb, fc = reported
    if fb is None or fc is None:
        return None
    return ComparedFigure(name, label, "ms", "lower", fb, fc, None, informational=informational)


def _lag_figures(
    rb: RunResult, rc: RunResult, sb: dict[str, np.ndarray], sc: dict[str, np.ndarray], boot: Bootstrap
) -> list[ComparedFigure]:
    lb, lc = rb.dispatch_lag, rc.dispatch_lag
    if lb is None or lc is None:
        return []
    pair = (sb.get("dispatch_lag_ms"), sc.get("dispatch_lag_ms"))
    out = []
    for pct, q, fb, fc in (("p50", 50.0, lb.p50_ms, lc.p50_ms), ("p99", 99.0, lb.p99_ms, lc.p99_ms)):
        f = _pct_figure(f"dispatch_lag_ms.{pct}", f"dispatch lag {pct}", pair, (fb, fc), q, boot, informational=True)
        out += [f] if f is not None else []
    return out


def _session_figures(
    rb: RunResult, rc: RunResult, sb: dict[str, np.ndarray], sc: dict[str, np.ndarray], boot: Bootstrap
) -> list[ComparedFigure]:
    ssb, ssc = rb.sessions, rc.sessions
    if ssb is None or ssc is None:
        return []
    out: list[ComparedFigure] = []
    pair = (sb.get("session_latency_ms"), sc.get("session_latency_ms"))
    for pct, q in _SESSION_PCTS:
        reported = (ssb.session_latency_ms.at(pct), ssc.session_latency_ms.at(pct))
        f = _pct_figure(f"session_latency_ms.{pct}", f"session latency {pct}", pair, reported, q, boot)
        out += [f] if f is not None else []
    turns_b: dict[int, Percentiles] = {t.turn: t.ttft_ms for t in ssb.turns}
    turns_c: dict[int, Percentiles] = {t.turn: t.ttft_ms for t in ssc.turns}
    for turn in sorted(set(turns_b) & set(turns_c)):
        key = f"turn_ttft_ms[{turn}]"
        for pct, q in _TURN_PCTS:
            reported = (turns_b[turn].at(pct), turns_c[turn].at(pct))
            name, label = f"turn_ttft_ms.{pct}[turn={turn}]", f"TTFT turn {turn} {pct}"
            f = _pct_figure(name, label, (sb.get(key), sc.get(key)), reported, q, boot)
            out += [f] if f is not None else []
    return out


def _cache_figure(
    rb: RunResult, rc: RunResult, sb: dict[str, np.ndarray], sc: dict[str, np.ndarray], boot: Bootstrap
) -> list[ComparedFigure]:
    pb, pc = rb.prefix_cache, rc.prefix_cache
    if pb is None or pc is None or pb.hit_fraction is None or pc.hit_fraction is None:
        return []
    if not (pb.cached_tokens or pc.cached_tokens):
        return []  # neither SUT reported a hit: no cache to compare
    est = None
    if "prompt_tokens" in sb and "prompt_tokens" in sc:
        est = ratio_change(sb["cached_tokens"], sb["prompt_tokens"], sc["cached_tokens"], sc["prompt_tokens"], boot)
    return [
        ComparedFigure(
            "prefix_cache.hit_fraction",
            "prefix-cache hit fraction",
            "%",
            "higher",
            pb.hit_fraction,
            pc.hit_fraction,
            est,
            absolute=True,
        )
    ]


def load_figures(
    rb: RunResult, rc: RunResult, sb: dict[str, np.ndarray], sc: dict[str, np.ndarray], boot: Bootstrap
) -> list[ComparedFigure]:
    """Every load figure both runs report, baseline first."""
    return [
        *_lag_figures(rb, rc, sb, sc, boot),
        *_session_figures(rb, rc, sb, sc, boot),
        *_cache_figure(rb, rc, sb, sc, boot),
    ]


def load_notes(rb: RunResult, rc: RunResult) -> list[str]:
    """What a reader must know before reading the figures of runs beside LoadGen."""
    notes: list[str] = []
    if rb.load is not None and rc.load is not None and rb.load.spec != rc.load.spec:
        notes.append(f"the runs sent different loads ({rb.load.spec} vs {rc.load.spec}): figures under different loads")
    elif (rb.load is None) != (rc.load is None):
        which, load = ("baseline", rb.load) if rb.load is not None else ("candidate", rc.load)
        assert load is not None
        notes.append(f"the {which} is not an MLPerf LoadGen run ({load.spec}): LoadGen's scheduling vs a load shape's")
    if _limited(rb):
        notes.append("the baseline run was client-limited: its figures are its client's, not the SUT's")
    return notes


def _limited(r: RunResult) -> bool:
    return r.client_limited or (r.dispatch_lag is not None and r.dispatch_lag.client_limited)


def client_regression(rb: RunResult, rc: RunResult) -> str | None:
    """The line saying the candidate's client fell behind while the baseline's kept up; None otherwise."""
    if not _limited(rc) or _limited(rb):
        return None
    lag = rc.dispatch_lag
    figure = "" if lag is None or lag.p99_ms is None else f": dispatch lag p99 {lag.p99_ms:g} ms > {lag.bound_ms:g} ms"
    return f"candidate client-limited{figure} (its figures are its client's, not the SUT's)"
