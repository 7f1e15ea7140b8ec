"""A discrete-event simulation of one statically scheduled batcher (the sim LPU's scheduler, sut/_sim.py).

The model, step for step as the sim runs it:

* Time advances in decode steps of ``decode_step_s``. At a step boundary ``t`` the requests that
  have arrived by ``t`` join FIFO while fewer than ``max_batch`` sequences are active; their prefills
  run back to back, and every joiner emits its first token when the last prefill ends.
* Each decode step then emits one token for every active sequence; a sequence of ``L`` tokens is
  done ``L - 1`` steps after its first token. The next boundary is the end of the step.
* An idle batcher starts a step when the next request arrives.

Service is deterministic: the same arrivals give the same times. Here only events are simulated
(arrivals and completions), so a run of 20,000 queries takes a fraction of a second: between two
events the steps are counted, not stepped through.

Arrivals (:func:`round_robin_arrivals`): LoadGen's Server scenario issues a Poisson stream; gRPC's
round_robin hands query k to replica k mod R, so one replica sees every R-th arrival of the stream,
i.e. Erlang-R inter-arrival times at rate lambda/R (smoother than Poisson at lambda/R). The replicas
are alike, so simulating one of them is the fleet's answer.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np


def round_robin_arrivals(qps_total: float, replicas: int, n: int, seed: int) -> np.ndarray:
    """Arrival times (s) at one of ``replicas`` round-robin replicas of a Poisson stream at ``qps_total``.

    The same ``seed`` gives the same unit draws at every rate (common random numbers): a higher rate
    only compresses the same schedule, so predictions are monotone in the rate and bisection is sound.
    """
    unit = np.random.default_rng(seed).standard_exponential((n, replicas))
    gaps = unit.sum(axis=1) / qps_total
    out: np.ndarray = np.cumsum(gaps)
    return out


def simulate_batcher(
    arrivals_s: np.ndarray, prefill_s: np.ndarray, n_out: np.ndarray, decode_step_s: float, max_batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """(first-token time, done time) per request; requests in arrival order, each with its prefill and length."""
    first, done, _ = simulate_batcher_busy(arrivals_s, prefill_s, n_out, decode_step_s, max_batch)
    return first, done


def simulate_batcher_busy(
    arrivals_s: np.ndarray, prefill_s: np.ndarray, n_out: np.ndarray, decode_step_s: float, max_batch: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`simulate_batcher` plus the seconds the chips spent in prefills and decode steps (the rest is
    idle): a statically scheduled chip draws its busy power for a whole step however full the batch is."""
    if decode_step_s <= 0:
        raise ValueError("decode_step_s: expected > 0 (a zero-time artifact has no queue to simulate)")
    n = int(arrivals_s.size)
    arr = arrivals_s.tolist()
    pre = prefill_s.tolist()
    length = n_out.astype(np.int64).tolist()
    first = [0.0] * n
    done = [0.0] * n
    step = decode_step_s
    t = 0.0
    k = 0  # decode steps taken so far (a sequence finishes at a step number)
    active: list[tuple[int, int]] = []  # heap of (finishing step, request)
    waiting: deque[int] = deque()
    i = 0
    busy_s = 0.0
    while i < n or waiting or active:
        while i < n and arr[i] <= t:
            waiting.append(i)
            i += 1
        if not active and not waiting:
            t = arr[i]  # idle: the next step starts when the next request arrives
            continue
        joined = 0
        busy = 0.0
        joiners: list[int] = []
        while waiting and len(active) + joined < max_batch:
            j = waiting.popleft()
            joiners.append(j)
            busy += pre[j]
            joined += 1
        if joiners:
            t += busy
            busy_s += busy
            for j in joiners:
                first[j] = t
                if length[j] <= 1:
                    done[j] = t
                else:
                    heapq.heappush(active, (k + length[j] - 1, j))
        if not active:
            continue
        # Steps until the next completion, or until the boundary at which a waiting arrival can join.
        ahead = active[0][0] - k
        if len(active) < max_batch and i < n:
            ahead = min(ahead, max(1, math.ceil((arr[i] - t) / step)))
        t += ahead * step
        busy_s += ahead * step
        k += ahead
        while active and active[0][0] == k:
            done[heapq.heappop(active)[1]] = t
    return np.asarray(first), np.asarray(done), busy_s


def full_batch_capacity_qps(prefill_s: np.ndarray, n_out: np.ndarray, decode_step_s: float, max_batch: int) -> float:
    """Steady-state throughput of one batcher kept full (the sim's analytic capacity over this mix).

    Each step emits ``max_batch`` tokens, so ``max_batch / E[s]`` sequences (``s = max(1, L - 1)``) finish
    and join per step, each adding its prefill: ``B / (E[s] * step + B * E[prefill])``.
    """
    steps = float(np.mean(np.maximum(1, n_out - 1)))
    denom = steps * decode_step_s + max_batch * float(np.mean(prefill_s))
    return math.inf if denom <= 0 else max_batch / denom
