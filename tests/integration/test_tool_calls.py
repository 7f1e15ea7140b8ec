"""Tool calls from a real ``lpuperf serve`` sim: over gRPC, over its HTTP front read by the harness's
``--transport openai-http`` client, and through a relay SUT: the same prompts get the same decisions on every
path, each ending with FINISH_REASON_TOOL_CALL, and none without ``allow_tool_call``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from loadgen_harness._http_transport import HttpCalls
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from tests.integration.test_openai_relay import DATASET, _serve, _stop

pytestmark = pytest.mark.integration

DS = resolve_dataset(DATASET)
N_PROMPTS = 40


def _prompts() -> list[list[int]]:
    return [DS.input_ids[i % len(DS)][: 8 + i].tolist() for i in range(N_PROMPTS)]


def _request(ids: list[int], allow: bool) -> pb.GenerateRequest:
    return pb.GenerateRequest(input_ids=ids, max_new_tokens=64, eos_token_id=-1, allow_tool_call=allow)


def _grpc_finishes(address: str, allow: bool) -> list[tuple[int, int]]:
    """(finish reason, tokens) per prompt."""
    out = []
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.InferenceStub(ch)
        for ids in _prompts():
            chunks = list(stub.Generate(_request(ids, allow), timeout=60))
            out.append((chunks[-1].finish_reason, sum(len(c.token_ids) for c in chunks)))
    return out


def _http_finishes(config: dict[str, Any], allow: bool) -> list[tuple[int, int]]:
    async def main() -> list[tuple[int, int]]:
        calls, _ = await HttpCalls.open(config)
        try:
            out = []
            for ids in _prompts():
                chunks = [c async for c in calls(_request(ids, allow).SerializeToString())]
                out.append((chunks[-1].finish_reason, sum(len(c.token_ids) for c in chunks)))
            return out
        finally:
            await calls.close()

    return asyncio.run(main())


def test_every_path_gets_the_same_tool_calls(tmp_path: Path) -> None:
    sim = _serve(tmp_path, "sim", ["--artifact", "sim-instant", "--dataset", DATASET, "--tool-call-tokens", "12"])
    relay = None
    try:
        direct = _grpc_finishes(sim.grpc_address, allow=True)
        calls = [f for f, _ in direct].count(pb.FINISH_REASON_TOOL_CALL)
        assert 0.2 * N_PROMPTS < calls < 0.8 * N_PROMPTS, direct  # rate 0.5
        assert all(n == 12 for f, n in direct if f == pb.FINISH_REASON_TOOL_CALL)
        assert pb.FINISH_REASON_TOOL_CALL not in [f for f, _ in _grpc_finishes(sim.grpc_address, allow=False)]
        config = {"kind": "openai", "base_url": sim.base_url, "dataset": DATASET}
        assert _http_finishes(config, allow=True) == direct  # token-id prompts: the very same decisions
        chat = _http_finishes({**config, "api": "chat"}, allow=True)  # text prompts: re-tokenized by the front
        assert {f for f, _ in chat} >= {pb.FINISH_REASON_TOOL_CALL} and all(n > 0 for _, n in chat)
        assert all(n == 12 for f, n in chat if f == pb.FINISH_REASON_TOOL_CALL)
        no_tools = _http_finishes(config, allow=False)
        assert no_tools == _grpc_finishes(sim.grpc_address, allow=False)
        relay_args = ["--backend", "openai", "--base-url", sim.base_url, "--dataset", DATASET]
        relay = _serve(tmp_path, "relay", relay_args, http=False)
        assert _grpc_finishes(relay.grpc_address, allow=True) == direct
    finally:
        if relay is not None:
            _stop(relay)
        _stop(sim)
