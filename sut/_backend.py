"""The backend contract every SUT backend implements (the registry is in ``sut._plugins``).

The gRPC server owns transport concerns (status codes, chunking, timestamps, drain); a backend
only turns a :class:`GenerateRequest` into a stream of token lists.

Reasoning models. A backend says how many leading tokens of its output are reasoning by writing
``request.output_reasoning_tokens`` (a count over the whole output, never a per-token flag) before it
hands over the tokens the count covers: the sim sets it once per request (it knows the whole answer),
a relay raises it as its stream parser finds reasoning. The server splits every message it sends at
that count (``GenerateChunk.reasoning_tokens``), and ``GenerationEnd.n_reasoning_tokens`` may state
the authoritative total. A backend that never writes it (0) produces answer tokens only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from common import PluginConfig
from sut._artifact import ArtifactManifest

if TYPE_CHECKING:
    import numpy as np


@dataclass(slots=True)
class GenerateRequest:
    request_id: str
    input_ids: np.ndarray  # int32, 1-D
    max_new_tokens: int
    min_new_tokens: int = 0
    eos_token_id: int = -1  # -1: the artifact's own EOS
    prompt_text: str = ""
    greedy: bool = True
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    arrival_ns: int = 0  # SUT clock (time.time_ns()) when the server accepted the request
    # Written by the backend, read by the server and the HTTP front: how many leading tokens of this
    # request's output are reasoning (reasoning always precedes the answer). Set it before handing over
    # the tokens it covers; it may run ahead of them (the whole reasoning length at once). 0: no reasoning.
    output_reasoning_tokens: int = 0
    # The client offers the model a tool (agentic sessions): the backend may answer with a tool call.
    allow_tool_call: bool = False
    # Written by the backend before it hands over the answer's first tokens: the answer is a tool call
    # (the HTTP front renders it as one; its GenerationEnd says finish_reason "tool_call").
    output_tool_call: bool = False


@dataclass(slots=True)
class GenerationEnd:
    """Optional last item a backend yields to state its authoritative answer.

    ``output_ids`` replaces the concatenated stream as the answer and ``n_tokens`` is the
    backend's own token count (e.g. an upstream server's usage figure), ``n_reasoning_tokens``
    its count of reasoning tokens among them.
    """

    n_tokens: int | None = None
    output_ids: Sequence[int] | None = None
    # The backend's own count of reasoning tokens in the whole output (e.g. an upstream's usage figure);
    # None: the server takes ``request.output_reasoning_tokens``, capped at the tokens sent.
    n_reasoning_tokens: int | None = None
    finish_reason: str = ""  # "eos" | "length" | "tool_call" | ""
    info: dict[str, str] = field(default_factory=dict)
    # Leading prompt tokens served from a prefix cache (their prefill skipped); None: the backend has no
    # prefix cache, or its upstream did not say.
    cached_prompt_tokens: int | None = None


class BackendError(Exception):
    """Base of errors a backend raises; the server maps each to a gRPC status."""


class InvalidRequestError(BackendError):
    """Malformed request -> INVALID_ARGUMENT."""


class ContextOverflowError(BackendError):
    """Prompt + max_new_tokens over the context the artifact enforces -> RESOURCE_EXHAUSTED."""

    def __init__(
        self, prompt_tokens: int, max_new_tokens: int, limit: int, names: tuple[str, str] = ("prompt", "max_new_tokens")
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.limit = limit
        super().__init__(
            f"{names[0]} {prompt_tokens} + {names[1]} {max_new_tokens} = "
            f"{prompt_tokens + max_new_tokens} tokens exceeds the context limit of {limit}"
        )


class UpstreamError(BackendError):
    """An upstream server (HTTP relay) failed; ``status`` is its HTTP status or 'timeout'."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        super().__init__(f"upstream {status}: {message}")


class OverloadedError(BackendError):
    """The backend refuses work it cannot take (e.g. an enforced cap) -> UNAVAILABLE."""


@runtime_checkable
class Backend(Protocol):
    config_model: ClassVar[type[BaseModel]]

    @property
    def manifest(self) -> ArtifactManifest: ...

    async def start(self) -> None:
        """Called once on the server's event loop before the first request."""

    async def stop(self) -> None:
        """Called once after drain; release threads, sessions, models."""

    def generate(self, request: GenerateRequest) -> AsyncIterator[Sequence[int] | GenerationEnd]:
        """Yield token lists as they are produced, optionally ending with a GenerationEnd."""
        ...

    def queue_depth(self) -> int:
        """Requests waiting for a batch slot (0 when the backend has no queue)."""
        ...

    def active_batch(self) -> int:
        """Sequences currently decoding."""
        ...


@runtime_checkable
class AnswersAtOnce(Protocol):
    """An optional capability: a backend that can hold a request's whole answer the moment it arrives.

    The instant sim (a zero-time schedule) or an answer cache return ``(tokens, end)`` here and the
    server sends them without iterating ``generate``: one stream costs no async generator, which is a
    visible part of the server's CPU per query when the backend itself costs nothing. ``None`` means
    "stream this one with ``generate``". Errors are raised exactly as ``generate`` would raise them.
    """

    def immediate_answer(self, request: GenerateRequest) -> tuple[list[int], GenerationEnd] | None: ...


@runtime_checkable
class ReportsPrefixCache(Protocol):
    """An optional capability: a backend with a prefix cache whose running totals the SUT's metrics read at
    scrape time (nothing per request). ``None``: the cache is off."""

    def prefix_cache_stats(self) -> PrefixCacheStats | None: ...


@runtime_checkable
class ReportsBusyTime(Protocol):
    """An optional capability: a backend that knows how long its chips have been busy (prefill and decode
    steps), so the SUT's power gauge and energy counter follow its artifact's power model. Read at scrape
    time; the backend only adds each step's length once per step."""

    def busy_seconds(self) -> float: ...


@dataclass(slots=True)
class PrefixCacheStats:
    """Running totals of a prefix cache since the backend started."""

    capacity_tokens: int
    block_tokens: int
    used_tokens: int  # whole blocks held, in tokens
    hit_tokens: int  # prompt tokens served from the cache (prefill skipped)
    miss_tokens: int  # prompt tokens prefilled
    lookups_hit: int  # requests with at least one cached block
    lookups_miss: int  # requests with none
    inserted_blocks: int
    evicted_blocks: int


@runtime_checkable
class RendersChat(Protocol):
    """An optional capability: a backend with its model's own chat template (the transformers backend).

    The HTTP front's chat endpoint asks it for the token ids of the whole conversation (``role`` and
    ``content`` per message), ready for generation; ``None`` means "no template here", and the front
    uses its plain rendering (docs/protocol.md). May be called on a worker thread. Raises
    InvalidRequestError for a conversation the template refuses.
    """

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int] | None: ...


@dataclass(slots=True)
class ScoreRequest:
    """Score a continuation after a context (eval frameworks' loglikelihood tasks); nothing is generated."""

    request_id: str
    context_ids: np.ndarray  # int32, 1-D, at least one token
    continuation_ids: np.ndarray  # int32, 1-D, at least one token


@dataclass(slots=True)
class TokenScores:
    """Per continuation token: its natural-log probability after everything before it, and whether it is the
    model's greedy (argmax) choice there."""

    logprobs: list[float]
    greedy: list[bool]


@runtime_checkable
class ScoresContinuations(Protocol):
    """An optional capability: a backend that returns the log-probabilities of given tokens (the ``Score`` RPC).

    A backend without it answers ``Score`` with UNIMPLEMENTED. Scoring runs beside generation (never inside
    a LoadGen query's stream), so it adds nothing to the per-token path. Raises InvalidRequestError or
    ContextOverflowError as ``generate`` would.
    """

    async def score(self, request: ScoreRequest) -> TokenScores: ...


class BackendConfig(PluginConfig):
    """Base config; each backend subclasses it with its own fields.

    Callers pass generic options (``artifact``, ``precision``, ``dataset``, ...) and each backend's
    model maps them onto its own fields (validators, aliases) or refuses them: unknown fields are
    errors, so a typo or an option the backend does not have never passes silently.
    """

    model_config = ConfigDict(extra="forbid")

    kind: str = "sim"
