"""Artifact manifest: what a compiled model artifact claims about itself.

``GetArtifact`` returns it, results embed it, and the context probe checks the SUT against
``max_context_tokens``. Fault flags exist so compliance checks can be proven to fail.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator


class TimingModel(BaseModel):
    """Deterministic service-time model of a statically scheduled accelerator.

    prefill(n) = prefill_base_s + n * prefill_per_token_s; every decode step lasts
    decode_step_s and emits one token for each active sequence (up to max_batch).
    """

    model_config = ConfigDict(extra="forbid")

    prefill_base_s: float = Field(default=0.004, ge=0)
    prefill_per_token_s: float = Field(default=0.00002, ge=0)
    decode_step_s: float = Field(default=0.010, ge=0)

    def prefill_s(self, n_prompt_tokens: int) -> float:
        return self.prefill_base_s + n_prompt_tokens * self.prefill_per_token_s


class PowerModel(BaseModel):
    """What the artifact's chips draw (a statically scheduled chip's power follows its schedule).

    A chip draws ``busy_watts_per_chip`` during a prefill or decode step and ``idle_watts_per_chip``
    between steps; ``chips`` chips serve one replica. Average power over a window is
    chips * (idle + busy_fraction * (busy - idle)).
    """

    model_config = ConfigDict(extra="forbid")

    chips: int = Field(default=1, gt=0)
    busy_watts_per_chip: float = Field(gt=0)
    idle_watts_per_chip: float = Field(ge=0)

    @model_validator(mode="after")
    def _busy_at_least_idle(self) -> PowerModel:
        if self.busy_watts_per_chip < self.idle_watts_per_chip:
            raise ValueError("busy_watts_per_chip must be at least idle_watts_per_chip")
        return self

    def replica_watts(self, busy_fraction: float) -> float:
        """Average watts of one replica whose chips were busy ``busy_fraction`` (0..1) of the time."""
        share = min(max(busy_fraction, 0.0), 1.0)
        per_chip = self.idle_watts_per_chip + share * (self.busy_watts_per_chip - self.idle_watts_per_chip)
        return self.chips * per_chip


class FaultFlags(BaseModel):
    """Test-only faults a SUT can be told to plant. All off in a clean artifact."""

    model_config = ConfigDict(extra="forbid")

    duplicate_trailing_eos: bool = False  # output ends with EOS, EOS
    mid_sequence_eos: bool = False  # an EOS in the middle of the output
    wrong_first_token: bool = False  # streamed first token differs from output[0]
    n_tokens_off_by_one: bool = False  # reported n_tokens = len(output) + 1
    batch_first_token: bool = False  # first token coalesced with later tokens
    # A batch-dependent numerical fault: a request that arrives while others are in flight (a batch
    # larger than one) gets one answer token changed, as a kernel whose reduction order follows the batch.
    batch_dependent_output: bool = False
    # Scoring (the Score RPC) ranks tokens upside down: the greedy token gets the lowest log-probability.
    inverted_logprobs: bool = False

    def any(self) -> bool:
        return any(self.model_dump().values())


class ReasoningInfo(BaseModel):
    """What a reasoning artifact claims about its outputs (the reasoning sim's; None for other artifacts).

    ``reasoning_scale`` below 1 means a quick run's shortened reasoning: output lengths are not the
    benchmark's, and a run on it says so.
    """

    model_config = ConfigDict(extra="forbid")

    style: str = Field(min_length=1)  # "think" (``...</think>`` then the answer) or "harmony" (analysis/final)
    reasoning_scale: float = Field(default=1.0, gt=0, le=1)
    benchmark: str = ""  # whose length distribution the outputs are drawn from (deepseek-r1, gpt-oss-120b)
    mean_output_tokens: float = Field(default=0.0, ge=0)  # of the unscaled distribution
    sd_output_tokens: float = Field(default=0.0, ge=0)
    sd_source: str = ""


DEFAULT_BLOCK_TOKENS = 64


class PrefixCacheSettings(BaseModel):
    """A prefix cache (the sim's, as vLLM's automatic prefix caching): prompts are cut into blocks of
    ``block_tokens``; a block already cached skips its prefill. ``capacity_tokens`` bounds what is held
    (whole blocks, least recently used evicted first)."""

    model_config = ConfigDict(extra="forbid")

    capacity_tokens: int = Field(gt=0)
    block_tokens: int = Field(default=DEFAULT_BLOCK_TOKENS, gt=0)

    @model_validator(mode="after")
    def _holds_a_block(self) -> PrefixCacheSettings:
        if self.capacity_tokens < self.block_tokens:
            raise ValueError(
                f"prefix cache of {self.capacity_tokens} tokens holds no block of {self.block_tokens} tokens; "
                "expected capacity_tokens >= block_tokens"
            )
        return self

    @property
    def capacity_blocks(self) -> int:
        return self.capacity_tokens // self.block_tokens


class ToolCallSettings(BaseModel):
    """How an artifact answers a request that offers a tool (``allow_tool_call``): for a ``rate`` share of
    prompts (chosen by a hash of the prompt, the request's seed and ``seed``) a tool call of ``tokens``
    tokens, ending with the tool-call finish reason. Without ``allow_tool_call`` it never calls a tool."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(default=0.5, ge=0, le=1)
    tokens: int = Field(default=24, gt=0)
    seed: int = Field(default=0, ge=0)


class ArtifactManifest(BaseModel):
    """A compiled artifact's identity and claims."""

    model_config = ConfigDict(extra="forbid")

    artifact_id: str = Field(min_length=1)
    backend: str = Field(min_length=1)
    model: str
    precision: str
    max_context_tokens: int = Field(gt=0)
    # What the artifact really enforces. None means "the same as advertised"; a smaller value
    # reproduces the "advertised 131K, capped at 16K" incident.
    enforced_context_tokens: int | None = Field(default=None, gt=0)
    max_batch: int = Field(default=1, gt=0)
    timing: TimingModel | None = None
    toolchain_version: str = ""
    target: str = ""
    checksum: str = ""
    # Which build of the artifact this is (a CI build number, a commit) and the compiler/build settings
    # that made it; the run store tracks builds over time by them (``lpuperf history``).
    build_id: str = ""
    build: dict[str, str] = Field(default_factory=dict)
    eos_token_id: int = 0
    vocab_size: int = Field(default=0, ge=0)
    chunk_size: int = Field(default=8, gt=0)
    faults: FaultFlags = Field(default_factory=FaultFlags)
    reasoning: ReasoningInfo | None = None
    # The sim's prefix cache (None: no prefix cache) and its tool calls (None: states nothing about them).
    prefix_cache: PrefixCacheSettings | None = None
    tool_calls: ToolCallSettings | None = None
    # The chips' power model (None: the artifact states no power; energy then needs a measured source).
    power: PowerModel | None = None
    extra: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _context_claims(self) -> ArtifactManifest:
        if self.enforced_context_tokens is not None and self.enforced_context_tokens > self.max_context_tokens:
            raise ValueError(
                f"enforced_context_tokens ({self.enforced_context_tokens}) exceeds "
                f"max_context_tokens ({self.max_context_tokens})"
            )
        return self

    @property
    def effective_context_tokens(self) -> int:
        return self.enforced_context_tokens or self.max_context_tokens

    def with_checksum(self) -> ArtifactManifest:
        """Return a copy whose checksum is the sha256 of everything else, when none was set."""
        if self.checksum:
            return self
        body = self.model_dump(exclude={"checksum"})
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return self.model_copy(update={"checksum": f"sha256:{digest}"})
