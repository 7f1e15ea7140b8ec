"""Continuous-batching greedy decoder over a Hugging Face causal LM with one shared KV cache.

The batch is a left-padded ``DynamicCache`` plus a 0/1 attention mask. Sequences join at step
boundaries: the newcomers are prefilled together (left-padded among themselves), then their cache
is merged into the running one by left-padding whichever side is shorter. Finished sequences
leave by index-selecting the batch dimension, and padding columns that no remaining row needs
are trimmed, so the cache never grows past the longest live sequence.

Positions come from the mask (``cumsum - 1``), so a row's numbers do not depend on how much
padding sits in front of it. Everything here is synchronous torch code: the backend runs it on a
single worker thread, and the reference-set builder calls it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Sequence:
    """One request inside the engine."""

    key: Any  # the caller's handle (a request id, an index)
    prompt: list[int]
    max_new_tokens: int
    eos_token_id: int
    min_new_tokens: int = 0
    output: list[int] = field(default_factory=list)
    finish_reason: str = ""  # "eos" | "length" | "cancelled" once done

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)


def _pad_left(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


@torch.inference_mode()
def score_continuation(model: Any, context: list[int], continuation: list[int], device: str = "cpu") -> Any:
    """Per continuation token: its log-probability after everything before it and whether it is the argmax there.

    One forward pass over ``context + continuation`` (no cache: the decode batch's cache is never touched); the
    logits at position ``len(context) - 1 + i`` predict ``continuation[i]``. Returns ``(logprobs, greedy)`` lists.
    """
    ids = torch.tensor([context + continuation], dtype=torch.long, device=torch.device(device))
    logits = model(input_ids=ids, use_cache=False).logits[0]
    start = len(context) - 1
    predicting = logits[start : start + len(continuation)].float()
    target = ids[0, len(context) :]
    logprobs = torch.log_softmax(predicting, dim=-1).gather(1, target[:, None])[:, 0]
    greedy = torch.argmax(predicting, dim=-1) == target
    return [float(x) for x in logprobs.tolist()], [bool(x) for x in greedy.tolist()]


class DecodeEngine:
    """Greedy decoding of many sequences in one batch; call :meth:`admit` and :meth:`step`."""

    def __init__(self, model: Any, pad_token_id: int, device: str = "cpu") -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.device = torch.device(device)
        self.seqs: list[Sequence] = []
        self._cache: Any = None
        self._mask: torch.Tensor | None = None  # [B, T] long
        self._next: torch.Tensor | None = None  # [B] long: the token each row feeds next

    def __len__(self) -> int:
        return len(self.seqs)

    def _pick(self, logits: torch.Tensor, seqs: list[Sequence]) -> list[int]:
        """Greedy choice per row; EOS is masked out while a row is below its min_new_tokens."""
        logits = logits.float()
        for row, s in enumerate(seqs):
            if len(s.output) < s.min_new_tokens and 0 <= s.eos_token_id < logits.shape[-1]:
                logits[row, s.eos_token_id] = float("-inf")
        return [int(t) for t in torch.argmax(logits, dim=-1).tolist()]

    def _record(self, s: Sequence, token: int) -> None:
        s.output.append(token)
        if token == s.eos_token_id and len(s.output) >= s.min_new_tokens:
            s.finish_reason = "eos"
        elif len(s.output) >= s.max_new_tokens:
            s.finish_reason = "length"

    @torch.inference_mode()
    def admit(self, newcomers: list[Sequence]) -> list[int]:
        """Prefill ``newcomers`` and add them to the batch; returns each one's first token.

        Sequences that finish on their first token are not kept in the batch.
        """
        if not newcomers:
            return []
        width = max(len(s.prompt) for s in newcomers)
        ids = torch.full((len(newcomers), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(newcomers), width), dtype=torch.long)
        for row, s in enumerate(newcomers):
            ids[row, width - len(s.prompt) :] = torch.tensor(s.prompt, dtype=torch.long)
            mask[row, width - len(s.prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        firsts = self._pick(out.logits[:, -1, :], newcomers)
        for s, tok in zip(newcomers, firsts, strict=True):
            self._record(s, tok)
        self._merge(newcomers, out.past_key_values, mask, torch.tensor(firsts, dtype=torch.long, device=self.device))
        self._drop_done()
        return firsts

    def _merge(self, seqs: list[Sequence], cache: Any, mask: torch.Tensor, nxt: torch.Tensor) -> None:
        if self._cache is None or self._mask is None or self._next is None or not self.seqs:
            self.seqs, self._cache, self._mask, self._next = list(seqs), cache, mask, nxt
            return
        width = max(self._mask.shape[1], mask.shape[1])
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_pad_left(old.keys, width, 2), _pad_left(new.keys, width, 2)], dim=0)
            old.values = torch.cat([_pad_left(old.values, width, 2), _pad_left(new.values, width, 2)], dim=0)
        self._mask = torch.cat([_pad_left(self._mask, width, 1), _pad_left(mask, width, 1)], dim=0)
        self._next = torch.cat([self._next, nxt])
        self.seqs.extend(seqs)

    @torch.inference_mode()
    def step(self) -> list[tuple[Sequence, int]]:
        """One decode step for every live sequence; returns (sequence, token) pairs."""
        self._drop_done()
        if not self.seqs or self._mask is None or self._next is None:
            return []
        positions = self._mask.sum(-1, keepdim=True)  # the new token's position = real tokens so far
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        out = self.model(
            input_ids=self._next[:, None],
            attention_mask=self._mask,
            position_ids=positions,
            past_key_values=self._cache,
            use_cache=True,
        )
        self._cache = out.past_key_values
        tokens = self._pick(out.logits[:, -1, :], self.seqs)
        self._next = torch.tensor(tokens, dtype=torch.long, device=self.device)
        pairs = list(zip(self.seqs, tokens, strict=True))
        for s, tok in pairs:
            self._record(s, tok)
        return pairs

    def cancel(self, key: Any) -> None:
        for s in self.seqs:
            if s.key == key and not s.done:
                s.finish_reason = "cancelled"

    def _drop_done(self) -> None:
        if not any(s.done for s in self.seqs):
            return
        keep = [i for i, s in enumerate(self.seqs) if not s.done]
        self.seqs = [self.seqs[i] for i in keep]
        if not keep or self._mask is None or self._next is None:
            self.seqs, self._cache, self._mask, self._next = [], None, None, None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self._mask[index]
        # Columns that are padding for every remaining row can go.
        lead = int((mask.sum(0) == 0).long().cumprod(0).sum())
        self._mask = mask[:, lead:]
        self._next = self._next[index]
        for layer in self._cache.layers:
            layer.keys = layer.keys[index, :, lead:]
            layer.values = layer.values[index, :, lead:]


def generate_all(
    model: Any,
    prompts: list[list[int]],
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    max_batch: int = 16,
    device: str = "cpu",
    on_progress: Any = None,
) -> list[list[int]]:
    """Greedy outputs for every prompt with continuous batching (slots refill as rows finish).

    Prompts are admitted shortest first so that newcomers pad the running batch as little as possible.
    """
    engine = DecodeEngine(model, pad_token_id, device)
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    seqs = [Sequence(key=i, prompt=prompts[i], max_new_tokens=max_new_tokens, eos_token_id=eos_token_id) for i in order]
    pending = list(reversed(seqs))
    finished = 0
    # Each loop iteration either admits or steps, and every step advances every row; the bound is generous.
    for _ in range(len(prompts) * (max_new_tokens + 2) + 1):
        free = max_batch - len(engine)
        if pending and (free >= max(1, max_batch // 4) or not len(engine)):
            group = [pending.pop() for _ in range(min(free, len(pending)))]
            engine.admit(group)
        else:
            engine.step()
        now_done = sum(1 for s in seqs if s.done)
        if on_progress is not None and now_done != finished:
            on_progress(now_done, sum(len(s.output) for s in seqs))
        finished = now_done
        if finished == len(seqs):
            break
    else:
        raise RuntimeError("generate_all: decode loop exceeded its step bound")
    return [s.output for s in sorted(seqs, key=lambda s: s.key)]
