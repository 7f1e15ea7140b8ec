"""The one bad-input table for all five fronts: CLI, dataset files, user.conf, gRPC and HTTP.

Each case is refused with the right exit code or status and a one-line message (no traceback) naming
the offending flag, field or file, and nothing is left half-written. One table per front:

* GRPC_CASES, HTTP_CASES: one in-process SUT (``target``), the sim behind gRPC with the OpenAI-compatible
  HTTP front on the same event loop; both fronts must still serve a good request afterwards.
* CLI_CASES (flags of every command), DATASET_CASES (``run --dataset`` files), USERCONF_CASES
  (``run --user-conf``): the CLI in-process in a scratch workspace (``ws``); exit status 2, exactly one
  stderr line ``lpuperf CMD: error: ...``, and nothing written under the workspace (output root included).
  A case needing a SUT uses a refusal that comes before the SUT starts, except the context pre-flight,
  which needs the SUT's manifest.

Case types, builders and shared assertions: _bad_input_support.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import httpx
import pytest
from _bad_input_support import (
    _CHAT,
    _CHUNKS,
    _DEEP,
    _EXHAUSTED,
    _GOOD,
    _HEADER,
    _INVALID,
    _JSON,
    _NO_BODY,
    _POST,
    _RANDOM,
    _ROW,
    DATASET,
    MAX_BODY,
    GrpcCase,
    HttpCase,
    Sut,
    Workspace,
    _assert_healthy,
    _c,
    _chat,
    _jsonl,
    _msg,
    _one_line_naming,
    _refused,
    _wire,
)

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from sut._http import HttpLimits, start_http_front

# The CLI, dataset and user.conf cases run in-process and must each be quick.
_CLI_TIMEOUT = pytest.mark.timeout(60)


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def target() -> Iterator[Sut]:
    """gRPC and HTTP: one in-process SUT for the whole module."""
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


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """CLI, dataset and user.conf: a scratch workspace, the current directory."""
    # Defaults such as --out results land here, where the snapshot sees them.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file.txt").write_text("x\n")
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text("{}\n")
    (tmp_path / "badrun").mkdir()
    (tmp_path / "badrun" / "results.json").write_text("{not json\n")
    (tmp_path / "not-json.json").write_text("{not json\n")
    return Workspace(tmp_path)


# --- gRPC ----------------------------------------------------------------------------------------
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


# --- HTTP (OpenAI-compatible front) --------------------------------------------------------------
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


# --- CLI flags -----------------------------------------------------------------------------------
_RUN = ["run", "--out", "{out}", "--dataset", "synthetic:4:0"]
_SERVE = ["serve", "--port", "0"]
_VALIDATE = ["validate", "--baseline", "sim-fp32", "--candidate", "sim-bf16", "--out", "{out}"]
_PEAK = ["find-peak", "--out", "{out}"]
_SUBMIT = ["submission", "run", "--out", "{out}"]
_T06 = ["compliance", "test06", "--out", "{out}"]
_CTX = ["compliance", "context", "--out", "{out}"]
_RUN_ID = "expected one path component"

CLI_CASES = [
    # lpuperf run: numbers
    pytest.param([*_RUN, "--qps", "-5"], "field 'qps'", id="run-qps-negative"),
    pytest.param([*_RUN, "--qps", "0"], "field 'qps'", id="run-qps-zero"),
    pytest.param([*_RUN, "--qps", "nan"], "field 'qps'", id="run-qps-nan"),
    pytest.param([*_RUN, "--qps", "inf"], "field 'qps'", id="run-qps-inf"),
    pytest.param([*_RUN, "--qps", "fast"], "argument --qps", id="run-qps-word"),
    pytest.param([*_RUN, "--duration", "0"], "field 'duration'", id="run-duration-zero"),
    pytest.param([*_RUN, "--duration", "-1"], "field 'duration'", id="run-duration-negative"),
    pytest.param([*_RUN, "--duration", "nan"], "field 'duration'", id="run-duration-nan"),
    pytest.param([*_RUN, "--min-query-count", "0"], "field 'min_query_count'", id="run-min-query-count-zero"),
    pytest.param([*_RUN, "--min-query-count", "1.5"], "argument --min-query-count", id="run-min-query-count-float"),
    pytest.param([*_RUN, "--max-new-tokens", "0"], "field 'max_new_tokens'", id="run-max-new-tokens-zero"),
    pytest.param([*_RUN, "--max-new-tokens", "-3"], "field 'max_new_tokens'", id="run-max-new-tokens-negative"),
    pytest.param([*_RUN, "--metrics-port", "70000"], "field 'metrics_port'", id="run-metrics-port-high"),
    pytest.param([*_RUN, "--workers", "0"], "field 'workers'", id="run-workers-zero"),
    pytest.param([*_RUN, "--workers", "two"], "argument --workers", id="run-workers-word"),
    pytest.param([*_RUN, "--workers", "2", "--load", "rate:5"], "workers: 2 worker processes", id="run-workers-load"),
    pytest.param([*_RUN, "--metrics-port", "-1"], "field 'metrics_port'", id="run-metrics-port-negative"),
    pytest.param([*_RUN, "--metrics-linger", "-1"], "field 'metrics_linger_s'", id="run-metrics-linger-negative"),
    # lpuperf run: choices and names
    pytest.param([*_RUN, "--scenario", "Nope"], "argument --scenario", id="run-scenario-unknown"),
    pytest.param([*_RUN, "--mode", "fast"], "argument --mode", id="run-mode-unknown"),
    pytest.param([*_RUN, "--preset", "huge"], "--preset huge", id="run-preset-unknown"),
    pytest.param([*_RUN, "--benchmark", "nope"], "benchmark", id="run-benchmark-unknown"),
    pytest.param([*_RUN, "--backend", "nope"], "unknown backend kind 'nope'", id="run-backend-unknown"),
    pytest.param([*_RUN, "--precision", "fp3"], "field 'precision'", id="run-precision-unknown"),
    pytest.param([*_RUN, "--backend", "sim", "--precision", "fp16"], "field 'precision'", id="run-sim-precision-fp16"),
    pytest.param(
        [*_RUN, "--sut", "127.0.0.1:9", "--precision", "bf16"], "--backend/--precision", id="run-sut-and-spawn"
    ),
    # lpuperf run: addresses and ports
    pytest.param([*_RUN, "--sut", "nohost"], "expected host:port", id="run-sut-no-port"),
    pytest.param([*_RUN, "--sut", "127.0.0.1:0"], "expected host:port", id="run-sut-port-zero"),
    pytest.param([*_RUN, "--sut", "127.0.0.1:70000"], "expected host:port", id="run-sut-port-high"),
    pytest.param([*_RUN, "--sut", ":50051"], "expected host:port", id="run-sut-no-host"),
    # names the resolver's IDNA codec refuses (a traceback ending in UnicodeError before), lists with garbage
    pytest.param(
        [*_RUN, "--sut", "dns:///bad..name:50051"], "field 'sut': dns target: host", id="run-sut-dns-bad-name"
    ),
    pytest.param([*_RUN, "--sut", "bad..name:50051"], "not a valid host name", id="run-sut-bad-name"),
    pytest.param([*_RUN, "--sut", "a..b:5,c:6"], "host 'a..b'", id="run-sut-list-bad-name"),
    pytest.param([*_RUN, "--sut", "x" * 64 + ".example:1"], "not a valid host name", id="run-sut-long-label"),
    pytest.param([*_RUN, "--sut", "ipv4:127.0.0.1:5,garbage"], "got 'garbage'", id="run-sut-ipv4-garbage"),
    pytest.param([*_RUN, "--sut", "ipv4:127.0.0.1:5,"], "ipv4 target: expected host:port", id="run-sut-ipv4-empty"),
    pytest.param([*_RUN, "--sut", "ipv6:[::1]:99999"], "port 1..65535", id="run-sut-ipv6-port-high"),
    pytest.param([*_RUN, "--sut", "dns:///:50051"], "dns target: expected host:port", id="run-sut-dns-no-name"),
    pytest.param([*_RUN, "--sut", "localhost:-1"], "port 1..65535", id="run-sut-port-negative"),
    pytest.param([*_RUN, "--sut", "::1:50051"], "[address]:port", id="run-sut-ipv6-unbracketed"),
    # lpuperf run: run ids and output paths
    pytest.param([*_RUN, "--run-id", "../../x"], _RUN_ID, id="run-run-id-parent"),
    pytest.param([*_RUN, "--run-id", "/tmp/abs"], _RUN_ID, id="run-run-id-absolute"),
    pytest.param([*_RUN, "--run-id", ".."], _RUN_ID, id="run-run-id-dotdot"),
    pytest.param([*_RUN, "--run-id", "."], _RUN_ID, id="run-run-id-dot"),
    pytest.param([*_RUN, "--run-id", "a/b"], _RUN_ID, id="run-run-id-slash"),
    pytest.param([*_RUN, "--run-id", "a b"], _RUN_ID, id="run-run-id-space"),
    pytest.param([*_RUN, "--run-id", ""], _RUN_ID, id="run-run-id-empty"),
    pytest.param(["run", "--out", "{file}"], "argument --out", id="run-out-is-file"),
    pytest.param(["run", "--out", "/proc/forbidden/x"], "argument --out", id="run-out-unwritable"),
    pytest.param(["run", "--out", "{file}/sub"], "not a directory", id="run-out-under-file"),
    # lpuperf run: input files
    pytest.param([*_RUN, "--user-conf", "{missing}"], "user_conf", id="run-user-conf-missing"),
    pytest.param([*_RUN, "--user-conf", "{dir}"], "user_conf", id="run-user-conf-dir"),
    pytest.param([*_RUN, "--audit-config", "{missing}"], "audit_config", id="run-audit-config-missing"),
    # lpuperf run --scrape: targets, interval, credentials and RAPL checked before any SUT starts
    pytest.param([*_RUN, "--scrape", "ftp://x/metrics"], "expected an http:// or https:// URL", id="run-scrape-ftp"),
    pytest.param([*_RUN, "--scrape", ","], "--scrape: expected", id="run-scrape-empty"),
    pytest.param([*_RUN, "--scrape", "--scrape-interval", "0"], "scrape-interval", id="run-scrape-interval-zero"),
    pytest.param([*_RUN, "--scrape-token-file", "{file}"], "together with --scrape", id="run-scrape-token-alone"),
    pytest.param(
        [*_RUN, "--scrape", "http://127.0.0.1:9/metrics", "--scrape-token-file", "{missing}"],
        "--scrape-token-file",
        id="run-scrape-token-missing",
    ),
    pytest.param(
        [*_RUN, "--scrape", "http://127.0.0.1:9/m", "--scrape-basic-auth-file", "{file}"],
        "--scrape-basic-auth-file",
        id="run-scrape-basic-auth-no-colon",
    ),
    pytest.param([*_RUN, "--scrape", "rapl:{dir}"], "no intel-rapl:N package zone", id="run-scrape-rapl-absent"),
    pytest.param([*_RUN, "--scrape", "--scrape-replica-port", "9100"], "--scrape-replica-port", id="run-scrape-rp"),
    pytest.param(
        [*_RUN, "--sut", "127.0.0.1:9", "--scrape", "--scrape-replica-port", "https:x"],
        "expected [https:]PORT",
        id="run-scrape-rp-bad",
    ),
    pytest.param(
        ["run", "--out", "{out}", "--dataset", "{missing}"], "dataset file not found", id="run-dataset-missing"
    ),
    pytest.param(["run", "--out", "{out}", "--dataset", "{dir}"], "a-dir", id="run-dataset-dir"),
    pytest.param(["run", "--out", "{out}", "--dataset", "synthetic:x"], "synthetic[:N[:SEED]]", id="run-dataset-spec"),
    # lpuperf run: the pre-flight context check (needs the SUT's manifest, so the SUT starts and stops)
    pytest.param(
        ["run", "--out", "{out}", "--dataset", "synthetic:20:1", "--max-new-tokens", "3500"],
        "exceed the SUT's context of 4096 tokens",
        id="run-context-overflow",
    ),
    # lpuperf serve
    pytest.param([*_SERVE, "--port", "70000"], "--port", id="serve-port-high"),
    pytest.param([*_SERVE, "--port", "-1"], "--port", id="serve-port-negative"),
    pytest.param([*_SERVE, "--port", "http"], "argument --port", id="serve-port-word"),
    pytest.param([*_SERVE, "--http", "70000"], "--http", id="serve-http-port-high"),
    pytest.param([*_SERVE, "--metrics-port", "65536"], "--metrics-port", id="serve-metrics-port-high"),
    pytest.param([*_SERVE, "--port-file", "/proc/x/p"], "--port-file", id="serve-port-file-unwritable"),
    pytest.param([*_SERVE, "--port-file", "{dir}"], "--port-file", id="serve-port-file-dir"),
    pytest.param(
        [*_SERVE, "--metrics-port-file", "{out}/p"], "--metrics-port-file", id="serve-metrics-port-file-alone"
    ),
    pytest.param([*_SERVE, "--port-file", "{file}/p"], "--port-file", id="serve-port-file-under-file"),
    pytest.param([*_SERVE, "--grace", "-1"], "--grace", id="serve-grace-negative"),
    pytest.param([*_SERVE, "--precision", "fp3"], "field 'precision'", id="serve-precision-unknown"),
    pytest.param([*_SERVE, "--config", '{"precision": "fp3"}'], "field 'precision'", id="serve-config-precision"),
    pytest.param([*_SERVE, "--config", '{"bogus": 1}'], "bogus", id="serve-config-unknown-field"),
    pytest.param([*_SERVE, "--config", "[1, 2]"], "--config", id="serve-config-not-object"),
    pytest.param([*_SERVE, "--config", "not json"], "--config", id="serve-config-not-json"),
    pytest.param([*_SERVE, "--config", '{"api_key": "sk-x"}'], "api_key", id="serve-config-inline-key"),
    pytest.param([*_SERVE, "--fault", "nope"], "--fault", id="serve-fault-unknown"),
    pytest.param([*_SERVE, "--chunk-size", "0"], "--chunk-size", id="serve-chunk-size-zero"),
    pytest.param([*_SERVE, "--backend", "nope"], "unknown backend kind 'nope'", id="serve-backend-unknown"),
    pytest.param([*_SERVE, "--http-fault", "429"], "--http-fault", id="serve-http-fault-without-http"),
    pytest.param([*_SERVE, "--max-batch", "0"], "max_batch", id="serve-max-batch-zero"),
    pytest.param([*_SERVE, "--decode-step-s", "-1"], "decode_step_s", id="serve-decode-step-negative"),
    pytest.param([*_SERVE, "--max-context", "-5"], "max_context_tokens", id="serve-max-context-negative"),
    pytest.param([*_SERVE, "--enforced-context", "8192"], "enforced_context_tokens", id="serve-enforced-over-max"),
    # lpuperf gate
    pytest.param(["gate", "{missing}", "--slo", "embedded"], "no results.json", id="gate-results-missing"),
    pytest.param(["gate", "{dir}", "--slo", "embedded"], "no results.json", id="gate-results-empty-dir"),
    pytest.param(["gate", "{run}"], "--slo", id="gate-slo-required"),
    pytest.param(["gate", "{run}", "--slo", "nope"], "nope", id="gate-slo-unknown"),
    pytest.param(["gate", "{run}", "--slo", "{notjson}"], "not-json.json", id="gate-slo-malformed"),
    pytest.param(
        ["gate", "{run}", "--slo", "embedded", "--accuracy", "{missing}"], "--accuracy", id="gate-accuracy-missing"
    ),
    pytest.param(["gate", "{run}", "--slo", "embedded", "--fidelity", "{dir}"], "--fidelity", id="gate-fidelity-dir"),
    pytest.param(
        ["gate", "{run}", "--slo", "embedded", "--compliance", "TEST06"], "--compliance", id="gate-compliance-no-path"
    ),
    pytest.param(
        ["gate", "{run}", "--slo", "embedded", "--compliance", "NOPE={file}"],
        "unknown check",
        id="gate-compliance-unknown",
    ),
    pytest.param(["gate", "{run}", "--slo", "embedded", "--json", "{dir}"], "argument --json", id="gate-json-dir"),
    pytest.param(
        ["gate", "{run}", "--slo", "embedded", "--junit", "/proc/x/j.xml"],
        "argument --junit",
        id="gate-junit-unwritable",
    ),
    pytest.param(["gate", "{badrun}", "--slo", "embedded"], "results.json", id="gate-results-malformed"),
    # lpuperf compare
    pytest.param(["compare", "{missing}", "{run}"], "no results.json", id="compare-baseline-missing"),
    pytest.param(["compare", "{run}", "{run}", "--tolerance", "-1"], "--tolerance", id="compare-tolerance-negative"),
    pytest.param(["compare", "{run}", "{run}", "--tolerance", "nan"], "--tolerance", id="compare-tolerance-nan"),
    pytest.param(["compare", "{run}", "{run}", "--confidence", "1.5"], "--confidence", id="compare-confidence-high"),
    pytest.param(["compare", "{run}", "{run}", "--resamples", "5"], "--resamples", id="compare-resamples-few"),
    pytest.param(
        ["compare", "{run}", "{run}", "--resamples", "many"], "argument --resamples", id="compare-resamples-word"
    ),
    pytest.param(["compare", "{run}", "{run}", "--json", "{dir}"], "argument --json", id="compare-json-dir"),
    pytest.param(["compare", "{badrun}", "{run}"], "results.json", id="compare-results-malformed"),
    pytest.param(["compare", "{run}"], "candidate", id="compare-candidate-required"),
    # lpuperf report
    pytest.param(["report", "{missing}"], "nothing.json", id="report-run-missing"),
    pytest.param(["report", "{dir}"], "a-dir", id="report-run-empty-dir"),
    pytest.param(["report", "{run}", "-o", "{dir}"], "argument -o/--out", id="report-out-dir"),
    pytest.param(["report", "{run}", "-o", "/proc/x/r.html"], "argument -o/--out", id="report-out-unwritable"),
    pytest.param(["report", "{badrun}"], "results.json", id="report-results-malformed"),
    # lpuperf validate
    pytest.param(["validate", "--candidate", "sim-bf16"], "--baseline", id="validate-baseline-required"),
    pytest.param([*_VALIDATE, "--qps", "-1"], "--qps", id="validate-qps-negative"),
    pytest.param([*_VALIDATE, "--duration", "0"], "--duration", id="validate-duration-zero"),
    pytest.param([*_VALIDATE, "--max-new-tokens", "0"], "--max_new_tokens", id="validate-max-new-tokens-zero"),
    pytest.param([*_VALIDATE, "--run-id", "../x"], _RUN_ID, id="validate-run-id-parent"),
    pytest.param([*_VALIDATE, "--slo", "nope"], "nope", id="validate-slo-unknown"),
    pytest.param([*_VALIDATE, "--preset", "long"], "argument --preset", id="validate-preset-unknown"),
    pytest.param(
        ["validate", "--baseline", "a", "--candidate", "b", "--out", "{file}"], "argument --out", id="validate-out-file"
    ),
    # lpuperf find-peak
    pytest.param([*_PEAK, "--probe-duration", "0"], "--probe_duration_s", id="find-peak-probe-duration-zero"),
    pytest.param([*_PEAK, "--resolution", "-0.1"], "--resolution", id="find-peak-resolution-negative"),
    pytest.param([*_PEAK, "--completed-ratio", "2"], "--completed_ratio", id="find-peak-completed-ratio-high"),
    pytest.param([*_PEAK, "--max-probes", "0"], "--max_probes", id="find-peak-max-probes-zero"),
    pytest.param([*_PEAK, "--run-id", "/abs"], _RUN_ID, id="find-peak-run-id-absolute"),
    pytest.param([*_PEAK, "--sut", "nohost"], "host:port", id="find-peak-sut-no-port"),
    pytest.param(["find-peak", "--out", "/proc/x"], "argument --out", id="find-peak-out-unwritable"),
    pytest.param(["find-peak", "--out", "{out}", "--probe-duration", "nan"], "--probe_duration_s", id="find-peak-nan"),
    # lpuperf submission
    pytest.param([*_SUBMIT, "--run-id", "../x"], _RUN_ID, id="submission-run-id-parent"),
    pytest.param([*_SUBMIT, "--division", "middle"], "argument --division", id="submission-division-unknown"),
    pytest.param([*_SUBMIT, "--qps", "-1"], "--qps", id="submission-qps-negative"),
    pytest.param([*_SUBMIT, "--submitter", "bad name!"], "--submitter", id="submission-submitter-bad"),
    pytest.param([*_SUBMIT, "--sut", "nohost"], "host:port", id="submission-sut-no-port"),
    pytest.param([*_SUBMIT, "--submission-dir", "{file}"], "argument --submission-dir", id="submission-dir-is-file"),
    pytest.param(["submission", "check", "{missing}"], "submission root not found", id="submission-check-missing"),
    pytest.param(
        ["submission", "check", "{dir}", "--json", "{dir}"], "argument --json", id="submission-check-json-dir"
    ),
    pytest.param(
        ["submission", "build", "--performance", "{missing}", "--accuracy", "{missing}", "--out", "{out}"],
        "nothing.json",
        id="submission-build-performance-missing",
    ),
    pytest.param(
        ["submission", "build", "--accuracy", "{dir}", "--out", "{out}"],
        "--performance",
        id="submission-build-required",
    ),
    # lpuperf accuracy
    pytest.param(["accuracy", "--log", "{missing}"], "--log", id="accuracy-log-missing"),
    pytest.param(["accuracy", "--log", "{notjson}"], "not-json.json", id="accuracy-log-malformed"),
    pytest.param(["accuracy", "--sut", "nohost", "--results", "{out}"], "host:port", id="accuracy-sut-no-port"),
    pytest.param(["accuracy", "--dtype", "int16"], "argument --dtype", id="accuracy-dtype-unknown"),
    pytest.param(["accuracy", "--gate", "50"], "argument --gate", id="accuracy-gate-unknown"),
    pytest.param(["accuracy", "--run-id", "../x"], _RUN_ID, id="accuracy-run-id-parent"),
    pytest.param(["accuracy", "--results", "{file}"], "argument --results", id="accuracy-results-is-file"),
    pytest.param(["accuracy", "--workers", "-1", "--log", "{missing}"], "--log", id="accuracy-log-missing-workers"),
    pytest.param(["accuracy", "fidelity", "--candidate", "fp3"], "fp3", id="accuracy-fidelity-unknown-candidate"),
    # lpuperf compliance
    pytest.param([*_T06, "--max-new-tokens", "0"], "argument --max-new-tokens", id="compliance-test06-max-new-zero"),
    pytest.param([*_T06, "--run-id", "../x"], _RUN_ID, id="compliance-test06-run-id-parent"),
    pytest.param([*_T06, "--eos-id", "3"], "--eos-id", id="compliance-test06-eos-without-log"),
    pytest.param([*_T06, "--scenario", "Nope"], "argument --scenario", id="compliance-test06-scenario-unknown"),
    pytest.param(
        [*_T06, "--scenario", "Server", "--log", "{missing}"], "nothing.json", id="compliance-test06-log-missing"
    ),
    pytest.param([*_T06, "--log", "{missing}"], "--scenario: required", id="compliance-test06-log-no-scenario"),
    pytest.param([*_T06, "--fault", "nope"], "--fault", id="compliance-test06-fault-unknown"),
    pytest.param([*_CTX, "--sut", "nohost"], "host:port", id="compliance-context-sut-no-port"),
    pytest.param([*_T06, "--sut", "nohost"], "host:port", id="compliance-test06-sut-no-port"),
    pytest.param([*_CTX, "--timeout", "0"], "--timeout", id="compliance-context-timeout-zero"),
    pytest.param(
        [*_CTX, "--enforced-context", "0"], "argument --enforced-context", id="compliance-context-enforced-zero"
    ),
    pytest.param(
        [*_CTX, "--sut", "127.0.0.1:9", "--artifact", "sim-fp32"], "--sut", id="compliance-context-sut-and-spawn"
    ),
    pytest.param([*_CTX, "--json", "{dir}"], "argument --json", id="compliance-context-json-dir"),
    pytest.param(["compliance", "context", "--out", "{file}"], "argument --out", id="compliance-context-out-file"),
    # the command itself
    pytest.param(["nope"], "argument COMMAND", id="command-unknown"),
    pytest.param(["compliance"], "CHECK", id="compliance-check-required"),
]


@_CLI_TIMEOUT
@pytest.mark.parametrize(("argv", "needle"), CLI_CASES)
def test_bad_flag_is_refused(argv: list[str], needle: str, ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    paths = ws.paths
    for name, value in paths.items():
        argv = [a.replace("{" + name + "}", value) for a in argv]
    _refused(argv, needle, ws, capsys)


# --- dataset files -------------------------------------------------------------------------------
DATASET_CASES = [
    pytest.param("", "empty file", id="empty"),
    pytest.param("\n\n", "empty file", id="blank-lines"),
    pytest.param(_jsonl(_HEADER), "no samples", id="header-only"),
    pytest.param(_jsonl(_HEADER) + "{not json\n", ":2: not valid JSON", id="row-malformed-json"),
    pytest.param("[1, 2]\n", ":1: header", id="header-not-object"),
    pytest.param(_jsonl({**_HEADER, "format": "other/1"}, _ROW), "field 'format'", id="header-wrong-format"),
    pytest.param(
        _jsonl({k: v for k, v in _HEADER.items() if k != "eos_token_id"}, _ROW), "eos_token_id", id="header-no-eos"
    ),
    pytest.param(_jsonl({**_HEADER, "eos_token_id": -1}, _ROW), "eos_token_id", id="header-eos-negative"),
    pytest.param(_jsonl({**_HEADER, "bogus": 1}, _ROW), "bogus", id="header-unknown-field"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": "5 6"}), "field 'input_ids'", id="row-input-ids-string"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": []}), "field 'input_ids'", id="row-input-ids-empty"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": [5, -1]}), "field 'input_ids'", id="row-token-negative"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": [2**31]}), "field 'input_ids'", id="row-token-over-int32"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": [5, 6.5]}), "field 'input_ids", id="row-token-float"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": [5.0, 6]}), "field 'input_ids", id="row-token-whole-float"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "index": False}), "field 'index'", id="row-index-bool"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "input_ids": [True, 6]}), "field 'input_ids", id="row-token-bool"),
    pytest.param(
        _jsonl(_HEADER, {k: v for k, v in _ROW.items() if k != "prompt"}), "field 'prompt'", id="row-no-prompt"
    ),
    pytest.param(_jsonl(_HEADER, {**_ROW, "index": 1}), "field 'index'", id="row-index-gap"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "index": "zero"}), "field 'index'", id="row-index-string"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "category": ""}), "field 'category'", id="row-category-empty"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "reference_ids": [7, 8]}), "eos_token_id 2", id="row-reference-no-eos"),
    pytest.param(_jsonl(_HEADER, {**_ROW, "extra": 1}), "extra", id="row-unknown-field"),
    pytest.param(_jsonl(_HEADER, [1, 2, 3]), ":2:", id="row-not-object"),
    pytest.param(b"\xff\xfe\x00garbage\n", "cannot read dataset", id="not-utf8"),
]


@_CLI_TIMEOUT
@pytest.mark.parametrize(("content", "needle"), DATASET_CASES)
def test_bad_dataset_is_refused(
    content: str | bytes, needle: str, ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ws.root / "data.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = _refused(["run", "--out", ws.paths["out"], "--dataset", str(path)], needle, ws, capsys)
    assert "data.jsonl" in line


@_CLI_TIMEOUT
def test_gzip_dataset_that_is_not_gzip_is_refused(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    path = ws.root / "data.jsonl.gz"
    path.write_text(_jsonl(_HEADER, _ROW))
    _refused(
        ["run", "--out", ws.paths["out"], "--dataset", str(path)], "data.jsonl.gz: cannot read dataset", ws, capsys
    )


@_CLI_TIMEOUT
def test_gzip_dataset_with_bad_row_names_the_line(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    path = ws.root / "data.jsonl.gz"
    path.write_bytes(gzip.compress(_jsonl(_HEADER, {**_ROW, "index": 3}).encode()))
    _refused(["run", "--out", ws.paths["out"], "--dataset", str(path)], "data.jsonl.gz:2: field 'index'", ws, capsys)


# --- user.conf -----------------------------------------------------------------------------------
USERCONF_CASES = [
    pytest.param("*.Server.target_qsp = 5\n", "unknown key 'target_qsp'", id="key-misspelled"),
    pytest.param("*.Server.bogus_key = 5\n", "unknown key 'bogus_key'", id="key-unknown"),
    pytest.param("*.Server.expected_latency = 5\n", "unknown key 'expected_latency'", id="key-not-loadgen"),
    pytest.param("*.Sever.target_qps = 5\n", "scenario 'Sever'", id="scenario-misspelled"),
    pytest.param("*.Server.target_qps = -5\n", "field 'target_qps'", id="qps-negative"),
    pytest.param("*.Server.target_qps = 0\n", "field 'target_qps'", id="qps-zero"),
    pytest.param("*.Server.target_qps = nan\n", "field 'target_qps'", id="qps-nan"),
    pytest.param("*.Server.target_qps = inf\n", "field 'target_qps'", id="qps-inf"),
    pytest.param("*.Server.target_qps = 1e400\n", "field 'target_qps'", id="qps-overflow"),
    pytest.param("*.Server.target_qps = fast\n", "field 'target_qps': expected a number", id="qps-word"),
    pytest.param("*.Server.target_qps = 1_000\n", "field 'target_qps'", id="qps-underscore"),
    pytest.param("*.Server.min_duration = 1e30\n", "field 'min_duration'", id="min-duration-exponent"),
    pytest.param("*.Server.min_duration = 2.5\n", "field 'min_duration'", id="min-duration-fraction"),
    pytest.param("*.Server.min_duration = -1\n", "field 'min_duration'", id="min-duration-negative"),
    pytest.param("*.Server.min_duration = 010\n", "field 'min_duration'", id="min-duration-octal"),
    pytest.param("*.*.max_duration = 9223372036855\n", "field 'max_duration'", id="max-duration-over-int64-ns"),
    pytest.param("*.*.min_query_count = 9223372036854775808\n", "field 'min_query_count'", id="count-over-int64"),
    pytest.param("*.*.qsl_rng_seed = 18446744073709551616\n", "field 'qsl_rng_seed'", id="seed-over-uint64"),
    pytest.param("*.Server.target_latency_percentile = 0\n", "target_latency_percentile", id="percentile-zero"),
    pytest.param("*.Server.target_latency_percentile = 101\n", "target_latency_percentile", id="percentile-over-100"),
    pytest.param("*.Server.target_latency = -3\n", "field 'target_latency'", id="latency-negative"),
    pytest.param("*.*.use_token_latencies = 2\n", "field 'use_token_latencies'", id="bool-two"),
    pytest.param("*.*.accuracy_log_probability = 150\n", "accuracy_log_probability", id="probability-over-100"),
    pytest.param("*.MultiStream.samples_per_query = 0\n", "field 'samples_per_query'", id="samples-per-query-zero"),
    pytest.param("*.Server.max_async_queries = 4294967296\n", "max_async_queries", id="async-over-int32"),
    pytest.param("*.Server.target_qps=5\n", "spaces around '='", id="no-spaces-around-equals"),
    pytest.param("*.Server.target_qps = 5 6\n", "expected 'model.Scenario.key = value'", id="two-values"),
    pytest.param("*.Server.target_qps = 5 # five\n", "comment must be on a line of its own", id="trailing-comment"),
    pytest.param("target_qps = 5\n", "expected 'model.Scenario.key = value'", id="no-model-scenario"),
    pytest.param("*.Server.target_qps =\n", "expected 'model.Scenario.key = value'", id="no-value"),
    pytest.param("# ok\n*.Server.target_qps = 5\n*.Server.nope = 1\n", "user.conf:3:", id="names-the-line"),
]


@_CLI_TIMEOUT
@pytest.mark.parametrize(("text", "needle"), USERCONF_CASES)
def test_bad_user_conf_is_refused(text: str, needle: str, ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    conf = ws.root / "user.conf"
    conf.write_text(text)
    argv = ["run", "--out", ws.paths["out"], "--dataset", "synthetic:4:0", "--user-conf", str(conf)]
    assert "user.conf" in _refused(argv, needle, ws, capsys)


# --- all five fronts -----------------------------------------------------------------------------
@_CLI_TIMEOUT
def test_tables_cover_enough_cases() -> None:
    tables: dict[str, Sequence[object]] = {
        "CLI": CLI_CASES,
        "dataset": DATASET_CASES,
        "user.conf": USERCONF_CASES,
        "gRPC": GRPC_CASES,
        "HTTP": HTTP_CASES,
    }
    assert not [front for front, cases in tables.items() if not cases], "a front without cases"
    assert len(CLI_CASES) + len(DATASET_CASES) + len(USERCONF_CASES) >= 80
    assert sum(len(cases) for cases in tables.values()) >= 150
