"""The HTTP front over the reasoning sim: ``reasoning_content`` vs ``content``, usage's reasoning tokens.

A real aiohttp front on 127.0.0.1 serves ``sim-reasoning`` in both renderings. Chat streams the reasoning
as ``delta.reasoning_content`` (markers left out) and the answer as ``delta.content``, never both in one
event; completions return the raw text (reasoning included) unless ``include_reasoning`` is false, with
harmony's markers when ``skip_special_tokens`` is false; usage counts reasoning tokens. A model without
reasoning answers exactly as before.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from scenarios import Dataset
from sut import backends
from sut._http import HttpFront, start_http_front

SCALE = 0.03
PICKS = (0, 17, 35)  # gpqa, math500, livecodebench


def _run(dataset: str, body: Callable[[Dataset, Any, httpx.AsyncClient], Awaitable[None]], **cfg: Any) -> None:
    async def main() -> None:
        sim: Any = backends.create(
            {"kind": "sim", "dataset": dataset, "prefill_base_s": 0.0001, "decode_step_s": 0.0002, **cfg}
        )
        await sim.start()
        front: HttpFront = await start_http_front(sim, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://{front.address}", timeout=20.0) as client:
                await asyncio.wait_for(body(sim.dataset, sim, client), timeout=60.0)
        finally:
            await front.stop()
            await sim.stop()

    asyncio.run(main())


async def _sse(client: httpx.AsyncClient, path: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.stream("POST", path, json={**payload, "stream": True}) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    assert events
    return events


def _reasoning_text(ds: Dataset, ids: list[int], n: int) -> str:
    """The reasoning as a reader sees it: without <think>/</think> and without harmony's headers."""
    text = ds.decode(ids[:n], skip_special_tokens=False)
    text = re.sub(r"<\|(?:start|channel)\|>[^<]*", "", text)  # an opener and the role or channel name after it
    return re.sub(r"</?think>|<\|(?:end|message)\|>", "", text)


def _outputs(sim: Any, i: int) -> tuple[list[int], int]:
    out = sim._outputs[i]
    n = sim._reasoning[i]
    return list(out), int(n)


@pytest.mark.parametrize("model", ["deepseek-r1", "gpt-oss-120b"])
def test_chat_streams_reasoning_content_then_content(model: str) -> None:
    async def body(ds: Dataset, sim: Any, client: httpx.AsyncClient) -> None:
        for i in PICKS:
            ids, n = _outputs(sim, i)
            events = await _sse(
                client,
                "/v1/chat/completions",
                {
                    "messages": [{"role": "user", "content": ds.prompts[i]}],
                    "max_tokens": 50_000,
                    "stream_options": {"include_usage": True},
                    "return_token_ids": True,
                },
            )
            deltas = [e["choices"][0] for e in events if e["choices"]][1:]  # after the role event
            kinds = ["reasoning_content" if "reasoning_content" in d["delta"] else "content" for d in deltas[:-1]]
            assert all(len(d["delta"]) == 1 for d in deltas)  # an event never mixes the two
            first_answer = kinds.index("content")
            assert set(kinds[:first_answer]) == {"reasoning_content"} and set(kinds[first_answer:]) == {"content"}
            reasoning = "".join(d["delta"].get("reasoning_content", "") for d in deltas)
            content = "".join(d["delta"].get("content", "") for d in deltas)
            assert reasoning == _reasoning_text(ds, ids, n)
            assert content == ds.decode(ids[n:])
            assert [t for d in deltas for t in d["token_ids"]] == ids
            assert sum(len(d["token_ids"]) for d in deltas[:first_answer]) == n  # the split is at the count
            assert len(deltas[0]["token_ids"]) == 1  # the first token alone
            usage = events[-1]["usage"]
            assert usage["completion_tokens"] == len(ids)
            assert usage["completion_tokens_details"] == {"reasoning_tokens": n}
            assert "</think>" not in reasoning + content and "<|" not in reasoning + content
            assert "assistantfinal" not in reasoning.replace(" ", "")

    _run(f"reasoning:{model}", body, artifact="sim-reasoning", reasoning_scale=SCALE)


def test_a_chat_body_carries_reasoning_content_and_usage() -> None:
    async def body(ds: Dataset, sim: Any, client: httpx.AsyncClient) -> None:
        ids, n = _outputs(sim, 17)
        messages = [{"role": "user", "content": ds.prompts[17]}]
        resp = await client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 50_000})
        got = resp.json()
        message = got["choices"][0]["message"]
        assert message["reasoning_content"] == _reasoning_text(ds, ids, n)
        assert message["content"] == ds.decode(ids[n:]) and "\\boxed{" in message["content"]
        assert got["usage"]["completion_tokens_details"] == {"reasoning_tokens": n}
        # Cut inside the reasoning: no answer, every token reasoning.
        short = await client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": n // 2})
        cut = short.json()
        assert cut["choices"][0]["message"]["content"] == "" and cut["choices"][0]["finish_reason"] == "length"
        assert cut["usage"]["completion_tokens_details"] == {"reasoning_tokens": n // 2}

    _run("reasoning:gpt-oss-120b", body, artifact="sim-reasoning", reasoning_scale=SCALE)


def test_completions_text_holds_the_reasoning_unless_asked_otherwise() -> None:
    async def body(ds: Dataset, sim: Any, client: httpx.AsyncClient) -> None:
        ids, n = _outputs(sim, 9)
        base = {"prompt": ds.prompts[9], "max_tokens": 50_000}
        raw = (await client.post("/v1/completions", json=base)).json()
        assert raw["choices"][0]["text"] == ds.decode(ids)  # special tokens skipped, as vLLM's default
        assert raw["usage"]["completion_tokens_details"] == {"reasoning_tokens": n}
        marked = (await client.post("/v1/completions", json={**base, "skip_special_tokens": False})).json()
        text = marked["choices"][0]["text"]
        assert text == ds.decode(ids, skip_special_tokens=False)
        final = re.search(r"<\|channel\|>final[^<]*<\|message\|>(.*?)(?:<\|return\|>|$)", text, re.DOTALL)
        assert final is not None and final.group(1).strip().endswith(f"ANSWER: {ds.ground_truths[9]}")
        answer_only = (await client.post("/v1/completions", json={**base, "include_reasoning": False})).json()
        assert answer_only["choices"][0]["text"] == ds.decode(ids[n:])
        events = await _sse(client, "/v1/completions", {**base, "include_reasoning": False})
        assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == ds.decode(ids[n:])

    _run("reasoning:gpt-oss-120b", body, artifact="sim-reasoning", reasoning_scale=SCALE)


def test_a_model_without_reasoning_answers_as_before() -> None:
    async def body(ds: Dataset, sim: Any, client: httpx.AsyncClient) -> None:
        messages = [{"role": "user", "content": ds.prompts[0]}]
        got = (await client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 64})).json()
        assert set(got["choices"][0]["message"]) == {"role", "content"}
        assert set(got["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
        events = await _sse(client, "/v1/chat/completions", {"messages": messages, "max_tokens": 64})
        assert all("reasoning_content" not in e["choices"][0]["delta"] for e in events if e["choices"])

    _run("synthetic:4:2", body, artifact="sim-fp32")


@pytest.mark.parametrize("field", ["include_reasoning", "skip_special_tokens"])
def test_a_reasoning_option_of_the_wrong_type_is_a_400_naming_it(field: str) -> None:
    async def body(ds: Dataset, sim: Any, client: httpx.AsyncClient) -> None:
        resp = await client.post("/v1/completions", json={"prompt": ds.prompts[0], field: "no"})
        assert resp.status_code == 400 and resp.json()["error"]["param"] == field

    _run("reasoning:deepseek-r1", body, artifact="sim-reasoning", reasoning_scale=SCALE)
