"""``--load rate:R[:poisson|constant][:requests=K,seed=S]``: an open loop at R requests per second.

Arrivals are due on their own schedule whatever the SUT does (Poisson: exponential gaps from a seeded
generator, so a run is reproducible; constant: exactly 1/R apart), without LoadGen's rules (no minimum
query count, no early stopping, no latency-bound verdict of its own). Each request is sent when due and
not awaited; a request sent late counts its latency from the due time. In flight is bounded by the run's
max_in_flight: past it the run stops as overloaded. Sending stops at the run's duration or after K.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from loadgen_harness._load_shapes import LoadContext, LoadShape, LoadShapeConfig, Query
from loadgen_harness._results import LoadInfo
from loadgen_harness._shard import ShardSpec


class RateConfig(LoadShapeConfig):
    kind: str = "rate"
    positional = ("rate", "arrival")
    rate: float = Field(gt=0, le=1_000_000, description="requests per second")
    arrival: Literal["poisson", "constant"] = "poisson"
    requests: int | None = Field(default=None, ge=1, description="stop after this many requests")
    seed: int = Field(default=0, ge=0, description="the Poisson gaps' generator seed")


def arrival_rng(arrival: str, seed: int, part: ShardSpec | None = None) -> np.random.Generator | None:
    """The seeded generator of Poisson gaps (None for constant arrivals).

    Shard I of N draws from the I-th child of the seed's SeedSequence, so the shards' streams are
    independent (their superposition is Poisson) and each is reproducible; an unsharded run keeps the seed's own.
    """
    if arrival != "poisson":
        return None
    if part is None or part.count == 1:
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(part.count)[part.index])


class RateLoad(LoadShape):
    config_model = RateConfig
    scenario = "Rate"

    def shard(self, part: ShardSpec) -> None:
        """Rate R/N from an independent stream; constant arrivals interleave (shard I is I/R behind shard 0)."""
        cfg = self.config
        assert isinstance(cfg, RateConfig)
        self.total_rate = cfg.rate
        requests = None if cfg.requests is None else part.share(cfg.requests, "requests=")
        self.config = cfg.model_copy(update={"rate": cfg.rate / part.count, "requests": requests})
        self.part = part

    total_rate: float | None = None

    def info(self, spec: str) -> LoadInfo:
        cfg = self.config
        assert isinstance(cfg, RateConfig)
        return LoadInfo(kind="rate", spec=spec, rate_qps=cfg.rate, arrival=cfg.arrival, max_requests=cfg.requests)

    async def drive(self, ctx: LoadContext) -> None:
        cfg = self.config
        assert isinstance(cfg, RateConfig)
        start = ctx.clock.now_ns()
        end = None if ctx.duration_s is None else start + int(ctx.duration_s * 1e9)
        limit = cfg.requests if cfg.requests is not None else ctx.max_requests
        rng = arrival_rng(cfg.arrival, cfg.seed, self.part)
        mean_gap_ns = 1e9 / cfg.rate
        if rng is None and self.total_rate is not None:
            start += round(self.part.index * 1e9 / self.total_rate)
        samples = ctx.samples
        i = 0
        due = start
        while limit is None or i < limit:
            # Constant arrivals from the index (no drift from summed rounding); Poisson from summed gaps.
            if rng is None:
                due = start + round(i * mean_gap_ns)
            elif i or self.part.count > 1:  # a shard's stream has no arrival pinned at 0: stationary Poisson
                due += round(rng.exponential(mean_gap_ns))
            if end is not None and due >= end:
                return
            await ctx.clock.sleep_until(due)
            if ctx.sender.stopping:
                return
            s = (i * self.part.count + self.part.index) % len(samples)  # the shards interleave the dataset
            ctx.sender.send(Query(samples.requests[s], due, sample_index=s, n_prompt=samples.prompt_tokens[s]))
            i += 1
