"""What the HTTP front accepts: size/time limits and the strict request-body models.

Every refusal is an :class:`HttpError` whose message is one line naming the field, so a bad request
is always a 4xx with an OpenAI-style JSON error body and never a traceback. Bodies are parsed by
pydantic's JSON parser (strict types: ``"stream": "no"`` is not a boolean, ``"seed": 1.0`` is not an
integer); it bounds nesting depth itself, so a 100k-deep document is a 400, not a RecursionError.

Fields the SUT cannot honour (several choices, stop sequences, logprobs, penalties) are refused when
set to anything but their default: silently ignoring them would change what a client measures.
Unknown fields are ignored, as peer tools send vendor extensions.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from aiohttp import web

# nginx's "client closed request": what a generation request is counted as when its client hung up.
CLIENT_CLOSED = 499
# Token ids travel as int32 on the wire and in the backends.
_MAX_TOKEN_ID = 2**31 - 1
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ENCODINGS = ("", "identity", "gzip", "deflate")  # what aiohttp decodes without optional packages


class HttpLimits(BaseModel):
    """How much, and for how long, the HTTP front listens to one client."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)  # 413 above this, checked before reading
    header_timeout_s: float = Field(default=15.0, gt=0)  # request line + headers, from connect or last response
    body_timeout_s: float = Field(default=30.0, gt=0)  # the whole body, once the headers are in
    max_connections: int = Field(default=1024, gt=0)  # open client connections; more are answered 503
    refused_linger_s: float = Field(default=1.0, gt=0)  # a refused connection's request is drained this long
    inline_parse_bytes: int = Field(default=64 * 1024, ge=0)  # bigger bodies are parsed on a worker thread
    inline_encode_chars: int = Field(default=2048, ge=0)  # longer text prompts are tokenized on a worker thread


class HttpError(Exception):
    """A refusal: HTTP status, one-line message, OpenAI error code and the offending field (if any)."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status
        self.code = code
        self.param = param


def _unsupported(what: str) -> Any:
    """A plain validator accepting only a field's default (absent, null, false, 0, empty)."""

    def check(value: Any) -> Any:
        if value is None or value is False or value == 0 or value == "" or value == [] or value == {}:
            return value
        raise ValueError(f"{what} not supported by this SUT")

    return check


@dataclass(frozen=True)
class _Knob:
    """A numeric sampling option the SUT cannot honour: refused out of its API range (naming the range),
    and refused as unsupported at any in-range value but the ones that leave sampling unchanged."""

    lo: float
    hi: float | None
    integer: bool
    off: tuple[float, ...]
    what: str
    lo_open: bool = False  # lo itself is out of range

    def expected(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo = f"{self.lo:g}"
        if self.hi is None:
            return f"{kind} {'>' if self.lo_open else '>='} {lo}"
        return f"{kind} in {'(' if self.lo_open else '['}{lo}, {self.hi:g}]"

    def check(self, value: Any) -> Any:
        if value is None:
            return value
        number = type(value) is int or (type(value) is float and not self.integer)  # never a bool
        if not number or not math.isfinite(value) or value < self.lo or (self.lo_open and value == self.lo):
            raise ValueError(f"expected {self.expected()}, got {_short(value)}")
        if self.hi is not None and value > self.hi:
            raise ValueError(f"expected {self.expected()}, got {_short(value)}")
        if value not in self.off:
            raise ValueError(f"{self.what} not supported by this SUT; expected {self.off[0]:g}")
        return value


# OpenAI's ranges, and vLLM's for its extensions (repetition_penalty, top_k, min_p).
_KNOBS = {
    "presence_penalty": _Knob(-2, 2, False, (0,), "a presence penalty is"),
    "frequency_penalty": _Knob(-2, 2, False, (0,), "a frequency penalty is"),
    "repetition_penalty": _Knob(0, None, False, (1,), "a repetition penalty is", lo_open=True),
    "top_logprobs": _Knob(0, 20, True, (0,), "top_logprobs are"),
    "top_k": _Knob(-1, None, True, (-1, 0), "top-k sampling is"),
    "min_p": _Knob(0, 1, False, (0,), "min-p sampling is"),
}


class ToolFunction(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    name: str = Field(min_length=1, max_length=64)


class Tool(BaseModel):
    """One entry of ``tools``: only its kind and function name matter here (the sim calls it by name)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    type: Literal["function"]
    function: ToolFunction


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool | None = None


class _Common(BaseModel):
    """Sampling and streaming fields shared by both endpoints."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=_MAX_TOKEN_ID)
    min_tokens: int | None = Field(
        default=None, ge=0, le=_MAX_TOKEN_ID
    )  # vLLM's extension: suppress EOS until this many
    ignore_eos: bool | None = None  # vLLM's extension: generate exactly max_tokens
    temperature: float | None = Field(default=None, ge=0, le=2)  # OpenAI's range
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    n: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    return_token_ids: bool | None = None
    # Reasoning models: completions text without the reasoning (our extension, OpenRouter's spelling), and
    # vLLM's switch to keep special tokens (harmony's markers) in completions text.
    include_reasoning: bool | None = None
    skip_special_tokens: bool | None = None
    user: str | None = None
    # Tools the model may call (chat; on completions our extension): a non-empty list lets the SUT answer with
    # a tool call, unless tool_choice is "none". Forcing a call ("required", a named function) is refused.
    tools: list[Tool] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    stop: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    repetition_penalty: Any = None  # vLLM's extension
    top_k: Any = None  # vLLM's extension
    min_p: Any = None  # vLLM's extension
    logit_bias: Any = None

    _unsupported_fields: ClassVar[dict[str, str]] = {
        "stop": "stop sequences are",
        "logprobs": "logprobs are",
        "logit_bias": "logit_bias is",
    }

    @field_validator("stop", "logprobs", "logit_bias", mode="plain")
    @classmethod
    def _off(cls, value: Any, info: Any) -> Any:
        return _unsupported(cls._unsupported_fields[info.field_name])(value)

    @field_validator(*_KNOBS, mode="plain")
    @classmethod
    def _knob(cls, value: Any, info: Any) -> Any:
        return _KNOBS[info.field_name].check(value)

    @field_validator("tool_choice", mode="plain")
    @classmethod
    def _choice_auto_or_none(cls, value: Any) -> Any:
        if value is None or value in ("auto", "none"):
            return value
        raise ValueError(
            f'expected "auto" or "none", got {_short(value)}; forcing a tool call is not supported by this SUT'
        )

    def tool_name(self) -> str | None:
        """The function a tool-call answer calls (the first one offered); None: no tool call allowed."""
        if not self.tools or self.tool_choice == "none":
            return None
        return self.tools[0].function.name

    @field_validator("n", mode="after")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError(f"n={value}: only one choice per request (n=1) is supported by this SUT")
        return value

    def max_new_tokens(self, default: int) -> int:
        return self.max_tokens if self.max_tokens is not None else default

    def checked(self, default_max_tokens: int) -> tuple[int, int]:
        """Cross-field checks; returns (max_new_tokens, min_new_tokens)."""
        max_new = self.max_new_tokens(default_max_tokens)
        if self.min_tokens is not None and self.min_tokens > max_new:
            raise HttpError(
                400,
                f"field 'min_tokens': {self.min_tokens} exceeds max_tokens ({max_new})",
                "invalid_request",
                "min_tokens",
            )
        if self.stream_options is not None and not self.stream:
            raise HttpError(
                400, "field 'stream_options': only allowed with \"stream\": true", "invalid_request", "stream_options"
            )
        min_new = max_new if self.ignore_eos else (self.min_tokens or 0)
        return max_new, min_new


class CompletionBody(_Common):
    """``POST /v1/completions``."""

    prompt: Any = None
    best_of: int | None = None
    echo: Any = None
    suffix: Any = None

    @field_validator("prompt", mode="plain")
    @classmethod
    def _prompt(cls, value: Any) -> str | list[int]:
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, list)):
            value = value[0]  # a batch of one
        if isinstance(value, str):
            if value:
                return value
        elif isinstance(value, list) and value and all(type(t) is int for t in value):
            for i, t in enumerate(value):
                if not 0 <= t <= _MAX_TOKEN_ID:
                    raise ValueError(f"token id [{i}] = {t} is out of range 0..{_MAX_TOKEN_ID}")
            return value
        elif isinstance(value, list) and len(value) > 1 and all(isinstance(p, (str, list)) for p in value):
            raise ValueError("a batch of several prompts is not supported by this SUT; send one per request")
        raise ValueError("expected non-empty text or a non-empty list of integer token ids")

    @field_validator("best_of", mode="after")
    @classmethod
    def _one_candidate(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError(f"best_of={value}: only best_of=1 is supported by this SUT")
        return value

    @field_validator("echo", mode="plain")
    @classmethod
    def _no_echo(cls, value: Any) -> Any:
        return _unsupported("echoing the prompt is")(value)

    @field_validator("suffix", mode="plain")
    @classmethod
    def _no_suffix(cls, value: Any) -> Any:
        return _unsupported("a suffix is")(value)


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: str
    content: Any = None  # text, a list of text parts, or null; always text once validated

    @field_validator("role", mode="after")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in _ROLES:
            raise ValueError(f"unknown role {value[:40]!r}; expected one of {', '.join(_ROLES)}")
        return value

    @field_validator("content", mode="plain")
    @classmethod
    def _text_parts(cls, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):
            texts = []
            for i, part in enumerate(value):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ValueError(f"part [{i}]: expected {{'type': 'text', 'text': str}}; only text is supported")
                texts.append(part["text"])
            return "".join(texts)
        raise ValueError(f"expected text, a list of text parts or null, got {_short(value)}")

    def text(self) -> str:
        return str(self.content or "")


class ChatBody(_Common):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=_MAX_TOKEN_ID)

    def max_new_tokens(self, default: int) -> int:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return super().max_new_tokens(default)

    def check_last_message(self) -> None:
        """The last message is what gets answered: it must have text."""
        if not self.messages[-1].text():
            param = f"messages[{len(self.messages) - 1}].content"
            raise HttpError(400, f"field '{param}': expected non-empty text", "invalid_request", param)

    def text_chars(self) -> int:
        return sum(len(m.content or "") for m in self.messages)

    def conversation(self) -> list[dict[str, str]]:
        """Every message as ``{"role", "content"}``, content as text (null is empty)."""
        return [{"role": m.role, "content": m.text()} for m in self.messages]


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def error_from_validation(exc: ValidationError) -> HttpError:
    """The first problem of a failed body validation as one HttpError naming the field."""
    err = exc.errors(include_url=False)[0]
    kind, msg = err["type"], str(err["msg"])
    if kind == "json_invalid":
        detail = msg.removeprefix("Invalid JSON: ")
        return HttpError(400, f"request body: invalid JSON ({detail})", "invalid_json")
    path = _path(tuple(err["loc"]))
    if not path:
        return HttpError(400, "request body: expected a JSON object", "invalid_request")
    if kind == "missing":
        return HttpError(400, f"field '{path}': required", "invalid_request", path)
    if kind == "value_error":
        detail = msg.removeprefix("Value error, ")
    else:
        detail = f"{msg[:1].lower()}{msg[1:]}, got {_short(err.get('input'))}"
    return HttpError(400, f"field '{path}': {detail}", "invalid_request", path)


def parse_body(raw: bytes, chat: bool) -> CompletionBody | ChatBody:
    """Validate a request body; raise HttpError (400) naming the first bad field."""
    model = ChatBody if chat else CompletionBody
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise error_from_validation(exc) from None
    if isinstance(body, CompletionBody) and body.prompt is None:
        raise HttpError(400, "field 'prompt': required", "invalid_request", "prompt")
    return body


def _json_content_type(value: str) -> bool:
    mime = value.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


async def read_body(request: web.Request, limits: HttpLimits) -> bytes:
    """The request body, refused before it is read when too big, and cut off when too big or too slow.

    A declared Content-Length over the limit is a 413 at once; a chunked (or lying) body is counted as
    it streams in and refused the moment it passes the limit; the whole body must arrive within
    ``body_timeout_s`` (408).
    """
    from aiohttp import web

    ctype = request.headers.get("Content-Type", "")
    if ctype and not _json_content_type(ctype):
        raise HttpError(415, f"header 'Content-Type': expected application/json, got {_short(ctype)}", "bad_type")
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        msg = f"header 'Content-Encoding': {_short(encoding)} is not supported; expected identity, gzip or deflate"
        raise HttpError(415, msg, "bad_encoding")
    cap = limits.max_body_bytes  # counted after decompression, so a small gzip bomb is cut off too
    declared = request.content_length
    if declared is not None and declared > cap:
        raise HttpError(413, f"request body: {declared} bytes exceeds the limit of {cap} bytes", "request_too_large")
    buf = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            while chunk := await request.content.readany():
                buf += chunk
                if len(buf) > cap:
                    raise HttpError(413, f"request body: over the limit of {cap} bytes", "request_too_large")
    except TimeoutError:
        msg = f"request body: not received within {limits.body_timeout_s:g} s ({len(buf)} bytes arrived)"
        raise HttpError(408, msg, "request_timeout") from None
    except web.RequestPayloadError as exc:  # broken chunked framing, bad compression
        raise HttpError(400, f"request body: unreadable ({exc})", "invalid_body") from None
    except ConnectionResetError:  # aiohttp's "Connection lost": the client hung up mid-body, not our fault
        msg = f"request body: the client closed the connection after {len(buf)} bytes"
        raise HttpError(CLIENT_CLOSED, msg, "client_disconnected") from None
    return bytes(buf)
