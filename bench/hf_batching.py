"""SmolLM2 tokens/s per precision: the transformers backend vs plain HF ``generate``, same batch size.

    .venv/bin/python -m bench.hf_batching [--precisions fp32,bf16,int8] [--rounds 3] [--batch 8] [--new 32]

For each precision and round, on the same reference-set prompts:

* batch 1: one request through the backend vs ``model.generate`` on that prompt;
* batch B, fixed length: B concurrent requests through the backend (its continuous-batching worker,
  in-process, no gRPC) vs one left-padded ``generate`` call on the same B prompts; both forced to
  exactly ``--new`` tokens (min = max), so the work is identical;
* batch B, natural length: the same with EOS allowed (up to ``--new`` tokens): ``generate`` keeps
  stepping finished rows until the longest ends, the backend refills their slots from a queue of
  2*B requests. Counted tokens are useful tokens only.

Prints per-round figures, medians of the rounds, and the backend/generate ratio (computed within
each round, then the median). Needs the hf extra (``make hf``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import numpy as np


def _prompts(tokenizer: Any, n: int) -> list[list[int]]:
    from scenarios._reference_prompts import write_prompts
    from sut._hf_model import chat_prompt_ids

    # Q&A and arithmetic prompts of moderate length: decode dominates, as in a chat workload.
    out = [chat_prompt_ids(tokenizer, p.prompt) for p in write_prompts(120) if p.category != "summarization"]
    out = [ids for ids in out if 80 <= len(ids) <= 260]
    return out[:n]


def _hf_generate(loaded: Any, prompts: list[list[int]], new: int, fixed: bool) -> int:
    import torch

    eos = loaded.eos_token_id
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), eos, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p)
        mask[r, width - len(p) :] = 1
    with torch.inference_mode():
        out = loaded.model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new,
            min_new_tokens=new if fixed else 0,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=eos,
        )
    useful = 0
    for row in out[:, width:].tolist():
        useful += row.index(eos) + 1 if eos in row else len(row)
    return useful


async def _backend_run(backend: Any, prompts: list[list[int]], new: int, fixed: bool) -> int:
    from sut import GenerateRequest, GenerationEnd

    async def one(i: int, p: list[int]) -> int:
        req = GenerateRequest(
            request_id=str(i),
            input_ids=np.asarray(p, np.int32),
            max_new_tokens=new,
            min_new_tokens=new if fixed else 0,
        )
        n = 0
        async for item in backend.generate(req):
            if not isinstance(item, GenerationEnd):
                n += len(item)
        return n

    return sum(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    tokens = fn()
    return float(tokens) / (time.perf_counter() - t0)


def bench_precision(precision: str, rounds: int, batch: int, new: int) -> dict[str, list[float]]:
    from sut._hf import TransformersBackend, TransformersConfig

    backend = TransformersBackend(TransformersConfig.model_validate({"precision": precision, "max_batch": batch}))
    loaded = backend._loaded
    prompts = _prompts(loaded.tokenizer, 2 * batch)
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(backend.start())
    try:
        _hf_generate(loaded, prompts[:1], 4, True)  # warm-up: first calls allocate
        loop.run_until_complete(_backend_run(backend, prompts[:1], 4, True))
        for r in range(rounds):
            b1 = _timed(lambda: loop.run_until_complete(_backend_run(backend, prompts[:1], new, True)))
            h1 = _timed(lambda: _hf_generate(loaded, prompts[:1], new, True))
            bb = _timed(lambda: loop.run_until_complete(_backend_run(backend, prompts[:batch], new, True)))
            hb = _timed(lambda: _hf_generate(loaded, prompts[:batch], new, True))
            bn = _timed(lambda: loop.run_until_complete(_backend_run(backend, prompts[: 2 * batch], new, False)))
            hn = _timed(
                lambda: (
                    _hf_generate(loaded, prompts[:batch], new, False)
                    + _hf_generate(loaded, prompts[batch : 2 * batch], new, False)
                )
            )
            for key, value in (
                ("backend b1", b1),
                ("generate b1", h1),
                (f"backend b{batch} fixed", bb),
                (f"generate b{batch} fixed", hb),
                (f"backend b{batch} natural", bn),
                (f"generate b{batch} natural", hn),
                ("ratio b1", b1 / h1),
                (f"ratio b{batch} fixed", bb / hb),
                (f"ratio b{batch} natural", bn / hn),
            ):
                add(key, value)
            print(
                f"{precision} round {r + 1}: b1 {b1:.1f} vs {h1:.1f} tok/s; b{batch} fixed {bb:.1f} vs {hb:.1f}; "
                f"natural {bn:.1f} vs {hn:.1f}",
                flush=True,
            )
    finally:
        loop.run_until_complete(backend.stop())
        loop.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hf_batching", description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new", type=int, default=32, help="new tokens per request")
    args = parser.parse_args(argv)
    import os

    results = {p: bench_precision(p, args.rounds, args.batch, args.new) for p in args.precisions.split(",")}
    print(
        f"\nload average {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds (tokens/s, ratio = backend/generate)"
    )
    keys = list(next(iter(results.values())))
    print("| figure | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for key in keys:
        cells = [f"{statistics.median(results[p][key]):.2f}" for p in results]
        print(f"| {key} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
