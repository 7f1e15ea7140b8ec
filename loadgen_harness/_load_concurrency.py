"""``--load concurrency:N[:ramp=S,requests=K]``: a closed loop that keeps N requests in flight.

N workers each send a request, wait for its answer (success or failure), and send the next at once: the
next request is due the moment the previous one ended, so a late send is the client's dispatch lag,
never hidden in the latency. With a ramp-up, worker k starts at k/N of it. Samples are drawn from the
dataset in order, round-robin. Sending stops at the run's duration (or after K requests); what is in
flight then finishes. In flight never exceeds N: a worker holds at most one request.
"""

from __future__ import annotations

import asyncio
import itertools

from pydantic import Field

from loadgen_harness._load_shapes import LoadContext, LoadShape, LoadShapeConfig, Query
from loadgen_harness._results import LoadInfo
from loadgen_harness._shard import ShardSpec


class ConcurrencyConfig(LoadShapeConfig):
    kind: str = "concurrency"
    positional = ("concurrency",)
    concurrency: int = Field(ge=1, le=100_000, description="requests kept in flight")
    ramp_up_s: float = Field(default=0.0, ge=0, le=3600, alias="ramp", description="workers start over this long")
    requests: int | None = Field(default=None, ge=1, description="stop after this many requests")


class ConcurrencyLoad(LoadShape):
    config_model = ConcurrencyConfig
    scenario = "Concurrency"

    def shard(self, part: ShardSpec) -> None:
        """C/N workers (the remainder to the first shards): worker k here is worker k*N + I of the whole load."""
        cfg = self.config
        assert isinstance(cfg, ConcurrencyConfig)
        self.total_concurrency = cfg.concurrency
        requests = None if cfg.requests is None else part.share(cfg.requests, "requests=")
        update = {"concurrency": part.share(cfg.concurrency, "concurrency"), "requests": requests}
        self.config = cfg.model_copy(update=update)
        self.part = part

    total_concurrency: int | None = None

    def info(self, spec: str) -> LoadInfo:
        cfg = self.config
        assert isinstance(cfg, ConcurrencyConfig)
        return LoadInfo(
            kind="concurrency",
            spec=spec,
            concurrency=cfg.concurrency,
            ramp_up_s=cfg.ramp_up_s,
            max_requests=cfg.requests,
        )

    async def drive(self, ctx: LoadContext) -> None:
        cfg = self.config
        assert isinstance(cfg, ConcurrencyConfig)
        start = ctx.clock.now_ns()
        end = None if ctx.duration_s is None else start + int(ctx.duration_s * 1e9)
        limit = cfg.requests if cfg.requests is not None else ctx.max_requests
        counter = itertools.count()
        samples = ctx.samples
        ramp_ns = int(cfg.ramp_up_s * 1e9)

        part, whole = self.part, self.total_concurrency or cfg.concurrency

        async def worker(k: int) -> None:
            due = start + (k * part.count + part.index) * ramp_ns // whole  # its place in the whole load's ramp
            await ctx.clock.sleep_until(due)
            while not ctx.sender.stopping and (end is None or due < end):
                i = next(counter)
                if limit is not None and i >= limit:
                    return
                s = (i * part.count + part.index) % len(samples)  # the shards interleave the dataset
                query = Query(samples.requests[s], due, sample_index=s, n_prompt=samples.prompt_tokens[s])
                await ctx.sender.send(query)
                due = ctx.clock.now_ns()

        await asyncio.gather(*(worker(k) for k in range(cfg.concurrency)))
