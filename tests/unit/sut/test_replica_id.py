"""Replica identity: a SUT reports its id in GetArtifact and in every stream's first and final chunk (a
stream that fails after its first token still names its replica); the default id is host:port."""

from __future__ import annotations

import grpc
import pytest

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from sut._server import default_replica_id

DATASET = "synthetic:8:1"


def _streams(address: str) -> tuple[pb.ArtifactManifest, list[pb.GenerateChunk]]:
    ids = [int(i) for i in resolve_dataset(DATASET).input_ids[0]]
    with grpc.insecure_channel(address) as ch:
        stub = pb_grpc.InferenceStub(ch)
        art = stub.GetArtifact(pb.GetArtifactRequest(), timeout=10)
        chunks = list(stub.Generate(pb.GenerateRequest(input_ids=ids, max_new_tokens=20, eos_token_id=-1), timeout=30))
    return art, chunks


@pytest.mark.parametrize(
    ("given", "artifact"), [("replica-a", "sim-instant"), (None, "sim-instant"), ("b", "sim-fp32")]
)
def test_replica_id_in_artifact_first_and_final_chunk(given: str | None, artifact: str) -> None:
    server = sut.start_embedded({"kind": "sim", "dataset": DATASET, "artifact": artifact}, replica_id=given)
    try:
        art, chunks = _streams(server.address)
    finally:
        server.stop()
    expected = given or server.address  # default: host:port as bound
    assert art.replica_id == expected
    assert len(chunks) >= 2 and chunks[0].replica_id == expected and chunks[0].sut_first_token_ns > 0
    assert chunks[-1].replica_id == expected and chunks[-1].finish_reason != pb.FINISH_REASON_UNSPECIFIED
    assert all(c.replica_id == "" for c in chunks[1:-1])  # first and final chunk only: nothing per token
    assert '"replica_id"' not in art.manifest_json  # not part of the artifact: replicas compare manifests


def test_default_replica_id_names_the_machine_for_a_wildcard_host() -> None:
    import socket

    assert default_replica_id("127.0.0.1", 5) == "127.0.0.1:5"
    assert default_replica_id("0.0.0.0", 50051) == f"{socket.gethostname()}:50051"
    # Planted fault: a wildcard would make every pod of a Deployment report the same id.
    assert default_replica_id("0.0.0.0", 50051) != "0.0.0.0:50051"


@pytest.mark.parametrize("bad", ["", "x" * 129, "tab\there"])
def test_bad_replica_id_is_one_line_exit_2(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    assert main(["serve", "--port", "0", "--replica-id", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--replica-id" in err, err
