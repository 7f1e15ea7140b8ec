"""A scripted reasoning model behind a real OpenAI-compatible HTTP server (aiohttp) on 127.0.0.1.

Each style streams what a real server of that kind sends, one token per SSE event, ``gap_s`` apart:

* ``reasoning``: vLLM >= 0.11 chat, reasoning in ``delta.reasoning`` (no ``reasoning_content``);
* ``reasoning_content``: SGLang / DeepSeek's API / older vLLM chat, reasoning in ``delta.reasoning_content``;
* ``think``: DeepSeek-R1 behind a plain completions API, ``...</think>`` in the text (no opening tag);
* ``harmony``: gpt-oss behind a completions API with special tokens rendered, harmony channels in the text.

Token ids ride in each event (``token_ids``) when the request asks for them (``return_token_ids``), as vLLM
and lpuperf's own front do; the reasoning styles' words are pieces of the synthetic dataset's vocabulary,
so a relay that tokenizes the text itself gets the same ids. ``usage`` counts every token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from dataclasses import dataclass

from aiohttp import web

from scenarios import resolve_dataset

DATASET = "synthetic:16:3"
MODEL = "fake-reasoner"
THINK_CLOSE_ID, H_IDS = 9001, {"<|channel|>": 200005, "<|message|>": 200008, "<|end|>": 200007}
H_IDS |= {"<|start|>": 200006, "<|return|>": 200002}


@dataclass(frozen=True)
class Script:
    """One answer: (text, id) per token and how many of the leading tokens are reasoning."""

    tokens: tuple[tuple[str, int], ...]
    n_reasoning: int

    @property
    def ids(self) -> list[int]:
        return [tid for _, tid in self.tokens]


def _words(n: int, start: int) -> list[tuple[str, int]]:
    """``n`` distinct tokens of the synthetic dataset's vocabulary (text that its byte encoder maps back)."""
    pieces = resolve_dataset(DATASET).decoder.pieces  # type: ignore[union-attr]
    ids = [tid for tid, piece in sorted(pieces.items()) if piece.startswith(b" ") and len(piece) >= 4]
    return [(pieces[tid].decode(), tid) for tid in ids[start : start + n]]


def script_for(style: str, n_reasoning_words: int = 6, n_answer: int = 4) -> Script:
    reasoning, answer = _words(n_reasoning_words, 0), _words(n_answer, 100)
    if style in ("reasoning", "reasoning_content"):
        return Script(tuple(reasoning + answer), len(reasoning))
    if style == "think":
        head = [*reasoning, ("</think>", THINK_CLOSE_ID)]
        return Script(tuple(head + answer), len(head))
    if style == "harmony":
        h = H_IDS
        head = [("<|channel|>", h["<|channel|>"]), ("analysis", 300), ("<|message|>", h["<|message|>"]), *reasoning]
        head += [("<|end|>", h["<|end|>"]), ("<|start|>", h["<|start|>"]), ("assistant", 301)]
        head += [("<|channel|>", h["<|channel|>"]), ("final", 302), ("<|message|>", h["<|message|>"])]
        return Script(tuple(head + answer + [("<|return|>", h["<|return|>"])]), len(head))
    raise ValueError(style)


class ReasoningUpstream:
    """The server, on its own thread and event loop; ``base_url`` once started. Use as a context manager."""

    def __init__(self, style: str, gap_s: float = 0.02, pause: threading.Event | None = None) -> None:
        self.style = style
        self.pause = pause  # set: streams go on past their first answer token (unset: they wait for it)
        self.script = script_for(style)
        self.gap_s = gap_s
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"upstream-{style}", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ReasoningUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._generate)
        app.router.add_post("/v1/chat/completions", self._generate)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests += 1
        chat = request.path.endswith("/chat/completions")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client went away (a test cancelled its stream)
            await self._stream(resp, chat, bool(body.get("return_token_ids")))
        return resp

    async def _stream(self, resp: web.StreamResponse, chat: bool, with_ids: bool) -> None:
        tokens = self.script.tokens
        for i, (text, tid) in enumerate(tokens):
            if i:
                await asyncio.sleep(self.gap_s)
            choice = self._choice(chat, text, i < self.script.n_reasoning)
            if with_ids:
                choice["token_ids"] = [tid]
            if i == len(tokens) - 1:
                choice["finish_reason"] = "stop"
            await resp.write(_sse({"id": "x", "model": MODEL, "choices": [choice]}))
            if i == self.script.n_reasoning and self.pause is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.pause.wait, 120)
        usage = {"prompt_tokens": 3, "completion_tokens": len(tokens), "total_tokens": 3 + len(tokens)}
        await resp.write(_sse({"id": "x", "model": MODEL, "choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")

    def _choice(self, chat: bool, text: str, reasoning: bool) -> dict[str, object]:
        if not chat:
            return {"index": 0, "text": text}
        if reasoning and self.style in ("reasoning", "reasoning_content"):
            return {"index": 0, "delta": {self.style: text}}
        return {"index": 0, "delta": {"content": text}}


def _sse(event: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"
