"""Seeded bootstrap intervals for run comparisons: one estimator for the point and for its interval.

Every interval here is a percentile bootstrap of the *same* statistic that gives the point estimate,
computed on the same data, so the estimate and its interval describe one quantity. A percentile
interval of a skewed statistic (a tail percentile of few queries) can still miss the estimate it
was built around; such an interval is widened to reach the estimate, which only makes a verdict
more cautious (it is drawn only when the interval excludes zero).

Throughput has no per-query value to resample: completions and tokens are counted in equal time
bins over the measured window (first issue to last completion) and the bins are resampled, so the
interval reflects how evenly the run delivered, and the point estimate (all bins) is exactly
completions / window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A percentile of fewer values than this has no useful interval.
MIN_SAMPLES = 20
MIN_BINS = 10
MAX_BINS = 200
# Resampled values per block: bounds memory at ~16 MB of indices whatever the run's size.
_BLOCK_VALUES = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its bootstrap interval (None: too little data for one)."""

    value: float
    ci: tuple[float, float] | None

    @property
    def excludes_zero(self) -> bool:
        return self.ci is not None and not (self.ci[0] <= 0.0 <= self.ci[1])


@dataclass(frozen=True)
class RateBins:
    """Successful completions and their output tokens per equal time bin of the measured window."""

    bin_s: float
    queries: np.ndarray
    tokens: np.ndarray

    @property
    def qps(self) -> float:
        return float(self.queries.sum()) / (self.queries.size * self.bin_s)

    @property
    def tokens_per_second(self) -> float:
        return float(self.tokens.sum()) / (self.tokens.size * self.bin_s)


def rate_bins(records: np.ndarray) -> RateBins | None:
    """Bin the successful completions of per-query records (queries.npz) over LoadGen's window."""
    issue = records["issue_ns"].astype(np.int64)
    done = records["done_ns"].astype(np.int64)
    finished = done >= 0
    ok = finished & (records["status"] == 0) & (issue >= 0) & (done >= issue)
    n_ok = int(ok.sum())
    if n_ok < MIN_SAMPLES or not (issue >= 0).any():
        return None
    t0 = int(issue[issue >= 0].min())
    window_ns = int(done[finished].max()) - t0
    if window_ns <= 0:
        return None
    n_bins = int(np.clip(n_ok // 20, MIN_BINS, MAX_BINS))
    edges = np.linspace(0.0, float(window_ns), n_bins + 1)
    edges[-1] = np.nextafter(edges[-1], np.inf)  # the last completion belongs to the last bin
    at = (done[ok] - t0).astype(np.float64)
    queries, _ = np.histogram(at, bins=edges)
    tokens, _ = np.histogram(at, bins=edges, weights=records["n_tokens"][ok].astype(np.float64))
    return RateBins(bin_s=window_ns / 1e9 / n_bins, queries=queries.astype(np.float64), tokens=tokens)


def _interval(stats: np.ndarray, point: float, confidence: float) -> tuple[float, float] | None:
    stats = stats[np.isfinite(stats)]
    if stats.size < 50:
        return None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = (float(v) for v in np.quantile(stats, [alpha, 1.0 - alpha]))
    return min(lo, point), max(hi, point)


def _percentile(x: np.ndarray, q: float, axis: int | None = None) -> np.ndarray:
    # "higher": a recorded value at or above the rank, as LoadGen and results.json's success figures pick it.
    return np.percentile(x, q, axis=axis, method="higher")


def percentile_change(
    base: np.ndarray,
    cand: np.ndarray,
    q: float,
    *,
    resamples: int,
    confidence: float,
    rng: np.random.Generator,
    max_values: int,
) -> Estimate | None:
    """pct_q(cand) / pct_q(base) - 1 over both runs' values, with a moving-block bootstrap interval.

    ``base`` and ``cand`` are in issue order. Queries close in time share the machine's state (a
    stall, a burst, a busy neighbour on a shared host), so they are not independent: resampling them
    one by one would give intervals too narrow for a loaded machine. Each run is cut into consecutive
    blocks (:func:`_blocks`) and whole blocks are resampled, runs apart. Runs of more than
    ``max_values`` values are bootstrapped from an order-keeping random subset of that size (the point
    stays the full data's): a smaller sample only widens the interval.
    """
    if base.size < MIN_SAMPLES or cand.size < MIN_SAMPLES:
        return None
    pb, pc = float(_percentile(base, q)), float(_percentile(cand, q))
    if pb <= 0:
        return None
    point = pc / pb - 1.0
    blocks_b, blocks_c = (_blocks(_thin(x, max_values, rng)) for x in (base, cand))
    stats = np.empty(resamples)
    step = max(1, min(resamples, _BLOCK_VALUES // max(blocks_b.size, blocks_c.size)))
    for start in range(0, resamples, step):
        k = min(step, resamples - start)
        b = _percentile(_resample_blocks(blocks_b, k, rng), q, axis=1)
        c = _percentile(_resample_blocks(blocks_c, k, rng), q, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            stats[start : start + k] = c / b - 1.0
    return Estimate(point, _interval(stats, point, confidence))


def _thin(x: np.ndarray, max_values: int, rng: np.random.Generator) -> np.ndarray:
    if x.size <= max_values:
        return x
    return x[np.sort(rng.choice(x.size, max_values, replace=False))]


def _blocks(x: np.ndarray) -> np.ndarray:
    """``x`` (in time order) as a (blocks, block length) array: about sqrt(n) blocks of sqrt(n) values.

    Up to one block length of trailing values is left out of the resampling (not of the point).
    """
    n_blocks = int(np.clip(round(np.sqrt(x.size)), MIN_BINS, x.size))
    length = x.size // n_blocks
    return x[: n_blocks * length].reshape(n_blocks, length)


def _resample_blocks(blocks: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` resamples, each as many blocks as ``blocks`` has, drawn with replacement and concatenated."""
    picks = rng.integers(0, blocks.shape[0], (k, blocks.shape[0]))
    return blocks[picks].reshape(k, -1)


def mean_change(
    base: np.ndarray, cand: np.ndarray, *, resamples: int, confidence: float, rng: np.random.Generator
) -> Estimate | None:
    """mean(cand) / mean(base) - 1 (per-bin rates), bins resampled apart in each run."""
    if base.size < MIN_BINS or cand.size < MIN_BINS:
        return None
    mb, mc = float(base.mean()), float(cand.mean())
    if mb <= 0:
        return None
    point = mc / mb - 1.0
    b = base[rng.integers(0, base.size, (resamples, base.size))].mean(axis=1)
    c = cand[rng.integers(0, cand.size, (resamples, cand.size))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = c / b - 1.0
    return Estimate(point, _interval(stats, point, confidence))


def proportion_change(
    k_base: int, n_base: int, k_cand: int, n_cand: int, *, resamples: int, confidence: float, rng: np.random.Generator
) -> Estimate | None:
    """k_cand/n_cand - k_base/n_base (absolute), each proportion resampled as a binomial draw."""
    if n_base <= 0 or n_cand <= 0:
        return None
    pb, pc = k_base / n_base, k_cand / n_cand
    point = pc - pb
    stats = rng.binomial(n_cand, pc, resamples) / n_cand - rng.binomial(n_base, pb, resamples) / n_base
    return Estimate(point, _interval(stats.astype(np.float64), point, confidence))


def scaled(est: Estimate, factor: float) -> Estimate:
    """A relative change of x turned into the relative change of x * factor (e.g. per scheduled query)."""

    def f(v: float) -> float:
        return (1.0 + v) * factor - 1.0

    return Estimate(f(est.value), None if est.ci is None else (f(est.ci[0]), f(est.ci[1])))
