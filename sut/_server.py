"""The gRPC server: ``lpuperf.v1.Inference`` plus ``grpc.health.v1`` over any backend.

Transport concerns live here, not in backends: request validation, status codes, chunking,
SUT-side timestamps, graceful drain. The per-token path builds protobuf messages directly from
the backend's token lists; metrics are updated once per request, never per token.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from sut._backend import (
    AnswersAtOnce,
    Backend,
    BackendError,
    ContextOverflowError,
    GenerateRequest,
    GenerationEnd,
    InvalidRequestError,
    OverloadedError,
    ScoreRequest,
    ScoresContinuations,
    UpstreamError,
)

if TYPE_CHECKING:
    from sut._metrics import SutMetrics
    from sut._security import PeerLog, ServerSecurity

SERVICE_NAME = "lpuperf.v1.Inference"
_FINISH = {
    "eos": pb.FINISH_REASON_EOS,
    "length": pb.FINISH_REASON_LENGTH,
    "cancelled": pb.FINISH_REASON_CANCELLED,
    "tool_call": pb.FINISH_REASON_TOOL_CALL,
}
_INT32_MIN = -(2**31)
# Streams one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
MAX_CONCURRENT_STREAMS = 100_000
# grpc core keeps calls that arrived before the handler loop asked for them in a backlog, and by
# default sheds it (soft limit 1,000 with random early drop, hard limit 3,000, 30 s at most): a burst
# of a few thousand streams, or a SUT running behind its load, then shows the client ``CANCELLED``
# with no trace here. Overload must show as queueing, so the backlog is as deep as the streams the
# transport admits and its calls wait as long as the client's own deadline lets them.
_SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
    ("grpc.server.max_pending_requests", MAX_CONCURRENT_STREAMS),
    ("grpc.server.max_pending_requests_hard_limit", MAX_CONCURRENT_STREAMS),
    ("grpc.server_max_unrequested_time_in_server", 7 * 24 * 3600),
]


def default_replica_id(host: str, port: int) -> str:
    """``host:port``; a wildcard bind (0.0.0.0, ::) says nothing about the replica, so the machine's name
    (a pod's name in Kubernetes) stands in for the host."""
    import socket

    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    return f"{host}:{port}"


class FinalTokens(list[int]):
    """A backend's last token list: only its GenerationEnd follows, without waiting.

    Lets the server put these tokens in the final chunk with finish_reason instead of sending
    an extra metadata-only message. Plain lists are always sent at once.
    """


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Map a backend error to the gRPC status and details the client sees."""
    if isinstance(exc, InvalidRequestError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, ContextOverflowError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, OverloadedError):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, UpstreamError):
        if exc.status == "429":
            return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
        if exc.status == "timeout":
            return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, BackendError):
        return grpc.StatusCode.INTERNAL, str(exc)
    return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


class Undecodable:
    """What the request deserializer hands over for bytes that are no valid message of the expected type.

    grpc turns an exception raised while deserializing into ``UNKNOWN: Unexpected DecodeError``; returning
    this marker instead lets the handler answer INVALID_ARGUMENT with a one-line reason.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(parse: Any, type_name: str) -> Any:
    def deserialize(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError:
            return Undecodable(f"request: {len(raw)} bytes are not a valid {type_name} protobuf message")

    return deserialize


def add_inference_service(servicer: pb_grpc.InferenceServicer, server: grpc.aio.Server) -> None:
    """Register the Inference service, like the generated helper but with non-raising deserializers."""
    handlers = {
        "Generate": grpc.unary_stream_rpc_method_handler(
            servicer.Generate,
            request_deserializer=_lenient(pb.GenerateRequest.FromString, "lpuperf.v1.GenerateRequest"),
            response_serializer=pb.GenerateChunk.SerializeToString,
        ),
        "GetArtifact": grpc.unary_unary_rpc_method_handler(
            servicer.GetArtifact,
            request_deserializer=_lenient(pb.GetArtifactRequest.FromString, "lpuperf.v1.GetArtifactRequest"),
            response_serializer=pb.ArtifactManifest.SerializeToString,
        ),
        "Score": grpc.unary_unary_rpc_method_handler(
            servicer.Score,
            request_deserializer=_lenient(pb.ScoreRequest.FromString, "lpuperf.v1.ScoreRequest"),
            response_serializer=pb.ScoreReply.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def to_backend_request(
    request: pb.GenerateRequest | Undecodable, arrival_ns: int, vocab_size: int = 0
) -> GenerateRequest:
    """Validate a wire request; raise InvalidRequestError naming the bad field.

    ``vocab_size`` > 0 (the artifact's) also refuses token ids the model has no embedding for.
    """
    if isinstance(request, Undecodable):
        raise InvalidRequestError(request.reason)
    # One pass out of the protobuf container into a list, checked there, then one copy into numpy: asking
    # numpy to read the container itself (and reduce for min/max) costs the server twice as much per request.
    id_list = list(request.input_ids)
    if not id_list:
        raise InvalidRequestError("input_ids: expected at least one token id")
    lo, hi = min(id_list), max(id_list)
    if lo < 0:
        raise InvalidRequestError(f"input_ids[{id_list.index(lo)}]: expected token ids >= 0, got {lo}")
    if vocab_size and hi >= vocab_size:
        raise InvalidRequestError(
            f"input_ids[{id_list.index(hi)}]: token id {hi} is outside the vocabulary (vocab_size {vocab_size})"
        )
    ids = np.array(id_list, dtype=np.int32)
    if request.max_new_tokens == 0:
        raise InvalidRequestError("max_new_tokens: expected > 0")
    if request.min_new_tokens > request.max_new_tokens:
        raise InvalidRequestError(
            f"min_new_tokens: expected <= max_new_tokens ({request.min_new_tokens} > {request.max_new_tokens})"
        )
    if request.eos_token_id < -1:
        raise InvalidRequestError("eos_token_id: expected -1 (artifact default) or a token id >= 0")
    if vocab_size and request.eos_token_id >= vocab_size:
        raise InvalidRequestError(
            f"eos_token_id: {request.eos_token_id} is outside the vocabulary (vocab_size {vocab_size})"
        )
    if request.sampling not in (pb.SAMPLING_GREEDY, pb.SAMPLING_RANDOM):
        raise InvalidRequestError(f"sampling: unknown value {request.sampling}; expected GREEDY (0) or RANDOM (1)")
    greedy = request.sampling == pb.SAMPLING_GREEDY
    if not greedy and not (0.0 < request.top_p <= 1.0):
        raise InvalidRequestError("top_p: expected 0 < top_p <= 1 for random sampling")
    if not greedy and not (math.isfinite(request.temperature) and request.temperature >= 0.0):
        raise InvalidRequestError(f"temperature: expected a finite value >= 0, got {request.temperature}")
    return GenerateRequest(
        request_id=request.request_id,
        input_ids=ids,
        max_new_tokens=int(request.max_new_tokens),
        min_new_tokens=int(request.min_new_tokens),
        eos_token_id=int(request.eos_token_id),
        prompt_text=request.prompt_text,
        greedy=greedy,
        temperature=float(request.temperature),
        top_p=float(request.top_p) if request.top_p else 1.0,
        seed=int(request.seed),
        arrival_ns=arrival_ns,
        allow_tool_call=request.allow_tool_call,
    )


def _checked_ids(field: str, ids: Any, vocab_size: int) -> np.ndarray:
    """A non-empty list of in-vocabulary token ids as int32, or InvalidRequestError naming ``field``."""
    id_list = list(ids)
    if not id_list:
        raise InvalidRequestError(f"{field}: expected at least one token id")
    lo, hi = min(id_list), max(id_list)
    if lo < 0:
        raise InvalidRequestError(f"{field}[{id_list.index(lo)}]: expected token ids >= 0, got {lo}")
    if vocab_size and hi >= vocab_size:
        raise InvalidRequestError(
            f"{field}[{id_list.index(hi)}]: token id {hi} is outside the vocabulary (vocab_size {vocab_size})"
        )
    return np.array(id_list, dtype=np.int32)


def to_score_request(request: pb.ScoreRequest | Undecodable, vocab_size: int = 0) -> ScoreRequest:
    """Validate a wire scoring request; raise InvalidRequestError naming the bad field."""
    if isinstance(request, Undecodable):
        raise InvalidRequestError(request.reason)
    return ScoreRequest(
        request_id=request.request_id,
        context_ids=_checked_ids("context_ids", request.context_ids, vocab_size),
        continuation_ids=_checked_ids("continuation_ids", request.continuation_ids, vocab_size),
    )


def manifest_message(backend: Backend) -> pb.ArtifactManifest:
    m = backend.manifest
    msg = pb.ArtifactManifest(
        artifact_id=m.artifact_id,
        model=m.model,
        precision=m.precision,
        max_context_tokens=m.max_context_tokens,
        max_batch=m.max_batch,
        toolchain_version=m.toolchain_version,
        target=m.target,
        checksum=m.checksum,
        eos_token_id=m.eos_token_id,
        backend=m.backend,
        manifest_json=m.model_dump_json(),
    )
    if m.timing is not None:
        msg.timing.CopyFrom(
            pb.TimingModel(
                prefill_base_s=m.timing.prefill_base_s,
                prefill_per_token_s=m.timing.prefill_per_token_s,
                decode_step_s=m.timing.decode_step_s,
            )
        )
    return msg


class _Servicer(pb_grpc.InferenceServicer):
    def __init__(self, server: SutServer) -> None:
        self._srv = server
        backend = server.backend
        self._artifact = manifest_message(backend)
        self._vocab_size = backend.manifest.vocab_size
        self._immediate = backend.immediate_answer if isinstance(backend, AnswersAtOnce) else None
        self._score = backend.score if isinstance(backend, ScoresContinuations) else None
        self.set_replica_id("")

    def set_replica_id(self, replica_id: str) -> None:
        """The id this SUT reports in GetArtifact and in each stream's first and final chunk."""
        self._replica_id = replica_id
        self._artifact.replica_id = replica_id

    async def GetArtifact(self, request: pb.GetArtifactRequest | Undecodable, context: Any) -> pb.ArtifactManifest:
        if self._srv.peers is not None:
            self._srv.peers.note(context)
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return self._artifact

    async def Score(
        self, request: pb.ScoreRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ScoreReply:
        """Log-probabilities of a continuation (ScoresContinuations); UNIMPLEMENTED when the backend has none.

        Not a LoadGen query: the request counters and latency histograms never see it."""
        srv = self._srv
        if srv.peers is not None:
            srv.peers.note(context)
        score = self._score
        if score is None:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"backend '{srv.backend.manifest.backend}' returns no log-probabilities (Score is not supported)",
            )
            return pb.ScoreReply()  # not reached: abort raises
        if srv.draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server is draining")
        try:
            scores = await score(to_score_request(request, self._vocab_size))
        except Exception as exc:
            status, details = status_for(exc)
            await context.abort(status, details)
        return pb.ScoreReply(logprobs=scores.logprobs, greedy=scores.greedy, replica_id=self._replica_id)

    async def Generate(
        self, request: pb.GenerateRequest | Undecodable, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        # A coroutine writing to the context, not an async generator: grpc then skips its per-call
        # generator machinery (the loop's async-generator hooks and a weak-set entry per stream).
        srv = self._srv
        write = context.write
        arrival = time.time_ns()
        if srv.peers is not None:
            srv.peers.note(context)
        if srv.draining:
            srv.count("UNAVAILABLE")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "server is draining")
        srv.inflight += 1
        code = "OK"
        first_ns = 0
        n_sent = 0
        try:
            try:
                req = to_backend_request(request, arrival, self._vocab_size)
            except InvalidRequestError as exc:
                code = "INVALID_ARGUMENT"
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            chunk = srv.chunk_size
            batch_first = srv.batch_first_token
            Chunk = pb.GenerateChunk
            held: list[int] = []  # tokens kept back: the final chunk's tail, or a batched first token
            end: GenerationEnd | None = None
            last_ns = 0
            # Until the first answer token went out, each message is split at the backend's reasoning count
            # (one check per message; a stream without reasoning stops asking after its first message).
            r_open = True
            answer = self._immediate(req) if self._immediate is not None else None
            if answer is not None:
                # The whole answer at once (see AnswersAtOnce): what the loop below does with a lone
                # FinalTokens, without an async generator per stream.
                held, end = answer
                if held:
                    first_ns = last_ns = time.time_ns()
                    take = chunk if batch_first else 1
                    if len(held) > take:
                        msg = self._first_chunk(held[:take], arrival, first_ns)
                        r_open = _mark_reasoning(msg, req.output_reasoning_tokens, 0, take, first_ns)
                        await write(msg)
                        n_sent = take
                        held = held[take:]
            else:
                gen = srv.backend.generate(req)
                try:
                    async for item in gen:
                        if isinstance(item, GenerationEnd):
                            end = item
                            continue
                        if not item:
                            continue
                        last_ns = time.time_ns()
                        final = isinstance(item, FinalTokens)
                        # Backends hand over fresh lists (never mutated here), so no copy on the hot path.
                        toks: list[int] = item if type(item) is list or final else list(item)  # type: ignore[assignment]
                        if held:
                            toks = held + toks
                            held = []
                        if not first_ns:
                            first_ns = last_ns
                        if n_sent == 0:
                            # The first token goes out alone and at once, unless the fault batches it.
                            take = chunk if batch_first else 1
                            if batch_first and len(toks) < chunk and not final:
                                held = toks
                                continue
                            if final and len(toks) <= take:
                                held = toks  # everything fits the final chunk, which carries the first fields
                                break
                            msg = self._first_chunk(toks[:take], arrival, first_ns)
                            r_open = _mark_reasoning(msg, req.output_reasoning_tokens, 0, take, first_ns)
                            await write(msg)
                            n_sent = take
                            toks = toks[take:]
                        # Later tokens go out as handed over, one message per hand-over: tokens handed over
                        # together share one emission time, so splitting them would only add messages (most
                        # of the server's CPU per stream is grpc's per-message work) and no timing. The last
                        # hand-over rides in the final chunk (only GenerationEnd follows).
                        if final:
                            held = toks
                        elif toks:
                            msg = Chunk(token_ids=toks)
                            if r_open:
                                r_open = _mark_reasoning(msg, req.output_reasoning_tokens, n_sent, len(toks), last_ns)
                            await write(msg)
                            n_sent += len(toks)
                    if end is None:
                        async for item in gen:  # drain a GenerationEnd after a FinalTokens break
                            if isinstance(item, GenerationEnd):
                                end = item
                finally:
                    await gen.aclose()  # type: ignore[attr-defined]
            total = n_sent + len(held)
            finish = (end.finish_reason if end is not None else "") or "length"
            n_tokens = end.n_tokens if end is not None and end.n_tokens is not None else total
            final_chunk = Chunk(
                token_ids=held,
                finish_reason=_FINISH.get(finish, pb.FINISH_REASON_LENGTH),
                sut_last_token_ns=last_ns or time.time_ns(),
                n_tokens=n_tokens,
                replica_id=self._replica_id,
            )
            if n_sent == 0:
                final_chunk.sut_arrival_ns = arrival
                final_chunk.sut_first_token_ns = first_ns
            if end is not None:
                if end.output_ids is not None:
                    final_chunk.output_ids.extend(end.output_ids)
                if end.cached_prompt_tokens:
                    final_chunk.cached_prompt_tokens = end.cached_prompt_tokens
            if r_open and held:
                _mark_reasoning(final_chunk, req.output_reasoning_tokens, n_sent, len(held), last_ns or time.time_ns())
            n_reasoning = end.n_reasoning_tokens if end is not None else None
            if n_reasoning is None:
                n_reasoning = min(req.output_reasoning_tokens, total)
            if n_reasoning:
                final_chunk.n_reasoning_tokens = n_reasoning
            await write(final_chunk)
            n_sent = total
        except grpc.aio.AbortError:
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except Exception as exc:
            status, details = status_for(exc)
            code = status.name
            await context.abort(status, details)
        finally:
            srv.finish(code, arrival, first_ns, n_sent)

    def _first_chunk(self, tokens: list[int], arrival_ns: int, first_ns: int) -> pb.GenerateChunk:
        """The stream's first message: its first token(s) and the SUT-side times LoadGen's TTFT is checked by."""
        return pb.GenerateChunk(
            token_ids=tokens, sut_arrival_ns=arrival_ns, sut_first_token_ns=first_ns, replica_id=self._replica_id
        )


def _mark_reasoning(msg: pb.GenerateChunk, n_reasoning: int, pos: int, n: int, now_ns: int) -> bool:
    """Mark how many of a message's ``n`` tokens (output positions ``pos``..) are reasoning; stamp the first
    answer token's SUT time on the message that carries it. True while the message held reasoning only."""
    left = n_reasoning - pos
    if left >= n:
        msg.reasoning_tokens = n
        return True
    if left > 0:
        msg.reasoning_tokens = left
    if n_reasoning:
        msg.sut_first_answer_ns = now_ns
    return False


class SutServer:
    """A grpc.aio server over one backend, with health and graceful drain."""

    def __init__(
        self,
        backend: Backend,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chunk_size: int | None = None,
        metrics: SutMetrics | None = None,
        security: ServerSecurity | None = None,
        replica_id: str | None = None,
    ) -> None:
        self.backend = backend
        self.security = security
        # None: host:port once bound (the machine's name instead of a wildcard host); see default_replica_id.
        self.replica_id = replica_id
        # Set at start when TLS is on: notes each connection once (mTLS subject log, session count).
        self.peers: PeerLog | None = None
        self.host = host
        self.requested_port = port
        self.chunk_size = chunk_size or backend.manifest.chunk_size
        self.batch_first_token = backend.manifest.faults.batch_first_token
        self.metrics = metrics
        self.port = 0
        self.draining = False
        self.inflight = 0
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._stopped: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> str:
        self._stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        from sut._security import PeerLog, bearer_interceptor, noting_health_servicer

        sec = self.security
        token = sec.token() if sec is not None else None  # read before anything starts: a bad file is one line
        credentials = None
        if sec is not None and sec.tls:
            sec.check_pem_pair()
            credentials = sec.server_credentials(self._tls_handshake)
            self.peers = PeerLog(sec.mutual_tls, self.metrics)
        await self.backend.start()
        interceptors = [] if token is None else [bearer_interceptor(token, self._auth_refused)]
        server = grpc.aio.server(options=list(_SERVER_OPTIONS), interceptors=interceptors)
        servicer = _Servicer(self)
        add_inference_service(servicer, server)
        self._health = health_servicer = noting_health_servicer(self.peers)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        try:
            try:
                address = f"{self.host}:{self.requested_port}"
                if credentials is not None:
                    self.port = server.add_secure_port(address, credentials)
                else:
                    self.port = server.add_insecure_port(address)
            except RuntimeError as exc:  # grpc reports a failed bind as RuntimeError
                raise OSError(f"could not bind {self.host}:{self.requested_port}: {exc}") from None
            if self.port == 0:
                raise OSError(f"could not bind {self.host}:{self.requested_port}")
            await server.start()
        except BaseException:
            await self.backend.stop()
            raise
        self._server = server
        self.replica_id = self.replica_id or default_replica_id(self.host, self.port)
        servicer.set_replica_id(self.replica_id)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        if self.metrics is not None:
            self.metrics.bind(self)
        return self.address

    def _auth_refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.auth_refused("grpc", reason)

    def _tls_handshake(self) -> None:
        if self.metrics is not None:
            self.metrics.tls_handshake()

    def count(self, code: str) -> None:
        if self.metrics is not None:
            self.metrics.request(code)

    def finish(self, code: str, arrival_ns: int, first_ns: int, n_tokens: int) -> None:
        """Book-keeping at the end of every Generate that got past the drain check."""
        self.inflight -= 1
        if self.metrics is not None:
            self.metrics.finished(code, arrival_ns, first_ns, time.time_ns(), n_tokens)
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, grace_s: float = 10.0) -> None:
        """Refuse new work (UNAVAILABLE, health NOT_SERVING), let streams finish, then stop."""
        if self.draining:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self.draining = True
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.inflight > 0 and loop.time() < deadline:
            await asyncio.sleep(min(0.01, max(0.0, deadline - loop.time())))
        if self._server is not None:
            await self._server.stop(grace=0.5)
        await self.backend.stop()
        if self._stopped is not None:
            self._stopped.set()

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()
