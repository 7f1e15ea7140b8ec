"""Backend errors reach the client as the documented gRPC statuses, mid-stream included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import grpc
import pytest

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc


class _FailingConfig(sut.BackendConfig):
    kind: str = "test-failing"
    error: str = "none"  # none | upstream-429 | upstream-timeout | upstream-502 | overloaded | internal
    after_tokens: int = 2


@sut.backends.register("test-failing")  # type: ignore[arg-type]  # ClassVar config_model is invariant
class _FailingBackend:
    """Streams ``after_tokens`` tokens, then raises the configured error (or ends cleanly)."""

    config_model: ClassVar[type[_FailingConfig]] = _FailingConfig

    def __init__(self, config: _FailingConfig) -> None:
        self.config = config
        self._manifest = sut.ArtifactManifest(
            artifact_id="failing", backend="test-failing", model="m", precision="fp32", max_context_tokens=64
        ).with_checksum()

    @property
    def manifest(self) -> sut.ArtifactManifest:
        return self._manifest

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def queue_depth(self) -> int:
        return 0

    def active_batch(self) -> int:
        return 0

    async def generate(self, request: sut.GenerateRequest) -> AsyncIterator[Sequence[int] | sut.GenerationEnd]:
        for i in range(self.config.after_tokens):
            yield [10 + i]
        err = self.config.error
        if err.startswith("upstream-"):
            raise sut.UpstreamError(err.removeprefix("upstream-"), "the upstream said no")
        if err == "overloaded":
            raise sut.OverloadedError("queue full")
        if err == "internal":
            raise ZeroDivisionError("boom")
        yield sut.GenerationEnd(n_tokens=self.config.after_tokens, finish_reason="length")


def _call(error: str) -> tuple[list[int], grpc.StatusCode, str]:
    server = sut.start_embedded({"kind": "test-failing", "error": error})
    got: list[int] = []
    try:
        with grpc.insecure_channel(server.address) as ch:
            req = pb.GenerateRequest(input_ids=[1, 2, 3], max_new_tokens=8, eos_token_id=-1)
            try:
                for chunk in pb_grpc.InferenceStub(ch).Generate(req, timeout=10):
                    got.extend(chunk.token_ids)
            except grpc.RpcError as exc:
                return got, exc.code(), exc.details() or ""
        return got, grpc.StatusCode.OK, ""
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        ("upstream-429", grpc.StatusCode.RESOURCE_EXHAUSTED, "upstream 429: the upstream said no"),
        ("upstream-timeout", grpc.StatusCode.DEADLINE_EXCEEDED, "upstream timeout"),
        ("upstream-502", grpc.StatusCode.UNAVAILABLE, "upstream 502"),
        ("overloaded", grpc.StatusCode.UNAVAILABLE, "queue full"),
        ("internal", grpc.StatusCode.INTERNAL, "ZeroDivisionError: boom"),
    ],
)
def test_mid_stream_errors_map_to_status(error: str, status: grpc.StatusCode, text: str) -> None:
    got, code, details = _call(error)
    assert got == [10, 11]  # the tokens before the failure were streamed, first one alone
    assert code == status and text in details


def test_clean_backend_ends_ok() -> None:
    got, code, _ = _call("none")
    assert got == [10, 11] and code == grpc.StatusCode.OK


def test_client_cancel_mid_stream_is_counted_cancelled() -> None:
    """A client that walks away after the first token frees the stream and is booked CANCELLED, not an error."""
    import time

    server = sut.start_embedded({"kind": "sim", "artifact": "sim-fp32"}, metrics_port=0)
    try:
        assert server.metrics is not None
        with grpc.insecure_channel(server.address) as ch:
            req = pb.GenerateRequest(input_ids=[1, 2, 3], max_new_tokens=128, min_new_tokens=128, eos_token_id=-1)
            call = pb_grpc.InferenceStub(ch).Generate(req, timeout=30)
            first = next(call)
            assert len(first.token_ids) == 1
            call.cancel()
        registry = server.metrics.registry

        def count(status: str) -> float:
            return registry.get_sample_value("lpuperf_sut_requests_total", {"front": "grpc", "status": status}) or 0.0

        deadline = time.monotonic() + 20  # bounded: the server notices the cancel within a decode step or two
        while count("CANCELLED") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count("CANCELLED") == 1
        assert count("OK") == 0 and count("INTERNAL") == 0 and count("UNKNOWN") == 0
        assert server.server.inflight == 0
    finally:
        server.stop()
