"""The shared-prefix workload: K system prompts x M users, what a prefix cache is for.

``shared-prefix[:systems=K,users=M,system_tokens=S,user_tokens=U,output_tokens=O,seed=N]`` is a dataset
of ``K * M`` samples; sample ``i`` is system prompt ``i % K`` (``S`` tokens) followed by ``U`` tokens of
its own. So every sample shares its first ``S`` tokens exactly with ``M - 1`` others, and a cache that
keeps prefixes skips that much prefill on all but the first of them. System prompt 0 is the system
prompt of a synthetic session set with the same seed (:func:`scenarios._tokens.system_prompt_tokens`).
References are made as :func:`scenarios.synthetic.synthetic_dataset` makes them with a fixed output
length: ``O - 1`` words and EOS, and a ground truth with about a tenth of the words changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenarios._tokens import DOMAIN_USER, VOCAB_TOKENS, stream_key, stream_tokens, system_tokens
from scenarios.dataset import ByteDecoder, Dataset, DatasetError
from scenarios.synthetic import _FIRST_WORD_ID, SYNTH_EOS, _vocabulary

PREFIX = "shared-prefix"
MAX_SAMPLES = 1_000_000
MAX_PROMPT_TOKENS = 1 << 20


@dataclass(frozen=True, slots=True)
class SharedPrefix:
    """The workload's shape; defaults are the dataset spec's."""

    systems: int = 4
    users: int = 32
    system_tokens: int = 512
    user_tokens: int = 64
    output_tokens: int = 128
    seed: int = 0

    def spec(self) -> str:
        return (
            f"{PREFIX}:systems={self.systems},users={self.users},system_tokens={self.system_tokens},"
            f"user_tokens={self.user_tokens},output_tokens={self.output_tokens},seed={self.seed}"
        )


# key -> (smallest, largest) value
_LIMITS = {
    "systems": (1, MAX_SAMPLES),
    "users": (1, MAX_SAMPLES),
    "system_tokens": (1, MAX_PROMPT_TOKENS),
    "user_tokens": (1, MAX_PROMPT_TOKENS),
    "output_tokens": (1, MAX_PROMPT_TOKENS),
    "seed": (0, (1 << 63) - 1),
}


def is_shared_prefix(spec: str) -> bool:
    return spec == PREFIX or spec.startswith(PREFIX + ":")


def parse_shared_prefix(spec: str) -> SharedPrefix:
    """``shared-prefix[:key=value,...]`` -> its shape; a bad key or value is one :class:`DatasetError` line."""
    _, _, body = spec.partition(":")
    values: dict[str, int] = {}
    for item in (part.strip() for part in body.split(",")) if body else ():
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or key not in _LIMITS:
            raise DatasetError(
                f"dataset '{spec}': key {key or item!r}: expected one of {', '.join(_LIMITS)} as key=value, got {item!r}"
            )
        if key in values:
            raise DatasetError(f"dataset '{spec}': key '{key}': expected once, got it twice")
        lo, hi = _LIMITS[key]
        t = text.strip()
        if not (t.isascii() and t.isdigit()) or not lo <= int(t) <= hi:
            raise DatasetError(f"dataset '{spec}': key '{key}': expected an integer {lo}..{hi}, got {text!r}")
        values[key] = int(t)
    shape = SharedPrefix(**values)
    if shape.systems * shape.users > MAX_SAMPLES:
        raise DatasetError(
            f"dataset '{spec}': key 'users': expected systems x users <= {MAX_SAMPLES}, "
            f"got {shape.systems} x {shape.users}"
        )
    if shape.system_tokens + shape.user_tokens > MAX_PROMPT_TOKENS:
        raise DatasetError(
            f"dataset '{spec}': key 'user_tokens': expected system_tokens + user_tokens <= {MAX_PROMPT_TOKENS}, "
            f"got {shape.system_tokens + shape.user_tokens}"
        )
    return shape


def user_tokens(user: int, n: int, seed: int = 0) -> np.ndarray:
    """User ``user``'s own tokens (after its system prompt)."""
    return stream_tokens(stream_key(seed, DOMAIN_USER, user), n)


def shared_prefix_dataset(shape: SharedPrefix) -> Dataset:
    """The ``systems * users`` samples of ``shape``, in order (sample ``i`` uses system ``i % systems``)."""
    rng = np.random.default_rng(shape.seed)
    words = _vocabulary(rng, VOCAB_TOKENS)
    pieces = {SYNTH_EOS: b""} | {_FIRST_WORD_ID + i: (" " + w).encode() for i, w in enumerate(words)}
    decoder = ByteDecoder(pieces)
    prompts_of_systems = [system_tokens(k, shape.system_tokens, shape.seed) for k in range(shape.systems)]
    n = shape.systems * shape.users
    prompts, targets, inputs, refs = [], [], [], []
    for i in range(n):
        inp = np.concatenate([prompts_of_systems[i % shape.systems], user_tokens(i, shape.user_tokens, shape.seed)])
        body = rng.integers(_FIRST_WORD_ID, _FIRST_WORD_ID + VOCAB_TOKENS, shape.output_tokens - 1).astype(np.int32)
        tgt_ids = body.copy()
        swap = rng.random(tgt_ids.size) < 0.1
        tgt_ids[swap] = rng.integers(_FIRST_WORD_ID, _FIRST_WORD_ID + VOCAB_TOKENS, int(swap.sum()))
        prompts.append(decoder.decode(inp).strip())
        targets.append(decoder.decode(tgt_ids).strip())
        inputs.append(inp)
        refs.append(np.append(body, np.int32(SYNTH_EOS)).astype(np.int32))
    return Dataset(
        name=PREFIX,
        eos_token_id=SYNTH_EOS,
        categories=["qa"] * n,
        prompts=prompts,
        targets=targets,
        answers=[None] * n,
        input_ids=inputs,
        reference_ids=refs,
        tokenizer="synthetic word-level",
        decoder=decoder,
        source=shape.spec(),
    )
