"""The sim's configuration and artifact manifest: presets, ``SimConfig`` and how the two make a manifest.

A preset (or a manifest JSON file) gives the artifact; the config's fields override it field by field and
the result is validated as one manifest (``sim_manifest``), checksum included. The optional prefix cache
(``prefix_cache``) and the tool-call settings (``tool_calls``) are stated there, so a run records them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from common import first_error_line
from scenarios.reasoning_set import SPEC_PREFIX, ReasoningModel
from sut._artifact import (
    DEFAULT_BLOCK_TOKENS,
    ArtifactManifest,
    FaultFlags,
    PrefixCacheSettings,
    ReasoningInfo,
    TimingModel,
    ToolCallSettings,
)
from sut._backend import BackendConfig

SIM_VERSION = "0.1.0"
SIM_TARGET = "sim-lpu"
RECORDINGS_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "data" / "recordings"

_BASE = {
    "backend": "sim",
    "model": "lpuperf-embedded-sim",
    "max_context_tokens": 4096,
    "max_batch": 32,
    "toolchain_version": f"lpuperf-sim/{SIM_VERSION}",
    "target": SIM_TARGET,
    "chunk_size": 8,
    # A statically scheduled chip draws near its busy power for a whole step and its idle power between steps.
    "power": {"chips": 8, "busy_watts_per_chip": 300.0, "idle_watts_per_chip": 90.0},
}

# Artifact presets: the precision picks which recording the sim replays.
SIM_PRESETS: dict[str, dict[str, object]] = {
    "sim-fp32": {"precision": "fp32"},
    "sim-bf16": {"precision": "bf16"},
    "sim-int8": {
        "precision": "int8",
        # Narrower arithmetic: the same schedule at a lower busy power.
        "power": {"chips": 8, "busy_watts_per_chip": 240.0, "idle_watts_per_chip": 90.0},
    },
    "sim-instant": {
        "precision": "fp32",
        "max_batch": 4096,
        "timing": {"prefill_base_s": 0.0, "prefill_per_token_s": 0.0, "decode_step_s": 0.0},
    },
    "sim-ctx16k": {"precision": "fp32", "max_context_tokens": 131072, "enforced_context_tokens": 16384},
    # Reasoning models (MLPerf v6.1 deepseek-r1, gpt-oss-120b): long outputs need a long context.
    "sim-reasoning": {
        "precision": "fp32",
        "model": "lpuperf-reasoning-sim",
        "max_context_tokens": 131072,
        "max_batch": 64,
    },
    "sim-reasoning-int8": {
        "precision": "int8",
        "model": "lpuperf-reasoning-sim",
        "max_context_tokens": 131072,
        "max_batch": 64,
    },
}
# The artifacts that answer the packaged reasoning set, by precision.
REASONING_ARTIFACTS = {"fp32": "sim-reasoning", "int8": "sim-reasoning-int8"}
DEFAULT_REASONING_DATASET = "reasoning:deepseek-r1"
# The precisions the sim can replay: each is a preset sim-<precision> with its own recording.
SIM_PRECISIONS = tuple(str(v["precision"]) for name, v in SIM_PRESETS.items() if name == f"sim-{v['precision']}")


class SimConfig(BackendConfig):
    """Config of the ``sim`` backend; unset fields take the artifact preset's value."""

    kind: str = "sim"
    artifact: str = "sim-fp32"  # a preset name or a path to a manifest JSON file
    dataset: str = "embedded"
    precision: str | None = None
    max_batch: int | None = Field(default=None, gt=0)
    max_context_tokens: int | None = Field(default=None, gt=0)
    enforced_context_tokens: int | None = Field(default=None, gt=0)
    prefill_base_s: float | None = Field(default=None, ge=0)
    prefill_per_token_s: float | None = Field(default=None, ge=0)
    decode_step_s: float | None = Field(default=None, ge=0)
    chunk_size: int | None = Field(default=None, gt=0)
    # Reasoning artifacts: every reasoning shortened to this fraction of its length (quick runs); None:
    # the dataset spec's scale (``reasoning:<model>:<scale>``, default 1).
    reasoning_scale: float | None = Field(default=None, gt=0, le=1)
    # Prefix cache (sut/_prefix_cache.py): capacity in tokens (0: off) and block size (default 64); None: the
    # artifact's own (presets: off).
    prefix_cache_tokens: int | None = Field(default=None, ge=0)
    prefix_block_tokens: int | None = Field(default=None, gt=0)
    # Tool calls when a request allows one (sut/_tool_calls.py); None: the artifact's own (0.5, 24, 0).
    tool_call_rate: float | None = Field(default=None, ge=0, le=1)
    tool_call_tokens: int | None = Field(default=None, gt=0)
    tool_call_seed: int | None = Field(default=None, ge=0)
    faults: FaultFlags = Field(default_factory=FaultFlags)

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, v: str | None) -> str | None:
        # Any other name would replay the dataset's reference outputs under a made-up label.
        if v is not None and v not in SIM_PRECISIONS:
            raise ValueError(f"expected one of {', '.join(SIM_PRECISIONS)}, got '{v}'")
        return v

    @model_validator(mode="before")
    @classmethod
    def _precision_names_the_artifact(cls, raw: Any) -> Any:
        # The generic ``precision`` option without an artifact: precision bf16 is the sim-bf16 artifact, and
        # on the reasoning set precision int8 is sim-reasoning-int8 (fp32 or none: sim-reasoning).
        if not isinstance(raw, dict):
            return raw
        reasoning_set = str(raw.get("dataset") or "").startswith(SPEC_PREFIX)
        if raw.get("artifact") is None and reasoning_set:
            raw = {**raw, "artifact": REASONING_ARTIFACTS.get(str(raw.get("precision") or "fp32"), "sim-reasoning")}
        elif raw.get("artifact") is None and f"sim-{raw.get('precision')}" in SIM_PRESETS:
            raw = {**raw, "artifact": f"sim-{raw['precision']}"}
        if raw.get("dataset") is None and raw.get("artifact") in REASONING_ARTIFACTS.values():
            raw = {**raw, "dataset": DEFAULT_REASONING_DATASET}
        return raw


def sim_manifest(
    cfg: SimConfig, eos_token_id: int = 0, vocab_size: int = 0, reasoning: ReasoningInfo | None = None
) -> ArtifactManifest:
    """Build the artifact manifest for a config: preset (or manifest file) plus overrides."""
    if cfg.artifact in SIM_PRESETS:
        raw: dict[str, object] = {**_BASE, "artifact_id": cfg.artifact, **SIM_PRESETS[cfg.artifact]}
        raw.setdefault("timing", TimingModel().model_dump())
        raw["eos_token_id"] = eos_token_id
        raw["vocab_size"] = vocab_size
        manifest = ArtifactManifest.model_validate(raw)
    else:
        path = Path(cfg.artifact)
        if not path.is_file():
            raise ValueError(
                f"artifact '{cfg.artifact}': expected one of {', '.join(SIM_PRESETS)} or a manifest JSON file"
            )
        try:
            manifest = ArtifactManifest.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ValueError(first_error_line(exc, str(path))) from None
        # The sim replays the dataset, so the dataset's EOS is the artifact's EOS whatever the file says.
        manifest = manifest.model_copy(
            update={"checksum": "", "eos_token_id": eos_token_id, "vocab_size": manifest.vocab_size or vocab_size}
        )
        if manifest.timing is None:
            manifest = manifest.model_copy(update={"timing": TimingModel()})
    update: dict[str, object] = {}
    timing = manifest.timing or TimingModel()
    t_over = {
        k: getattr(cfg, k)
        for k in ("prefill_base_s", "prefill_per_token_s", "decode_step_s")
        if getattr(cfg, k) is not None
    }
    if t_over:
        update["timing"] = timing.model_copy(update=t_over)
    for k in ("precision", "max_batch", "max_context_tokens", "enforced_context_tokens", "chunk_size"):
        v = getattr(cfg, k)
        if v is not None:
            update[k] = v
    if cfg.faults.any():
        update["faults"] = cfg.faults
    if reasoning is not None:
        update["reasoning"] = reasoning
    update["prefix_cache"] = _prefix_cache(cfg, manifest.prefix_cache)
    tools = (manifest.tool_calls or ToolCallSettings()).model_dump()
    for key, field in (("rate", "tool_call_rate"), ("tokens", "tool_call_tokens"), ("seed", "tool_call_seed")):
        if getattr(cfg, field) is not None:
            tools[key] = getattr(cfg, field)
    update["tool_calls"] = tools
    # Re-validate so overrides are checked together (e.g. enforced <= advertised).
    try:
        merged = ArtifactManifest.model_validate({**manifest.model_dump(), **_dump(update)})
    except ValidationError as exc:
        raise ValueError(first_error_line(exc, f"artifact '{cfg.artifact}'")) from None
    return merged.with_checksum()


def _prefix_cache(cfg: SimConfig, current: PrefixCacheSettings | None) -> dict[str, int] | None:
    """The manifest's prefix cache: the artifact's, with the config's capacity and block size over it."""
    capacity = cfg.prefix_cache_tokens
    if capacity is None and current is not None:
        capacity = current.capacity_tokens
    if not capacity:
        if cfg.prefix_block_tokens is not None:
            raise ValueError("prefix_block_tokens: expected together with prefix_cache_tokens > 0 (the cache is off)")
        return None
    block = cfg.prefix_block_tokens or (current.block_tokens if current is not None else DEFAULT_BLOCK_TOKENS)
    if capacity < block:
        raise ValueError(
            f"prefix_cache_tokens: {capacity} tokens hold no block of {block} tokens (prefix_block_tokens); "
            "expected at least one block"
        )
    return {"capacity_tokens": capacity, "block_tokens": block}


def _dump(update: dict[str, object]) -> dict[str, object]:
    return {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in update.items()}


def is_zero_time(timing: TimingModel) -> bool:
    return timing.prefill_base_s == 0 and timing.prefill_per_token_s == 0 and timing.decode_step_s == 0


def reasoning_info(config: SimConfig, reasoning_set: tuple[ReasoningModel, float] | None) -> ReasoningInfo | None:
    """The manifest's reasoning claims; refuses a reasoning artifact or scale without the packaged reasoning set."""
    wants = config.artifact in REASONING_ARTIFACTS.values() or config.reasoning_scale is not None
    if reasoning_set is None:
        if wants:
            what = (
                "reasoning_scale: scales the packaged reasoning set"
                if config.reasoning_scale is not None
                else f"artifact '{config.artifact}': answers the packaged reasoning set"
            )
            raise ValueError(
                f"{what}; expected dataset reasoning:deepseek-r1 or reasoning:gpt-oss-120b, got '{config.dataset}'"
            )
        return None
    model, spec_scale = reasoning_set
    return ReasoningInfo(
        style=model.style,
        reasoning_scale=config.reasoning_scale if config.reasoning_scale is not None else spec_scale,
        benchmark=model.name,
        mean_output_tokens=model.mean_output_tokens,
        sd_output_tokens=model.sd_output_tokens,
        sd_source=model.sd_source,
    )
