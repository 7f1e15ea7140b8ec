"""OpenAI response rendering for the HTTP front: one request's backend stream as SSE events or one body.

The first token travels in an event of its own (clients measure TTFT on it); later ones at most
``chunk_size`` per event. Text deltas never split a multi-byte character.

Reasoning models (the backend's ``GenerateRequest.output_reasoning_tokens``): no event mixes reasoning
and answer tokens. The chat API streams reasoning as ``delta.reasoning_content`` and the answer as
``delta.content`` (DeepSeek's, SGLang's and older vLLM's spelling), without the markup around them
(``<think>``/``</think>``, harmony's ``<|channel|>analysis<|message|>`` ... headers); a body has
``message.reasoning_content``. The completions API returns the raw output as text, reasoning included,
unless the request says ``"include_reasoning": false``; ``"skip_special_tokens": false`` (vLLM's option)
keeps special tokens such as harmony's markers in that text. ``usage.completion_tokens`` counts every
token and ``usage.completion_tokens_details.reasoning_tokens`` the reasoning ones (only when there are any).
"""

from __future__ import annotations

import codecs
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, NotRequired, TypedDict

from pydantic import JsonValue

from sut._backend import BackendError, GenerateRequest, GenerationEnd
from sut._http_body import CLIENT_CLOSED
from sut._tool_calls import ARGUMENTS_CLOSE, ARGUMENTS_OPEN, arguments_text, escaped, tool_call_id

if TYPE_CHECKING:
    from aiohttp import web

    from sut._http import HttpFront

_log = logging.getLogger("lpuperf.sut.http")


class ReasoningUsage(TypedDict):
    reasoning_tokens: int


class CachedUsage(TypedDict):
    cached_tokens: int


class TokenUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: NotRequired[ReasoningUsage]  # reasoning models only
    prompt_tokens_details: NotRequired[CachedUsage]  # backends with a prefix cache only


class Choice(TypedDict):
    """One OpenAI choice: chat has ``delta`` (an event) or ``message`` (a body), completions ``text``."""

    index: int
    delta: NotRequired[dict[str, JsonValue]]
    message: NotRequired[dict[str, JsonValue]]
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
    """Turns a growing id stream into text deltas without splitting a multi-byte character.

    ``special`` (id -> text of special tokens) is only read after :meth:`keep_special`.
    """

    def __init__(
        self,
        decode: Callable[[Sequence[int]], str] | None,
        pieces: dict[int, bytes] | None,
        special: dict[int, str] | None = None,
    ) -> None:
        self._pieces = pieces
        self._special = special
        self._decode = decode
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._ids: list[int] = []
        self._emitted = 0

    def keep_special(self) -> None:
        """Decode special tokens to their text from now on (``skip_special_tokens: false``)."""
        if self._pieces is not None and self._special:
            self._pieces = {**self._pieces, **{k: v.encode() for k, v in self._special.items()}}

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


class ReasoningMarkup:
    """The token ids around a reasoning model's reasoning that the chat API leaves out of ``reasoning_content``.

    ``drop``: ids never shown (``<think>``, ``</think>``); a harmony header runs from an ``opens`` id
    (``<|start|>``, ``<|channel|>``) to a ``closes`` id (``<|message|>``), role and channel names included.
    Special tokens need no entry: the decoder skips them anyway.
    """

    __slots__ = ("closes", "drop", "opens")

    def __init__(self, drop: frozenset[int], opens: frozenset[int], closes: frozenset[int]) -> None:
        self.drop, self.opens, self.closes = drop, opens, closes

    @classmethod
    def from_ids(cls, token_id: Callable[[str], int | None]) -> ReasoningMarkup | None:
        """Built from a vocabulary's lookup (text -> id); None when it has none of the markers."""

        def ids(*texts: str) -> frozenset[int]:
            return frozenset(i for i in map(token_id, texts) if i is not None)

        drop, opens, closes = ids("<think>", "</think>"), ids("<|start|>", "<|channel|>"), ids("<|message|>")
        return cls(drop, opens, closes) if drop or (opens and closes) else None

    def strip(self, ids: Sequence[int], in_header: bool) -> tuple[list[int], bool]:
        """The ids of reasoning text in ``ids``, and whether a header is still open after them."""
        kept: list[int] = []
        for tid in ids:
            if in_header:
                in_header = tid not in self.closes
            elif tid in self.opens:
                in_header = True
            elif tid not in self.drop:
                kept.append(tid)
        return kept, in_header


# The backend's finish reasons in OpenAI's spelling.
_FINISH_REASONS = {"eos": "stop", "tool_call": "tool_calls"}


class Completion:
    """One request's generation: drives backend.generate and renders OpenAI events."""

    def __init__(
        self,
        front: HttpFront,
        req: GenerateRequest,
        chat: bool,
        with_ids: bool,
        created: int,
        model: str,
        *,
        include_reasoning: bool = True,
        skip_special_tokens: bool = True,
        tool_name: str = "",
    ) -> None:
        self.front = front
        self.req = req
        self.chat = chat
        self.with_ids = with_ids
        self.id = ("chatcmpl-" if chat else "cmpl-") + req.request_id
        self.created = created
        self.model = str(model)
        self.text = front.text_decoder()
        if not chat and not skip_special_tokens:
            self.text.keep_special()
        # Completions put the reasoning in the text unless asked not to; chat always sends it apart.
        self.include_reasoning = include_reasoning or chat
        self.markup = front.prompts.markup if chat else None
        self._in_header = False  # inside a harmony header (reasoning markup) across events
        self.ids: list[int] = []
        self.end: GenerationEnd | None = None
        self.pieces: list[str] = []
        self.reasoning_pieces: list[str] = []
        self.chunk_size = max(1, front.backend.manifest.chunk_size)
        # Wall-clock ns of the first and last backend output (the gRPC server's clock points too), 0: none.
        self.first_ns = 0
        self.last_ns = 0
        self.tool_name = tool_name  # the function a tool-call answer calls (the request's first tool)
        self._tool_open = False  # the streamed tool call's first delta (id, name) went out

    def _finish_reason(self) -> str:
        if self.end is not None and self.end.finish_reason:
            return _FINISH_REASONS.get(self.end.finish_reason, self.end.finish_reason)
        eos = self.req.eos_token_id if self.req.eos_token_id >= 0 else self.front.backend.manifest.eos_token_id
        if self.ids and self.ids[-1] == eos:
            return "stop"
        return "length" if len(self.ids) >= self.req.max_new_tokens else "stop"

    def n_reasoning(self) -> int:
        """Reasoning tokens of the output: the backend's own count, else its running count capped at the output."""
        if self.end is not None and self.end.n_reasoning_tokens is not None:
            return int(self.end.n_reasoning_tokens)
        return min(self.req.output_reasoning_tokens, len(self.ids))

    def usage(self) -> TokenUsage:
        n = self.end.n_tokens if self.end is not None and self.end.n_tokens is not None else len(self.ids)
        prompt = int(self.req.input_ids.size)
        usage: TokenUsage = {"prompt_tokens": prompt, "completion_tokens": int(n), "total_tokens": prompt + int(n)}
        n_reasoning = self.n_reasoning()
        if n_reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": n_reasoning}
        if self.end is not None and self.end.cached_prompt_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": int(self.end.cached_prompt_tokens)}
        return usage

    def _choice(self, text: str, ids: Sequence[int], finish: str | None, reasoning: bool = False) -> Choice:
        if self.chat:
            delta: dict[str, JsonValue]
            if self.req.output_tool_call and not reasoning:
                delta = {} if finish is not None else {"tool_calls": [self._tool_delta(text)]}
            else:
                delta = {"reasoning_content": text} if reasoning else {"content": text}
            choice: Choice = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        if self.with_ids:
            choice["token_ids"] = [int(i) for i in ids]
        return choice

    def _tool_delta(self, text: str) -> dict[str, JsonValue]:
        """One streamed piece of the tool call: the first names the call and opens its arguments."""
        if self._tool_open:
            return {"index": 0, "function": {"arguments": escaped(text)}}
        self._tool_open = True
        function: dict[str, JsonValue] = {"name": self.tool_name, "arguments": ARGUMENTS_OPEN + escaped(text)}
        return {"index": 0, "id": tool_call_id(self.req.request_id), "type": "function", "function": function}

    def _tool_close(self) -> list[Choice]:
        """The event closing a streamed tool call's arguments (opening it first when no token came)."""
        opened = self._tool_open
        close: dict[str, JsonValue] = {"index": 0, "function": {"arguments": ARGUMENTS_CLOSE}}
        calls: list[JsonValue] = [close] if opened else [self._tool_delta(""), close]
        choice: Choice = {"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}
        if self.with_ids:
            choice["token_ids"] = []
        return [choice]

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

    def _text_of(self, part: list[int], reasoning: bool) -> str:
        if not reasoning:
            return self.text.feed(part)
        if not self.include_reasoning:
            return ""
        if self.markup is not None:
            part, self._in_header = self.markup.strip(part, self._in_header)
        return self.text.feed(part)

    async def _items(self) -> AsyncGenerator[tuple[list[int], str, bool], None]:
        """(ids, text, whether they are reasoning) per event; an event never mixes reasoning and answer."""
        req = self.req
        async for item in self.front.backend.generate(req):
            if isinstance(item, GenerationEnd):
                self.end = item
                continue
            ids = [int(i) for i in item]
            if ids:
                self.last_ns = time.time_ns()
                self.first_ns = self.first_ns or self.last_ns
            # The first token travels alone (TTFT is measured on it); later ones at most chunk_size per event,
            # cut where the reasoning ends (the backend's count covers what it has handed over).
            step = self.chunk_size
            start = 0
            while start < len(ids):
                size = 1 if not self.ids else step
                reasoning_left = req.output_reasoning_tokens - len(self.ids)
                if reasoning_left > 0:
                    size = min(size, reasoning_left)
                part = ids[start : start + size]
                start += len(part)
                self.ids.extend(part)
                reasoning = reasoning_left > 0
                yield part, self._text_of(part, reasoning), reasoning

    async def run_to_end(self) -> None:
        async for _, text, reasoning in self._items():
            (self.reasoning_pieces if reasoning and self.chat else self.pieces).append(text)

    def full_body(self) -> CompletionJson:
        text = "".join(self.pieces)
        finish = self._finish_reason()
        if self.chat:
            message: dict[str, JsonValue] = {"role": "assistant", "content": text}
            if self.req.output_tool_call:
                function: dict[str, JsonValue] = {"name": self.tool_name, "arguments": arguments_text(text)}
                call: dict[str, JsonValue] = {"id": tool_call_id(self.req.request_id), "type": "function"}
                message.update(content=None, tool_calls=[{**call, "function": function}])
            if self.n_reasoning():
                message["reasoning_content"] = "".join(self.reasoning_pieces)
            choice: Choice = {"index": 0, "message": message, "finish_reason": finish}
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
        self, request: web.Request, usage_in_stream: bool, gen: AsyncGenerator[tuple[list[int], str, bool], None]
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
                await resp.write(self._event([self._choice(first[1], first[0], None, first[2])]))
                async for ids, text, reasoning in gen:
                    await resp.write(self._event([self._choice(text, ids, None, reasoning)]))
            if self.chat and self.req.output_tool_call:
                await resp.write(self._event(self._tool_close()))
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
