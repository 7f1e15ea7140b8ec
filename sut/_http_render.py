"""OpenAI response rendering for the HTTP front: one request's backend stream as SSE events or one body.

The first token travels in an event of its own (clients measure TTFT on it); later ones at most
``chunk_size`` per event. Text deltas never split a multi-byte character.
"""

from __future__ import annotations

import codecs
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, NotRequired, TypedDict

from sut._backend import BackendError, GenerateRequest, GenerationEnd
from sut._http_body import CLIENT_CLOSED

if TYPE_CHECKING:
    from aiohttp import web

    from sut._http import HttpFront

_log = logging.getLogger("lpuperf.sut.http")


class TokenUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Choice(TypedDict):
    """One OpenAI choice: chat has ``delta`` (an event) or ``message`` (a body), completions ``text``."""

    index: int
    delta: NotRequired[dict[str, str]]
    message: NotRequired[dict[str, str]]
    text: NotRequired[str]
    logprobs: NotRequired[None]
    finish_reason: str | None
    token_ids: NotRequired[list[int]]  # our ``return_token_ids`` extension


class CompletionJson(TypedDict):
    """A response body, or one streamed event (``chat.completion.chunk`` / ``text_completion``)."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: NotRequired[TokenUsage]


class TextDecoder:
    """Turns a growing id stream into text deltas without splitting a multi-byte character."""

    def __init__(self, decode: Callable[[Sequence[int]], str] | None, pieces: dict[int, bytes] | None) -> None:
        self._pieces = pieces
        self._decode = decode
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._ids: list[int] = []
        self._emitted = 0

    def feed(self, ids: Sequence[int]) -> str:
        if self._pieces is not None:
            get = self._pieces.get
            return self._utf8.decode(b"".join(get(int(i), b"") for i in ids))
        if self._decode is None:
            return ""
        self._ids.extend(int(i) for i in ids)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):
            return ""  # an incomplete character: wait for the next token
        delta = text[self._emitted :]
        self._emitted = len(text)
        return delta


class Completion:
    """One request's generation: drives backend.generate and renders OpenAI events."""

    def __init__(self, front: HttpFront, req: GenerateRequest, chat: bool, with_ids: bool, created: int, model: str):
        self.front = front
        self.req = req
        self.chat = chat
        self.with_ids = with_ids
        self.id = ("chatcmpl-" if chat else "cmpl-") + req.request_id
        self.created = created
        self.model = str(model)
        self.text = front.text_decoder()
        self.ids: list[int] = []
        self.end: GenerationEnd | None = None
        self.pieces: list[str] = []
        self.chunk_size = max(1, front.backend.manifest.chunk_size)
        # Wall-clock ns of the first and last backend output (the gRPC server's clock points too), 0: none.
        self.first_ns = 0
        self.last_ns = 0

    def _finish_reason(self) -> str:
        if self.end is not None and self.end.finish_reason:
            return "stop" if self.end.finish_reason == "eos" else self.end.finish_reason
        eos = self.req.eos_token_id if self.req.eos_token_id >= 0 else self.front.backend.manifest.eos_token_id
        if self.ids and self.ids[-1] == eos:
            return "stop"
        return "length" if len(self.ids) >= self.req.max_new_tokens else "stop"

    def usage(self) -> TokenUsage:
        n = self.end.n_tokens if self.end is not None and self.end.n_tokens is not None else len(self.ids)
        prompt = int(self.req.input_ids.size)
        return {"prompt_tokens": prompt, "completion_tokens": int(n), "total_tokens": prompt + int(n)}

    def _choice(self, text: str, ids: Sequence[int], finish: str | None) -> Choice:
        if self.chat:
            choice: Choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        if self.with_ids:
            choice["token_ids"] = [int(i) for i in ids]
        return choice

    def _event(self, choices: list[Choice], usage: TokenUsage | None = None) -> bytes:
        obj: CompletionJson = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    async def _items(self) -> AsyncGenerator[tuple[list[int], str], None]:
        async for item in self.front.backend.generate(self.req):
            if isinstance(item, GenerationEnd):
                self.end = item
                continue
            ids = [int(i) for i in item]
            if ids:
                self.last_ns = time.time_ns()
                self.first_ns = self.first_ns or self.last_ns
            # The first token travels alone (TTFT is measured on it); later ones at most chunk_size per event.
            step = self.chunk_size
            start = 0
            while start < len(ids):
                part = ids[start : start + (1 if not self.ids else step)]
                start += len(part)
                self.ids.extend(part)
                yield part, self.text.feed(part)

    async def run_to_end(self) -> None:
        async for _, text in self._items():
            self.pieces.append(text)

    def full_body(self) -> CompletionJson:
        text = "".join(self.pieces)
        finish = self._finish_reason()
        if self.chat:
            choice: Choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        if self.with_ids:
            choice["token_ids"] = list(self.ids)
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(),
        }

    async def stream(self, request: web.Request, usage_in_stream: bool) -> web.StreamResponse:
        from aiohttp import web

        gen = self._items()
        try:
            return await self._stream(request, usage_in_stream, gen)
        except ConnectionResetError:
            return web.StreamResponse(status=CLIENT_CLOSED)  # the client went away; nothing left to tell it
        finally:
            await gen.aclose()  # release the backend's slot at once when the client disconnected

    async def _stream(
        self, request: web.Request, usage_in_stream: bool, gen: AsyncGenerator[tuple[list[int], str], None]
    ) -> web.StreamResponse:
        from aiohttp import web

        # Pull the first token before committing to 200, so an immediate backend error is a real status.
        try:
            first = await gen.__anext__()
        except StopAsyncIteration:
            first = None
        except BackendError as exc:
            return self.front.backend_error(exc)
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        if self.chat:
            await resp.write(
                self._event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            )
        try:
            if first is not None:
                await resp.write(self._event([self._choice(first[1], first[0], None)]))
                async for ids, text in gen:
                    await resp.write(self._event([self._choice(text, ids, None)]))
            await resp.write(self._event([self._choice("", [], self._finish_reason())]))
            if usage_in_stream:
                await resp.write(self._event([], self.usage()))
        except ConnectionResetError:
            raise  # the client left: nobody to tell
        except Exception as exc:
            # Headers are gone: report in-band, as OpenAI-compatible servers do, then end the stream.
            if not isinstance(exc, BackendError):
                _log.exception("stream %s failed", self.id)
            message = str(exc) if isinstance(exc, BackendError) else f"internal error: {type(exc).__name__}"
            err = {"error": {"message": message, "type": "server_error", "code": exc.__class__.__name__}}
            await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
