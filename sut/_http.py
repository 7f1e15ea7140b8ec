"""OpenAI-compatible HTTP front over any backend: ``lpuperf serve --http PORT``.

Serves ``POST /v1/completions`` and ``POST /v1/chat/completions`` (SSE streaming or one JSON body),
``GET /v1/models`` and ``GET /health`` on the gRPC server's own event loop, so peer tools (vLLM's
bench, GuideLLM, AIPerf) and our ``openai`` relay backend can drive the very SUT the harness measures.

Extension fields (ignored by clients that do not know them):

* request ``"return_token_ids": true`` -> every choice carries ``"token_ids": [int, ...]``, the exact
  ids the backend produced for that event (vLLM spells it the same way). The EOS id is included,
  though its text is empty. Our relay uses these instead of re-tokenizing text.
* request ``"prompt"`` may be a list of token ids (completions API), which reaches the backend verbatim.

Test faults (``--http-fault``) make the front answer 429 or 503, or stall before answering, for every
request, every Nth request (``@N``) or a seeded fraction of them (``@0.25``). ``/health`` reports how
many generation requests arrived, so tests can prove a client did not retry.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sut._backend import (
    Backend,
    BackendError,
    ContextOverflowError,
    GenerateRequest,
    GenerationEnd,
    InvalidRequestError,
    OverloadedError,
    UpstreamError,
)

if TYPE_CHECKING:
    from aiohttp import web

    from scenarios.dataset import Dataset

_DEFAULT_MAX_TOKENS = 256


class HttpFault(BaseModel):
    """A planted front fault: ``429``, ``503`` or ``slow:SECONDS``, optionally ``@N`` or ``@FRACTION``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["429", "503", "slow"]
    seconds: float = Field(default=0.0, ge=0)
    every: int = Field(default=1, ge=1)  # hit every Nth generation request (1 = all)
    rate: float | None = Field(default=None, gt=0, le=1)  # or a seeded fraction of them
    seed: int = 0

    def applies(self, n: int, rng: random.Random) -> bool:
        """Whether the ``n``-th (1-based) generation request is hit."""
        if self.rate is not None:
            return rng.random() < self.rate
        return n % self.every == 0


def parse_http_fault(spec: str) -> HttpFault:
    """``429`` | ``503`` | ``slow:SECONDS``, each optionally followed by ``@N`` (every Nth) or ``@0.25``."""
    body, _, when = spec.partition("@")
    kind, _, arg = body.partition(":")
    expected = "expected 429|503|slow:SECONDS, optionally @N (every Nth) or @FRACTION"
    if kind not in ("429", "503", "slow") or (kind == "slow") != bool(arg):
        raise ValueError(f"--http-fault '{spec}': {expected}")
    fields: dict[str, Any] = {"kind": kind}
    try:
        if arg:
            fields["seconds"] = float(arg)
        if when:
            if "." in when:
                fields["rate"] = float(when)
            else:
                fields["every"] = int(when)
        return HttpFault.model_validate(fields)
    except ValueError:
        raise ValueError(f"--http-fault '{spec}': {expected}") from None


class _TextDecoder:
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


class HttpFront:
    """The running front: ``address``/``port``, request counters, ``stop()``."""

    def __init__(
        self,
        backend: Backend,
        dataset: Dataset | None = None,
        faults: Sequence[HttpFault] = (),
        model_name: str = "",
        decode: Callable[[Sequence[int]], str] | None = None,
        encode: Callable[[str], list[int]] | None = None,
    ) -> None:
        self.backend = backend
        self.faults = list(faults)
        self.model_name = model_name or backend.manifest.artifact_id
        self.requests_received = 0  # generation requests, counted before any fault applies
        self.requests_with_auth = 0  # of those, how many carried a bearer token (never stored)
        self.responses_by_status: dict[int, int] = {}
        self.draining = False
        self.host = ""
        self.port = 0
        self._rng = random.Random(self.faults[0].seed if self.faults else 0)
        self._runner: web.AppRunner | None = None
        self._pieces: dict[int, bytes] | None = None
        self._decode = decode
        self._encode = encode
        self._prompt_ids: dict[str, np.ndarray] = {}
        if dataset is not None:
            # Exact prompt -> ids lookup first: a dataset prompt must reach the backend as the very ids
            # the harness would send over gRPC, or the sim could not find its reference output.
            self._prompt_ids = {p: ids for p, ids in zip(dataset.prompts, dataset.input_ids, strict=True)}
            if dataset.decoder is not None and decode is None:
                self._pieces = dataset.decoder.pieces
                self._decode = dataset.decoder.decode
            if encode is None and dataset.decoder is not None:
                from sut._openai import _ByteEncoder

                self._encode = _ByteEncoder(dataset.decoder.pieces).encode

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _count(self, status: int) -> None:
        self.responses_by_status[status] = self.responses_by_status.get(status, 0) + 1

    # --- handlers ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        from aiohttp import web

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body = {
            "status": "draining" if self.draining else "ok",
            "requests_received": self.requests_received,
            "requests_with_auth": self.requests_with_auth,
            "responses_by_status": {str(k): v for k, v in sorted(self.responses_by_status.items())},
        }
        return web.json_response(body, status=503 if self.draining else 200)

    async def _models(self, request: web.Request) -> web.Response:
        from aiohttp import web

        m = self.backend.manifest
        card = {
            "id": self.model_name,
            "object": "model",
            "created": 0,
            "owned_by": "lpuperf",
            "root": m.model,
            "max_model_len": m.effective_context_tokens,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    def _error(self, status: int, message: str, code: str) -> web.Response:
        from aiohttp import web

        self._count(status)
        kind = "invalid_request_error" if status == 400 else "server_error"
        headers = {"Retry-After": "1"} if status in (429, 503) else None
        return web.json_response(
            {"error": {"message": message, "type": kind, "code": code, "param": None}}, status=status, headers=headers
        )

    async def _fault(self) -> web.Response | None:
        for fault in self.faults:
            if not fault.applies(self.requests_received, self._rng):
                continue
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)  # stall before any header, like an overloaded upstream
            elif fault.kind == "429":
                return self._error(429, "rate limit reached (planted fault)", "rate_limit_exceeded")
            else:
                return self._error(503, "service unavailable (planted fault)", "service_unavailable")
        return None

    def _parse(self, body: Any, chat: bool) -> tuple[GenerateRequest, bool, bool, bool]:
        if not isinstance(body, dict):
            raise InvalidRequestError("request body: expected a JSON object")
        if chat:
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs or not isinstance(msgs[-1], dict):
                raise InvalidRequestError("field 'messages': expected a non-empty list of {role, content}")
            content = msgs[-1].get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str) or not content:
                raise InvalidRequestError("field 'messages[-1].content': expected non-empty text")
            prompt: Any = content
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
                prompt = prompt[0]  # a batch of one
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens", _DEFAULT_MAX_TOKENS))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequestError("field 'max_tokens': expected a positive integer")
        text, ids = self._prompt(prompt)
        min_tokens = body.get("min_tokens", 0)
        temperature = body.get("temperature", 1.0)
        if not isinstance(temperature, (int, float)) or not isinstance(min_tokens, int):
            raise InvalidRequestError("fields 'temperature'/'min_tokens': expected numbers")
        stream = bool(body.get("stream", False))
        opts = body.get("stream_options") or {}
        usage_in_stream = bool(isinstance(opts, dict) and opts.get("include_usage"))
        with_ids = bool(body.get("return_token_ids", False))
        req = GenerateRequest(
            request_id=uuid.uuid4().hex,
            input_ids=ids,
            max_new_tokens=max_tokens,
            min_new_tokens=min_tokens,
            prompt_text=text,
            greedy=float(temperature) == 0.0,
            temperature=float(temperature),
            top_p=float(body.get("top_p", 1.0)),
            seed=int(body.get("seed") or 0),
            arrival_ns=time.time_ns(),
        )
        return req, stream, usage_in_stream, with_ids

    def _prompt(self, prompt: Any) -> tuple[str, np.ndarray]:
        if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            if min(prompt) < 0:
                raise InvalidRequestError("field 'prompt': token ids must be >= 0")
            return "", np.asarray(prompt, dtype=np.int32)
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequestError("field 'prompt': expected non-empty text or a list of token ids")
        known = self._prompt_ids.get(prompt)
        if known is not None:
            return prompt, known
        if self._encode is None:
            raise InvalidRequestError("field 'prompt': this SUT has no tokenizer for text; send token ids")
        ids = self._encode(prompt)
        if not ids:
            raise InvalidRequestError("field 'prompt': text maps to no tokens of this SUT's vocabulary")
        return prompt, np.asarray(ids, dtype=np.int32)

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        from aiohttp import web

        self.requests_received += 1
        if request.headers.get("Authorization", "").lower().startswith("bearer "):
            self.requests_with_auth += 1
        if self.draining:
            return self._error(503, "server is draining", "service_unavailable")
        faulted = await self._fault()
        if faulted is not None:
            return faulted
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(400, "request body: expected JSON", "invalid_json")
        try:
            req, stream, usage_in_stream, with_ids = self._parse(body, chat)
        except InvalidRequestError as exc:
            return self._error(400, str(exc), "invalid_request")
        # Only the advertised limit is checked here; what the artifact really enforces is the backend's
        # business, so a silently capped artifact misbehaves over HTTP exactly as it does over gRPC.
        limit = self.backend.manifest.max_context_tokens
        if req.input_ids.size + req.max_new_tokens > limit:
            overflow = ContextOverflowError(int(req.input_ids.size), req.max_new_tokens, limit)
            return self._error(400, str(overflow), "context_length_exceeded")
        created = int(time.time())
        ctx = _Completion(self, req, chat, with_ids, created, body.get("model") or self.model_name)
        if not stream:
            try:
                await ctx.run_to_end()
            except BackendError as exc:
                return self._backend_error(exc)
            self._count(200)
            return web.json_response(ctx.full_body())
        return await ctx.stream(request, usage_in_stream)

    def _backend_error(self, exc: BackendError) -> web.Response:
        if isinstance(exc, (InvalidRequestError, ContextOverflowError)):
            return self._error(400, str(exc), "invalid_request")
        if isinstance(exc, OverloadedError):
            return self._error(503, str(exc), "service_unavailable")
        if isinstance(exc, UpstreamError):
            status = int(exc.status) if exc.status.isdigit() else (504 if exc.status == "timeout" else 502)
            return self._error(status, str(exc), "upstream_error")
        return self._error(500, str(exc), "backend_error")

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> None:
        from aiohttp import web

        # Bounded drain: in-flight streams get this long to finish once stop() is called.
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only through the asyncio server
        sockets = getattr(server, "sockets", None) or []
        self.host = host
        self.port = int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        self.draining = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class _Completion:
    """One request's generation: drives backend.generate and renders OpenAI events."""

    def __init__(self, front: HttpFront, req: GenerateRequest, chat: bool, with_ids: bool, created: int, model: str):
        self.front = front
        self.req = req
        self.chat = chat
        self.with_ids = with_ids
        self.id = ("chatcmpl-" if chat else "cmpl-") + req.request_id
        self.created = created
        self.model = str(model)
        self.text = _TextDecoder(front._decode, front._pieces)
        self.ids: list[int] = []
        self.end: GenerationEnd | None = None
        self.pieces: list[str] = []
        self.chunk_size = max(1, front.backend.manifest.chunk_size)

    def _finish_reason(self) -> str:
        if self.end is not None and self.end.finish_reason:
            return "stop" if self.end.finish_reason == "eos" else self.end.finish_reason
        eos = self.req.eos_token_id if self.req.eos_token_id >= 0 else self.front.backend.manifest.eos_token_id
        if self.ids and self.ids[-1] == eos:
            return "stop"
        return "length" if len(self.ids) >= self.req.max_new_tokens else "stop"

    def usage(self) -> dict[str, int]:
        n = self.end.n_tokens if self.end is not None and self.end.n_tokens is not None else len(self.ids)
        prompt = int(self.req.input_ids.size)
        return {"prompt_tokens": prompt, "completion_tokens": int(n), "total_tokens": prompt + int(n)}

    def _choice(self, text: str, ids: Sequence[int], finish: str | None) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        if self.with_ids:
            choice["token_ids"] = [int(i) for i in ids]
        return choice

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        obj: dict[str, Any] = {
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

    def full_body(self) -> dict[str, Any]:
        text = "".join(self.pieces)
        finish = self._finish_reason()
        if self.chat:
            choice: dict[str, Any] = {
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
            return web.StreamResponse(status=499)  # the client went away; nothing left to tell it
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
            return self.front._backend_error(exc)
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        self.front._count(200)
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
        except BackendError as exc:
            # Headers are gone: report in-band, as OpenAI-compatible servers do, then end the stream.
            err = {"error": {"message": str(exc), "type": "server_error", "code": exc.__class__.__name__}}
            await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


async def start_http_front(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    dataset: Dataset | None = None,
    faults: Sequence[HttpFault | str] = (),
    model_name: str = "",
) -> HttpFront:
    """Serve the OpenAI-compatible API over ``backend`` on the running event loop; return the front.

    ``dataset`` supplies the text decoder and the prompt -> ids lookup; when None it is taken from
    ``backend.dataset`` if the backend has one. ``port=0`` binds a free port (see ``front.port``).
    """
    if dataset is None:
        dataset = getattr(backend, "dataset", None)
    parsed = [f if isinstance(f, HttpFault) else parse_http_fault(f) for f in faults]
    decode = encode = None
    tok = getattr(backend, "tokenizer", None)
    if dataset is None and tok is not None and hasattr(tok, "decode") and hasattr(tok, "encode"):
        decode = lambda ids: str(tok.decode(list(ids), skip_special_tokens=True))  # noqa: E731
        encode = lambda text: list(tok.encode(text, add_special_tokens=False))  # noqa: E731
    front = HttpFront(backend, dataset=dataset, faults=parsed, model_name=model_name, decode=decode, encode=encode)
    await front.start(host, port)
    return front
