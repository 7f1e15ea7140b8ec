"""lpuperf as an lm-evaluation-harness model: ``lm_eval --model lpuperf --model_args target=HOST:PORT``.

lm-eval finds no third-party models by itself, so ``lpuperf evals lm-eval ARGS...`` imports this module
(which registers the model) and runs lm-eval's own command line with ``ARGS``. Model arguments:
``target`` (as the Inspect provider's model name: ``HOST:PORT``, a fleet, ``embedded:ARTIFACT``), the TLS
and token arguments, ``tokenizer``, ``concurrency`` (requests in flight, default 8).

``generate_until`` maps ``until`` to stop sequences, ``max_gen_toks`` to ``max_new_tokens`` and
``temperature`` (with ``do_sample``) to sampling. The SUT's protocol returns no log-probabilities, so the
loglikelihood task types are refused with one line naming the type, before any request is sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from common import UsageError
from evals._client import EvalReply, EvalSut, GenerationSettings, transport_from_args

__all__ = ["LpuperfLM"]

DEFAULT_MAX_GEN_TOKS = 256
DEFAULT_CONCURRENCY = 8


def _settings(gen_kwargs: dict[str, Any]) -> GenerationSettings:
    until = gen_kwargs.get("until") or []
    stop = (until,) if isinstance(until, str) else tuple(str(s) for s in until)
    sample = bool(gen_kwargs.get("do_sample", False))
    return GenerationSettings(
        max_new_tokens=int(gen_kwargs.get("max_gen_toks") or DEFAULT_MAX_GEN_TOKS),
        temperature=float(gen_kwargs.get("temperature") or 0.0) if sample else 0.0,
        stop=stop,
    )


@register_model("lpuperf")
class LpuperfLM(LM):
    """lm-eval's view of one lpuperf gRPC target."""

    def __init__(self, target: str = "", concurrency: int = DEFAULT_CONCURRENCY, **kwargs: Any) -> None:
        super().__init__()
        if not target:
            raise UsageError("--model_args: expected target=HOST:PORT (or embedded:ARTIFACT)")
        self._concurrency = max(1, int(concurrency))
        self._sut = EvalSut(str(target), transport_from_args(kwargs), tokenizer=kwargs.get("tokenizer"))
        self.replies: list[EvalReply] = []  # every answer of this model, in request order (timings)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        jobs = [(str(r.args[0]), _settings(dict(r.args[1]) if len(r.args) > 1 else {})) for r in requests]
        replies = asyncio.run(self._run_all(jobs))
        self.replies.extend(replies)
        return [r.text for r in replies]

    async def _run_all(self, jobs: list[tuple[str, GenerationSettings]]) -> list[EvalReply]:
        gate = asyncio.Semaphore(self._concurrency)

        async def one(prompt: str, settings: GenerationSettings) -> EvalReply:
            async with gate:
                return await self._sut.generate(prompt, settings)

        try:
            return list(await asyncio.gather(*(one(p, s) for p, s in jobs)))
        finally:
            await self._sut.close_channels()

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        raise UsageError(
            "lpuperf: task type 'loglikelihood' (multiple_choice) needs per-token log-probabilities, which the "
            "SUT's protocol does not return; use a generate_until task"
        )

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise UsageError(
            "lpuperf: task type 'loglikelihood_rolling' (perplexity) needs per-token log-probabilities, which the "
            "SUT's protocol does not return; use a generate_until task"
        )
