"""Tool calls and cached prompt tokens on the OpenAI-compatible HTTP front, and read back by our clients.

The real sim behind a real loopback aiohttp front: a request with ``tools`` may be answered with a tool call,
streamed as OpenAI streams one; the relay backend and the harness's ``--transport openai-http`` client turn
that stream back into the backend contract's tool-call finish (FINISH_REASON_TOOL_CALL on the wire), and
``usage.prompt_tokens_details.cached_tokens`` into the cached prompt tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest

from loadgen_harness._http_transport import HttpCalls
from proto import inference_pb2 as pb
from scenarios import resolve_dataset
from sut import GenerateRequest, GenerationEnd, backends
from sut._http import HttpFront, start_http_front

DATASET = "synthetic:12:5"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
CALL_TOKENS = 24
DS = resolve_dataset(DATASET)
WORDS = DS.prompts[0]  # text in the dataset's vocabulary (the front tokenizes with it)


def _run(body: Callable[[HttpFront, Any, httpx.AsyncClient], Awaitable[None]], **sim: Any) -> None:
    async def main() -> None:
        backend: Any = backends.create({"kind": "sim", "artifact": "sim-instant", "dataset": DATASET, **sim})
        await backend.start()
        front = await start_http_front(backend, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://{front.address}", timeout=10.0) as client:
                await asyncio.wait_for(body(front, backend, client), timeout=60.0)
        finally:
            await front.stop()
            await backend.stop()

    asyncio.run(main())


async def _sse(client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.stream("POST", path, json={**payload, "stream": True}) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 200, **extra}


def test_a_streamed_tool_call_is_openais_shape() -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        events = await _sse(
            client,
            "/v1/chat/completions",
            _chat(WORDS, tools=TOOLS, return_token_ids=True, stream_options={"include_usage": True}),
        )
        choices = [e["choices"][0] for e in events if e["choices"]]
        assert choices[0]["delta"] == {"role": "assistant", "content": ""}
        calls = [c["delta"]["tool_calls"] for c in choices[1:-1]]
        assert all(len(c) == 1 and c[0]["index"] == 0 for c in calls)
        first = calls[0][0]
        assert first["id"].startswith("call_") and first["type"] == "function"
        assert first["function"]["name"] == "get_weather"
        assert all("id" not in c[0] and "name" not in c[0]["function"] for c in calls[1:])
        arguments = json.loads("".join(c[0]["function"]["arguments"] for c in calls))
        ids = [t for c in choices[1:-1] for t in c["token_ids"]]
        assert len(ids) == CALL_TOKENS and len(choices[1]["token_ids"]) == 1  # the first token alone
        assert arguments == {"query": sim.dataset.decoder.decode(ids)}
        assert choices[-1] == {"index": 0, "delta": {}, "finish_reason": "tool_calls", "token_ids": []}
        assert all(c["finish_reason"] is None for c in choices[:-1])
        usage = events[-1]["usage"]
        assert usage["completion_tokens"] == CALL_TOKENS and "prompt_tokens_details" not in usage

    _run(body, tool_call_rate=1.0)


def test_a_tool_call_body_and_a_completion() -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        resp = await client.post("/v1/chat/completions", json=_chat(WORDS, tools=TOOLS))
        choice = resp.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["type"] == "function" and call["function"]["name"] == "get_weather"
        assert set(json.loads(call["function"]["arguments"])) == {"query"}
        # Completions take tools too (our extension): the call's text, finish_reason tool_calls.
        events = await _sse(client, "/v1/completions", {"prompt": WORDS, "tools": TOOLS, "return_token_ids": True})
        assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
        assert sum(len(e["choices"][0]["token_ids"]) for e in events) == CALL_TOKENS

    _run(body, tool_call_rate=1.0)


def test_no_tool_call_without_tools_or_with_tool_choice_none() -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        extras: list[dict[str, Any]] = [{}, {"tools": []}, {"tools": TOOLS, "tool_choice": "none"}]
        for extra in extras:
            resp = await client.post("/v1/chat/completions", json=_chat(WORDS, **extra))
            choice = resp.json()["choices"][0]
            assert "tool_calls" not in choice["message"] and choice["finish_reason"] in ("stop", "length"), extra
        resp = await client.post("/v1/chat/completions", json=_chat(WORDS, tools=TOOLS, tool_choice="auto"))
        assert resp.json()["choices"][0]["finish_reason"] == "tool_calls"

    _run(body, tool_call_rate=1.0)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": "get_weather"}, "tools"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "retrieval", "function": {"name": "x"}}]}, "tools[0].type"),
        ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ],
)
def test_bad_tools_are_400_naming_the_field(extra: dict[str, Any], field: str) -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        resp = await client.post("/v1/chat/completions", json=_chat(WORDS, **extra))
        assert resp.status_code == 400
        err = resp.json()["error"]
        assert err["param"] == field and f"field '{field}'" in err["message"], err

    _run(body)


def test_usage_reports_cached_prompt_tokens() -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        system = {"role": "system", "content": DS.prompts[1] + DS.prompts[2]}
        cached = []
        for user in (3, 4, 3):
            messages = [system, {"role": "user", "content": DS.prompts[user]}]
            if user == 4:
                resp = await client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 20})
                usage = resp.json()["usage"]
            else:
                payload = {"messages": messages, "max_tokens": 20, "stream_options": {"include_usage": True}}
                usage = (await _sse(client, "/v1/chat/completions", payload))[-1]["usage"]
            cached.append(usage["prompt_tokens_details"]["cached_tokens"])
        # The second user shares the system prompt's blocks; the first user's conversation again shares all but
        # its last block.
        assert cached[0] == 0 and 0 < cached[1] < cached[2] and cached[2] % 16 == 0
        stats = sim.prefix_cache_stats()
        assert stats.hit_tokens == sum(cached) and stats.lookups_hit == 2

    _run(body, prefix_cache_tokens=4096, prefix_block_tokens=16)


def _relay(front: HttpFront, **fields: Any) -> Any:
    return backends.create({"kind": "openai", "base_url": f"http://{front.address}/v1", "dataset": DATASET, **fields})


async def _relay_answer(relay: Any, ids: np.ndarray) -> tuple[list[int], GenerationEnd, GenerateRequest]:
    req = GenerateRequest(request_id="r", input_ids=ids, max_new_tokens=200, allow_tool_call=True)
    out: list[int] = []
    end = None
    async for item in relay.generate(req):
        if isinstance(item, GenerationEnd):
            end = item
        else:
            out += item
    assert end is not None
    return out, end, req


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_the_relay_reads_tool_calls_and_cached_tokens_back(api: str) -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        relay = _relay(front, api=api)
        await relay.start()
        try:
            ids = np.asarray(sim.dataset.input_ids[3], dtype=np.int32)
            for expect_cached in (0, None):
                out, end, req = await _relay_answer(relay, ids)
                assert end.finish_reason == "tool_call" and req.output_tool_call
                assert len(out) == end.n_tokens == CALL_TOKENS
                if expect_cached is not None:
                    assert end.cached_prompt_tokens == 0
                else:
                    assert end.cached_prompt_tokens is not None and end.cached_prompt_tokens > 0
        finally:
            await relay.stop()

    _run(body, tool_call_rate=1.0, prefix_cache_tokens=4096, prefix_block_tokens=16)


def test_without_server_ids_a_tool_call_counts_through_usage_alone() -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        relay = _relay(front, api="chat", request_token_ids=False, tokenizer="dataset")
        await relay.start()
        try:
            out, end, req = await _relay_answer(relay, np.asarray(sim.dataset.input_ids[3], dtype=np.int32))
            assert out == [] and end.n_tokens == CALL_TOKENS and end.finish_reason == "tool_call"
            assert req.output_tool_call
        finally:
            await relay.stop()

    _run(body, tool_call_rate=1.0)


def test_the_harness_http_transport_ends_a_tool_call_with_finish_reason_tool_call() -> None:
    async def body(front: HttpFront, sim: Any, client: httpx.AsyncClient) -> None:
        config: dict[str, Any] = {"kind": "openai", "base_url": f"http://{front.address}/v1", "dataset": DATASET}
        calls, _ = await HttpCalls.open(config)
        try:
            prompt = [int(t) for t in sim.dataset.input_ids[5]]
            for allow in (True, False, True):
                request = pb.GenerateRequest(input_ids=prompt, max_new_tokens=300, allow_tool_call=allow)
                chunks = [c async for c in calls(request.SerializeToString())]
                last = chunks[-1]
                tokens = [t for c in chunks for t in c.token_ids]
                if allow:
                    assert last.finish_reason == pb.FINISH_REASON_TOOL_CALL and len(tokens) == CALL_TOKENS
                else:
                    assert last.finish_reason == pb.FINISH_REASON_EOS
                    assert tokens == sim.dataset.reference_ids[5].tolist()
                assert all(c.finish_reason == 0 for c in chunks[:-1])
            assert last.cached_prompt_tokens > 0  # the same prompt a third time
        finally:
            await calls.close()

    _run(body, tool_call_rate=1.0, prefix_cache_tokens=4096, prefix_block_tokens=16)


def _sse_event(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body = {"choices": [], "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_the_relay_reads_an_openai_tool_call_stream_after_reasoning() -> None:
    """A stream as OpenAI-compatible servers send one: reasoning text, then a tool call, no token ids."""
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    pieces = [
        _sse_event({"role": "assistant", "content": ""}),
        _sse_event({"content": "<think>" + DS.prompts[1][:40]}),
        _sse_event({"content": DS.prompts[1][40:80] + "</think>"}),
        _sse_event({"tool_calls": [call]}),
        _sse_event({"tool_calls": [{"index": 0, "function": {"arguments": '{"query": "x"}'}}]}),
        _sse_event({}, finish="tool_calls"),
        _sse_event({}, usage={"completion_tokens": 40, "prompt_tokens_details": {"cached_tokens": 7}}),
        b"data: [DONE]\n\n",
    ]

    async def reads() -> Any:
        for p in pieces:
            yield p

    async def main() -> tuple[list[int], GenerationEnd, GenerateRequest]:
        relay = backends.create(
            {"kind": "openai", "base_url": "http://upstream.test/v1", "model": "m", "dataset": DATASET, "api": "chat"}
        )
        req = GenerateRequest(request_id="q", input_ids=np.array([5, 6], np.int32), max_new_tokens=64, prompt_text="p")
        out: list[int] = []
        end = None
        async for item in relay._relay(reads(), req):
            if isinstance(item, GenerationEnd):
                end = item
            else:
                out += item
        assert end is not None
        return out, end, req

    out, end, req = asyncio.run(main())
    assert end.finish_reason == "tool_call" and req.output_tool_call
    assert end.n_tokens == 40 and end.cached_prompt_tokens == 7
    assert 0 < req.output_reasoning_tokens == len(out)  # every streamed id was reasoning; the call counts by usage


def test_a_tool_call_ends_the_reasoning_in_server_ids() -> None:
    """Reasoning in its own field, then a tool call, with the server's ids: the call's ids are answer."""
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{"}}

    def event(delta: dict[str, Any], ids: list[int], finish: str | None = None) -> bytes:
        body = {"choices": [{"index": 0, "delta": delta, "token_ids": ids, "finish_reason": finish}]}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    pieces = [
        event({"reasoning_content": "thinking"}, [11, 12]),
        event({"reasoning_content": " more"}, [13]),
        event({"tool_calls": [call]}, [21]),
        event({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}, [22, 23], finish="tool_calls"),
        b"data: [DONE]\n\n",
    ]

    async def reads() -> Any:
        for p in pieces:
            yield p

    async def main() -> tuple[list[int], GenerationEnd, GenerateRequest]:
        cfg = {"kind": "openai", "base_url": "http://upstream.test/v1", "model": "m", "dataset": DATASET}
        relay = backends.create({**cfg, "api": "chat"})
        req = GenerateRequest(request_id="q", input_ids=np.array([5, 6], np.int32), max_new_tokens=64, prompt_text="p")
        out: list[int] = []
        end = None
        async for item in relay._relay(reads(), req):
            if isinstance(item, GenerationEnd):
                end = item
            else:
                assert req.output_tool_call == (21 in item or 22 in item)  # known before the call's ids go out
                out += item
        assert end is not None
        return out, end, req

    out, end, req = asyncio.run(main())
    assert out == [11, 12, 13, 21, 22, 23] and end.finish_reason == "tool_call"
    assert req.output_reasoning_tokens == 3 and end.n_reasoning_tokens == 3
