"""Reasoning from OpenAI-compatible servers, end to end: a scripted reasoning model behind a real aiohttp
server on 127.0.0.1 (vLLM-style reasoning deltas, SGLang/DeepSeek ``reasoning_content``, R1 think text,
gpt-oss harmony text), through the relay SUT (``--backend openai``: its gRPC stream) and through
``lpuperf run --transport openai-http`` (the harness's per-query records).

What must arrive: every id in order, the reasoning ids first and counted per message, the output's
reasoning count on the final chunk, and the first answer token's time (the SUT's on the relay's stream,
the harness's in the records) later than the first token by about the reasoning's duration.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from loadgen_harness import load_query_records
from loadgen_harness._http_transport import HttpCalls
from proto import inference_pb2, inference_pb2_grpc
from scenarios import resolve_dataset
from sut import start_embedded
from tests.integration._reasoning_upstream import DATASET, ReasoningUpstream
from tests.integration.test_openai_relay import LPUPERF, _serve, _stop

pytestmark = pytest.mark.integration

GAP_S = 0.02  # between two streamed tokens
# A loose floor on the wait from the first token to the first answer token, per reasoning token: the
# upstream spends GAP_S on each, a busy machine may shorten what a client sees of it.
_SOME_OF_THE_REASONING_NS = 0.25 * GAP_S * 1e9
# style -> (relay config fields, the run's flags): the API the style comes from and the format to read.
STYLES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "reasoning": ({"api": "chat"}, ["--api", "chat"]),  # vLLM >= 0.11, auto reads the deltas
    "reasoning_content": (
        {"api": "chat", "reasoning_format": "fields"},
        ["--api", "chat", "--reasoning-format", "fields"],
    ),
    "think": ({"reasoning_format": "think"}, ["--reasoning-format", "think"]),
    "harmony": ({"reasoning_format": "harmony"}, ["--reasoning-format", "harmony"]),
}


def _relay_config(upstream: ReasoningUpstream, **fields: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": upstream.base_url, "dataset": DATASET, **fields}


def _generate(address: str, i: int = 0, dataset: str = DATASET) -> list[Any]:
    ds = resolve_dataset(dataset)
    req = inference_pb2.GenerateRequest(
        request_id=f"r{i}",
        input_ids=ds.input_ids[i].tolist(),
        prompt_text=ds.prompts[i],
        max_new_tokens=32768,
        eos_token_id=-1,
    )
    with grpc.insecure_channel(address) as ch:
        return list(inference_pb2_grpc.InferenceStub(ch).Generate(req, timeout=60))


def _check_stream(chunks: list[Any], ids: list[int], n_reasoning: int, min_wait_ns: float | None = None) -> None:
    """Ids in order; reasoning counted per message and leading; the final count; the first answer's time."""
    assert [t for c in chunks for t in c.token_ids] == ids
    per_msg = [c.reasoning_tokens for c in chunks]
    assert sum(per_msg) == n_reasoning, per_msg
    opened = [i for i, c in enumerate(chunks) if c.reasoning_tokens < len(c.token_ids)]
    assert opened, "the answer never started"
    assert all(r == 0 for r in per_msg[opened[0] + 1 :])  # nothing is reasoning once the answer started
    assert chunks[-1].n_reasoning_tokens == n_reasoning
    stamped = [i for i, c in enumerate(chunks) if c.sut_first_answer_ns]
    assert stamped == [opened[0]]  # on the message that carries the first answer token, and only there
    waited_ns = chunks[opened[0]].sut_first_answer_ns - chunks[0].sut_first_token_ns
    floor = _SOME_OF_THE_REASONING_NS * n_reasoning if min_wait_ns is None else min_wait_ns
    assert waited_ns >= floor  # stamped when the answer came, not with the first token


@pytest.mark.parametrize("style", list(STYLES))
def test_relay_stream_carries_reasoning_counts_and_the_first_answer_time(style: str) -> None:
    with ReasoningUpstream(style, gap_s=GAP_S) as upstream:
        server = start_embedded(_relay_config(upstream, **STYLES[style][0]))
        try:
            chunks = _generate(server.address)
        finally:
            server.stop()
        script = upstream.script
        _check_stream(chunks, script.ids, script.n_reasoning)
        assert chunks[-1].n_tokens == len(script.ids)  # the server's usage


def test_relay_tokenizing_reasoning_deltas_keeps_the_boundary_exact() -> None:
    with ReasoningUpstream("reasoning_content", gap_s=GAP_S) as upstream:
        server = start_embedded(_relay_config(upstream, api="chat", request_token_ids=False))
        try:
            chunks = _generate(server.address)
        finally:
            server.stop()
        eos = resolve_dataset(DATASET).eos_token_id
        # The text's own ids (the words are the dataset's pieces), then the EOS the server stopped on.
        _check_stream(chunks, [*upstream.script.ids, eos], upstream.script.n_reasoning)


def test_relay_without_the_format_reads_think_text_as_answer() -> None:
    """``auto`` never guesses R1's unopened ``</think>``: all answer, nothing claimed as reasoning."""
    with ReasoningUpstream("think", gap_s=0.0) as upstream:
        server = start_embedded(_relay_config(upstream))
        try:
            chunks = _generate(server.address)
        finally:
            server.stop()
    assert sum(c.reasoning_tokens for c in chunks) == 0 and chunks[-1].n_reasoning_tokens == 0
    assert not any(c.sut_first_answer_ns for c in chunks)


@pytest.mark.parametrize(
    ("model", "text_format"), [("deepseek-r1", "think"), ("gpt-oss-120b", "harmony")], ids=["r1", "gpt-oss"]
)
def test_relay_to_lpuperfs_front_matches_the_sims_own_stream(model: str, text_format: str, tmp_path: Path) -> None:
    """The reasoning sim behind ``lpuperf serve --http``: relayed through its chat API (``reasoning_content``
    deltas, markup left out) and its completions API (the raw text: R1's ``</think>``, harmony channels with
    special tokens kept), every id and every reasoning count equals the sim's own gRPC stream."""
    dataset = f"reasoning:{model}:0.05"
    args = ["--backend", "sim", "--artifact", "sim-reasoning", "--dataset", dataset, "--decode-step-s", "0.001"]
    front = _serve(tmp_path, "front", args)
    try:
        for i in range(2):
            direct = _generate(front.grpc_address, i, dataset)
            n_reasoning = direct[-1].n_reasoning_tokens
            assert 0 < n_reasoning < len([t for c in direct for t in c.token_ids])
            for fields in ({"api": "chat"}, {"api": "completions", "reasoning_format": text_format}):
                server = start_embedded({"kind": "openai", "base_url": front.base_url, "dataset": dataset, **fields})
                try:
                    relayed = _generate(server.address, i, dataset)
                finally:
                    server.stop()
                _check_stream(relayed, [t for c in direct for t in c.token_ids], n_reasoning, min_wait_ns=0)
    finally:
        _stop(front)


def test_the_first_answer_token_is_not_held_back_on_either_path() -> None:
    """The upstream stops after its first answer token until released: that token must already have reached
    the relay's gRPC stream and the direct transport's bridge (a read held back would time it late)."""
    release = threading.Event()
    with ReasoningUpstream("think", gap_s=GAP_S, pause=release) as upstream:
        config = _relay_config(upstream, reasoning_format="think")
        n_reasoning = upstream.script.n_reasoning
        server = start_embedded(config)
        try:
            with grpc.insecure_channel(server.address) as ch:
                # The deadline ends a stream whose answer waits for the release (never given meanwhile).
                stream = inference_pb2_grpc.InferenceStub(ch).Generate(_request(), timeout=30)
                assert sum(c.reasoning_tokens for c in _until_answer(stream)) == n_reasoning
                stream.cancel()
        finally:
            release.set()
            server.stop()
        release.clear()
        chunks = asyncio.run(_direct_until_answer(config, release))
        assert sum(c.reasoning_tokens for c in chunks) == n_reasoning
        assert chunks[-1].n_reasoning_tokens == n_reasoning


def _request() -> inference_pb2.GenerateRequest:
    ds = resolve_dataset(DATASET)
    return inference_pb2.GenerateRequest(request_id="p", input_ids=ds.input_ids[0].tolist(), max_new_tokens=64)


def _until_answer(stream: Iterator[Any]) -> list[Any]:
    got = []
    for chunk in stream:
        got.append(chunk)
        if chunk.reasoning_tokens < len(chunk.token_ids):
            return got
    raise AssertionError("the answer never started")


async def _direct_until_answer(config: dict[str, Any], release: threading.Event) -> list[Any]:
    calls, _ = await HttpCalls.open(config)
    try:
        stream = calls(_request().SerializeToString()).__aiter__()
        got = []
        while not got or got[-1].reasoning_tokens == len(got[-1].token_ids):
            got.append(await asyncio.wait_for(stream.__anext__(), timeout=30))  # a held-back answer times out
        release.set()
        got += [chunk async for chunk in stream]
        return got
    finally:
        release.set()
        await calls.close()


def _run(args: list[str], out: Path, run_id: str) -> tuple[dict[str, Any], np.ndarray]:
    argv = [LPUPERF, "run", *args, "--dataset", DATASET, "--scenario", "Offline", "--mode", "accuracy"]
    argv += ["--out", str(out)]
    run = subprocess.run([*argv, "--run-id", run_id, "--no-record"], capture_output=True, text=True, timeout=240)
    found = list((out / run_id).glob("*/*/results.json"))
    assert found, run.stdout + run.stderr
    results = json.loads(found[0].read_text())
    assert results["n_errors"] == 0, run.stdout + run.stderr
    return results, load_query_records(found[0].parent)


def _check_records(recs: np.ndarray, n_tokens: int, n_reasoning: int) -> None:
    assert recs.size == len(resolve_dataset(DATASET)) and bool(np.all(recs["status"] == 0))
    assert bool(np.all(recs["n_tokens"] == n_tokens)) and bool(np.all(recs["n_reasoning"] == n_reasoning))
    assert bool(np.all(recs["first_answer_ns"] > recs["first_token_ns"]))
    assert bool(np.all(recs["first_answer_ns"] <= recs["done_ns"]))
    # A busy harness may take a first token late and so shorten a query's wait; most queries show it whole.
    waited = recs["first_answer_ns"] - recs["first_token_ns"]
    assert float(np.median(waited)) >= _SOME_OF_THE_REASONING_NS * n_reasoning


@pytest.mark.parametrize("style", ["reasoning", "think", "harmony"])
def test_transport_openai_http_gives_the_bridge_the_reasoning(style: str, tmp_path: Path) -> None:
    with ReasoningUpstream(style, gap_s=GAP_S) as upstream:
        args = ["--transport", "openai-http", "--base-url", upstream.base_url, *STYLES[style][1]]
        _, recs = _run(args, tmp_path / "results", style)
        _check_records(recs, len(upstream.script.ids), upstream.script.n_reasoning)


def test_relay_sut_gives_the_bridge_the_reasoning(tmp_path: Path) -> None:
    with ReasoningUpstream("reasoning_content", gap_s=GAP_S) as upstream:
        server = start_embedded(_relay_config(upstream, api="chat"))
        try:
            _, recs = _run(["--sut", server.address], tmp_path / "results", "relay")
        finally:
            server.stop()
        _check_records(recs, len(upstream.script.ids), upstream.script.n_reasoning)
