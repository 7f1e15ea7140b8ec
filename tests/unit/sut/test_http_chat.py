"""The chat endpoint answers the whole conversation: rendered by the backend's chat template where it has
one, by the documented plain rendering otherwise, counted, and refused when it exceeds the context."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from scenarios import Dataset
from sut import InvalidRequestError
from sut._http import HttpFront, start_http_front
from sut._openai import _ByteEncoder
from sut._sim import SimBackend, SimConfig

DATASET = "synthetic:12:5"
CHAT = "/v1/chat/completions"


class _TemplatedSim(SimBackend):
    """The sim with a chat template of its own: each message's text between a role marker and an end marker."""

    def __init__(self) -> None:
        super().__init__(SimConfig(artifact="sim-instant", dataset=DATASET))
        self.rendered_on: list[str] = []

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> list[int] | None:
        self.rendered_on.append(threading.current_thread().name)
        if any(m["role"] == "developer" for m in messages):
            raise InvalidRequestError("the template knows no 'developer' role")
        if any(m["role"] == "tool" for m in messages):
            return None  # pretend this conversation has no template: the front falls back to plain text
        ids: list[int] = []
        for m in messages:
            ids += [1, *_encode(self.dataset, m["content"]), 2]
        return [*ids, 1]  # the assistant's turn opened


def _run(body: Callable[[HttpFront, Dataset, httpx.AsyncClient], Awaitable[None]], backend: Any = None) -> None:
    async def main() -> None:
        sim: Any = backend or SimBackend(SimConfig(artifact="sim-instant", dataset=DATASET))
        await sim.start()
        front = await start_http_front(sim, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://{front.address}", timeout=20.0) as client:
                await asyncio.wait_for(body(front, sim.dataset, client), timeout=60.0)
        finally:
            await front.stop()
            await sim.stop()

    asyncio.run(main())


def _encode(ds: Dataset, text: str) -> list[int]:
    """The dataset's own tokenizer (the inverse of its byte decoder), as the front uses it for text."""
    assert ds.decoder is not None
    return _ByteEncoder(ds.decoder.pieces).encode(text)


def _words(ds: Dataset, n: int) -> str:
    return " ".join(ds.prompts[0].split()[:n])


def test_every_message_counts_in_the_plain_rendering() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        s, u1, a1, u2 = _words(ds, 3), _words(ds, 5), _words(ds, 7), _words(ds, 4)
        messages = [
            {"role": "system", "content": s},
            {"role": "user", "content": u1},
            {"role": "assistant", "content": a1},
            {"role": "user", "content": [{"type": "text", "text": u2}]},
        ]
        resp = await client.post(CHAT, json={"messages": messages, "max_tokens": 2})
        assert resp.status_code == 200, resp.text
        # The documented plain rendering (docs/protocol.md), spelled out here.
        text = f"system: {s}\n\nuser: {u1}\n\nassistant: {a1}\n\nuser: {u2}\n\nassistant:"
        assert resp.json()["usage"]["prompt_tokens"] == len(_encode(ds, text))
        last_only = await client.post(CHAT, json={"messages": messages[-1:], "max_tokens": 2})
        assert last_only.json()["usage"]["prompt_tokens"] == len(_encode(ds, u2))
        assert resp.json()["usage"]["prompt_tokens"] > 3 * last_only.json()["usage"]["prompt_tokens"]

    _run(body)


def test_a_conversation_over_the_context_is_refused_with_the_count() -> None:
    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        roles = ("user", "assistant")
        messages = [{"role": roles[i % 2], "content": _words(ds, 1)} for i in range(10_000)]
        resp = await client.post(CHAT, json={"messages": messages, "max_tokens": 16})
        assert resp.status_code == 400, resp.text[:300]
        err = resp.json()["error"]
        assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
        n = int(err["message"].split("prompt ")[1].split()[0])
        # Every message counted (it was the last one's few tokens): at least its one word each. (The synthetic
        # vocabulary has no pieces for the role names and blank lines; a real tokenizer counts those too.)
        assert n >= 10_000
        assert f"+ max_tokens 16 = {n + 16} tokens exceeds the context limit of 4096" in err["message"]
        # Within the context but not with the room asked for: max_tokens is to blame.
        few = messages[:40]
        ok = await client.post(CHAT, json={"messages": few, "max_tokens": 2})
        assert ok.status_code == 200
        n_few = ok.json()["usage"]["prompt_tokens"]
        over = await client.post(CHAT, json={"messages": few, "max_tokens": 4097 - n_few})
        assert over.status_code == 400 and over.json()["error"]["param"] == "max_tokens"
        assert (await client.post(CHAT, json={"messages": few, "max_tokens": 4096 - n_few})).status_code == 200

    _run(body)


def test_a_backend_chat_template_renders_the_conversation() -> None:
    backend = _TemplatedSim()

    async def body(front: HttpFront, ds: Dataset, client: httpx.AsyncClient) -> None:
        u1, a1, u2 = _words(ds, 5), _words(ds, 2), _words(ds, 3)
        messages = [{"role": "user", "content": u1}, {"role": "assistant", "content": a1}]
        messages.append({"role": "user", "content": u2})
        resp = await client.post(CHAT, json={"messages": messages, "max_tokens": 2})
        assert resp.status_code == 200, resp.text
        expected = sum(len(_encode(ds, m["content"])) + 2 for m in messages) + 1
        assert resp.json()["usage"]["prompt_tokens"] == expected
        assert backend.rendered_on == ["MainThread"]  # short: rendered inline
        # A long conversation is rendered on the front's worker thread, off the event loop.
        many = [{"role": "user", "content": u2}] * 100
        resp = await client.post(CHAT, json={"messages": many, "max_tokens": 2})
        assert resp.status_code == 200 and backend.rendered_on[-1].startswith("lpuperf-http-parse")
        # The template refuses: a 400 naming the field and the reason.
        refused = await client.post(CHAT, json={"messages": [{"role": "developer", "content": u1}], "max_tokens": 2})
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "messages"
        assert "'developer' role" in refused.json()["error"]["message"]
        # No template for this one: the plain rendering.
        plain = [{"role": "tool", "content": u1}, {"role": "user", "content": u2}]
        resp = await client.post(CHAT, json={"messages": plain, "max_tokens": 2})
        text = f"tool: {u1}\n\nuser: {u2}\n\nassistant:"
        assert resp.json()["usage"]["prompt_tokens"] == len(_encode(ds, text))

    _run(body, backend)
