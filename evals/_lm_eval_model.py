"""lpuperf as an lm-evaluation-harness model: ``lm_eval --model lpuperf --model_args target=HOST:PORT``.

lm-eval finds no third-party models by itself, so ``lpuperf evals lm-eval ARGS...`` imports this module
(which registers the model) and runs lm-eval's own command line with ``ARGS``. Model arguments:
``target`` (as the Inspect provider's model name: ``HOST:PORT``, a fleet, ``embedded:ARTIFACT``), the TLS
and token arguments, ``tokenizer``, ``concurrency`` (requests in flight, default 8).

``generate_until`` maps ``until`` to stop sequences, ``max_gen_toks`` to ``max_new_tokens`` and
``temperature`` (with ``do_sample``) to sampling. ``loglikelihood`` (multiple choice) sends one ``Score``
call per (context, continuation): the sum of the continuation's log-probabilities and whether it is the
greedy one. ``loglikelihood_rolling`` (perplexity) scores a whole text from the artifact's EOS, in lm-eval's
own disjoint windows when it is longer than the artifact's context. A SUT whose backend returns no
log-probabilities answers UNIMPLEMENTED, which becomes one line naming the task type.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from common import UsageError
from evals._client import EvalReply, EvalSut, GenerationSettings, rpc_error_line, transport_from_args

__all__ = ["LpuperfLM"]

DEFAULT_MAX_GEN_TOKS = 256
DEFAULT_CONCURRENCY = 8
_TASK_KINDS = {"loglikelihood": "multiple_choice", "loglikelihood_rolling": "perplexity"}
T = TypeVar("T")


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
        pairs = [(str(r.args[0]), str(r.args[1])) for r in requests]

        async def one(context: str, continuation: str) -> tuple[float, bool]:
            scored = await self._sut.score(context, continuation)
            return scored.logprob, scored.is_greedy

        return self._scored("loglikelihood", [functools.partial(one, c, x) for c, x in pairs])

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        texts = [str(r.args[0]) for r in requests]
        return self._scored("loglikelihood_rolling", [functools.partial(self._rolling, t) for t in texts])

    async def _rolling(self, text: str) -> float:
        """A whole text's log-likelihood: every token scored once, each window after its own context."""
        ids = self._sut.codec.encode(text)
        if not ids:
            return 0.0
        # A window of n tokens feeds the model n - 1 of them, but the SUT counts every token it is sent against
        # its context: one fewer keeps each window (its one context token included) inside it.
        windows = get_rolling_token_windows(
            token_list=ids,
            prefix_token=self._sut.eos_token_id,
            max_seq_len=self._sut.max_context_tokens - 1,
            context_len=1,
        )
        total = 0.0
        for window in windows:
            context, continuation = make_disjoint_window(window)
            logprobs, _ = await self._sut.score_ids(list(context), list(continuation))
            total += sum(logprobs)
        return total

    def _scored(self, task_type: str, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run scoring jobs ``concurrency`` at a time; a SUT error is one line naming the task type."""

        async def run_all() -> list[T]:
            gate = asyncio.Semaphore(self._concurrency)

            async def one(job: Callable[[], Awaitable[T]]) -> T:
                async with gate:
                    return await job()

            try:
                return list(await asyncio.gather(*(one(j) for j in jobs)))
            finally:
                await self._sut.close_channels()

        try:
            return asyncio.run(run_all())
        except grpc.RpcError as exc:
            head = f"lpuperf: task type '{task_type}' ({_TASK_KINDS[task_type]})"
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise UsageError(
                    f"{head} needs per-token log-probabilities, which this SUT does not return ({exc.details()}); "
                    "use a generate_until task or an artifact whose backend scores (sim, transformers)"
                ) from None
            raise UsageError(f"{head}: {rpc_error_line(exc)}") from None
