"""Helpers for test_bad_input.py: the case types, the request builders and the shared assertions.

Pure code only; the case tables, the fixtures and the tests live in test_bad_input.py.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli import main
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from sut._http import HttpFront

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)
MAX_BODY = 256 * 1024  # the HTTP front's body limit in test_bad_input.py


# --- gRPC and HTTP: one in-process SUT -------------------------------------------------------------
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


# --- gRPC ------------------------------------------------------------------------------------------
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


# --- HTTP (OpenAI-compatible front) ----------------------------------------------------------------
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


# --- CLI, dataset files and user.conf: the CLI in-process, in a scratch workspace -------------------
@dataclass
class Workspace:
    root: Path

    @property
    def paths(self) -> dict[str, str]:
        r = self.root
        return {
            "out": str(r / "out"),
            "file": str(r / "a-file.txt"),
            "dir": str(r / "a-dir"),
            "missing": str(r / "missing" / "nothing.json"),
            "run": str(r / "run"),
            "badrun": str(r / "badrun"),
            "notjson": str(r / "not-json.json"),
        }


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _refused(argv: list[str], needle: str, ws: Workspace, capsys: pytest.CaptureFixture[str]) -> str:
    before = _snapshot(ws.root)
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, f"exit {rc}, stderr: {err!r}"
    assert "Traceback" not in err
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert lines[0].startswith("lpuperf") and ": error: " in lines[0], lines[0]
    assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert _snapshot(ws.root) == before, "a refused command wrote something"
    return lines[0]


_HEADER: dict[str, Any] = {"format": "lpuperf-dataset/1", "name": "bad", "eos_token_id": 2}
_ROW: dict[str, Any] = {
    "index": 0,
    "category": "qa",
    "prompt": "p",
    "input_ids": [5, 6],
    "target": "t",
    "reference_ids": [7, 2],
}


def _jsonl(*rows: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)
