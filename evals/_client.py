"""Text in, text out over the SUT's gRPC stream: what the Inspect provider and the lm-eval model share.

One :class:`EvalSut` is one target (a running SUT or fleet, or an embedded SUT this process spawns), its
artifact manifest and the tokenizer that maps text to the artifact's token ids (evals/_codec.py). Each
:meth:`EvalSut.generate` call is one ``Generate`` stream: the prompt's ids go out, the chunks come back,
and the reply carries the answer text, the reasoning text (a chunk's leading ``reasoning_tokens`` ids),
the token counts the SUT reported and the request's TTFT and TPOT as this client saw them.

Stop sequences are applied to the decoded text (the protocol has no stop strings): the answer is cut at
the first one and the finish reason says ``stop``. Everything here runs per request, never per token
of a load run: eval requests use their own channel, so they never enter a LoadGen run's records.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import time
import uuid
from typing import Any, Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from common import UsageError, first_error_line
from evals._codec import TextCodec, codec_for
from loadgen_harness import FLEET_CHANNEL_OPTIONS, SutTarget, TransportSecurity, launch_sut, open_aio_channel
from proto import inference_pb2

__all__ = [
    "EMBEDDED_PREFIX",
    "ContinuationScore",
    "EvalReply",
    "EvalSut",
    "GenerationSettings",
    "TokenLogprob",
    "transport_from_args",
]

GENERATE = "/lpuperf.v1.Inference/Generate"
SCORE = "/lpuperf.v1.Inference/Score"
EMBEDDED_PREFIX = "embedded:"
_FINISH = {
    inference_pb2.FINISH_REASON_EOS: "eos",
    inference_pb2.FINISH_REASON_LENGTH: "length",
    inference_pb2.FINISH_REASON_CANCELLED: "cancelled",
    inference_pb2.FINISH_REASON_TOOL_CALL: "tool_call",
}
_TRANSPORT_ARGS = ("tls_ca", "tls_cert", "tls_key", "tls_server_name", "token_file", "token_env")


class GenerationSettings(BaseModel):
    """An eval framework's generation settings, in the SUT's terms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.0, ge=0)  # 0: greedy decoding
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = Field(default=0, ge=0)
    stop: tuple[str, ...] = ()


class EvalReply(BaseModel):
    """One eval request's answer and what it cost."""

    model_config = ConfigDict(extra="forbid")

    text: str
    reasoning_text: str = ""
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)  # the SUT's count, reasoning included
    reasoning_tokens: int = Field(default=0, ge=0)
    finish_reason: Literal["eos", "length", "stop", "cancelled", "tool_call", "unknown"]
    ttft_ms: float = Field(ge=0)
    tpot_ms: float | None = Field(default=None, ge=0)  # None for a one-token answer
    latency_ms: float = Field(ge=0)
    replica_id: str = ""
    # The ids behind the texts (for :meth:`EvalSut.answer_logprobs`); the answer's are all the SUT sent, the
    # text may be cut shorter by a stop string.
    prompt_ids: list[int] = Field(default_factory=list, repr=False)
    reasoning_ids: list[int] = Field(default_factory=list, repr=False)
    answer_ids: list[int] = Field(default_factory=list, repr=False)


class TokenLogprob(BaseModel):
    """One answer token's text and natural-log probability (Inspect's ``logprobs``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str
    logprob: float = Field(le=0)


class ContinuationScore(BaseModel):
    """A scored continuation (``Score``): what lm-eval's loglikelihood request asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    logprob: float = Field(le=0)  # sum over its tokens, natural log
    is_greedy: bool  # every token the artifact's greedy choice
    n_tokens: int = Field(ge=1)


def transport_from_args(args: dict[str, Any]) -> TransportSecurity:
    """TLS and token model arguments (``tls_ca=...``, ``token_file=...``) as the harness's settings."""
    given = {k: args[k] for k in _TRANSPORT_ARGS if args.get(k) not in (None, "")}
    try:
        return TransportSecurity(**given)
    except ValidationError as exc:
        raise UsageError(first_error_line(exc, "model args")) from None


class EvalSut:
    """A SUT that eval requests go to: ``HOST:PORT``, a fleet target (``dns:///name:port``, addresses joined
    by ``,`` or ``+``), or ``embedded:ARTIFACT`` (spawned here and stopped by :meth:`close`)."""

    def __init__(self, target: str, transport: TransportSecurity | None = None, tokenizer: str | None = None) -> None:
        self._stack = contextlib.ExitStack()
        transport = transport or TransportSecurity()
        if target.startswith(EMBEDDED_PREFIX):
            artifact = target[len(EMBEDDED_PREFIX) :] or "sim-fp32"
            if transport.enabled:
                raise UsageError(f"model '{target}': an embedded SUT is plaintext on loopback; drop the TLS/token args")
            sut_target = SutTarget(backend={"artifact": artifact})
        else:
            # '+' separates a fleet's addresses where the framework splits its arguments on commas.
            try:
                sut_target = SutTarget(address=target.replace("+", ","), transport=transport)
            except ValidationError as exc:
                raise UsageError(f"model 'lpuperf/{target}': {first_error_line(exc, 'target')}") from None
        try:
            running = self._stack.enter_context(launch_sut(sut_target))
        except Exception as exc:  # RunError and friends: one line
            self._stack.close()
            raise UsageError(f"model 'lpuperf/{target}': {exc}") from None
        self.address: str = running.address
        self.artifact: dict[str, JsonValue] = running.artifact
        self.transport = transport if not running.embedded else None
        self.codec: TextCodec = codec_for(tokenizer, self.artifact)
        # id(loop) -> (channel, Generate call, Score call, metadata)
        self._channels: dict[int, tuple[Any, Any, Any, Any]] = {}

        atexit.register(self.close)  # an embedded SUT never outlives the eval, even if nobody closes us

    def close(self) -> None:
        """Stop an embedded SUT (idempotent); channels die with their event loops."""
        self._channels.clear()
        self._stack.close()

    async def close_channels(self) -> None:
        """Close this event loop's channel (before the loop ends: ``asyncio.run`` per batch)."""
        held = self._channels.pop(id(asyncio.get_running_loop()), None)
        if held is not None:
            await held[0].close()

    def _held(self) -> tuple[Any, Any, Any, Any]:
        loop = asyncio.get_running_loop()
        held = self._channels.get(id(loop))
        if held is None:
            # round_robin over a fleet target's replicas, as a load run's channel (one for a single address).
            channel, metadata = open_aio_channel(self.address, self.transport, list(FLEET_CHANNEL_OPTIONS))
            call = channel.unary_stream(
                GENERATE,
                request_serializer=inference_pb2.GenerateRequest.SerializeToString,
                response_deserializer=inference_pb2.GenerateChunk.FromString,
            )
            score = channel.unary_unary(
                SCORE,
                request_serializer=inference_pb2.ScoreRequest.SerializeToString,
                response_deserializer=inference_pb2.ScoreReply.FromString,
            )
            held = self._channels[id(loop)] = (channel, call, score, metadata)
        return held

    def _call(self) -> tuple[Any, Any]:
        held = self._held()
        return held[1], held[3]

    @property
    def eos_token_id(self) -> int:
        """The artifact's EOS id: the context of a text scored from its start (nothing before it)."""
        eos = self.artifact.get("eos_token_id")
        return eos if isinstance(eos, int) and eos >= 0 else 0

    @property
    def max_context_tokens(self) -> int:
        limit = self.artifact.get("max_context_tokens")
        return limit if isinstance(limit, int) and limit > 1 else 2048

    async def score(self, context: str, continuation: str) -> ContinuationScore:
        """Score ``continuation`` after ``context`` (an empty context: after the artifact's EOS)."""
        context_ids = self.codec.encode(context) if context else [self.eos_token_id]
        continuation_ids = self.codec.encode(continuation)
        if not continuation_ids:
            raise UsageError("continuation: the text maps to no token of this artifact's vocabulary")
        if not context_ids:
            raise UsageError("context: the text maps to no token of this artifact's vocabulary")
        logprobs, greedy = await self.score_ids(context_ids, continuation_ids)
        return ContinuationScore(logprob=min(0.0, sum(logprobs)), is_greedy=all(greedy), n_tokens=len(logprobs))

    async def score_ids(self, context_ids: list[int], continuation_ids: list[int]) -> tuple[list[float], list[bool]]:
        """One ``Score`` call: per continuation token its log-probability and greedy flag; grpc.RpcError passes
        through (UNIMPLEMENTED: the SUT returns no log-probabilities)."""
        _, _, call, metadata = self._held()
        request = inference_pb2.ScoreRequest(
            request_id=uuid.uuid4().hex, context_ids=context_ids, continuation_ids=continuation_ids
        )
        reply = await call(request, metadata=metadata)
        if len(reply.logprobs) != len(continuation_ids) or len(reply.greedy) != len(continuation_ids):
            raise UsageError(
                f"SUT's Score reply: expected {len(continuation_ids)} log-probabilities and greedy flags, got "
                f"{len(reply.logprobs)} and {len(reply.greedy)}"
            )
        return list(reply.logprobs), list(reply.greedy)

    async def generate(self, prompt: str, settings: GenerationSettings) -> EvalReply:
        """One Generate stream for ``prompt``; grpc.RpcError passes through (the caller names the failure)."""
        ids = self.codec.encode(prompt)
        if not ids:
            raise UsageError("prompt: the text maps to no token of this artifact's vocabulary")
        greedy = settings.temperature == 0
        request = inference_pb2.GenerateRequest(
            request_id=uuid.uuid4().hex,
            input_ids=ids,
            max_new_tokens=settings.max_new_tokens,
            eos_token_id=-1,
            sampling=inference_pb2.SAMPLING_GREEDY if greedy else inference_pb2.SAMPLING_RANDOM,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=settings.seed,
        )
        call, metadata = self._call()
        start = time.perf_counter()
        first = last = 0.0
        answer: list[int] = []
        reasoning: list[int] = []
        final: Any = None
        async for chunk in call(request, metadata=metadata):
            if chunk.token_ids:
                last = time.perf_counter()
                first = first or last
                n_r = min(chunk.reasoning_tokens, len(chunk.token_ids))
                reasoning.extend(chunk.token_ids[:n_r])
                answer.extend(chunk.token_ids[n_r:])
            final = chunk
        reply = self._reply(answer, reasoning, final, len(ids), settings, (start, first or start, last or start))
        reply.prompt_ids = ids
        return reply

    async def answer_logprobs(self, reply: EvalReply) -> list[TokenLogprob]:
        """The log-probability of each answer token the reply's text kept, from one ``Score`` call after the
        prompt and the reasoning; grpc.RpcError passes through (UNIMPLEMENTED: the SUT cannot score)."""
        kept = self._kept_tokens(reply)
        if kept == 0 or not reply.prompt_ids:
            return []
        logprobs, _ = await self.score_ids(reply.prompt_ids + reply.reasoning_ids, reply.answer_ids[:kept])
        return [
            TokenLogprob(token=self.codec.decode([tok]), logprob=min(0.0, lp))
            for tok, lp in zip(reply.answer_ids[:kept], logprobs, strict=True)
        ]

    def _kept_tokens(self, reply: EvalReply) -> int:
        """How many leading answer tokens the reply's text holds (fewer than sent when a stop string cut it)."""
        if reply.finish_reason != "stop":
            return len(reply.answer_ids)
        kept = 0
        while kept < len(reply.answer_ids) and len(self.codec.decode(reply.answer_ids[: kept + 1])) <= len(reply.text):
            kept += 1
        return kept

    def _reply(
        self,
        answer: list[int],
        reasoning: list[int],
        final: Any,
        n_prompt: int,
        settings: GenerationSettings,
        times: tuple[float, float, float],
    ) -> EvalReply:
        start, first, last = times
        if final is not None and final.output_ids:
            # The SUT's authoritative output: its reasoning share is the leading n_reasoning_tokens.
            n_r = final.n_reasoning_tokens
            reasoning, answer = list(final.output_ids[:n_r]), list(final.output_ids[n_r:])
        text = self.codec.decode(answer)
        finish = _FINISH.get(final.finish_reason, "unknown") if final is not None else "unknown"
        cut = min((i for i in (text.find(s) for s in settings.stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        n_out = int(final.n_tokens) if final is not None and final.n_tokens else len(answer) + len(reasoning)
        return EvalReply(
            reasoning_ids=reasoning,
            answer_ids=answer,
            text=text,
            reasoning_text=self.codec.decode(reasoning) if reasoning else "",
            prompt_tokens=n_prompt,
            output_tokens=n_out,
            reasoning_tokens=int(final.n_reasoning_tokens) if final is not None else len(reasoning),
            finish_reason=finish,  # type: ignore[arg-type]
            ttft_ms=(first - start) * 1e3,
            tpot_ms=(last - first) * 1e3 / (n_out - 1) if n_out > 1 else None,
            latency_ms=(last - start) * 1e3,
            replica_id=final.replica_id if final is not None else "",
        )


def rpc_error_line(exc: grpc.RpcError) -> str:
    """One line for a failed eval request (status code and the SUT's message)."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"SUT answered {code.name if code is not None else 'an error'}: {details}"
