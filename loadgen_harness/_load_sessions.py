"""``--load sessions:FILE|synthetic[:concurrency=C][,key=value...]``: multi-turn and agentic conversations.

Sessions come from a JSONL file or the seeded generator (``scenarios.iter_sessions`` /
``synthetic_sessions``; keys such as ``sessions=50,turns=4,think_time_s=1,agentic=true``), streamed. At
most C sessions run at once; a new one starts as soon as one ends. Within a session, turn t is due
``think_time_s`` after the previous answer, and its prompt is the whole history (the system prompt,
every earlier prompt and the answer the SUT actually gave) plus the turn's new user tokens, so a prefix
cache sees what a chat server sees. Agentic sessions offer the model a tool: an answer that is a tool call
is followed, ``tool_latency_s`` later, by a request carrying the history plus the tool's result (tool step
1, 2, ...), until the model answers in text or the turn's tool calls run out.

On a fleet each session is pinned to one replica (session k to replica k mod n), as a chat product keeps
a conversation where its cache is. A session whose next request would not fit the SUT's context ends
there (counted), as does one whose next turn falls after the run's duration; a failed request ends its
session (its later turns are never sent). Records carry session index, turn and tool step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from loadgen_harness._load_requests import request_bytes
from loadgen_harness._load_shapes import LoadContext, LoadError, LoadShape, LoadShapeConfig, Query
from loadgen_harness._load_trace import warm_token_tables
from loadgen_harness._results import LoadInfo
from loadgen_harness._shard import ShardSpec
from scenarios import (
    SessionSpec,
    SyntheticSessions,
    check_sessions,
    iter_sessions,
    parse_synthetic_sessions,
    synthetic_sessions,
    system_prompt_tokens,
    tool_result_tokens,
    turn_tokens,
)


class SessionsConfig(LoadShapeConfig):
    kind: str = "sessions"
    positional = ("source",)
    source: str = Field(min_length=1, description="a session file (JSONL) or 'synthetic'")
    concurrency: int = Field(default=8, ge=1, le=100_000, description="sessions running at once")
    synthetic: SyntheticSessions | None = None

    @model_validator(mode="before")
    @classmethod
    def _generator_keys(cls, raw: Any) -> Any:
        """Keys that are not the shape's own configure the generator (source 'synthetic' only)."""
        if not isinstance(raw, dict):
            return raw
        own = {"kind", "source", "concurrency", "synthetic"}
        extra = {k: v for k, v in raw.items() if k not in own}
        if raw.get("source") == "synthetic" and extra:
            text = ",".join(f"{k}={v}" for k, v in extra.items())  # the generator's own key=value reading
            return {**{k: v for k, v in raw.items() if k in own}, "synthetic": parse_synthetic_sessions(text)}
        return raw


class SessionsLoad(LoadShape):
    config_model = SessionsConfig
    scenario = "Sessions"
    uses_dataset = False

    def __init__(self, config: LoadShapeConfig) -> None:
        super().__init__(config)
        self.planned: int | None = None

    @property
    def cfg(self) -> SessionsConfig:
        assert isinstance(self.config, SessionsConfig)
        return self.config

    def shard(self, part: ShardSpec) -> None:
        """Sessions k with k mod N == I (numbered as in the whole load), C/N of them at once."""
        self.config = self.cfg.model_copy(update={"concurrency": part.share(self.cfg.concurrency, "concurrency=")})
        self.part = part

    def check(self) -> None:
        warm_token_tables()  # built once per process (tens of ms): not on the first turn's clock
        if self.cfg.source == "synthetic":
            self.planned = (self.cfg.synthetic or SyntheticSessions()).sessions
            return
        path = Path(self.cfg.source)
        if not path.is_file():
            raise LoadError(f"--load sessions: {path}: file not found (expected a session file or 'synthetic')")
        self.planned = check_sessions(path).n_sessions

    def sessions(self) -> Iterator[SessionSpec]:
        if self.cfg.source == "synthetic":
            return synthetic_sessions(self.cfg.synthetic or SyntheticSessions())
        return iter_sessions(Path(self.cfg.source))

    def info(self, spec: str) -> LoadInfo:
        return LoadInfo(
            kind="sessions",
            spec=spec,
            concurrency=self.cfg.concurrency,
            trace=None if self.cfg.source == "synthetic" else self.cfg.source,
            trace_format="synthetic" if self.cfg.source == "synthetic" else "sessions-jsonl",
            planned_requests=None if self.planned is None else self.part.count_of(self.planned),
        )

    async def drive(self, ctx: LoadContext) -> None:
        start = ctx.clock.now_ns()
        end = None if ctx.duration_s is None else start + int(ctx.duration_s * 1e9)
        active: set[asyncio.Task[None]] = set()
        started = 0
        try:
            part = self.part
            for index, spec in enumerate(self.sessions()):
                if index % part.count != part.index:
                    continue
                while len(active) >= self.cfg.concurrency:
                    await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
                if ctx.sender.stopping or (end is not None and ctx.clock.now_ns() >= end):
                    break
                task = asyncio.get_running_loop().create_task(_Session(ctx, spec, index, end).run())
                active.add(task)
                task.add_done_callback(active.discard)
                started += 1
            if active:
                await asyncio.gather(*active)
        finally:
            for task in active:
                task.cancel()
            ctx.counters["sessions"] = started


class _Session:
    """One conversation's turns, in order, each waiting for the previous answer."""

    def __init__(self, ctx: LoadContext, spec: SessionSpec, index: int, end: int | None) -> None:
        self.ctx = ctx
        self.spec = spec
        self.index = index
        self.end = end
        self.pin = index % ctx.pins if ctx.pins > 1 else -1
        self.history = system_prompt_tokens(spec.system_tokens, spec.seed) if spec.system_tokens else _EMPTY

    def _count(self, name: str) -> None:
        self.ctx.counters[name] = self.ctx.counters.get(name, 0) + 1

    async def run(self) -> None:
        ctx, spec = self.ctx, self.spec
        due = ctx.clock.now_ns()
        for t, turn in enumerate(spec.turns):
            due += int(turn.think_time_s * 1e9)
            if self.end is not None and due >= self.end:
                self._count("cut_at_end")
                return
            user = turn_tokens(spec.session_id, t, turn.input_tokens, spec.seed)
            ok = await self._exchange(np.concatenate((self.history, user)), turn.output_tokens, due, t, 0)
            calls = 0
            while ok is True and self.tool_call and calls < spec.max_tool_calls:
                calls += 1
                result = tool_result_tokens(spec.session_id, t, calls - 1, spec.tool_result_tokens, spec.seed)
                due = ctx.clock.now_ns() + int(spec.tool_latency_s * 1e9)
                ok = await self._exchange(np.concatenate((self.history, result)), turn.output_tokens, due, t, calls)
            if ok is not True:
                return
            due = ctx.clock.now_ns()  # the next turn's think time runs from this answer

    async def _exchange(self, prompt: np.ndarray, max_new: int, due: int, turn: int, step: int) -> bool | None:
        """Send one request of the session; True when answered (history extended), False on failure, None when cut."""
        ctx = self.ctx
        if prompt.size + max_new > ctx.max_context_tokens:
            self._count("cut_at_context")
            return None
        offer_tool = self.spec.agentic and step < self.spec.max_tool_calls
        body = request_bytes(prompt, max_new, ctx.eos_token_id, allow_tool_call=offer_tool)
        await ctx.clock.sleep_until(due)
        if ctx.sender.stopping:
            return None
        query = Query(body, due, n_prompt=int(prompt.size), session=self.index, turn=turn, tool_step=step, pin=self.pin)
        reply = await ctx.sender.send(query)
        if not reply.ok:
            return False
        self.tool_call = reply.tool_call
        self.history = np.concatenate((prompt, reply.output_ids.astype(np.int32, copy=False)))
        return True

    tool_call = False


_EMPTY = np.zeros(0, dtype=np.int32)
