"""Bad input, front by front: every case is refused with the right status and a one-line message that
names the offending field, and the server is still healthy afterwards.

One table per front (GRPC_CASES, HTTP_CASES, ...). Both network fronts share one in-process SUT: the
sim behind gRPC, with the OpenAI-compatible HTTP front on the same event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from sut._http import HttpFront, HttpLimits, start_http_front

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)
MAX_BODY = 256 * 1024  # the HTTP front's body limit in this module


@dataclass
class Sut:
    server: Any
    front: HttpFront
    channel: grpc.Channel
    stub: pb_grpc.InferenceStub
    http: httpx.Client

    @property
    def vocab(self) -> int:
        return int(self.server.manifest.vocab_size)

    @property
    def context(self) -> int:
        return int(self.server.manifest.max_context_tokens)


@pytest.fixture(scope="module")
def target() -> Iterator[Sut]:
    server = sut.start_embedded({"kind": "sim", "artifact": "sim-instant", "dataset": DATASET})
    front = asyncio.run_coroutine_threadsafe(
        start_http_front(server.backend, "127.0.0.1", 0, limits=HttpLimits(max_body_bytes=MAX_BODY)), server.loop
    ).result(timeout=30)
    channel = grpc.insecure_channel(server.address)
    http = httpx.Client(base_url=f"http://{front.address}", timeout=30.0)
    try:
        yield Sut(server, front, channel, pb_grpc.InferenceStub(channel), http)
    finally:
        http.close()
        channel.close()
        asyncio.run_coroutine_threadsafe(front.stop(), server.loop).result(timeout=30)
        server.stop()


def _assert_healthy(t: Sut) -> None:
    """Both fronts still serve a good request, and health says so."""
    health = health_pb2_grpc.HealthStub(t.channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    req = pb.GenerateRequest(input_ids=DS.input_ids[0].tolist(), max_new_tokens=3, eos_token_id=-1)
    assert [tok for c in t.stub.Generate(req, timeout=10) for tok in c.token_ids] == DS.reference_ids[0][:3].tolist()
    resp = t.http.post("/v1/completions", json={"prompt": DS.input_ids[0].tolist(), "max_tokens": 3})
    assert resp.status_code == 200 and resp.json()["usage"]["completion_tokens"] == 3
    assert t.http.get("/health").json()["status"] == "ok"


def _one_line_naming(message: str, name: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message
    assert name.lower() in message.lower(), f"{name!r} not in {message!r}"


# --- gRPC --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GrpcCase:
    name: str
    code: grpc.StatusCode
    names: str  # what the one-line details must mention
    fields: dict[str, Any] = field(default_factory=dict)  # GenerateRequest fields over a valid default
    wire: bytes | None = None  # raw request bytes instead of a message
    method: str = "Generate"


_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_RANDOM = {"sampling": pb.SAMPLING_RANDOM, "top_p": 0.9, "temperature": 0.7}
_GOOD = pb.GenerateRequest(input_ids=[5, 6, 7], max_new_tokens=4, eos_token_id=-1).SerializeToString()

GRPC_CASES = [
    GrpcCase("empty-prompt", _INVALID, "input_ids", {"input_ids": []}),
    GrpcCase("negative-token-id", _INVALID, "input_ids[1]", {"input_ids": [5, -3, 7]}),
    GrpcCase("token-id-over-vocab", _INVALID, "input_ids[1]", {"input_ids": [5, 2**20, 7]}),
    GrpcCase("token-id-int32-max", _INVALID, "vocab", {"input_ids": [2**31 - 1]}),
    GrpcCase("zero-max-new-tokens", _INVALID, "max_new_tokens", {"max_new_tokens": 0}),
    GrpcCase("min-over-max", _INVALID, "min_new_tokens", {"min_new_tokens": 5}),
    GrpcCase("eos-below-minus-one", _INVALID, "eos_token_id", {"eos_token_id": -7}),
    GrpcCase("unknown-eos", _INVALID, "eos_token_id", {"eos_token_id": 2**20}),
    GrpcCase("unknown-sampling", _INVALID, "sampling", {"sampling": 9}),
    GrpcCase("random-top-p-zero", _INVALID, "top_p", {**_RANDOM, "top_p": 0.0}),
    GrpcCase("random-top-p-over-one", _INVALID, "top_p", {**_RANDOM, "top_p": 1.5}),
    GrpcCase("random-negative-temperature", _INVALID, "temperature", {**_RANDOM, "temperature": -1.0}),
    GrpcCase("random-nan-temperature", _INVALID, "temperature", {**_RANDOM, "temperature": float("nan")}),
    GrpcCase("random-inf-temperature", _INVALID, "temperature", {**_RANDOM, "temperature": float("inf")}),
    GrpcCase("context-overflow", _EXHAUSTED, "max_new_tokens", {"input_ids": [5] * 4000, "max_new_tokens": 200}),
    GrpcCase("huge-max-new-tokens", _EXHAUSTED, "max_new_tokens", {"max_new_tokens": 2**32 - 1}),
    GrpcCase("message-over-4mib", _EXHAUSTED, "larger than max", {"prompt_text": "x" * (5 * 1024 * 1024)}),
    GrpcCase("garbage-bytes", _INVALID, "GenerateRequest", wire=b"\xff\xff\xff not protobuf"),
    GrpcCase("truncated-message", _INVALID, "GenerateRequest", wire=_GOOD[:-1]),
    GrpcCase("invalid-utf8-request-id", _INVALID, "GenerateRequest", wire=b"\x0a\x02\xff\xfe" + _GOOD),
    GrpcCase("empty-bytes-is-an-empty-request", _INVALID, "input_ids", wire=b""),
    GrpcCase("garbage-get-artifact", _INVALID, "GetArtifactRequest", wire=b"\xff\xff\xff", method="GetArtifact"),
    GrpcCase("unknown-method", grpc.StatusCode.UNIMPLEMENTED, "method", wire=b"", method="Nope"),
]


@pytest.mark.parametrize("case", GRPC_CASES, ids=[c.name for c in GRPC_CASES])
def test_grpc_bad_input(target: Sut, case: GrpcCase) -> None:
    path = f"/lpuperf.v1.Inference/{case.method}"
    with pytest.raises(grpc.RpcError) as err:
        if case.wire is not None:  # identity serializers: the bytes reach the server as they are
            if case.method == "GetArtifact":
                target.channel.unary_unary(path)(case.wire, timeout=10)
            else:
                list(target.channel.unary_stream(path)(case.wire, timeout=10))
        else:
            req = pb.GenerateRequest(**{"input_ids": [5, 6, 7], "max_new_tokens": 4, "eos_token_id": -1, **case.fields})
            list(target.stub.Generate(req, timeout=10))
    assert err.value.code() == case.code, err.value.details()
    _one_line_naming(err.value.details() or "", case.names)
    _assert_healthy(target)


# --- HTTP (OpenAI-compatible front) ------------------------------------------------------------
_NO_BODY: Any = object()


@dataclass(frozen=True)
class HttpCase:
    name: str
    status: int
    names: str  # what the one-line error message must mention
    body: Any = _NO_BODY  # sent as JSON
    raw: bytes | None = None  # sent as-is, Content-Type application/json unless headers say otherwise
    path: str = "/v1/completions"
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    wire: bytes | None = None  # the whole request on a raw socket (what an HTTP client would not send)


def _c(**fields: Any) -> dict[str, Any]:
    """A valid completions body, with ``fields`` replaced (a value of _NO_BODY drops the field)."""
    body = {"prompt": [5, 6, 7], "max_tokens": 4, **fields}
    return {k: v for k, v in body.items() if v is not _NO_BODY}


def _chat(**fields: Any) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": DS.prompts[0]}], "max_tokens": 4, **fields}
    return {k: v for k, v in body.items() if v is not _NO_BODY}


def _msg(**fields: Any) -> dict[str, Any]:
    """A chat body whose single message is ``fields`` (over role user, content 'hi')."""
    message = {k: v for k, v in {"role": "user", "content": DS.prompts[0], **fields}.items() if v is not _NO_BODY}
    return _chat(messages=[message])


_CHAT = "/v1/chat/completions"
_JSON = "application/json"
_DEEP = b'{"prompt": [5], "max_tokens": 2, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
_POST = b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
_CHUNKS = (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 5 + b"0\r\n\r\n"  # 320 KiB, no Content-Length

HTTP_CASES = [
    # prompt
    HttpCase("prompt-missing", 400, "'prompt'", _c(prompt=_NO_BODY)),
    HttpCase("prompt-null", 400, "'prompt'", _c(prompt=None)),
    HttpCase("prompt-empty-text", 400, "'prompt'", _c(prompt="")),
    HttpCase("prompt-empty-list", 400, "'prompt'", _c(prompt=[])),
    HttpCase("prompt-number", 400, "'prompt'", _c(prompt=5)),
    HttpCase("prompt-object", 400, "'prompt'", _c(prompt={"text": "hi"})),
    HttpCase("prompt-negative-id", 400, "'prompt'", _c(prompt=[1, -2])),
    HttpCase("prompt-id-2-to-the-40", 400, "'prompt'", _c(prompt=[1, 2**40])),
    HttpCase("prompt-id-int32-overflow", 400, "'prompt'", _c(prompt=[2**31])),
    HttpCase("prompt-id-over-vocab", 400, "'prompt[1]'", _c(prompt=[5, 1_000_000])),
    HttpCase("prompt-bool-id", 400, "'prompt'", _c(prompt=[1, True])),
    HttpCase("prompt-float-id", 400, "'prompt'", _c(prompt=[1, 2.5])),
    HttpCase("prompt-batch-of-texts", 400, "'prompt'", _c(prompt=["a", "b"])),
    HttpCase("prompt-batch-of-id-lists", 400, "'prompt'", _c(prompt=[[5, 6], [7]])),
    # lengths
    HttpCase("max-tokens-zero", 400, "'max_tokens'", _c(max_tokens=0)),
    HttpCase("max-tokens-negative", 400, "'max_tokens'", _c(max_tokens=-1)),
    HttpCase("max-tokens-text", 400, "'max_tokens'", _c(max_tokens="many")),
    HttpCase("max-tokens-float", 400, "'max_tokens'", _c(max_tokens=1.5)),
    HttpCase("max-tokens-bool", 400, "'max_tokens'", _c(max_tokens=True)),
    HttpCase("max-tokens-over-context", 400, "'max_tokens'", _c(max_tokens=1_000_000)),
    HttpCase("min-tokens-negative", 400, "'min_tokens'", _c(min_tokens=-1)),
    HttpCase("min-tokens-over-max", 400, "'min_tokens'", _c(min_tokens=5)),
    HttpCase("min-tokens-text", 400, "'min_tokens'", _c(min_tokens="3")),
    HttpCase("ignore-eos-text", 400, "'ignore_eos'", _c(ignore_eos="yes")),
    # sampling
    HttpCase("temperature-text", 400, "'temperature'", _c(temperature="hot")),
    HttpCase("temperature-negative", 400, "'temperature'", _c(temperature=-0.5)),
    HttpCase("temperature-nan", 400, "'temperature'", raw=b'{"prompt": [5], "temperature": NaN}'),
    HttpCase("temperature-overflow", 400, "'temperature'", raw=b'{"prompt": [5], "temperature": 1e999}'),
    HttpCase("top-p-text", 400, "'top_p'", _c(top_p="abc")),
    HttpCase("top-p-zero", 400, "'top_p'", _c(top_p=0)),
    HttpCase("top-p-over-one", 400, "'top_p'", _c(top_p=1.5)),
    HttpCase("seed-text", 400, "'seed'", _c(seed="abc")),
    HttpCase("seed-list", 400, "'seed'", _c(seed=[1])),
    HttpCase("seed-float", 400, "'seed'", _c(seed=1.5)),
    HttpCase("seed-over-uint64", 400, "'seed'", _c(seed=2**64)),
    # unsupported features are refused, not ignored
    HttpCase("n-two", 400, "'n'", _c(n=2)),
    HttpCase("n-text", 400, "'n'", _c(n="2")),
    HttpCase("best-of-three", 400, "'best_of'", _c(best_of=3)),
    HttpCase("stop-sequences", 400, "'stop'", _c(stop=["\n"])),
    HttpCase("logprobs", 400, "'logprobs'", _c(logprobs=5)),
    HttpCase("echo", 400, "'echo'", _c(echo=True)),
    HttpCase("suffix", 400, "'suffix'", _c(suffix="end")),
    HttpCase("presence-penalty", 400, "'presence_penalty'", _c(presence_penalty=0.5)),
    HttpCase("frequency-penalty-text", 400, "'frequency_penalty'", _c(frequency_penalty="x")),
    HttpCase("logit-bias", 400, "'logit_bias'", _c(logit_bias={"5": 100})),
    # streaming and extension flags
    HttpCase("stream-text", 400, "'stream'", _c(stream="no")),
    HttpCase("stream-number", 400, "'stream'", _c(stream=1)),
    HttpCase("stream-options-without-stream", 400, "'stream_options'", _c(stream_options={"include_usage": True})),
    HttpCase("stream-options-text", 400, "'stream_options'", _c(stream=True, stream_options="usage")),
    HttpCase(
        "include-usage-text",
        400,
        "'stream_options.include_usage'",
        _c(stream=True, stream_options={"include_usage": "yes"}),
    ),
    HttpCase("return-token-ids-text", 400, "'return_token_ids'", _c(return_token_ids="true")),
    HttpCase("model-number", 400, "'model'", _c(model=7)),
    HttpCase("user-number", 400, "'user'", _c(user=5)),
    # chat
    HttpCase("chat-messages-missing", 400, "'messages'", _chat(messages=_NO_BODY), path=_CHAT),
    HttpCase("chat-messages-empty", 400, "'messages'", _chat(messages=[]), path=_CHAT),
    HttpCase("chat-messages-text", 400, "'messages'", _chat(messages="hi"), path=_CHAT),
    HttpCase("chat-message-not-object", 400, "'messages[0]'", _chat(messages=["hi"]), path=_CHAT),
    HttpCase("chat-role-missing", 400, "'messages[0].role'", _msg(role=_NO_BODY), path=_CHAT),
    HttpCase("chat-role-unknown", 400, "'messages[0].role'", _msg(role="wizard"), path=_CHAT),
    HttpCase("chat-content-missing", 400, "'messages[0].content'", _msg(content=_NO_BODY), path=_CHAT),
    HttpCase("chat-content-empty", 400, "'messages[0].content'", _msg(content=""), path=_CHAT),
    HttpCase("chat-content-number", 400, "'messages[0].content'", _msg(content=5), path=_CHAT),
    HttpCase("chat-content-image", 400, "'messages[0].content'", _msg(content=[{"type": "image_url"}]), path=_CHAT),
    HttpCase("chat-max-completion-zero", 400, "'max_completion_tokens'", _chat(max_completion_tokens=0), path=_CHAT),
    HttpCase("chat-n-three", 400, "'n'", _chat(n=3), path=_CHAT),
    HttpCase("chat-logprobs", 400, "'logprobs'", _chat(logprobs=True), path=_CHAT),
    HttpCase("chat-stream-text", 400, "'stream'", _chat(stream="yes"), path=_CHAT),
    # the body as a whole
    HttpCase("body-empty", 400, "request body", raw=b""),
    HttpCase("body-not-json", 400, "request body", raw=b"hello"),
    HttpCase("body-truncated-json", 400, "request body", raw=b'{"prompt": [5'),
    HttpCase("body-json-array", 400, "request body", raw=b"[1, 2]"),
    HttpCase("body-json-string", 400, "request body", raw=b'"prompt"'),
    HttpCase("body-invalid-utf8", 400, "request body", raw=b'{"prompt": "\xff\xfe"}'),
    HttpCase("body-100k-deep", 400, "request body", raw=_DEEP),
    HttpCase("body-over-limit", 413, str(MAX_BODY), _c(prompt="x" * (MAX_BODY + 1))),
    HttpCase("chat-body-over-limit", 413, str(MAX_BODY), _chat(pad="x" * (MAX_BODY + 1)), path=_CHAT),
    # headers and framing
    HttpCase("content-type-text", 415, "Content-Type", raw=b"{}", headers=(("Content-Type", "text/plain"),)),
    HttpCase(
        "content-type-form",
        415,
        "Content-Type",
        raw=b"a=1",
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
    ),
    HttpCase("content-encoding-unknown", 415, "Content-Encoding", raw=b"{}", headers=(("Content-Encoding", "bogus"),)),
    HttpCase("content-encoding-brotli", 400, "content-encoding", raw=b"{}", headers=(("Content-Encoding", "br"),)),
    HttpCase(
        "content-encoding-lies", 400, "content-encoding", raw=b"not gzip", headers=(("Content-Encoding", "gzip"),)
    ),
    HttpCase("content-length-not-a-number", 400, "Content-Length", wire=_POST + b"Content-Length: abc\r\n\r\n{}"),
    HttpCase(
        "content-length-twice", 400, "Content-Length", wire=_POST + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
    HttpCase("declared-length-over-limit", 413, str(MAX_BODY), wire=_POST + b"Content-Length: 999999999\r\n\r\n"),
    HttpCase("chunked-over-limit", 413, str(MAX_BODY), wire=_POST + b"Transfer-Encoding: chunked\r\n\r\n" + _CHUNKS),
    HttpCase(
        "chunk-size-garbage", 400, "chunk", wire=_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ),
    HttpCase("request-line-garbage", 400, "method", wire=b"GARBAGE\r\n\r\n"),
    HttpCase("tls-on-plain-port", 400, "HTTPS", wire=b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40)),
    HttpCase(
        "header-too-long", 400, "8190", wire=b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    ),
    HttpCase(
        "too-many-headers",
        400,
        "headers",
        wire=b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    ),
    # paths and methods
    HttpCase("get-on-completions", 405, "GET", method="GET"),
    HttpCase("put-on-chat", 405, "PUT", path=_CHAT, method="PUT", body={}),
    HttpCase("delete-health", 405, "DELETE", path="/health", method="DELETE"),
    HttpCase("post-models", 405, "POST", path="/v1/models", body={}),
    HttpCase("unknown-path", 404, "/v1/nothing", path="/v1/nothing", method="GET"),
    HttpCase("unknown-version", 404, "/v2/completions", path="/v2/completions", body=_c()),
    HttpCase("root", 404, "'/'", path="/", method="GET"),
]


def _wire(t: Sut, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send raw bytes; return the status and the JSON body of the answer."""
    with socket.create_connection((t.front.host, t.front.port), timeout=10) as sock:
        # Refused before the upload finished: the answer is already on its way.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        got = b""
        for _ in range(1000):  # bounded; each recv is bounded by the socket timeout
            head, sep, payload = got.partition(b"\r\n\r\n")
            if sep:
                length = [ln for ln in head.lower().split(b"\r\n") if ln.startswith(b"content-length:")]
                if length and len(payload) >= int(length[0].split(b":")[1]):
                    break
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    head, _, payload = got.partition(b"\r\n\r\n")
    body: dict[str, Any] = json.loads(payload)
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.name for c in HTTP_CASES])
def test_http_bad_input(target: Sut, case: HttpCase) -> None:
    if case.wire is not None:
        status, body = _wire(target, case.wire)
    else:
        headers = dict(case.headers)
        content = case.raw
        if case.body is not _NO_BODY:
            content = json.dumps(case.body).encode()
        if content is not None:
            headers.setdefault("Content-Type", _JSON)
        resp = target.http.request(case.method, case.path, content=content, headers=headers)
        assert resp.headers["content-type"].startswith(_JSON), resp.text[:200]
        status, body = resp.status_code, resp.json()
    assert status == case.status, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    _one_line_naming(error["message"], case.names)
    _assert_healthy(target)


def test_health_counts_refusals_by_status(target: Sut) -> None:
    before = target.http.get("/health").json()["responses_by_status"]
    target.http.post("/v1/completions", json=_c(seed="abc"))
    target.http.post("/v1/completions", content=b"x" * (MAX_BODY + 1), headers={"Content-Type": _JSON})
    after = target.http.get("/health").json()["responses_by_status"]
    for status in ("400", "413"):
        assert after.get(status, 0) == before.get(status, 0) + 1
    assert "500" not in after


# --- room for more fronts: CLI_CASES, DATASET_CASES, USER_CONF_CASES ---------------------------
