"""lpuperf as an Inspect AI model provider: ``inspect eval TASK --model lpuperf/TARGET``.

Inspect loads this module through the ``inspect_ai`` entry point of the lpuperf package (pyproject). The
model name after ``lpuperf/`` is the target: ``HOST:PORT``, a fleet (``dns:///name:port``, a list of
``host:port``) or ``embedded:ARTIFACT`` (``embedded:sim-int8``: an embedded SUT spawned for the eval and
stopped when Inspect closes the model). Model arguments (``-M key=value``): ``tls_ca``, ``tls_cert``,
``tls_key``, ``tls_server_name``, ``token_file``, ``token_env`` (as ``lpuperf run``'s flags) and
``tokenizer`` (evals/_codec.py).

Generation settings map onto the request: ``max_tokens`` -> ``max_new_tokens``, ``temperature`` (0 or
unset: greedy), ``top_p``, ``seed``, ``stop_seqs`` (cut on the decoded text). A conversation is rendered
as the HTTP front renders one for a backend without a chat template (``sut.render_plain``). Reasoning
tokens come back as a ``ContentReasoning`` block ahead of the answer; usage counts prompt, output and
reasoning tokens; each output's metadata holds the request's ``ttft_ms``, ``tpot_ms`` and replica.
``logprobs`` in the config adds the answer tokens' log-probabilities (one ``Score`` call after the answer,
on a SUT that scores); ``top_logprobs`` gets no alternatives (the SUT scores given tokens only).
"""

from __future__ import annotations

from typing import Any

import grpc
from inspect_ai.model import (
    ChatMessage,
    ContentReasoning,
    ContentText,
    GenerateConfig,
    Logprob,
    Logprobs,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from evals._client import EvalReply, EvalSut, GenerationSettings, TokenLogprob, rpc_error_line, transport_from_args
from sut import render_plain

__all__ = ["LpuperfModelAPI", "lpuperf"]

DEFAULT_MAX_TOKENS = 256
_STOP = {"eos": "stop", "stop": "stop", "length": "max_tokens", "tool_call": "tool_calls"}


def _settings(config: GenerateConfig) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=config.temperature or 0.0,
        top_p=config.top_p if config.top_p else 1.0,
        seed=config.seed or 0,
        stop=tuple(config.stop_seqs or ()),
    )


def _prompt(messages: list[ChatMessage]) -> str:
    return render_plain([{"role": m.role, "content": m.text} for m in messages])


def _output(model: str, reply: EvalReply) -> ModelOutput:
    content: list[Any] = [ContentText(text=reply.text)]
    if reply.reasoning_text:
        content.insert(0, ContentReasoning(reasoning=reply.reasoning_text))
    out = ModelOutput.from_content(model=model, content=content, stop_reason=_STOP.get(reply.finish_reason, "unknown"))  # type: ignore[arg-type]
    out.usage = ModelUsage(
        input_tokens=reply.prompt_tokens,
        output_tokens=reply.output_tokens,
        total_tokens=reply.prompt_tokens + reply.output_tokens,
        reasoning_tokens=reply.reasoning_tokens or None,
    )
    out.time = reply.latency_ms / 1e3
    out.metadata = {
        "ttft_ms": reply.ttft_ms,
        "tpot_ms": reply.tpot_ms,
        "replica_id": reply.replica_id,
        "finish_reason": reply.finish_reason,
    }
    return out


class LpuperfModelAPI(ModelAPI):
    """Inspect's view of one lpuperf gRPC target."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's own signature)
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        transport = transport_from_args(model_args)
        self._sut = EvalSut(model_name, transport, tokenizer=model_args.get("tokenizer"))

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        try:
            reply = await self._sut.generate(_prompt(input), _settings(config))
            # Inspect asks for the answer's log-probabilities: the Generate stream has none, so one Score call
            # after the answer (a SUT that cannot score leaves them out, as a provider without logprobs does).
            logprobs = await self._answer_logprobs(reply) if config.logprobs else []
        except grpc.RpcError as exc:
            return ModelOutput.from_content(model=self.model_name, content="", error=rpc_error_line(exc))
        out = _output(self.model_name, reply)
        if logprobs:
            out.choices[0].logprobs = Logprobs(
                content=[Logprob(token=t.token, logprob=t.logprob, bytes=list(t.token.encode())) for t in logprobs]
            )
        return out

    async def _answer_logprobs(self, reply: EvalReply) -> list[TokenLogprob]:
        try:
            return await self._sut.answer_logprobs(reply)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                return []
            raise

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def should_retry(self, ex: Exception) -> bool:
        # An overloaded SUT is worth another try; a refused request is not.
        return isinstance(ex, grpc.RpcError) and ex.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]

    def close(self) -> None:
        self._sut.close()


@modelapi(name="lpuperf")
def lpuperf() -> type[ModelAPI]:
    return LpuperfModelAPI
