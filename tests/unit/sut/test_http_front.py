"""The OpenAI-compatible HTTP front over the real sim backend, on a real loopback aiohttp server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from scenarios import Dataset
from sut import backends
from sut._http import HttpFront, start_http_front

DATASET = "synthetic:12:5"


def _run(
    body: Callable[[HttpFront, Dataset, httpx.AsyncClient], Awaitable[None]],
    artifact: str = "sim-instant",
    faults: tuple[str, ...] = (),
) -> None:
    async def main() -> None:
        sim: Any = backends.create({"kind": "sim", "artifact": artifact, "dataset": DATASET})
        await sim.start()
        front = await start_http_front(sim, "127.0.0.1", 0, faults=faults)
        try:
            async with httpx.AsyncClient(base_url=f"http://{front.address}", timeout=10.0) as client:
                await asyncio.wait_for(body(front, sim.dataset, client), timeout=30.0)
        finally:
            await front.stop()
            await sim.stop()

    asyncio.run(main())


async def _sse(client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """POST and collect the SSE events; asserts the stream ends with [DONE]."""
    events: list[dict[str, Any]] = []
    done = False
    async with client.stream("POST", path, json=payload) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            if line == "data: [DONE]":
                done = True
                continue
            assert not done, "event after [DONE]"
            events.append(json.loads(line[6:]))
    assert done
    return events


def test_streaming_completions_return_reference_ids_text_and_usage() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        assert ds.decoder is not None
        for i in range(3):
            events = await _sse(
                client,
                "/v1/completions",
                {
                    "prompt": ds.prompts[i],
                    "max_tokens": 1000,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "return_token_ids": True,
                },
            )
            content = [e for e in events if e["choices"]]
            ids = [t for e in content for t in e["choices"][0]["token_ids"]]
            text = "".join(e["choices"][0]["text"] for e in content)
            ref = ds.reference_ids[i].tolist()
            assert ids == ref
            assert text == ds.decoder.decode(ref)
            assert len(content[0]["choices"][0]["token_ids"]) == 1  # the first token travels alone
            assert content[-1]["choices"][0]["finish_reason"] == "stop"
            usage = events[-1]
            assert usage["choices"] == []
            assert usage["usage"]["completion_tokens"] == len(ref)
            assert usage["usage"]["prompt_tokens"] == ds.input_ids[i].size

    _run(body)


def test_token_id_prompt_and_length_finish() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        events = await _sse(
            client,
            "/v1/completions",
            {"prompt": ds.input_ids[1].tolist(), "max_tokens": 5, "stream": True, "return_token_ids": True},
        )
        ids = [t for e in events for t in e["choices"][0]["token_ids"]]
        assert ids == ds.reference_ids[1][:5].tolist()
        assert events[-1]["choices"][0]["finish_reason"] == "length"
        assert all("usage" not in e for e in events)  # not asked for: no usage chunk

    _run(body)


def test_chat_streaming_and_non_streaming() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        msgs = [{"role": "user", "content": ds.prompts[2]}]
        events = await _sse(
            client,
            "/v1/chat/completions",
            {"messages": msgs, "max_tokens": 1000, "stream": True, "stream_options": {"include_usage": True}},
        )
        assert events[0]["object"] == "chat.completion.chunk"
        assert events[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        assert ds.decoder is not None
        assert text == ds.decoder.decode(ds.reference_ids[2])
        assert "token_ids" not in events[1]["choices"][0]  # the extension is opt-in
        resp = await client.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 1000})
        full = resp.json()
        assert resp.status_code == 200
        assert full["choices"][0]["message"]["content"] == text
        assert full["usage"]["completion_tokens"] == ds.reference_ids[2].size

    _run(body)


def test_models_and_health_count_requests() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        models = (await client.get("/v1/models")).json()
        assert models["data"][0]["id"] == "sim-instant"
        await client.post("/v1/completions", json={"prompt": ds.prompts[0], "max_tokens": 3})
        await client.post("/v1/completions", json={"prompt": [], "max_tokens": 3})
        health = (await client.get("/health")).json()
        assert health["status"] == "ok"
        assert health["requests_received"] == 2
        assert health["responses_by_status"] == {"200": 1, "400": 1}

    _run(body)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"prompt": "", "max_tokens": 3}, "prompt"),
        ({"prompt": [1, -2], "max_tokens": 3}, "prompt"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "max_tokens": "many"}, "max_tokens"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(payload: dict[str, Any], field: str) -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        resp = await client.post("/v1/completions", json=payload)
        assert resp.status_code == 400
        assert f"'{field}'" in resp.json()["error"]["message"]

    _run(body)


def test_context_overflow_and_silent_cap_keep_their_meaning() -> None:
    async def advertised(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        resp = await client.post("/v1/completions", json={"prompt": [5] * 100, "max_tokens": 200_000})
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] == "context_length_exceeded"
        assert "200100" in resp.json()["error"]["message"]

    async def capped(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        # Advertises 131072 but enforces 16384: over HTTP too it answers 503, not a clean refusal.
        resp = await client.post("/v1/completions", json={"prompt": [5] * 100, "max_tokens": 20_000})
        assert resp.status_code == 503

    _run(advertised)
    _run(capped, artifact="sim-ctx16k")


def test_planted_429_every_second_request() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        codes = []
        for _ in range(4):
            resp = await client.post("/v1/completions", json={"prompt": ds.prompts[0], "max_tokens": 2})
            codes.append(resp.status_code)
        assert codes == [200, 429, 200, 429]
        assert front.requests_received == 4

    _run(body, faults=("429@2",))


def test_client_disconnect_releases_the_backend_slot() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        # Sample 9 has the longest reference (239 tokens, ~2.4 s of 10 ms decode steps).
        payload = {"prompt": ds.prompts[9], "max_tokens": 1000, "stream": True, "return_token_ids": True}
        async with client.stream("POST", "/v1/completions", json=payload) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    break  # first token seen: hang up mid-stream
        assert front.backend.active_batch() + front.backend.queue_depth() <= 1
        for _ in range(25):  # bounded: 25 x 20 ms, far less than the rest of the decode
            if front.backend.active_batch() == 0 and front.backend.queue_depth() == 0:
                break
            await asyncio.sleep(0.02)
        assert front.backend.active_batch() == 0 and front.backend.queue_depth() == 0
        # The sequence was dropped long before its ~1 s of decode steps would have finished.
        resp2 = await client.post("/v1/completions", json={"prompt": ds.prompts[1], "max_tokens": 2})
        assert resp2.status_code == 200

    _run(body, artifact="sim-fp32")
