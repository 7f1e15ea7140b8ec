"""``openai`` backend: relays each request to an OpenAI-compatible streaming endpoint.

The SUT becomes a thin client of ``/v1/completions`` or ``/v1/chat/completions`` (vLLM, TGI,
SGLang, llama.cpp, GroqCloud, or our own HTTP front). Three rules shape it:

* ``n_tokens`` is the upstream server's own ``usage.completion_tokens`` (``stream_options.include_usage``),
  not our re-count, so the results say what the server claims it generated.
* Streamed text becomes token ids by the most faithful method available: the server's own ids when it
  returns them (``return_token_ids``, as vLLM and our front do), else a configured tokenizer. The method
  used is recorded in the manifest and in every GenerationEnd (``ids: server`` / ``ids: tokenizer NAME``).
* Reasoning models: the stream's reasoning (``reasoning_content``/``reasoning`` deltas, ``<think>`` text,
  harmony channels; ``reasoning_format``) is split from the answer per event (``sut/_reasoning_stream.py``)
  and raised in ``request.output_reasoning_tokens`` before the ids it covers, so the server marks each
  message's reasoning tokens and the first answer token's time.
* Tool calls: a request that allows one offers the upstream one small function (``tools``); a streamed
  ``delta.tool_calls`` marks the answer a tool call (``request.output_tool_call``) and finish_reason
  ``tool_calls`` ends it as one. Its arguments are never tokenized: without the server's ids they count
  through ``usage`` alone. ``usage.prompt_tokens_details.cached_tokens`` becomes the cached prompt tokens.
* Upstream failures (429, 5xx, timeouts, refused connections) become per-query :class:`UpstreamError` s.
  Nothing is retried: a retry inside a timed query would hide the failure and distort its latency.
  An endpoint that cannot serve at all (unreachable, TLS, refused key, unknown model) is refused at
  :meth:`OpenAIBackend.start` instead, naming the cause (``sut/_openai_probe.py``).

The API key is a ``SecretStr``; it is only ever placed in the ``Authorization`` header and is scrubbed
(in any letter case) from anything an upstream sends back before that text can reach an error message.
An HTTPS upstream is always verified, against ``ca_bundle`` when set (a private CA) or the system's
trust store; there is no switch to turn verification off.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, JsonValue, SecretStr

from common import RegistryError, scrub, scrub_url
from sut._artifact import ArtifactManifest
from sut._backend import (
    BackendConfig,
    GenerateRequest,
    GenerationEnd,
    InvalidRequestError,
    UpstreamError,
)
from sut._openai_options import _PRESETS, DEFAULT_KEY_ENV, ENV_BASE_URL, ENV_MODEL
from sut._openai_probe import ProbeTarget, error_message, probe_endpoint
from sut._openai_sse import SseReader
from sut._reasoning_stream import ReasoningFormat
from sut._tool_calls import RELAY_TOOLS

if TYPE_CHECKING:
    import aiohttp
    import yarl

    from scenarios.dataset import Dataset

_ERROR_BODY_LIMIT = 300  # characters of an upstream error body kept in a message
# OpenAI's finish reasons as the backend contract spells them ("function_call": the API's older tool call).
_FINISH_REASONS = {"stop": "eos", "length": "length", "tool_calls": "tool_call", "function_call": "tool_call"}


class OpenAIConfigError(RegistryError):
    """The openai backend cannot be configured (missing key, URL or model): one readable line."""


class OpenAIConfig(BackendConfig):
    """Config of kind ``openai``. Unset fields fall back to the preset and the environment (see _Resolved)."""

    kind: str = "openai"
    preset: Literal["", "groq"] = ""
    base_url: str = ""  # e.g. http://127.0.0.1:8000/v1; env LPUPERF_OPENAI_BASE_URL
    model: str = ""  # env LPUPERF_OPENAI_MODEL; default: the first id from GET /models
    api_key: SecretStr | None = None
    api_key_env: str = ""  # env var holding the key; default OPENAI_API_KEY (GROQ_API_KEY for groq)
    require_key: bool | None = None  # None: required when the preset or an explicit api_key_env asks
    api: Literal["completions", "chat", ""] = ""  # "" -> completions (chat for groq)
    prompt: Literal["auto", "text", "ids"] = "auto"  # auto: prompt_text when set, else token ids
    request_token_ids: bool | None = None  # ask for ``return_token_ids`` (None: yes unless the preset says no)
    tokenizer: str = "auto"  # auto | dataset | none | path of a Hugging Face tokenizer directory
    dataset: str = "embedded"  # dataset whose byte decoder maps text back to ids ("dataset" tokenizer)
    eos_token_id: int = -1  # -1: the request's, else the dataset's/tokenizer's EOS
    append_eos: bool = True  # tokenizer ids: close a finish_reason=stop answer with EOS, as the server did
    max_context_tokens: int = Field(default=131072, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)  # read: longest silence between two stream events
    connect_timeout_s: float = Field(default=5.0, gt=0)
    write_timeout_s: float = Field(default=10.0, gt=0)
    pool_timeout_s: float = Field(default=10.0, gt=0)  # wait for a free pooled connection
    max_connections: int = Field(default=256, gt=0)
    keepalive_s: float = Field(default=30.0, gt=0)
    ca_bundle: str = ""  # PEM bundle that verifies an https upstream (a private CA); "" = the system trust store
    # Where reasoning is in the stream (sut/_reasoning_stream.py, docs/protocol.md): reasoning fields and an
    # explicit opening tag (auto), R1's "...</think>" (think), gpt-oss channels (harmony), fields only, or none.
    reasoning_format: ReasoningFormat = "auto"


class _Resolved:
    """The config with presets and environment applied; the key stays a SecretStr."""

    def __init__(self, cfg: OpenAIConfig, env: dict[str, str] | os._Environ[str]) -> None:
        preset = _PRESETS.get(cfg.preset, {})
        # A preset names an endpoint, so its URL beats an ambient LPUPERF_OPENAI_BASE_URL; its model is only
        # a default, so LPUPERF_OPENAI_MODEL beats it.
        self.base_url = (cfg.base_url or preset.get("base_url", "") or env.get(ENV_BASE_URL, "")).rstrip("/")
        if not self.base_url:
            raise OpenAIConfigError(
                f"openai backend: field 'base_url': no upstream URL; pass --base-url or set {ENV_BASE_URL}"
            )
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OpenAIConfigError(
                f"openai backend: field 'base_url': expected http(s)://host[:port]/v1, got '{_scrub_url(self.base_url)}'"
            )
        self.host = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname
        self.ca_bundle = cfg.ca_bundle
        if self.ca_bundle and not self.https:
            raise OpenAIConfigError(
                f"openai backend: field 'ca_bundle': only for an https base_url, got '{_scrub_url(self.base_url)}'"
            )
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise OpenAIConfigError(f"openai backend: field 'ca_bundle': {self.ca_bundle}: file not found")
        self.model = cfg.model or env.get(ENV_MODEL, "") or preset.get("model", "")
        self.api: str = cfg.api or preset.get("api", "completions")
        self.request_token_ids = (
            cfg.request_token_ids if cfg.request_token_ids is not None else preset.get("request_token_ids", True)
        )
        key_env = cfg.api_key_env or preset.get("api_key_env", DEFAULT_KEY_ENV)
        required = (
            cfg.require_key if cfg.require_key is not None else bool(preset.get("require_key") or cfg.api_key_env)
        )
        key = cfg.api_key
        if key is None and env.get(key_env):
            key = SecretStr(env[key_env])
        if required and (key is None or not key.get_secret_value()):
            raise OpenAIConfigError(f"openai backend: API key missing: environment variable {key_env} is not set")
        self.key_env = key_env
        self.api_key = key


def _scrub_url(url: str) -> str:
    # userinfo in a URL (https://user:secret@host:port) is a credential too; host and port stay.
    return scrub_url(url)


class _ByteEncoder:
    """Inverse of a dataset's ByteDecoder: greedy longest match of UTF-8 bytes onto token pieces.

    The pieces are compiled into one regular expression shaped like their trie (``a(?:b(?:c)?)?``):
    at each position the regex engine walks the trie in C, and the greedy ``?`` makes it try the
    longer piece first and fall back to a shorter one, which is exactly greedy longest match. A
    byte no piece starts with matches the trailing ``.`` and is counted, never invented. A Python
    loop trying every length at every position cost ~2 ms per 560-character prompt, the largest
    single cost of the HTTP front (bench/RESULTS.md).
    """

    def __init__(self, pieces: dict[int, bytes]) -> None:
        self.ids: dict[bytes, int] = {}
        for tid, piece in sorted(pieces.items()):
            if piece:
                self.ids.setdefault(piece, tid)
        self.max_len = max((len(p) for p in self.ids), default=1)
        self.unmapped_bytes = 0
        trie: dict[int, Any] = {}
        for piece in self.ids:
            node = trie
            for byte in piece:
                node = node.setdefault(byte, {})
            node[-1] = True  # a piece ends here
        # Every trie branch starts with a byte, so nothing matches empty (which would never advance).
        pieces_regex = _trie_regex(trie)
        self._pattern = re.compile(pieces_regex + b"|." if pieces_regex else b".", re.DOTALL)

    def encode(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        ids, pattern, n = self.ids, self._pattern, len(data)
        out: list[int] = []
        pos = 0
        # One regex call holds the GIL for its whole run; the front tokenizes long prompts on a worker
        # thread so that its event loop keeps serving, so each call covers one window (~ms of work). A
        # match that starts before the window's end lies wholly inside the window plus max_len bytes, and
        # greedy segmentation from ``pos`` is the same there as over the whole text.
        while pos < n:
            end = pos + _ENCODE_WINDOW_BYTES
            at = pos
            for piece in pattern.findall(data, pos, min(n, end + self.max_len)):
                if at >= end:
                    break  # redone from here in the next window
                at += len(piece)  # the trailing "." consumes every byte: matches are contiguous
                tid = ids.get(piece)
                if tid is None:
                    self.unmapped_bytes += 1  # a byte no piece covers: counted, never invented
                else:
                    out.append(tid)
            pos = at
        return out


_ENCODE_WINDOW_BYTES = 16 * 1024


def _trie_regex(node: dict[int, Any]) -> bytes:
    """Alternation over a trie node's children; each child optional past it where a piece ends there."""
    branches = []
    for byte, child in sorted((k, v) for k, v in node.items() if k >= 0):
        tail = _trie_regex(child) if any(k >= 0 for k in child) else b""
        if tail and child.get(-1):
            tail = b"(?:" + tail + b")?"
        branches.append(re.escape(bytes([byte])) + tail)
    if not branches:
        return b""
    return branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"


class OpenAIBackend:
    """Backend relaying GenerateRequests to an OpenAI-compatible server over pooled keep-alive HTTP.

    The client is aiohttp (one ClientSession, a TCPConnector of ``max_connections``): with its C HTTP
    parser and plain asyncio streams the relay costs about a third of the CPU per streamed request that
    httpx/httpcore/h11/anyio did, and that CPU is what limits the rate the relay can measure
    (bench/RESULTS.md, ``python -m bench.relay_cost``).
    """

    config_model: ClassVar[type[OpenAIConfig]] = OpenAIConfig

    def __init__(self, config: OpenAIConfig, env: dict[str, str] | None = None) -> None:
        self.config = config
        self._r = _Resolved(config, os.environ if env is None else env)
        self._client: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}  # parsed once: yarl parsing per request is measurable
        self._inflight = 0
        self._encode: Callable[[str], list[int]] | None = None
        self._decode: Callable[[Sequence[int]], str] | None = None
        self._tokenizer_name = ""
        self._eos = config.eos_token_id
        self._load_tokenizer()
        self._manifest = self._build_manifest()

    def __repr__(self) -> str:
        key = "set" if self._r.api_key is not None else "none"
        return f"OpenAIBackend(base_url={self._r.base_url!r}, model={self._r.model!r}, api={self._r.api}, key={key})"

    # --- tokenizer -----------------------------------------------------------------------------
    def _load_tokenizer(self) -> None:
        spec = self.config.tokenizer
        if spec == "none":
            return
        if spec in ("auto", "dataset"):
            ds = self._dataset(required=spec == "dataset")
            if ds is not None and ds.decoder is not None:
                enc = _ByteEncoder(ds.decoder.pieces)
                self._encode, self._decode = enc.encode, ds.decoder.decode
                self._tokenizer_name = f"dataset:{ds.name}"
                if self._eos < 0:
                    self._eos = ds.eos_token_id
            elif spec == "dataset":
                raise OpenAIConfigError(
                    f"openai backend: field 'tokenizer': dataset '{self.config.dataset}' has no decoder"
                )
            return
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise OpenAIConfigError(
                "openai backend: field 'tokenizer': a tokenizer directory needs transformers (pip install -e '.[hf]')"
            ) from None
        try:
            tok = AutoTokenizer.from_pretrained(spec)
        except (OSError, ValueError) as exc:
            raise OpenAIConfigError(
                f"openai backend: field 'tokenizer': cannot load '{spec}' ({exc.__class__.__name__})"
            ) from None
        self._encode = lambda text: list(tok.encode(text, add_special_tokens=False))
        self._decode = lambda ids: str(tok.decode(list(ids), skip_special_tokens=True))
        self._tokenizer_name = f"hf:{os.path.basename(spec.rstrip('/')) or spec}"
        if self._eos < 0 and tok.eos_token_id is not None:
            self._eos = int(tok.eos_token_id)

    def _dataset(self, required: bool) -> Dataset | None:
        from scenarios import DatasetError, resolve_dataset

        try:
            return resolve_dataset(self.config.dataset)
        except DatasetError as exc:
            if required:
                raise OpenAIConfigError(f"openai backend: field 'dataset': {exc}") from None
            return None

    @property
    def ids_method(self) -> str:
        """How ids are obtained: server ids when asked for and returned, else the tokenizer."""
        if self._r.request_token_ids:
            fallback = f"tokenizer {self._tokenizer_name}" if self._encode else "none"
            return f"server (fallback: {fallback})"
        return f"tokenizer {self._tokenizer_name}" if self._encode else "none"

    def _build_manifest(self) -> ArtifactManifest:
        model = self._r.model or "unknown"
        return ArtifactManifest(
            artifact_id=f"openai:{self._r.host}:{model}",
            backend="openai",
            model=model,
            precision="remote",
            max_context_tokens=self.config.max_context_tokens,
            max_batch=self.config.max_connections,
            target=self._r.host,
            eos_token_id=max(self._eos, 0),
            extra={
                "api": self._r.api,
                "base_url": _scrub_url(self._r.base_url),
                "preset": self.config.preset,
                "ids": self.ids_method,
                "tokenizer": self._tokenizer_name,
                "n_tokens": "upstream usage.completion_tokens",
                "retries": 0,
                "reasoning_format": self.config.reasoning_format,
            },
        ).with_checksum()

    @property
    def manifest(self) -> ArtifactManifest:
        return self._manifest

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        import aiohttp
        import yarl

        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if self._r.api_key is not None:
            headers["Authorization"] = f"Bearer {self._r.api_key.get_secret_value()}"
            if not self._r.https and not _loopback(self._r.hostname):
                print(
                    f"lpuperf serve: warning: openai backend sends its API key unencrypted to {self._r.host} (http)",
                    file=sys.stderr,
                    flush=True,
                )
        c = self.config
        self._urls = {p: yarl.URL(self._r.base_url + p) for p in ("/completions", "/chat/completions", "/models")}
        # An https upstream is always verified (the CA bundle or the system store); plain http ignores ssl=.
        connector = aiohttp.TCPConnector(
            limit=c.max_connections, limit_per_host=0, keepalive_timeout=c.keepalive_s, ssl=self._tls_context()
        )
        # aiohttp's connect timeout includes the wait for a pooled connection, sock_connect the TCP/TLS
        # set-up alone; sock_read is the longest silence between two reads. A stalled request write shows
        # as a read timeout (aiohttp writes the body while it waits for the answer). Nothing is retried:
        # aiohttp re-sends only idempotent methods, and every generation is a POST.
        self._client = aiohttp.ClientSession(
            headers=headers,
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=c.pool_timeout_s + c.connect_timeout_s,
                sock_connect=c.connect_timeout_s,
                sock_read=c.timeout_s,
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        # Before anything is served: a dead port, a TLS failure, a refused key or an unknown model is one
        # line now (the launcher's "SUT cannot start"), not a run whose every query fails UNAVAILABLE.
        try:
            target = ProbeTarget.of(self._r, _scrub_url(self._r.base_url), c.connect_timeout_s)
            model = await probe_endpoint(self._client, self._urls, target, self._scrub)
        except BaseException:
            await self.stop()  # a backend that did not start holds no connections
            raise
        if model != self._r.model:
            self._r.model = model
            self._manifest = self._build_manifest()

    def _tls_context(self) -> ssl.SSLContext:
        """Verification for an https upstream: the configured CA bundle, else the system trust store."""
        try:
            return ssl.create_default_context(cafile=self._r.ca_bundle or None)
        except (ssl.SSLError, OSError) as exc:
            raise OpenAIConfigError(
                f"openai backend: field 'ca_bundle': {self._r.ca_bundle}: not a PEM CA bundle "
                f"({getattr(exc, 'reason', None) or exc.__class__.__name__})"
            ) from None

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def queue_depth(self) -> int:
        return 0

    def active_batch(self) -> int:
        return self._inflight

    # --- requests ------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        # Scrubbed before it is cut: a key straddling the cut would otherwise leave a recognisable prefix.
        key = self._r.api_key.get_secret_value() if self._r.api_key is not None else None
        return scrub(text[: 16 * _ERROR_BODY_LIMIT].replace("\n", " "), [key])[:_ERROR_BODY_LIMIT].strip()

    def _body(self, request: GenerateRequest) -> tuple[str, dict[str, JsonValue]]:
        r = self._r
        body: dict[str, JsonValue] = {
            "model": r.model,
            "max_tokens": request.max_new_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.greedy:
            body["temperature"] = 0.0
        else:
            body.update(temperature=request.temperature, top_p=request.top_p, seed=request.seed)
        if request.min_new_tokens:
            body["min_tokens"] = request.min_new_tokens
        if request.allow_tool_call:
            # One small function (sut/_tool_calls.py). OpenAI's completions API has no tools: our front honours
            # them there too, other servers ignore the field (and answer without a tool call).
            body["tools"] = RELAY_TOOLS
        if r.request_token_ids:
            body["return_token_ids"] = True
        if self.config.reasoning_format == "harmony":
            # Harmony's channel markers are special tokens, which servers leave out of the text by default
            # (vLLM, our front): without them the text cannot say where the final channel starts.
            body["skip_special_tokens"] = False
        text = request.prompt_text
        mode = self.config.prompt
        if mode == "text" or (mode == "auto" and text) or r.api == "chat":
            if not text and self._decode is not None and request.input_ids.size:
                text = self._decode(request.input_ids.tolist())
            if not text:
                raise InvalidRequestError(
                    "openai backend: request has no prompt_text and no tokenizer to decode input_ids"
                )
            prompt: JsonValue = text
        else:
            if not request.input_ids.size:
                raise InvalidRequestError("openai backend: request has neither prompt_text nor input_ids")
            prompt = request.input_ids.tolist()
        if r.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
            return "/chat/completions", body
        body["prompt"] = prompt
        return "/completions", body

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Sequence[int] | GenerationEnd]:
        if self._client is None:
            raise UpstreamError("unavailable", "openai backend used before start()")
        path, body = self._body(request)
        self._inflight += 1
        try:
            async for item in self._stream(path, body, request):
                yield item
        finally:
            self._inflight -= 1

    async def _stream(
        self, path: str, body: dict[str, JsonValue], request: GenerateRequest
    ) -> AsyncIterator[Sequence[int] | GenerationEnd]:
        assert self._client is not None
        try:
            async with self._client.post(self._urls[path], data=json.dumps(body).encode()) as resp:
                if resp.status != 200:
                    raw = (await resp.read()).decode("utf-8", errors="replace")
                    raise UpstreamError(str(resp.status), error_message(raw, self._scrub))
                async for item in self._relay(resp.content.iter_any(), request):
                    yield item
        except UpstreamError:
            raise
        except Exception as exc:
            if _is_transport_error(exc):
                raise UpstreamError(_exc_status(exc), self._describe(exc)) from None
            raise

    def _describe(self, exc: BaseException) -> str:
        """One scrubbed line for a transport failure; timeouts say which limit ran out."""
        name = _timeout_name(exc)
        if name:
            return f"{name} after {self._timeout_for(name)} s"
        return self._scrub(f"{exc.__class__.__name__}: {exc}")

    async def _relay(
        self, reads: AsyncIterator[bytes], request: GenerateRequest
    ) -> AsyncIterator[Sequence[int] | GenerationEnd]:
        """SSE over raw bytes, one hand-over per network read (sut/_openai_sse.py): events that arrived
        together go to the gRPC stream as one message, whose first token the server still sends alone.
        ``request.output_reasoning_tokens`` says how many of the ids so far (leading) are reasoning."""
        eos = request.eos_token_id if request.eos_token_id >= 0 else self._eos
        reader = SseReader(
            encode=self._encode,
            tokenizer_name=self._tokenizer_name,
            server_ids=self._r.request_token_ids,
            reasoning_format=self.config.reasoning_format,
            scrub=self._scrub,
        )
        # The server splits each message at request.output_reasoning_tokens (the reasoning ids so far: they
        # lead the output), so the count is raised before the ids it covers are handed over.
        async for data in reads:
            ids = reader.feed(data)[0]
            if ids:
                request.output_reasoning_tokens = reader.n_reasoning
                request.output_tool_call = reader.tool_call
                yield ids
            if reader.done:
                break
        ids = reader.close()[0]
        request.output_tool_call = reader.tool_call
        if ids:
            request.output_reasoning_tokens = reader.n_reasoning
            yield ids
        method, finish = reader.method, reader.finish
        closes_with_eos = method.startswith("tokenizer") and finish == "stop" and self.config.append_eos
        if closes_with_eos and eos >= 0 and reader.last_id != eos:
            # The server stopped on EOS; text never carries it. It ends the side the stream is on.
            reader.n_streamed += 1
            if not (reader.reasoning.in_answer or reader.reasoning.undecided):
                reader.n_reasoning += 1
                request.output_reasoning_tokens = reader.n_reasoning
            yield [eos]
        info = {"ids": method or "none", "finish_reason": finish or "unknown"}
        if reader.usage_tokens is None:
            info["n_tokens"] = "no usage from upstream; counted streamed ids"
        yield GenerationEnd(
            n_tokens=reader.usage_tokens if reader.usage_tokens is not None else reader.n_streamed,
            finish_reason=_FINISH_REASONS.get(finish, ""),
            info=info,
            n_reasoning_tokens=reader.total_reasoning,
            cached_prompt_tokens=reader.usage_cached,
        )

    def _timeout_for(self, name: str) -> float:
        c = self.config
        # aiohttp's ConnectionTimeoutError covers the pool wait and the connect; the connect's own limit is named.
        return c.connect_timeout_s if name == "ConnectTimeout" else c.timeout_s


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_transport_error(exc: BaseException) -> bool:
    import aiohttp

    return isinstance(exc, aiohttp.ClientError | TimeoutError | OSError)


def _timeout_name(exc: BaseException) -> str:
    """The timeout's name as the error reports it ('' if ``exc`` is not a timeout)."""
    import aiohttp

    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "ConnectTimeout"
    if isinstance(exc, TimeoutError):  # SocketTimeoutError (sock_read) and any other read-side timeout
        return "ReadTimeout"
    return ""


def _exc_status(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return "connect-error"
    return "transport-error"
