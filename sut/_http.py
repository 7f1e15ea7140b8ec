"""OpenAI-compatible HTTP front over any backend: ``lpuperf serve --http PORT``.

Serves ``POST /v1/completions`` and ``POST /v1/chat/completions`` (SSE streaming or one JSON body),
``GET /v1/models`` and ``GET /health`` on the gRPC server's own event loop, so peer tools (vLLM's
bench, GuideLLM, AIPerf) and our ``openai`` relay backend can drive the very SUT the harness measures.

Extension fields (ignored by clients that do not know them):

* request ``"return_token_ids": true`` -> every choice carries ``"token_ids": [int, ...]``, the exact
  ids the backend produced for that event (vLLM spells it the same way). The EOS id is included,
  though its text is empty. Our relay uses these instead of re-tokenizing text.
* request ``"prompt"`` may be a list of token ids (completions API), which reaches the backend verbatim.
* request ``"min_tokens"`` / ``"ignore_eos"`` (vLLM's spelling) suppress EOS until that many tokens.
* request ``"tools"`` (non-empty; ``tool_choice`` absent or ``"auto"``, never ``"none"``) lets the backend answer
  with a tool call (``GenerateRequest.allow_tool_call``); completions take it too. A tool-call answer streams
  as OpenAI's do (chat: ``delta.tool_calls``; a body: ``message.tool_calls``; completions: the call's text),
  with finish_reason ``"tool_calls"`` (:mod:`sut._tool_calls`).
* usage has ``prompt_tokens_details.cached_tokens`` when the backend has a prefix cache.
* reasoning models: chat streams reasoning as ``reasoning_content`` deltas; completions take
  ``"include_reasoning": false`` (answer only) and ``"skip_special_tokens": false`` (markers kept); usage
  has ``completion_tokens_details.reasoning_tokens`` (:mod:`sut._http_render`).

A chat prompt is the whole conversation, in the backend's chat template or the plain rendering
(:mod:`sut._http_prompt`), refused with a 400 when it and ``max_tokens`` exceed the advertised context.

Sharing the loop with gRPC means nothing here may block it (see :class:`HttpLimits`): a body over
``max_body_bytes`` is refused (413) before it is read, slow headers and bodies are cut off, open
connections are capped, and big bodies and long text prompts are parsed and tokenized on a worker
thread. Bodies are validated strictly (:mod:`sut._http_body`): every bad request is a 4xx with an
OpenAI-style JSON error whose one-line message names the field; ``/health`` counts every answer.

With ``lpuperf serve --tls-cert/--tls-key`` the front serves HTTPS; with ``--auth-token-file`` every route
but ``/health`` needs ``Authorization: Bearer <token>`` and answers 401 with an OpenAI-style error otherwise.

Test faults (``--http-fault``) make the front answer 429 or 503, or stall before answering, for every
request, every Nth request (``@N``) or a seeded fraction of them (``@0.25``). ``/health`` reports how
many generation requests arrived, so tests can prove a client did not retry.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from sut._backend import (
    Backend,
    BackendError,
    ContextOverflowError,
    GenerateRequest,
    InvalidRequestError,
    OverloadedError,
    UpstreamError,
)
from sut._http_body import CLIENT_CLOSED, ChatBody, CompletionBody, HttpError, HttpLimits, parse_body, read_body
from sut._http_guard import HttpFault, RefusedConnection, parse_http_fault
from sut._http_prompt import Prompts
from sut._http_render import Completion, TextDecoder

if TYPE_CHECKING:
    from aiohttp import web

    from scenarios.dataset import Dataset
    from sut._metrics import SutMetrics

__all__ = ["HttpFault", "HttpFront", "HttpLimits", "parse_http_fault", "start_http_front"]

_T = TypeVar("_T")
_log = logging.getLogger("lpuperf.sut.http")
_DEFAULT_MAX_TOKENS = 256
_GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions")
_ROUTES = (*_GENERATION_PATHS, "/v1/models", "/health")
# After a 413 the unread rest of a body is drained this long, so the client sees the answer, not a reset.
_LINGER_S = 2.0


class _HandlerOptions(TypedDict):
    """aiohttp's request-handler options the front sets (its AppRunner passes them on)."""

    access_log: None  # no access log
    keepalive_timeout: float
    lingering_time: float


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
        limits: HttpLimits | None = None,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_auth_refused: Callable[[str], None] | None = None,
        metrics: SutMetrics | None = None,
    ) -> None:
        self.backend = backend
        # The SUT's metrics, shared with its gRPC server: this front's traffic is counted as front="http".
        self._metrics = metrics
        self.inflight = 0  # generation requests in progress
        # Every route but /health needs 'Authorization: Bearer <token>' when a token is set (401 otherwise).
        self._token = token.encode() if token else None
        self._ssl = ssl_context
        self._on_auth_refused = on_auth_refused
        self.auth_refused = 0
        self.faults = list(faults)
        self.limits = limits or HttpLimits()
        self.model_name = model_name or backend.manifest.artifact_id
        self.requests_received = 0  # generation requests, counted before any fault applies
        self.requests_with_auth = 0  # of those, how many carried a bearer token (never stored)
        self.responses_by_status: dict[int, int] = {}  # every answer to a generation request
        self.other_responses_by_status: dict[int, int] = {}  # every other answer but /health's own
        self.connections_refused = 0  # over max_connections
        self.draining = False
        self.host = ""
        self.port = 0
        self._rng = random.Random(self.faults[0].seed if self.faults else 0)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.AbstractServer | None = None
        self._handler: type[web.RequestHandler] | None = None
        self._handler_tasks: set[asyncio.Task[Any]] = set()  # one per open connection
        self._refused: set[RefusedConnection] = set()  # refused connections still lingering
        if metrics is not None:
            metrics.bind_http(self)
        # One worker: big bodies and long prompts are parsed there one at a time, so a flood of them
        # costs the event loop (and the gRPC streams on it) at most a share of the GIL, never a stall.
        self._worker: ThreadPoolExecutor | None = None
        self.prompts = Prompts(backend, dataset, decode, encode, self.limits, self._offload)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    def _count(self, request: web.Request, status: int) -> None:
        path = request.path
        if path in _GENERATION_PATHS and request.method == "POST":
            self.responses_by_status[status] = self.responses_by_status.get(status, 0) + 1
            if self._metrics is not None:
                self._metrics.request("OK" if status == 200 else str(status), "http")
        elif path != "/health":
            self.other_responses_by_status[status] = self.other_responses_by_status.get(status, 0) + 1

    # --- handlers ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        from aiohttp import web

        @web.middleware
        async def guard(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self._guard(request, handler)

        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[guard])
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every answer is counted, and every failure is a JSON error: never a text/plain traceback."""
        from aiohttp import web

        try:
            refused = self._refuse_unauthorized(request)
            resp = refused if refused is not None else await handler(request)
        except HttpError as exc:
            resp = self._error(exc.status, str(exc), exc.code, exc.param)
        except web.HTTPException as exc:  # the router's 404/405, aiohttp's own 413
            resp = self._router_error(request, exc)
        except Exception as exc:  # a bug: answer, log once, keep serving
            _log.exception("HTTP %s %s failed", request.method, request.path[:200])
            resp = self._error(500, f"internal error: {type(exc).__name__}", "internal_error")
        self._count(request, resp.status)
        return resp

    def _refuse_unauthorized(self, request: web.Request) -> web.Response | None:
        """401 with an OpenAI-style body unless the request carries the bearer token (constant-time compare)."""
        if self._token is None or request.path == "/health":
            return None
        from sut._security import bearer_matches

        header = request.headers.get("Authorization", "")
        if bearer_matches(header, self._token):
            return None
        reason = "missing" if not header else "invalid"
        self.auth_refused += 1
        if self._on_auth_refused is not None:
            self._on_auth_refused(reason)
        message = (
            "missing bearer token: send the header 'Authorization: Bearer <token>'"
            if reason == "missing"
            else "invalid bearer token"
        )
        return self._error(401, message, "invalid_api_key", headers={"WWW-Authenticate": 'Bearer realm="lpuperf"'})

    def _router_error(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        from aiohttp import web

        path = repr(request.path[:100])
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            msg = f"method {request.method[:20]} is not allowed on {path}; expected {allowed}"
            return self._error(405, msg, "method_not_allowed", headers={"Allow": ",".join(exc.allowed_methods)})
        if isinstance(exc, web.HTTPNotFound):
            msg = f"path {path} not found; expected one of {', '.join(_ROUTES)}"
            return self._error(404, msg, "not_found")
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            msg = f"request body: over the limit of {self.limits.max_body_bytes} bytes"
            return self._error(413, msg, "request_too_large")
        return self._error(exc.status, f"{exc.status} {exc.reason}", "http_error")

    async def _health(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body = {
            "status": "draining" if self.draining else "ok",
            "requests_received": self.requests_received,
            "requests_with_auth": self.requests_with_auth,
            "requests_unauthorized": self.auth_refused,
            "responses_by_status": {str(k): v for k, v in sorted(self.responses_by_status.items())},
            "other_responses_by_status": {str(k): v for k, v in sorted(self.other_responses_by_status.items())},
            "connections_open": self.connections_open,
            "connections_refused": self.connections_refused,
            # Generation requests whose client hung up before the answer was complete (counted as 499).
            "client_disconnects": self.responses_by_status.get(CLIENT_CLOSED, 0),
            "limits": self.limits.model_dump(),
        }
        return web.json_response(body, status=503 if self.draining else 200)

    @property
    def connections_open(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

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
        return await self._generation(request, chat=False)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generation(request, chat=True)

    async def _generation(self, request: web.Request, chat: bool) -> web.StreamResponse:
        self.inflight += 1
        try:
            return await self._serve(request, chat)
        finally:
            self.inflight -= 1

    def _observe(self, ctx: Completion) -> None:
        """Tokens streamed and prefill/decode times of one request, once it ended (however it ended)."""
        if self._metrics is not None:
            end = ctx.last_ns or time.time_ns()
            self._metrics.generated("http", ctx.req.arrival_ns, ctx.first_ns, end, len(ctx.ids))

    def _error(
        self, status: int, message: str, code: str, param: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        from aiohttp import web

        kind = "invalid_request_error" if 400 <= status < 500 and status != 429 else "server_error"
        hdrs = {"Retry-After": "1"} if status in (429, 503) else {}
        resp = web.json_response(
            {"error": {"message": " ".join(message.split()), "type": kind, "code": code, "param": param}},
            status=status,
            headers={**hdrs, **(headers or {})},
        )
        if status in (408, 413):
            resp.force_close()  # the rest of the body is unread or late: never reuse this connection
        return resp

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

    async def _offload(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run CPU-heavy parsing on the front's worker thread, keeping the event loop responsive."""
        if self._worker is None:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

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
        raw = await read_body(request, self.limits)
        if len(raw) > self.limits.inline_parse_bytes:
            body = await self._offload(parse_body, raw, chat)
        else:
            body = parse_body(raw, chat)
        max_new, min_new = body.checked(_DEFAULT_MAX_TOKENS)
        if isinstance(body, ChatBody):
            text, ids = await self.prompts.chat(body)
        else:
            text, ids = await self.prompts.completion(body.prompt)
        refused = self._over_context(body, int(ids.size), max_new)
        if refused is not None:
            return refused
        temperature = 1.0 if body.temperature is None else body.temperature
        tool_name = body.tool_name()
        req = GenerateRequest(
            request_id=uuid.uuid4().hex,
            input_ids=ids,
            max_new_tokens=max_new,
            min_new_tokens=min_new,
            prompt_text=text,
            greedy=temperature == 0.0,
            temperature=temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed or 0,
            arrival_ns=time.time_ns(),
            allow_tool_call=tool_name is not None,
        )
        created = int(time.time())
        ctx = Completion(
            self,
            req,
            chat,
            bool(body.return_token_ids),
            created,
            body.model or self.model_name,
            include_reasoning=body.include_reasoning is not False,
            skip_special_tokens=body.skip_special_tokens is not False,
            tool_name=tool_name or "",
        )
        if not body.stream:
            try:
                await ctx.run_to_end()
            except BackendError as exc:
                return self.backend_error(exc)
            finally:
                self._observe(ctx)
            if request.transport is None or request.transport.is_closing():  # nobody left to read the answer
                msg = "the client closed the connection before the answer was complete"
                return self._error(CLIENT_CLOSED, msg, "client_disconnected")
            return web.json_response(ctx.full_body())
        usage = bool(body.stream_options is not None and body.stream_options.include_usage)
        try:
            return await ctx.stream(request, usage)
        finally:
            self._observe(ctx)

    def _over_context(self, body: CompletionBody | ChatBody, n: int, max_new: int) -> web.Response | None:
        """400 when prompt + max_tokens exceed the advertised context, as the sim answers over gRPC.

        Only the advertised limit is checked here; what the artifact really enforces is the backend's
        business, so a silently capped artifact misbehaves over HTTP exactly as it does over gRPC.
        """
        limit = self.backend.manifest.max_context_tokens
        if n + max_new <= limit:
            return None
        # Blame the prompt when it alone leaves no room for one token, else the length asked for.
        field = ("messages" if isinstance(body, ChatBody) else "prompt") if n >= limit else "max_tokens"
        msg = f"field '{field}': prompt {n} + max_tokens {max_new} = {n + max_new} tokens exceeds"
        return self._error(400, f"{msg} the context limit of {limit}", "context_length_exceeded", field)

    def text_decoder(self) -> TextDecoder:
        """A fresh id -> text delta decoder for one response."""
        return self.prompts.text_decoder()

    def backend_error(self, exc: BackendError) -> web.Response:
        if isinstance(exc, (InvalidRequestError, ContextOverflowError)):
            return self._error(400, str(exc), "invalid_request")
        if isinstance(exc, OverloadedError):
            return self._error(503, str(exc), "service_unavailable")
        if isinstance(exc, UpstreamError):
            status = int(exc.status) if exc.status.isdigit() else (504 if exc.status == "timeout" else 502)
            return self._error(status, str(exc), "upstream_error")
        return self._error(500, str(exc), "backend_error")

    # --- lifecycle -----------------------------------------------------------------------------
    def _connection(self) -> asyncio.BaseProtocol:
        """Protocol factory: aiohttp's handler, or a one-shot 503 once max_connections are open."""
        assert self._runner is not None and self._runner.server is not None
        server = self._runner.server
        if len(server.connections) >= self.limits.max_connections:
            self.connections_refused += 1
            return RefusedConnection(self.limits.max_connections, self.limits.refused_linger_s, self._refused)
        assert self._handler is not None
        # access_log=None turns aiohttp's access log off, though its annotation says Logger.
        return self._handler(server, loop=asyncio.get_running_loop(), **self._handler_options())  # type: ignore[arg-type]

    def _handler_options(self) -> _HandlerOptions:
        # keepalive_timeout is aiohttp's idle timer: armed at connect and after each response, it closes a
        # connection still waiting for a complete request line and headers, so it is the header timeout.
        return {"access_log": None, "keepalive_timeout": self.limits.header_timeout_s, "lingering_time": _LINGER_S}

    def _protocol_error(self, status: int, message: str | None) -> web.Response:
        """aiohttp's answer to a request it could not parse (bad request line, header, framing): JSON too."""
        detail = " ".join(str(message or "").split())[:200] or "unparseable request"
        self.other_responses_by_status[status] = self.other_responses_by_status.get(status, 0) + 1
        return self._error(status, f"malformed HTTP request: {detail}", "bad_http_request")

    async def start(self, host: str, port: int) -> None:
        from aiohttp import web

        front = self

        class _Handler(web.RequestHandler):
            _started = False

            async def start(self) -> None:
                self._started = True
                task = asyncio.current_task()
                assert task is not None  # aiohttp runs start() as the connection's own task
                front._handler_tasks.add(task)
                try:
                    await super().start()
                finally:
                    front._handler_tasks.discard(task)

            def _process_keepalive(self) -> None:
                super()._process_keepalive()
                # uvloop runs due timers before the callbacks queued in the turn before, so after a loop
                # stall the header timer can fire before start() has begun waiting for the first request.
                # aiohttp then neither closes nor re-arms, and a client that never finishes its headers
                # stays open for good. Check once more right after start() has had its first step.
                if not self._started and not self._force_close and self._keepalive_handle is None:
                    self._keepalive_handle = asyncio.get_running_loop().call_soon(self._process_keepalive)

            def handle_error(
                self,
                request: web.BaseRequest,
                status: int = 500,
                exc: BaseException | None = None,
                message: str | None = None,
            ) -> web.StreamResponse:
                if request.writer.output_size > 0:  # a response is under way: only aiohttp can end it
                    return super().handle_error(request, status, exc, message)
                resp = front._protocol_error(status, message)
                resp.force_close()
                return resp

        self._handler = _Handler
        # Bounded drain: in-flight streams get shutdown_timeout to finish once stop() is called.
        self._runner = web.AppRunner(self.app(), handle_signals=False, shutdown_timeout=5.0, **self._handler_options())
        await self._runner.setup()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lpuperf-http-parse")
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._connection,
            host,
            port,
            reuse_address=True,
            backlog=1024,
            ssl=self._ssl,
            ssl_handshake_timeout=self.limits.header_timeout_s if self._ssl is not None else None,
        )
        sockets: Sequence[Any] = self._listener.sockets or ()
        self.host = host
        self.port = int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self) -> None:
        self.draining = True
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # A connection lost while aiohttp drains a refused body keeps its task up to _LINGER_S after
        # cleanup(); end those now, so a loop closed right after stop() has nothing left pending.
        leftover = [t for t in self._handler_tasks if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=_LINGER_S + 1.0)
        for refused in list(self._refused):
            refused.close()
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None


async def start_http_front(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    dataset: Dataset | None = None,
    faults: Sequence[HttpFault | str] = (),
    model_name: str = "",
    limits: HttpLimits | None = None,
    ssl_context: ssl.SSLContext | None = None,
    token: str | None = None,
    on_auth_refused: Callable[[str], None] | None = None,
    metrics: SutMetrics | None = None,
) -> HttpFront:
    """Serve the OpenAI-compatible API over ``backend`` on the running event loop; return the front.

    ``dataset`` supplies the text decoder and the prompt -> ids lookup; when None it is taken from
    ``backend.dataset`` if the backend has one. ``port=0`` binds a free port (see ``front.port``).
    ``ssl_context`` serves HTTPS; ``token`` requires ``Authorization: Bearer <token>`` on all but /health.
    """
    if dataset is None:
        dataset = getattr(backend, "dataset", None)
    parsed = [f if isinstance(f, HttpFault) else parse_http_fault(f) for f in faults]
    decode = encode = None
    tok = getattr(backend, "tokenizer", None)
    if dataset is None and tok is not None and hasattr(tok, "decode") and hasattr(tok, "encode"):
        decode = lambda ids: str(tok.decode(list(ids), skip_special_tokens=True))  # noqa: E731
        encode = lambda text: list(tok.encode(text, add_special_tokens=False))  # noqa: E731
    front = HttpFront(
        backend,
        dataset=dataset,
        faults=parsed,
        model_name=model_name,
        decode=decode,
        encode=encode,
        limits=limits,
        token=token,
        ssl_context=ssl_context,
        on_auth_refused=on_auth_refused,
        metrics=metrics,
    )
    await front.start(host, port)
    return front
