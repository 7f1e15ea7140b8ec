"""The Score RPC over real gRPC on loopback: the sim's log-probabilities, validation, refusal, planted fault."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar

import grpc
import numpy as np
import pytest
from pydantic import BaseModel

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)


def _answer(index: int) -> list[int]:
    """The sim's greedy answer to sample ``index`` (its reference here), trailing EOS dropped."""
    ids = DS.reference_ids[index].tolist()
    return ids[:-1] if ids and ids[-1] == DS.eos_token_id else ids


def _score(stub: pb_grpc.InferenceStub, context: Sequence[int], continuation: Sequence[int]) -> pb.ScoreReply:
    request = pb.ScoreRequest(context_ids=[int(i) for i in context], continuation_ids=[int(i) for i in continuation])
    reply: pb.ScoreReply = stub.Score(request, timeout=30)
    return reply


@pytest.fixture()
def stub() -> Iterator[pb_grpc.InferenceStub]:
    with sut.start_embedded({"kind": "sim", "dataset": DATASET}) as server, grpc.insecure_channel(server.address) as ch:
        yield pb_grpc.InferenceStub(ch)


def test_the_sims_own_answer_is_greedy_and_outscores_any_changed_token(stub: pb_grpc.InferenceStub) -> None:
    prompt, answer = DS.input_ids[0].tolist(), _answer(0)
    assert len(answer) >= 3
    own = _score(stub, prompt, answer)
    assert list(own.greedy) == [True] * len(answer)
    assert len(own.logprobs) == len(answer) and all(lp < 0 for lp in own.logprobs)
    changed = list(answer)
    changed[1] = next(t for t in _answer(1) + _answer(2) if t != answer[1])
    other = _score(stub, prompt, changed)
    assert list(other.greedy)[:2] == [True, False]
    assert other.logprobs[1] < own.logprobs[1]
    assert sum(other.logprobs) < sum(own.logprobs)
    again = _score(stub, prompt, changed)  # deterministic
    assert list(again.logprobs) == list(other.logprobs)
    # After the continuation left the answer the greedy token is the sim's pseudo token: exactly one per position
    # scores as greedy, and it is the argmax there.
    vocab = sorted({int(t) for ids in DS.reference_ids for t in ids if t != DS.eos_token_id})
    at_2 = [_score(stub, prompt, [*changed[:2], t]) for t in vocab]
    flags = [r.greedy[2] for r in at_2]
    assert sum(flags) == 1
    best = int(np.argmax([r.logprobs[2] for r in at_2]))
    assert flags[best]


def test_bad_scoring_requests_name_the_field(stub: pb_grpc.InferenceStub) -> None:
    with pytest.raises(grpc.RpcError) as empty:
        _score(stub, DS.input_ids[0].tolist(), [])
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "continuation_ids" in str(empty.value.details())
    with pytest.raises(grpc.RpcError) as negative:
        _score(stub, [1, -4], [1])
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "context_ids[1]" in str(negative.value.details())
    with pytest.raises(grpc.RpcError) as too_long:
        _score(stub, [1] * 5000, [1])
    assert too_long.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


class _NoScoring:
    """A backend without the scoring capability: the sim's generation, nothing else."""

    config_model: ClassVar[type[BaseModel]] = sut.SimConfig

    def __init__(self, dataset: str = DATASET) -> None:
        self._sim = sut.SimBackend(sut.SimConfig(artifact="sim-instant", dataset=dataset))

    @property
    def manifest(self) -> sut.ArtifactManifest:
        return self._sim.manifest

    async def start(self) -> None:
        await self._sim.start()

    async def stop(self) -> None:
        await self._sim.stop()

    def generate(self, request: sut.GenerateRequest) -> AsyncIterator[Sequence[int] | sut.GenerationEnd]:
        return self._sim.generate(request)

    def queue_depth(self) -> int:
        return 0

    def active_batch(self) -> int:
        return 0


def test_a_backend_without_scoring_answers_unimplemented_and_still_generates() -> None:
    backend: Any = _NoScoring()
    assert not isinstance(backend, sut.ScoresContinuations)
    with sut.EmbeddedServer(backend) as server, grpc.insecure_channel(server.address) as ch:
        stub = pb_grpc.InferenceStub(ch)
        with pytest.raises(grpc.RpcError) as refused:
            _score(stub, DS.input_ids[0].tolist(), _answer(0))
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "log-probabilities" in str(refused.value.details())
        request = pb.GenerateRequest(input_ids=DS.input_ids[0].tolist(), max_new_tokens=4, eos_token_id=-1)
        assert sum(len(c.token_ids) for c in stub.Generate(request, timeout=30)) > 0


def test_planted_fault_inverted_logprobs_ranks_the_greedy_token_lowest() -> None:
    faults = {"inverted_logprobs": True}
    with (
        sut.start_embedded({"kind": "sim", "dataset": DATASET, "faults": faults}) as server,
        grpc.insecure_channel(server.address) as ch,
    ):
        stub = pb_grpc.InferenceStub(ch)
        prompt, answer = DS.input_ids[0].tolist(), _answer(0)
        own = _score(stub, prompt, answer)
        changed = [answer[0], next(t for t in _answer(1) + _answer(2) if t != answer[1])]
        other = _score(stub, prompt, changed)
    assert list(own.greedy) == [True] * len(answer)  # the flags still say which token is greedy ...
    assert other.logprobs[1] > own.logprobs[1]  # ... but the log-probabilities rank it last
