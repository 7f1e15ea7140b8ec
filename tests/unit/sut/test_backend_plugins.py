"""A backend is one registry entry: a new one is created, configured and given CLI flags without editing other modules."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, ClassVar

import grpc
import pytest
from pydantic import Field

import sut
from common import RegistryError
from loadgen_harness import RunError, SutTarget
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc


class _EchoConfig(sut.BackendConfig):
    kind: str = "test-echo"
    reply: list[int] = Field(default_factory=lambda: [7, 8, 9])
    dataset: str | None = None  # accepts the generic option, as every built-in backend does


class _EchoBackend:
    """Answers every request with ``reply``; has one CLI flag of its own."""

    config_model: ClassVar[type[_EchoConfig]] = _EchoConfig

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--echo-reply", default=None, help="comma-separated token ids")

    @staticmethod
    def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
        return {"reply": [int(t) for t in args.echo_reply.split(",")]} if args.echo_reply else {}

    def __init__(self, config: _EchoConfig) -> None:
        self.config = config
        self._manifest = sut.ArtifactManifest(
            artifact_id="echo", backend="test-echo", model="m", precision="fp32", max_context_tokens=64
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
        yield list(self.config.reply)
        yield sut.GenerationEnd(n_tokens=len(self.config.reply), finish_reason="length")


@pytest.fixture
def echo() -> Iterator[None]:
    sut.backends.register("test-echo")(_EchoBackend)  # type: ignore[arg-type]  # ClassVar config_model is invariant
    try:
        yield
    finally:
        sut.backends.unregister("test-echo")


def test_a_registered_backend_serves_through_the_registry(echo: None) -> None:
    server = sut.start_embedded({"kind": "test-echo", "reply": [4, 5]})
    try:
        with grpc.insecure_channel(server.address) as ch:
            req = pb.GenerateRequest(input_ids=[1, 2, 3], max_new_tokens=8, eos_token_id=-1)
            got = [t for c in pb_grpc.InferenceStub(ch).Generate(req, timeout=10) for t in c.token_ids]
        assert got == [4, 5]
    finally:
        server.stop()


def test_a_registered_backends_config_and_flags_come_through_the_registry(echo: None) -> None:
    from sut._cli import add_parser, backend_config_from_args

    # Its config model checks what a launcher would send, the harness's dataset merged in.
    assert SutTarget(backend={"kind": "test-echo"}, dataset="synthetic:4:1").backend_config() == {
        "kind": "test-echo",
        "dataset": "synthetic:4:1",
    }
    with pytest.raises(RunError, match="field 'bogus'"):
        SutTarget(backend={"kind": "test-echo", "bogus": 1}).backend_config()
    # Its own serve flag is added and read through its registry entry.
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--backend", "test-echo", "--echo-reply", "1,2"])
    cfg = backend_config_from_args(args)
    assert cfg == {"kind": "test-echo", "reply": [1, 2]}
    assert sut.backends.create(cfg).config.reply == [1, 2]  # type: ignore[attr-defined]


def test_duplicate_backend_registration_raises() -> None:
    with pytest.raises(RegistryError, match="backend 'sim' is already registered"):
        sut.backends.register("sim")(_EchoBackend)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="already registered"):
        sut.backends.register_lazy("openai", "tests.nowhere:Nothing")
    assert sut.backends.get("sim") is sut.SimBackend
