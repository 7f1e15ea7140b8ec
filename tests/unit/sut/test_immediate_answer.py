"""A backend that answers at once (sut.AnswersAtOnce) puts the same messages on the wire as its stream.

The server sends an immediate answer without iterating ``generate``; every field LoadGen and the
compliance checks read (token ids per message, which message carries the first-token times, finish
reason, n_tokens, output_ids, status) must match what the streaming path sends for the same request,
planted faults included, over a real grpc.aio server on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import grpc
import pytest

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset

DATASET = "synthetic:8:5"
DS = resolve_dataset(DATASET)
FAULTS = (
    None,
    "batch_first_token",
    "wrong_first_token",
    "n_tokens_off_by_one",
    "duplicate_trailing_eos",
    "mid_sequence_eos",
)


class _StreamOnly:
    """The sim without its AnswersAtOnce capability: every answer goes through generate()."""

    config_model: ClassVar[type[sut.SimConfig]] = sut.SimConfig

    def __init__(self, inner: sut.SimBackend) -> None:
        self._inner = inner

    @property
    def manifest(self) -> sut.ArtifactManifest:
        return self._inner.manifest

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    def generate(self, request: sut.GenerateRequest) -> AsyncIterator[Sequence[int] | sut.GenerationEnd]:
        return self._inner.generate(request)

    def queue_depth(self) -> int:
        return 0

    def active_batch(self) -> int:
        return 0


def _sim(fault: str | None) -> sut.SimBackend:
    faults = sut.FaultFlags(**({fault: True} if fault else {}))
    backend = sut.backends.create({"kind": "sim", "artifact": "sim-instant", "dataset": DATASET, "faults": faults})
    assert isinstance(backend, sut.SimBackend)
    return backend


def _requests() -> list[pb.GenerateRequest]:
    reqs = [
        pb.GenerateRequest(input_ids=[int(x) for x in DS.input_ids[i]], max_new_tokens=n)
        for i in range(len(DS))
        for n in (1, 2, 5, 1000)
    ]
    reqs.append(pb.GenerateRequest(input_ids=[3, 1, 4, 1, 5], max_new_tokens=1000))  # not in the dataset
    reqs.append(pb.GenerateRequest(input_ids=[3] * 70_000, max_new_tokens=10))  # over the context: an error
    return reqs


def _wire(chunk: pb.GenerateChunk) -> tuple[Any, ...]:
    """A message's fields minus the clock readings (only whether each time is set)."""
    return (
        list(chunk.token_ids),
        bool(chunk.sut_arrival_ns),
        bool(chunk.sut_first_token_ns),
        bool(chunk.sut_last_token_ns),
        chunk.finish_reason,
        chunk.n_tokens,
        list(chunk.output_ids),
    )


async def _answers(backend: Any) -> list[tuple[Any, ...]]:
    server = sut.SutServer(backend, chunk_size=4)
    address = await server.start()
    out: list[tuple[Any, ...]] = []
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.InferenceStub(channel)
            for req in _requests():
                msgs: list[tuple[Any, ...]] = []
                status = grpc.StatusCode.OK
                try:
                    async for chunk in stub.Generate(req, timeout=10):
                        msgs.append(_wire(chunk))
                except grpc.aio.AioRpcError as exc:
                    status = exc.code()
                out.append((status, msgs))
    finally:
        await server.drain(1.0)
    return out


@pytest.mark.parametrize("fault", FAULTS)
def test_immediate_answer_sends_what_the_stream_sends(fault: str | None) -> None:
    immediate = asyncio.run(asyncio.wait_for(_answers(_sim(fault)), 60))
    streamed = asyncio.run(asyncio.wait_for(_answers(_StreamOnly(_sim(fault))), 60))
    assert immediate == streamed
    statuses = [status for status, _ in immediate]
    assert statuses[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED and set(statuses[:-1]) == {grpc.StatusCode.OK}
    long_answers = [msgs for (_, msgs) in immediate[3:-2:4]]  # max_new_tokens 1000: first message alone
    first = long_answers[0][0]
    assert first[1] and first[2]  # the first message carries the arrival and first-token times
    assert len(first[0]) == (4 if fault == "batch_first_token" else 1)


def test_only_a_zero_time_sim_answers_at_once() -> None:
    instant = _sim(None)
    timed = sut.backends.create({"kind": "sim", "artifact": "sim-fp32", "dataset": DATASET})
    assert isinstance(instant, sut.AnswersAtOnce) and isinstance(timed, sut.AnswersAtOnce)
    assert not isinstance(_StreamOnly(instant), sut.AnswersAtOnce)
    req = sut.GenerateRequest(request_id="r", input_ids=DS.input_ids[0], max_new_tokens=1000)
    answer = instant.immediate_answer(req)
    assert answer is not None and answer[0] == instant.output_for(req)[0]
    assert timed.immediate_answer(req) is None
