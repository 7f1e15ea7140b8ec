"""Load shapes: how a run sends its queries. LoadGen's scenarios are one shape; the others run beside it.

A shape is a registry entry (``load_shapes``) selected by a pydantic config with a ``kind``, like backends
and scenarios. ``--load KIND[:VALUE[:VALUE]][:key=value,...]`` is parsed into that config: each config
names its positional fields (``positional``) and its short keys (field aliases), so
``concurrency:8:ramp=5``, ``rate:50:constant``, ``trace:FILE:speed=2`` and ``sessions:synthetic:turns=6``
all read the same way, and a wrong value is one line naming the field.

Every shape beside LoadGen is a :class:`LoadShape`: given a :class:`LoadContext` (a clock, a sender and
the run's samples) its ``drive`` coroutine decides when each query is due and sends it. Shapes see time
only through the clock, so a test runs them in virtual time (``tests/.../virtual_time``) with exact
expectations; the real clock is the run's own monotonic clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from common import PluginConfig, Registry, UsageError, first_error_line
from loadgen_harness._results import LoadInfo
from loadgen_harness._shard import ShardSpec


class LoadError(UsageError):
    """A bad --load value or load input (trace, session file): one line naming the field or file and line."""


@dataclass(slots=True)
class Query:
    """One request a shape sends: its serialised GenerateRequest (no request id yet) and when it was due."""

    request: bytes
    due_ns: int  # on the run's clock; latency counts from here
    sample_index: int = -1
    n_prompt: int = -1
    session: int = -1
    turn: int = -1
    tool_step: int = 0
    pin: int = -1  # a pinned replica's channel (sessions on a fleet); -1: the run's balanced channel


@dataclass(frozen=True, slots=True)
class Reply:
    """How a query ended: ``ok``, the output ids (a session's history grows by them), a tool call or not."""

    ok: bool
    output_ids: np.ndarray
    tool_call: bool = False


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_until(self, t_ns: int) -> Awaitable[None]: ...


class Sender(Protocol):
    """The run's client, seen from a shape (all calls on the loop thread)."""

    @property
    def stopping(self) -> bool: ...

    @property
    def in_flight(self) -> int: ...

    def send(self, query: Query) -> Awaitable[Reply]: ...


class RunClock:
    """The run's clock: ns since the client's t0 (queries.npz's clock); sleeps on the event loop."""

    def __init__(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns

    def now_ns(self) -> int:
        return time.monotonic_ns() - self.t0_ns

    async def sleep_until(self, t_ns: int) -> None:
        # uvloop's timers count whole milliseconds and may fire up to one early: sleep again until due, so a
        # query is never sent before its due time (that would shorten its measured latency).
        while (delay := t_ns - (time.monotonic_ns() - self.t0_ns)) > 0:
            await asyncio.sleep(delay / 1e9)


@dataclass(frozen=True)
class SampleSet:
    """The run's dataset as ready-to-send requests (for shapes that draw samples rather than read a file)."""

    requests: Sequence[bytes]
    prompt_tokens: Sequence[int]

    def __len__(self) -> int:
        return len(self.requests)


@dataclass
class LoadContext:
    """What a shape's ``drive`` gets. ``duration_s``/``max_requests``: when to stop sending (None: the shape's own end)."""

    clock: Clock
    sender: Sender
    samples: SampleSet
    duration_s: float | None
    max_requests: int | None
    max_new_tokens: int
    eos_token_id: int
    max_context_tokens: int
    pins: int = 1  # replica channels a session may be pinned to (1: none to choose from)
    max_in_flight: int = 32_768
    # What the shape reports back for results.json (sessions ended at the context limit, ...).
    counters: dict[str, int] = field(default_factory=dict)


class LoadShapeConfig(PluginConfig):
    """Base of every shape's config: ``positional`` names the fields ``--load kind:a:b`` fills in order."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    positional: ClassVar[tuple[str, ...]] = ()


class LoadShape:
    """A shape beside LoadGen. Subclasses set ``config_model`` and ``scenario`` and write ``drive``."""

    config_model: ClassVar[type[LoadShapeConfig]] = LoadShapeConfig
    scenario: ClassVar[str] = ""  # what results.json names the run's scenario ("Concurrency", ...)
    uses_dataset: ClassVar[bool] = True  # False: the shape makes its own prompts (trace, sessions)

    def __init__(self, config: LoadShapeConfig) -> None:
        self.config = config
        self.part = ShardSpec(index=0, count=1)  # the whole load unless ``shard`` narrowed it

    def shard(self, part: ShardSpec) -> None:
        """Send only shard ``part`` of this load (docs/sharding.md); each shape splits its own way."""
        raise LoadError(f"--shard: the {self.config.kind} load cannot be split into shards")

    def check(self) -> None:
        """Read and check the shape's inputs (a trace, a session file) before anything starts; raises LoadError."""

    def info(self, spec: str) -> LoadInfo:
        return LoadInfo(kind=self.config.kind, spec=spec)

    async def drive(self, ctx: LoadContext) -> None:
        raise NotImplementedError


load_shapes: Registry[LoadShape] = Registry("load shape")
for _kind, _target in (
    ("concurrency", "loadgen_harness._load_concurrency:ConcurrencyLoad"),
    ("rate", "loadgen_harness._load_rate:RateLoad"),
    ("trace", "loadgen_harness._load_trace:TraceLoad"),
    ("sessions", "loadgen_harness._load_sessions:SessionsLoad"),
):
    load_shapes.register_lazy(_kind, _target)


def parse_load(spec: str) -> LoadShapeConfig:
    """``--load`` text -> the shape's validated config (LoadError, one line, otherwise)."""
    kind, _, rest = spec.strip().partition(":")
    try:
        model = load_shapes.config_model(kind)
    except UsageError as exc:
        raise LoadError(f"--load: {exc}") from None
    raw: dict[str, Any] = {"kind": kind}
    positional = list(getattr(model, "positional", ()))
    for part in (p for p in rest.split(":") if p) if rest else ():
        if "=" in part:
            for item in (x for x in part.split(",") if x):
                key, eq, value = item.partition("=")
                if not eq or not key.strip():
                    raise LoadError(f"--load {kind}: expected key=value, got '{item}'")
                raw[key.strip()] = value.strip()
        elif positional:
            raw[positional.pop(0)] = part
        else:
            raise LoadError(f"--load {kind}: unexpected value '{part}' (keys are given as key=value)")
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        cause = exc.errors()[0].get("ctx", {}).get("error")
        if isinstance(cause, UsageError):  # a config's own reader said what was wrong: its line, unwrapped
            raise LoadError(f"--load {kind}: {cause}") from None
        raise LoadError(first_error_line(exc, f"--load {kind}")) from None
    assert isinstance(config, LoadShapeConfig)
    return config


def make_shape(config: LoadShapeConfig | BaseModel) -> LoadShape:
    shape = load_shapes.create(config, where="load")
    return shape


def load_kinds() -> list[str]:
    return load_shapes.names()
