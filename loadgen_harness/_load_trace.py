"""``--load trace:FILE[:speed=X,max_rate=R,format=F,block=B,seed=S]``: replay a timestamped trace.

The trace (Mooncake-style JSONL with hash ids, Azure's or BurstGPT's CSV: ``scenarios.iter_trace``) is
read one line at a time while it plays, so a trace of any length replays in constant memory; it is
checked whole before the SUT starts (a bad line names file and line, exit 2). Each request is due at its
scaled timestamp after the replay's start, exactly (integer ns), and is sent when due without waiting
for earlier answers; its prompt is built before the wait, so the send itself is cheap. A request asks for
exactly the output length the trace recorded (min = max new tokens), as trace replays do; a prompt that
would not fit the SUT's context with its output is cut at the end (its shared prefix kept) and counted.
The run's --duration caps the replay; in flight is bounded by max_in_flight, as for ``rate``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from loadgen_harness._load_requests import request_bytes, warm_token_tables
from loadgen_harness._load_shapes import LoadContext, LoadShape, LoadShapeConfig, Query
from loadgen_harness._results import LoadInfo
from loadgen_harness._shard import ShardSpec
from scenarios import TraceRequest, TraceSpec, TraceSummary, check_trace, iter_trace


class TraceConfig(LoadShapeConfig):
    kind: str = "trace"
    positional = ("path",)
    path: Path
    format: Literal["auto", "mooncake", "azure", "burstgpt"] = "auto"
    speed: float = Field(default=1.0, gt=0, description="2.0 replays twice as fast")
    max_rate: float | None = Field(default=None, gt=0, description="requests/s cap")
    block_tokens: int = Field(default=512, ge=1, alias="block", description="tokens per Mooncake hash block")
    seed: int = Field(default=0, ge=0)
    requests: int | None = Field(default=None, ge=1, description="stop after this many requests")


class TraceLoad(LoadShape):
    config_model = TraceConfig
    scenario = "Trace"
    uses_dataset = False

    def __init__(self, config: LoadShapeConfig) -> None:
        super().__init__(config)
        self.summary: TraceSummary | None = None
        self.duration_s: float | None = None

    def spec(self, duration_s: float | None = None) -> TraceSpec:
        cfg = self.config
        assert isinstance(cfg, TraceConfig)
        return TraceSpec(
            path=cfg.path,
            format=cfg.format,
            speed=cfg.speed,
            duration_s=duration_s,
            max_rate=cfg.max_rate,
            block_tokens=cfg.block_tokens,
            seed=cfg.seed,
        )

    def shard(self, part: ShardSpec) -> None:
        """The trace's requests k with k mod N == I, at their own timestamps: the shards together replay it whole."""
        cfg = self.config
        assert isinstance(cfg, TraceConfig)
        if cfg.requests is not None:
            self.config = cfg.model_copy(update={"requests": part.share(cfg.requests, "requests=")})
        self.part = part

    def check(self) -> None:
        self.summary = check_trace(self.spec())
        warm_token_tables()  # built once per process (tens of ms): not on the first request's clock

    def info(self, spec: str) -> LoadInfo:
        cfg = self.config
        assert isinstance(cfg, TraceConfig)
        summary = self.summary
        return LoadInfo(
            kind="trace",
            spec=spec,
            trace=str(cfg.path),
            trace_format=summary.format if summary is not None else cfg.format,
            speed=cfg.speed,
            max_requests=cfg.requests,
            rate_qps=cfg.max_rate,
            planned_requests=self.part.count_of(summary.n_requests) if summary is not None else None,
        )

    async def drive(self, ctx: LoadContext) -> None:
        cfg = self.config
        assert isinstance(cfg, TraceConfig)
        limit = cfg.requests if cfg.requests is not None else ctx.max_requests
        part = self.part
        requests: Iterator[TraceRequest] = iter_trace(self.spec(ctx.duration_s))
        if part.count > 1:
            requests = itertools.islice(requests, part.index, None, part.count)
        first = next(requests, None)  # opening the file and making the first prompt is not the replay's time
        if first is None:
            return
        start = ctx.clock.now_ns()
        for sent, req in enumerate(itertools.chain((first,), requests)):
            if ctx.sender.stopping or (limit is not None and sent >= limit):
                return
            ids = req.input_ids
            room = ctx.max_context_tokens - req.output_tokens
            if ids.size > room > 0:
                ids = ids[:room]
                ctx.counters["clipped_to_context"] = ctx.counters.get("clipped_to_context", 0) + 1
            body = request_bytes(ids, req.output_tokens, ctx.eos_token_id, fixed_length=True)
            due = start + req.due_ns
            await ctx.clock.sleep_until(due)
            if ctx.sender.stopping:
                return
            ctx.sender.send(Query(body, due, sample_index=req.line, n_prompt=int(ids.size)))
