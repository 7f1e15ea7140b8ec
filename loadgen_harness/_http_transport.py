"""``--transport openai-http``: the bridge streams each query straight to an OpenAI-compatible endpoint.

No SUT process and no gRPC hop: the ``openai`` backend (the relay's own code, aiohttp, raw-bytes SSE)
runs on the bridge's uvloop thread and its token lists become the messages the bridge already reads.
So first-token exactness is the relay's (the server's token ids, ``usage.completion_tokens`` as the
count, EOS closed the same way, the API key scrubbed from every error) and a failure carries the
same status the relay SUT would send over gRPC (429 -> RESOURCE_EXHAUSTED, timeout ->
DEADLINE_EXCEEDED, other upstream failures -> UNAVAILABLE), so results read the same either way.

Reasoning models: the backend's ``request.output_reasoning_tokens`` (raised by the relay's stream parser,
``sut/_reasoning_stream.py``) becomes each message's ``reasoning_tokens`` until the answer starts, and
the last message's ``n_reasoning_tokens``, as a SUT's chunks carry them; the read that starts the answer
goes out at once, so the bridge times the first answer token on arrival.

Agentic requests: ``allow_tool_call`` offers the endpoint one small function (the relay's ``tools``); its
finish_reason ``tool_calls`` is FINISH_REASON_TOOL_CALL on the last message, and its
``usage.prompt_tokens_details.cached_tokens`` the last message's ``cached_prompt_tokens``.

What a direct run cannot have: SUT-side time stamps (``sut_arrival_ns``, ``sut_first_answer_ns`` and the
others stay 0) and replica attribution. The relay (``--backend openai``) remains the way to put an HTTP
endpoint behind the gRPC SUT contract, e.g. for a fleet or for the SUT's own metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from common import BackendSpec, RegistryError

if TYPE_CHECKING:
    from sut import Backend

TRANSPORTS = ("grpc", "openai-http")
# The backend's finish reasons as proto FinishReason values (EOS 1, LENGTH 2, TOOL_CALL 4): numbers, so the
# module imports no proto at import time; a test checks them against the proto's values.
_FINISH = {"eos": 1, "length": 2, "tool_call": 4}


class _Chunk:
    """The fields of a GenerateChunk the bridge reads, without building a protobuf message per read."""

    __slots__ = (
        "cached_prompt_tokens",
        "finish_reason",
        "n_reasoning_tokens",
        "n_tokens",
        "output_ids",
        "reasoning_tokens",
        "replica_id",
        "sut_arrival_ns",
        "sut_first_answer_ns",
        "sut_first_token_ns",
        "sut_last_token_ns",
        "token_ids",
    )

    def __init__(self, token_ids: Sequence[int], n_tokens: int = 0) -> None:
        self.token_ids: Sequence[int] = token_ids
        self.n_tokens = n_tokens
        self.output_ids: Sequence[int] = ()
        self.replica_id = ""
        self.sut_arrival_ns = 0
        self.sut_first_token_ns = 0
        self.sut_last_token_ns = 0
        self.reasoning_tokens = 0  # of token_ids, the leading ones that are reasoning
        self.n_reasoning_tokens = 0  # the last message: the output's reasoning tokens
        self.sut_first_answer_ns = 0  # no SUT clock on a direct run: the bridge times the answer itself
        self.finish_reason = 0  # the last message: a proto FinishReason value, as a SUT's final chunk says
        self.cached_prompt_tokens = 0  # the last message: the server's usage.prompt_tokens_details.cached_tokens


class HttpCalls:
    """Opened on the bridge's loop: ``calls(request_bytes, timeout=...)`` streams one query; ``close()``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @classmethod
    async def open(cls, config: BackendSpec) -> tuple[HttpCalls, HttpCalls]:
        """(closable, call) as the bridge's channel opener wants them; both are this object."""
        from sut import create_backend

        backend = create_backend(config)
        await backend.start()
        me = cls(backend)
        return me, me

    async def close(self) -> None:
        await self.backend.stop()

    def manifest(self) -> dict[str, Any]:
        return dict(self.backend.manifest.model_dump(mode="json"))

    def __call__(self, request: bytes, timeout: float | None = None, metadata: Any = None) -> AsyncIterator[_Chunk]:
        # ``metadata`` is the bridge's gRPC token; the endpoint's own key travels in the backend's headers.
        return self._stream(request)

    async def _stream(self, request: bytes) -> AsyncIterator[_Chunk]:
        import grpc

        from sut import GenerationEnd, UpstreamError

        try:
            req = _backend_request(request)
            # The first read goes out at once (its arrival is the first token's time), and so does the read
            # that starts the answer (its arrival is the first answer token's); after the first, one read is
            # held back so the last message can carry the server's counts, as a SUT's final chunk does.
            held: _Chunk | None = None
            first = True
            answered = False
            n_before = 0  # ids handed over before this read
            async for item in self.backend.generate(req):
                if isinstance(item, GenerationEnd):
                    last = held or _Chunk(())
                    last.n_tokens = item.n_tokens or 0  # 0: the bridge counts the streamed ids
                    r = item.n_reasoning_tokens
                    last.n_reasoning_tokens = min(req.output_reasoning_tokens, n_before) if r is None else r
                    last.finish_reason = _FINISH.get(item.finish_reason, 0)
                    last.cached_prompt_tokens = item.cached_prompt_tokens or 0
                    yield last
                    return
                chunk = _Chunk(item)
                now_answered = False
                if not answered:
                    # The backend raised the count before handing these ids over; reasoning leads the output.
                    r = min(len(item), max(0, req.output_reasoning_tokens - n_before))
                    chunk.reasoning_tokens = r
                    answered = now_answered = r < len(item)
                n_before += len(item)
                if first or now_answered:
                    first = False
                    if held is not None:
                        yield held
                        held = None
                    yield chunk
                    continue
                if held is not None:
                    yield held
                held = chunk
            if held is not None:
                yield held
        except UpstreamError as exc:
            code = {"429": grpc.StatusCode.RESOURCE_EXHAUSTED, "timeout": grpc.StatusCode.DEADLINE_EXCEEDED}
            raise _rpc_error(code.get(exc.status, grpc.StatusCode.UNAVAILABLE), str(exc)) from None
        except Exception as exc:
            from sut import BackendError

            if isinstance(exc, BackendError):  # a request the backend refused (no prompt, no tokenizer)
                raise _rpc_error(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            raise


def _rpc_error(code: Any, details: str) -> Exception:
    import grpc

    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def _backend_request(data: bytes) -> Any:
    """The sut.GenerateRequest for a pre-serialised wire request (what the SUT's server would build)."""
    import numpy as np

    from proto import inference_pb2
    from sut import GenerateRequest

    msg = inference_pb2.GenerateRequest.FromString(data)
    greedy = msg.sampling == inference_pb2.SAMPLING_GREEDY
    return GenerateRequest(
        request_id=msg.request_id,
        input_ids=np.array(msg.input_ids, dtype=np.int32),
        max_new_tokens=int(msg.max_new_tokens),
        min_new_tokens=int(msg.min_new_tokens),
        eos_token_id=int(msg.eos_token_id),
        prompt_text=msg.prompt_text,
        greedy=greedy,
        temperature=float(msg.temperature),
        top_p=float(msg.top_p) if msg.top_p else 1.0,
        seed=int(msg.seed),
        allow_tool_call=msg.allow_tool_call,
    )


def probe_endpoint(config: BackendSpec) -> dict[str, Any]:
    """Check the endpoint answers before the run (as GetArtifact does for a SUT); its manifest stands for the
    artifact (the model is the one GET /models named when the config gave none).

    RunError (one line, exit 2) naming why it cannot serve: connection refused, TLS, a refused key, an
    unknown model (the backend's start probes, sut/_openai_probe.py).
    """
    import asyncio

    from loadgen_harness._run import RunError
    from sut import BackendError, create_backend

    async def _probe() -> dict[str, Any]:
        backend = create_backend(config)
        try:
            await backend.start()
            return dict(backend.manifest.model_dump(mode="json"))
        finally:
            await backend.stop()

    try:
        return asyncio.run(_probe())
    except (BackendError, RegistryError, ValueError) as exc:
        # The relay's line names the backend; here the flag the user gave stands for it.
        line = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise RunError(f"--transport openai-http: {line.removeprefix('openai backend: ')}") from None
