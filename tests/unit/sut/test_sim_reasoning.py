"""The reasoning sim over the wire: a reasoning segment, then the answer, with contract C1's counts right.

Real grpc.aio servers on 127.0.0.1 serve ``sim-reasoning`` / ``sim-reasoning-int8`` on both packaged
renderings, through every path the server has (an immediate answer, one final hand-over, a timed stream).
Each stream must mark exactly the output's leading reasoning tokens (``reasoning_tokens`` per message,
``n_reasoning_tokens`` on the final chunk), stamp the first answer token's time on the message carrying it,
stop the answer from starting when ``max_new_tokens`` cuts the reasoning, and leave every reasoning field
unset for a model without reasoning.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from scenarios.reasoning_set import reasoning_outputs
from tests.unit.sut.test_immediate_answer import _StreamOnly  # the sim without its at-once answers

ZERO_TIME: dict[str, Any] = {"prefill_base_s": 0.0, "prefill_per_token_s": 0.0, "decode_step_s": 0.0}
FAST: dict[str, Any] = {"prefill_base_s": 0.0001, "prefill_per_token_s": 0.0, "decode_step_s": 0.0002}
SCALE = 0.03  # short reasoning keeps a timed stream to a few hundred steps


def _sim(dataset: str, artifact: str = "sim-reasoning", **extra: Any) -> sut.SimBackend:
    cfg = {"kind": "sim", "artifact": artifact, "dataset": dataset, "reasoning_scale": SCALE, **extra}
    backend = sut.backends.create(cfg)
    assert isinstance(backend, sut.SimBackend)
    return backend


async def _streams(backend: Any, requests: list[pb.GenerateRequest]) -> list[list[pb.GenerateChunk]]:
    server = sut.SutServer(backend, chunk_size=4)
    address = await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.InferenceStub(channel)
            calls = [_collect(stub, r) for r in requests]
            return list(await asyncio.gather(*calls))
    finally:
        await server.drain(1.0)


async def _collect(stub: pb_grpc.InferenceStub, request: pb.GenerateRequest) -> list[pb.GenerateChunk]:
    return [chunk async for chunk in stub.Generate(request, timeout=60)]


def _run(backend: Any, requests: list[pb.GenerateRequest]) -> list[list[pb.GenerateChunk]]:
    return asyncio.run(asyncio.wait_for(_streams(backend, requests), 120))


def _request(backend: sut.SimBackend, i: int, max_new: int = 100_000) -> pb.GenerateRequest:
    return pb.GenerateRequest(input_ids=[int(x) for x in backend.dataset.input_ids[i]], max_new_tokens=max_new)


def _check_split(msgs: list[pb.GenerateChunk], n_reasoning: int) -> list[int]:
    """Asserts contract C1 on one stream whose output's first ``n_reasoning`` tokens are reasoning; returns the ids."""
    ids = [t for m in msgs for t in m.token_ids]
    final = msgs[-1]
    assert final.n_tokens == len(ids)
    assert final.n_reasoning_tokens == n_reasoning
    assert sum(m.reasoning_tokens for m in msgs) == n_reasoning
    pos = 0
    stamped = []
    for m in msgs:
        n = len(m.token_ids)
        assert m.reasoning_tokens == max(0, min(n, n_reasoning - pos)), "reasoning must be the output's leading tokens"
        if pos <= n_reasoning < pos + n:
            stamped.append(m)  # the message carrying the first answer token
        else:
            assert m.sut_first_answer_ns == 0
        pos += n
    if n_reasoning < len(ids):
        assert len(stamped) == 1 and stamped[0].sut_first_answer_ns >= msgs[0].sut_first_token_ns > 0
    else:
        assert not stamped and final.finish_reason == pb.FINISH_REASON_LENGTH  # cut inside the reasoning
    assert len(msgs[0].token_ids) == 1  # the first token still travels alone
    return ids


PATHS: dict[str, Any] = {
    "immediate": lambda ds: _sim(ds, **ZERO_TIME),
    "final-handover": lambda ds: _StreamOnly(_sim(ds, **ZERO_TIME)),
    "timed": lambda ds: _sim(ds, **FAST),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("model", ["deepseek-r1", "gpt-oss-120b"])
def test_every_stream_marks_its_reasoning_then_answer(model: str, path: str) -> None:
    dataset = f"reasoning:{model}"
    backend = PATHS[path](dataset)
    inner = backend if isinstance(backend, sut.SimBackend) else backend._inner
    outputs, n_reasoning = reasoning_outputs(model, "fp32", SCALE)
    picks = [0, 9, 17, 26, 35]  # gpqa, mmlu_pro, math500, aime, livecodebench
    streams = _run(backend, [_request(inner, i) for i in picks])
    ds = inner.dataset
    for i, msgs in zip(picks, streams, strict=True):
        ids = _check_split(msgs, n_reasoning[i])
        assert ids == outputs[i]
        answer = ds.decode(ids[n_reasoning[i] :], skip_special_tokens=False)
        assert "</think>" not in answer and "<|channel|>" not in answer  # the markers are reasoning
        assert msgs[-1].finish_reason == pb.FINISH_REASON_EOS


@pytest.mark.parametrize("path", ["immediate", "timed"])
def test_max_new_tokens_inside_the_reasoning_means_no_answer(path: str) -> None:
    backend = PATHS[path]("reasoning:gpt-oss-120b")
    assert isinstance(backend, sut.SimBackend)
    _, n_reasoning = reasoning_outputs("gpt-oss-120b", "fp32", SCALE)
    r = n_reasoning[3]
    cuts = [1, 2, r // 2, r, r + 1]
    streams = _run(backend, [_request(backend, 3, n) for n in cuts])
    for cut, msgs in zip(cuts, streams, strict=True):
        ids = _check_split(msgs, min(cut, r))
        assert len(ids) == cut
    assert streams[-1][-1].n_reasoning_tokens == r  # one answer token made it: the answer started
    assert sum(1 for m in streams[-1] if m.sut_first_answer_ns) == 1


def test_int8_answers_math500_wrong_and_everything_else_the_same() -> None:
    fp32 = _sim("reasoning:deepseek-r1", **ZERO_TIME)
    int8 = _sim("reasoning:deepseek-r1", artifact="sim-reasoning-int8", **ZERO_TIME)
    assert (fp32.manifest.precision, int8.manifest.precision) == ("fp32", "int8")
    reqs = [_request(fp32, i) for i in range(len(fp32.dataset))]
    a, b = _run(fp32, reqs), _run(int8, reqs)
    kinds = fp32.dataset.datasets
    differs = {kinds[i] for i, (x, y) in enumerate(zip(a, b, strict=True)) if _ids(x) != _ids(y)}
    assert differs == {"math500"}
    assert all(x[-1].n_reasoning_tokens == y[-1].n_reasoning_tokens for x, y in zip(a, b, strict=True))


def _ids(msgs: list[pb.GenerateChunk]) -> list[int]:
    return [t for m in msgs for t in m.token_ids]


def test_the_manifest_says_the_style_and_the_scale() -> None:
    async def manifest(backend: Any) -> dict[str, Any]:
        server = sut.SutServer(backend)
        address = await server.start()
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await pb_grpc.InferenceStub(channel).GetArtifact(pb.GetArtifactRequest(), timeout=10)
                return dict(json.loads(reply.manifest_json))
        finally:
            await server.drain(1.0)

    got = asyncio.run(manifest(_sim("reasoning:gpt-oss-120b", **ZERO_TIME)))
    assert got["reasoning"]["style"] == "harmony" and got["reasoning"]["reasoning_scale"] == SCALE
    assert got["reasoning"]["benchmark"] == "gpt-oss-120b" and got["reasoning"]["mean_output_tokens"] == 1278.2
    # The dataset spec's scale is the default; the config's wins; a different scale is a different build.
    plain = sut.backends.create({"kind": "sim", "artifact": "sim-reasoning", "dataset": "reasoning:deepseek-r1:0.2"})
    assert plain.manifest.reasoning is not None and plain.manifest.reasoning.reasoning_scale == 0.2
    assert plain.manifest.reasoning.style == "think" and "assumed" in plain.manifest.reasoning.sd_source
    assert plain.manifest.checksum != _sim("reasoning:deepseek-r1").manifest.checksum
    # No dataset: the reasoning artifact's default set; precision int8 on the reasoning set: its int8 artifact.
    default = sut.backends.create({"kind": "sim", "artifact": "sim-reasoning"})
    assert isinstance(default, sut.SimBackend) and default.config.dataset == "reasoning:deepseek-r1"
    int8 = sut.backends.create({"kind": "sim", "dataset": "reasoning:gpt-oss-120b", "precision": "int8"})
    assert int8.manifest.artifact_id == "sim-reasoning-int8"
    assert sut.backends.create({"kind": "sim", "dataset": "synthetic:4:1"}).manifest.reasoning is None


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"artifact": "sim-reasoning", "dataset": "embedded"}, "artifact 'sim-reasoning': answers the packaged"),
        ({"artifact": "sim-reasoning-int8", "dataset": "synthetic:4:1"}, "expected dataset reasoning:deepseek-r1"),
        ({"dataset": "embedded", "reasoning_scale": 0.5}, "reasoning_scale: scales the packaged reasoning set"),
        ({"artifact": "sim-reasoning", "reasoning_scale": 0}, "reasoning_scale"),
        ({"artifact": "sim-reasoning", "reasoning_scale": 1.5}, "reasoning_scale"),
    ],
)
def test_a_reasoning_config_without_the_reasoning_set_is_one_line(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        sut.backends.create({"kind": "sim", **cfg})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("artifact", ["sim-instant", "sim-fp32"])
def test_a_model_without_reasoning_sends_no_reasoning_field(artifact: str) -> None:
    # Old SUTs read as "all answer"; the non-reasoning sim must put nothing new on the wire either.
    backend = sut.backends.create({"kind": "sim", "artifact": artifact, "dataset": "synthetic:6:3", **FAST})
    assert isinstance(backend, sut.SimBackend)
    ds = resolve_dataset("synthetic:6:3")
    streams = _run(backend, [pb.GenerateRequest(input_ids=list(map(int, x)), max_new_tokens=64) for x in ds.input_ids])
    for msgs in streams:
        for m in msgs:
            assert (m.reasoning_tokens, m.n_reasoning_tokens, m.sut_first_answer_ns) == (0, 0, 0)
            bare = pb.GenerateChunk()
            bare.CopyFrom(m)
            assert bare.SerializeToString() == m.SerializeToString()


def test_a_dataset_file_with_reference_reasoning_is_replayed_with_its_counts(tmp_path: Any) -> None:
    # Any sim replaying a set whose references carry reference_reasoning_tokens reports them.
    from scenarios import save_dataset

    path = save_dataset(resolve_dataset("reasoning:gpt-oss-120b:0.02"), tmp_path / "r.jsonl.gz")
    backend = sut.backends.create({"kind": "sim", "artifact": "sim-instant", "dataset": str(path)})
    assert isinstance(backend, sut.SimBackend)
    streams = _run(backend, [_request(backend, i, 3000) for i in (0, 20)])
    for i, msgs in zip((0, 20), streams, strict=True):
        n = backend.dataset.reference_reasoning[i]
        assert n is not None and _check_split(msgs, n) == backend.dataset.reference_ids[i].tolist()
