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


class RateConfig(LoadShapeConfig):
    kind: str = "rate"
    positional = ("rate", "arrival")
    rate: float = Field(gt=0, le=1_000_000, description="requests per second")
    arrival: Literal["poisson", "constant"] = "poisson"
    requests: int | None = Field(default=None, ge=1, description="stop after this many requests")
    seed: int = Field(default=0, ge=0, description="the Poisson gaps' generator seed")


def arrival_rng(arrival: str, seed: int) -> np.random.Generator | None:
    """The seeded generator of Poisson gaps (None for constant arrivals)."""
    return np.random.default_rng(seed) if arrival == "poisson" else None


class RateLoad(LoadShape):
    config_model = RateConfig
    scenario = "Rate"

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
        rng = arrival_rng(cfg.arrival, cfg.seed)
        mean_gap_ns = 1e9 / cfg.rate
        samples = ctx.samples
        i = 0
        due = start
        while limit is None or i < limit:
            # Constant arrivals from the index (no drift from summed rounding); Poisson from summed gaps.
            if rng is None:
                due = start + round(i * mean_gap_ns)
            elif i:
                due += round(rng.exponential(mean_gap_ns))
            if end is not None and due >= end:
                return
            await ctx.clock.sleep_until(due)
            if ctx.sender.stopping:
                return
            s = i % len(samples)
            ctx.sender.send(Query(samples.requests[s], due, sample_index=s, n_prompt=samples.prompt_tokens[s]))
            i += 1
