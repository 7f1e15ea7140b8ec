"""The packaged reasoning reference set: the bank's problems rendered as a reasoning model answers them.

``resolve_dataset("reasoning:deepseek-r1")`` and ``resolve_dataset("reasoning:gpt-oss-120b")`` build the
set in the lpuperf dataset format, one rendering per MLPerf v6.1 reasoning benchmark:

* ``think`` (deepseek-r1): the prompt ends ``<｜Assistant｜><think>\\n``; the output is the reasoning,
  ``</think>``, then ``\\n\\n`` and the answer, then EOS ``<｜end▁of▁sentence｜>``;
* ``harmony`` (gpt-oss-120b): the prompt ends ``<|start|>assistant``; the output is
  ``<|channel|>analysis<|message|>`` reasoning ``<|end|><|start|>assistant<|channel|>final<|message|>``
  then the answer and ``<|return|>`` (the EOS).

Reasoning tokens are every output token before the answer's first: the closing ``</think>`` and the
whole harmony header up to ``final<|message|>`` included (where the time to the first answer starts).

The problems, ground truths and answers come from the packaged bank (:mod:`scenarios._reasoning_bank`);
the long reasoning is made here, deterministically: each sample's output length is drawn from a
lognormal with the benchmark's mean and spread (stratified quantiles in a seeded order, scaled so the
set's mean is the benchmark's), and the reasoning is the problem's own sentences around a filler of
seeded sentences cut to the exact length. ``reasoning:<model>:<scale>`` (0 < scale <= 1) shortens every
reasoning to ``scale`` of its length (never below the problem's own sentences) for quick runs.

The tokenizer is the project's own word-piece vocabulary, carried as byte pieces in the dataset header
(special tokens as ``special``), so accuracy decodes without transformers.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from scenarios._reasoning_bank import INT8_WRONG_DATASET, ReasoningProblem, load_bank
from scenarios.dataset import ByteDecoder, Dataset, DatasetError

SPEC_PREFIX = "reasoning:"
ReasoningStyle = Literal["think", "harmony"]


class ReasoningModel(BaseModel):
    """The output-length figures a reasoning benchmark's rendering is drawn with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    style: ReasoningStyle
    mean_output_tokens: float
    sd_output_tokens: float
    sd_source: str
    max_output_tokens: int


REASONING_MODELS: dict[str, ReasoningModel] = {
    "deepseek-r1": ReasoningModel(
        name="deepseek-r1",
        style="think",
        mean_output_tokens=3886.2274,  # MLPerf's TOKENS_PER_SAMPLE reference (constants.py)
        sd_output_tokens=1943.1,
        sd_source="assumed: coefficient of variation 0.5 (MLPerf publishes only the mean, 3886.2274)",
        max_output_tokens=20000,  # the reference's MAX_OSL
    ),
    "gpt-oss-120b": ReasoningModel(
        name="gpt-oss-120b",
        style="harmony",
        mean_output_tokens=1278.2,  # TEST09's reference mean output length
        sd_output_tokens=247.0,
        sd_source="MLPerf TEST09 README's example output: std 247.0 over 6396 samples",
        max_output_tokens=10240,  # the performance run's max output
    ),
}
# The precisions a rendering exists for: int8 answers some math500 problems wrong, nothing else differs.
PRECISIONS = ("fp32", "int8")

# ---- vocabulary ----------------------------------------------------------------------------------
SPECIAL = (
    "<｜end▁of▁sentence｜>",
    "<｜begin▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|return|>",
)
_ADDED = ("<think>", "</think>")  # DeepSeek-R1's: added tokens, but not special (they survive decoding)
_EOS = {"think": SPECIAL.index("<｜end▁of▁sentence｜>"), "harmony": SPECIAL.index("<|return|>")}
_BYTE0 = len(SPECIAL) + len(_ADDED)
_PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]|\n| +")
_ADDED_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in _ADDED) + ")")
_SYSTEM = (
    "You are a careful assistant.\nReasoning: low\n\n"
    "# Valid channels: analysis, final. Channel must be included for every message."
)
_FILLER_VERBS = ("Check", "Recheck", "Verify", "Compare", "Revisit", "Consider", "Examine", "Reread", "Test")
_FILLER_NOUNS = (
    "the previous step", "the units", "the constraint", "the expression", "the setup", "the calculation",
    "the assumption", "the given values", "the condition", "the arithmetic", "the last line", "the question",
)  # fmt: skip
_FILLER_ENDS = ("again", "once more", "carefully", "from the start", "with care", "step by step", "slowly")
_FILLER_AFTER = (
    "",
    " It holds.",
    " Nothing changes.",
    " That is consistent.",
    " No contradiction appears.",
    " Fine so far.",
)


def _filler_sentences() -> list[str]:
    out = []
    for i, verb in enumerate(_FILLER_VERBS):
        for j, noun in enumerate(_FILLER_NOUNS):
            end = _FILLER_ENDS[(i + j) % len(_FILLER_ENDS)]
            out.append(f" {verb} {noun} {end}.{_FILLER_AFTER[(i * 3 + j) % len(_FILLER_AFTER)]}")
    return out


class _Vocab:
    """Word pieces of every text the set renders, plus 256 byte tokens for anything else."""

    def __init__(self, texts: list[str]) -> None:
        words = sorted({p for t in texts for p in _pieces(t) if len(p.encode()) > 1})
        self.pieces: dict[int, bytes] = {len(SPECIAL) + i: t.encode() for i, t in enumerate(_ADDED)}
        self.pieces.update({_BYTE0 + b: bytes([b]) for b in range(256)})
        self.pieces.update({_BYTE0 + 256 + i: w.encode() for i, w in enumerate(words)})
        self.ids = {piece: tid for tid, piece in self.pieces.items()}
        self.special = {i: t for i, t in enumerate(SPECIAL)}

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for part in _ADDED_SPLIT.split(text):
            if part in _ADDED:
                out.append(len(SPECIAL) + _ADDED.index(part))
                continue
            for piece in _pieces(part):
                raw = piece.encode()
                tid = self.ids.get(raw)
                out.extend([tid] if tid is not None else [_BYTE0 + b for b in raw])
        return out

    def decoder(self) -> ByteDecoder:
        return ByteDecoder(dict(self.pieces), dict(self.special))


def _pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def special_id(text: str) -> int:
    return SPECIAL.index(text)


# ---- rendering -----------------------------------------------------------------------------------
class _Rendered(BaseModel):
    """One problem in one style: prompt, the reasoning's fixed parts and each precision's answer ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    prompt_ids: tuple[int, ...]
    head: tuple[int, ...]  # reasoning before the filler (markers, the problem's steps, a distractor)
    tail: tuple[int, ...]  # reasoning after the filler (the conclusion, closing markers)
    answers: dict[str, tuple[int, ...]]  # precision -> answer ids, EOS included


@functools.lru_cache(maxsize=1)
def _bank_and_vocab() -> tuple[tuple[ReasoningProblem, ...], _Vocab]:
    problems = tuple(load_bank().problems)
    texts = [_SYSTEM, "system", "user", "assistant", "analysis", "final", "\n\n", *_filler_sentences()]
    for p in problems:
        texts += [p.question, *p.steps, p.distractor or "", p.conclusion, p.answer, p.int8_answer or ""]
    return problems, _Vocab(texts)


def _render(p: ReasoningProblem, style: ReasoningStyle, vocab: _Vocab) -> _Rendered:
    enc, sid = vocab.encode, special_id
    steps = " ".join([*p.steps, *([p.distractor] if p.distractor else [])])
    think = "We need to work this out. " + steps
    int8 = p.int8_answer or p.answer
    if style == "think":
        prompt = f"<｜begin▁of▁sentence｜><｜User｜>{p.question}<｜Assistant｜><think>\n"
        prompt_ids = [sid("<｜begin▁of▁sentence｜>"), sid("<｜User｜>"), *enc(p.question)]
        prompt_ids += [sid("<｜Assistant｜>"), *enc("<think>\n")]
        head = enc(think)
        tail = [*enc(f"\n\n{p.conclusion}"), *enc("</think>")]
        answers = {
            "fp32": (*enc(f"\n\n{p.answer}"), _EOS[style]),
            "int8": (*enc(f"\n\n{int8}"), _EOS[style]),
        }
    else:
        start, end, msg, chan = sid("<|start|>"), sid("<|end|>"), sid("<|message|>"), sid("<|channel|>")
        prompt = (
            f"<|start|>system<|message|>{_SYSTEM}<|end|><|start|>user<|message|>{p.question}<|end|><|start|>assistant"
        )
        prompt_ids = [start, *enc("system"), msg, *enc(_SYSTEM), end, start, *enc("user"), msg, *enc(p.question)]
        prompt_ids += [end, start, *enc("assistant")]
        head = [chan, *enc("analysis"), msg, *enc(think)]
        tail = [*enc(f"\n\n{p.conclusion}"), end, start, *enc("assistant"), chan, *enc("final"), msg]
        answers = {"fp32": (*enc(p.answer), _EOS[style]), "int8": (*enc(int8), _EOS[style])}
    return _Rendered(prompt=prompt, prompt_ids=tuple(prompt_ids), head=tuple(head), tail=tuple(tail), answers=answers)


@functools.lru_cache(maxsize=4)
def _rendered(style: ReasoningStyle) -> tuple[_Rendered, ...]:
    problems, vocab = _bank_and_vocab()
    return tuple(_render(p, style, vocab) for p in problems)


@functools.lru_cache(maxsize=4)
def _filler_stream(style: ReasoningStyle) -> tuple[tuple[int, ...], ...]:
    _, vocab = _bank_and_vocab()
    return tuple(tuple(vocab.encode(s)) for s in _filler_sentences())


def _filler(style: ReasoningStyle, index: int, n: int) -> list[int]:
    """``n`` filler tokens for sample ``index``: seeded sentences, cut to length (a prefix for any n)."""
    pool = _filler_stream(style)
    out: list[int] = []
    k = 0
    while len(out) < n:
        h = hashlib.sha256(f"{style}:{index}:{k}".encode()).digest()
        out.extend(pool[int.from_bytes(h[:4], "little") % len(pool)])
        k += 1
    return out[:n]


def output_lengths(model: ReasoningModel, n: int) -> list[int]:
    """Per sample, the unscaled output length: a seeded, stratified lognormal draw with the model's mean and sd.

    Sample ``i`` takes the quantile ``(rank_i + 0.5) / n`` of the lognormal, ranks in a seeded order; the
    draws are then scaled so their mean is the benchmark's mean, and capped at its maximum output.
    """
    sigma = math.sqrt(math.log1p((model.sd_output_tokens / model.mean_output_tokens) ** 2))
    mu = math.log(model.mean_output_tokens) - sigma * sigma / 2
    order = sorted(range(n), key=lambda i: hashlib.sha256(f"{model.name}:{i}".encode()).digest())
    rank = {i: r for r, i in enumerate(order)}
    normal = NormalDist()
    raw = [math.exp(mu + sigma * normal.inv_cdf((rank[i] + 0.5) / n)) for i in range(n)]
    factor = model.mean_output_tokens / (sum(raw) / n)
    return [min(model.max_output_tokens, round(x * factor)) for x in raw]


@functools.lru_cache(maxsize=8)
def _reasoning_lengths(name: str, scale: float) -> tuple[int, ...]:
    """Reasoning tokens per sample at ``scale`` (never fewer than the problem's own reasoning)."""
    model = REASONING_MODELS[name]
    rendered = _rendered(model.style)
    totals = output_lengths(model, len(rendered))
    out = []
    for r, total in zip(rendered, totals, strict=True):
        least = len(r.head) + len(r.tail)
        full = max(least, total - len(r.answers["fp32"]))
        out.append(max(least, round(full * scale)))
    return tuple(out)


def reasoning_outputs(name: str, precision: str = "fp32", scale: float = 1.0) -> tuple[list[list[int]], list[int]]:
    """(every sample's output ids, EOS included; its reasoning token count) for a model's rendering.

    The int8 outputs differ from fp32 only in the final answers of some ``math500`` samples; the
    reasoning of a sample is the same at every precision and a prefix-extension across scales.
    """
    model = _model(name)
    _check_scale(scale, f"{SPEC_PREFIX}{name}")
    if precision not in PRECISIONS:
        raise DatasetError(f"precision: the reasoning set has outputs for {', '.join(PRECISIONS)}, not '{precision}'")
    rendered = _rendered(model.style)
    lengths = _reasoning_lengths(model.name, scale)
    outputs = []
    for i, (r, n_reasoning) in enumerate(zip(rendered, lengths, strict=True)):
        filler = _filler(model.style, i, n_reasoning - len(r.head) - len(r.tail))
        outputs.append([*r.head, *filler, *r.tail, *r.answers[precision]])
    return outputs, list(lengths)


def reasoning_dataset(name: str, scale: float = 1.0) -> Dataset:
    """The set for a model (``deepseek-r1`` | ``gpt-oss-120b``): references are the FP32 outputs at ``scale``."""
    model = _model(name)
    problems, vocab = _bank_and_vocab()
    rendered = _rendered(model.style)
    outputs, lengths = reasoning_outputs(model.name, "fp32", scale)
    suffix = "" if scale == 1.0 else f"@{scale:g}"
    return Dataset(
        name=f"reasoning-{model.name}{suffix}",
        eos_token_id=_EOS[model.style],
        categories=[p.dataset for p in problems],
        prompts=[r.prompt for r in rendered],
        targets=[p.answer for p in problems],
        answers=[None] * len(problems),
        input_ids=[np.asarray(r.prompt_ids, dtype=np.int32) for r in rendered],
        reference_ids=[np.asarray(o, dtype=np.int32) for o in outputs],
        tokenizer=f"lpuperf reasoning-set word pieces ({model.style} rendering of {model.name})",
        decoder=vocab.decoder(),
        source=f"{SPEC_PREFIX}{model.name}{'' if scale == 1.0 else f':{scale:g}'}",
        datasets=[p.dataset for p in problems],
        ground_truths=[p.ground_truth for p in problems],
        reference_reasoning=list(lengths),
        tests=[p.tests for p in problems],
    )


def parse_reasoning_spec(spec: str) -> tuple[ReasoningModel, float] | None:
    """``reasoning:<model>[:<scale>]`` -> (model, scale); None for any other spec; DatasetError when malformed."""
    if not spec.startswith(SPEC_PREFIX):
        return None
    name, _, scale_text = spec[len(SPEC_PREFIX) :].partition(":")
    model = _model(name)
    try:
        scale = float(scale_text) if scale_text else 1.0
    except ValueError:
        raise DatasetError(f"dataset '{spec}': expected {SPEC_PREFIX}<model>[:<scale>] with a number scale") from None
    _check_scale(scale, spec)
    return model, scale


def _model(name: str) -> ReasoningModel:
    model = REASONING_MODELS.get(name.removesuffix("-interactive"))
    if model is None:
        raise DatasetError(f"dataset '{SPEC_PREFIX}{name}': expected one of {', '.join(REASONING_MODELS)}")
    return model


def _check_scale(scale: float, where: str) -> None:
    if not (0.0 < scale <= 1.0) or not math.isfinite(scale):
        raise DatasetError(f"dataset '{where}': reasoning scale: expected 0 < scale <= 1, got {scale:g}")


__all__ = [
    "INT8_WRONG_DATASET",
    "PRECISIONS",
    "REASONING_MODELS",
    "SPECIAL",
    "SPEC_PREFIX",
    "ReasoningModel",
    "output_lengths",
    "parse_reasoning_spec",
    "reasoning_dataset",
    "reasoning_outputs",
    "special_id",
]
