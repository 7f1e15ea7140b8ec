"""Seeded synthetic datasets: fast, dependency-free, with realistic length spreads.

Used by tests, harness benchmarks and the context probe. The token space is a made-up
word-level vocabulary, so the dataset decodes to readable pseudo-text without any tokenizer.
"""

from __future__ import annotations

import numpy as np

from scenarios.dataset import ByteDecoder, Dataset

SYNTH_EOS = 1
_FIRST_WORD_ID = 4
_CATEGORIES = ("qa", "summarization", "arithmetic")
_SYLLABLES = ("ka", "lo", "mi", "nu", "ra", "te", "so", "vi", "ze", "pa", "do", "ge", "hu", "qi", "ly", "fo")


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        n = int(rng.integers(1, 4))
        w = "".join(_SYLLABLES[int(i)] for i in rng.integers(0, len(_SYLLABLES), n))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def _lengths(rng: np.random.Generator, n: int, lo: int, hi: int, median: float) -> np.ndarray:
    # Log-normal spread clipped to [lo, hi]: most requests are short, a tail is long, as in real traffic.
    raw = rng.lognormal(mean=np.log(median), sigma=0.6, size=n)
    return np.clip(np.rint(raw), lo, hi).astype(np.int64)


def synthetic_dataset(
    n: int = 256,
    seed: int = 0,
    input_range: tuple[int, int] = (50, 1000),
    output_range: tuple[int, int] = (20, 300),
    output_tokens: int | None = None,
    vocab_size: int = 2048,
    name: str = "synthetic",
) -> Dataset:
    """Build ``n`` samples; ``output_tokens`` fixes every reference output length (EOS included)."""
    if n <= 0:
        raise ValueError(f"n: expected a positive sample count, got {n}")
    rng = np.random.default_rng(seed)
    words = _vocabulary(rng, vocab_size)
    pieces = {SYNTH_EOS: b""} | {_FIRST_WORD_ID + i: (" " + w).encode() for i, w in enumerate(words)}
    decoder = ByteDecoder(pieces)
    in_lens = _lengths(rng, n, *input_range, median=min(max(300.0, input_range[0]), input_range[1]))
    if output_tokens is not None:
        out_lens = np.full(n, output_tokens, dtype=np.int64)
    else:
        out_lens = _lengths(rng, n, *output_range, median=min(max(100.0, output_range[0]), output_range[1]))
    cats, prompts, targets, answers, inputs, refs = [], [], [], [], [], []
    for i in range(n):
        cat = _CATEGORIES[i % len(_CATEGORIES)]
        inp = rng.integers(_FIRST_WORD_ID, _FIRST_WORD_ID + vocab_size, int(in_lens[i])).astype(np.int32)
        body = rng.integers(_FIRST_WORD_ID, _FIRST_WORD_ID + vocab_size, int(out_lens[i]) - 1).astype(np.int32)
        ref = np.append(body, np.int32(SYNTH_EOS)).astype(np.int32)
        # The ground truth is the reference with ~10% of words swapped, so ROUGE is high but not 100.
        tgt_ids = body.copy()
        swap = rng.random(tgt_ids.size) < 0.1
        tgt_ids[swap] = rng.integers(_FIRST_WORD_ID, _FIRST_WORD_ID + vocab_size, int(swap.sum()))
        answer = str(int(rng.integers(0, 10_000))) if cat == "arithmetic" else None
        cats.append(cat)
        prompts.append(decoder.decode(inp).strip())
        targets.append(decoder.decode(tgt_ids).strip() + (f" {answer}" if answer else ""))
        answers.append(answer)
        inputs.append(inp)
        refs.append(ref)
    return Dataset(
        name=name,
        eos_token_id=SYNTH_EOS,
        categories=cats,
        prompts=prompts,
        targets=targets,
        answers=answers,
        input_ids=inputs,
        reference_ids=refs,
        tokenizer="synthetic word-level",
        decoder=decoder,
        source=f"synthetic:n={n},seed={seed}",
    )
