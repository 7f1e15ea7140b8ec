"""Tool calls in the sim: only when the request allows one, for a deterministic share of prompts, over gRPC.

A real in-process gRPC server on loopback: the final chunk says FINISH_REASON_TOOL_CALL, the decision is the
same for the same prompt and seed in any process, and without ``allow_tool_call`` every answer is exactly
the one the sim gave before tool calls existed (the reference output, finish reason EOS or LENGTH).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

import sut
from loadgen_harness import _http_transport
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from sut._artifact import ToolCallSettings
from sut._tool_calls import arguments_text, calls_tool, escaped

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)


@pytest.fixture(scope="module")
def stub() -> Iterator[pb_grpc.InferenceStub]:
    server = sut.start_embedded({"kind": "sim", "dataset": DATASET, "artifact": "sim-instant"})
    channel = grpc.insecure_channel(server.address)
    try:
        yield pb_grpc.InferenceStub(channel)
    finally:
        channel.close()
        server.stop()


def _generate(stub: pb_grpc.InferenceStub, ids: Any, max_new: int = 1000, **kw: Any) -> list[pb.GenerateChunk]:
    req = pb.GenerateRequest(input_ids=[int(i) for i in ids], max_new_tokens=max_new, eos_token_id=-1, **kw)
    return list(stub.Generate(req, timeout=30))


def _prompts(n: int) -> list[list[int]]:
    return [[1 + (i * 7 + k) % 300 for k in range(5 + i % 11)] for i in range(n)]


def test_tool_calls_follow_the_rate_and_only_with_allow_tool_call(stub: pb_grpc.InferenceStub) -> None:
    prompts = _prompts(300)
    finishes = []
    for ids in prompts:
        chunks = _generate(stub, ids, allow_tool_call=True)
        finish = chunks[-1].finish_reason
        finishes.append(finish)
        if finish == pb.FINISH_REASON_TOOL_CALL:
            tokens = [t for c in chunks for t in c.token_ids]
            assert len(tokens) == chunks[-1].n_tokens == 24 and DS.eos_token_id not in tokens
    n_calls = finishes.count(pb.FINISH_REASON_TOOL_CALL)
    assert 0.4 * len(prompts) < n_calls < 0.6 * len(prompts)  # rate 0.5: binomial sd ~9 of 300
    assert set(finishes) <= {pb.FINISH_REASON_TOOL_CALL, pb.FINISH_REASON_EOS, pb.FINISH_REASON_LENGTH}
    # The very same decisions again (deterministic), and none at all without allow_tool_call.
    again = [_generate(stub, ids, allow_tool_call=True)[-1].finish_reason for ids in prompts[:60]]
    assert again == finishes[:60]
    plain = [_generate(stub, ids)[-1].finish_reason for ids in prompts]
    assert pb.FINISH_REASON_TOOL_CALL not in plain


def test_without_allow_tool_call_answers_are_the_references(stub: pb_grpc.InferenceStub) -> None:
    for i in range(len(DS)):
        chunks = _generate(stub, DS.input_ids[i])
        assert [t for c in chunks for t in c.token_ids] == DS.reference_ids[i].tolist()
        assert chunks[-1].finish_reason == pb.FINISH_REASON_EOS and chunks[-1].cached_prompt_tokens == 0
    # A dataset prompt that draws a tool call answers with one instead of its reference.
    called = [i for i in range(len(DS)) if calls_tool(ToolCallSettings(), DS.input_ids[i].tobytes(), 0)]
    assert called, "no dataset prompt draws a tool call at rate 0.5"
    chunks = _generate(stub, DS.input_ids[called[0]], allow_tool_call=True)
    assert chunks[-1].finish_reason == pb.FINISH_REASON_TOOL_CALL


def test_a_tool_call_cut_by_max_new_tokens_finishes_with_length(stub: pb_grpc.InferenceStub) -> None:
    called = next(ids for ids in _prompts(100) if calls_tool(ToolCallSettings(), np.array(ids, np.int32).tobytes(), 0))
    chunks = _generate(stub, called, max_new=10, allow_tool_call=True)
    assert chunks[-1].finish_reason == pb.FINISH_REASON_LENGTH and chunks[-1].n_tokens == 10


def test_rate_tokens_and_seed_are_artifact_options() -> None:
    prompts = [np.array(p, dtype=np.int32) for p in _prompts(200)]

    def decisions(**cfg: Any) -> list[bool]:
        sim = sut.SimBackend(sut.SimConfig(dataset=DATASET, artifact="sim-instant", **cfg))
        out = []
        for ids in prompts:
            req = sut.GenerateRequest(request_id="r", input_ids=ids, max_new_tokens=500, allow_tool_call=True)
            answer = sim.immediate_answer(req)
            assert answer is not None
            out.append(answer[1].finish_reason == "tool_call")
            assert req.output_tool_call == out[-1]
            if out[-1]:
                assert len(answer[0]) == sim.manifest.tool_calls.tokens  # type: ignore[union-attr]
        return out

    assert not any(decisions(tool_call_rate=0.0))
    assert all(decisions(tool_call_rate=1.0, tool_call_tokens=7))
    base, other_seed = decisions(), decisions(tool_call_seed=3)
    assert base != other_seed and abs(sum(base) - sum(other_seed)) < 40
    manifest = sut.SimBackend(sut.SimConfig(dataset=DATASET, tool_call_rate=0.25, tool_call_tokens=9)).manifest
    assert manifest.tool_calls == ToolCallSettings(rate=0.25, tokens=9, seed=0)


def test_the_decision_is_the_same_in_another_process() -> None:
    prompts = _prompts(40)
    here = [calls_tool(ToolCallSettings(), np.array(p, np.int32).tobytes(), 5) for p in prompts]
    code = (
        "import numpy as np, sys, json; from sut._tool_calls import calls_tool; from sut._artifact import "
        "ToolCallSettings as T; ps=json.loads(sys.argv[1]); "
        "print(json.dumps([calls_tool(T(), np.array(p, np.int32).tobytes(), 5) for p in ps]))"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(prompts)], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == here and any(here) and not all(here)


def test_arguments_pieces_escape_to_the_whole() -> None:
    text = 'say "hi"\n\\ ünï'
    pieces = [text[:3], text[3:9], text[9:]]
    streamed = '{"query": "' + "".join(escaped(p) for p in pieces) + '"}'
    assert streamed == arguments_text(text)
    assert json.loads(streamed) == {"query": text}


def test_the_http_transport_finish_values_are_the_protos() -> None:
    assert _http_transport._FINISH == {
        "eos": pb.FINISH_REASON_EOS,
        "length": pb.FINISH_REASON_LENGTH,
        "tool_call": pb.FINISH_REASON_TOOL_CALL,
    }
