"""grpc.aio's own cost for one lpuperf stream: a server that does nothing but answer it.

``python -m bench.grpc_floor --port-file F`` serves ``lpuperf.v1.Inference`` on 127.0.0.1 with the
same transport as ``lpuperf serve`` (grpc.aio on uvloop, the SUT's server options) and the least
possible work per call: ``GetArtifact`` returns the sim-instant manifest, and ``Generate`` answers
every request with two prebuilt messages, the first token alone and then the other 127 with the
final fields, then the status. That is the message pattern ``lpuperf serve --artifact sim-instant``
sends, without parsing, validation, a backend or timestamps, so its CPU per query is the floor the
real server's cost can be judged against (``bench.sut_cost --floor``).

Harness-side checks that need real answers (accuracy, token identity) are meaningless against it;
only performance-mode runs make sense.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

OUTPUT_TOKENS = 128


async def _serve(port_file: str) -> None:
    import grpc

    from proto import inference_pb2 as pb
    from proto import inference_pb2_grpc as pb_grpc
    from sut import SERVER_OPTIONS, SimBackend, SimConfig, manifest_message

    artifact = manifest_message(SimBackend(SimConfig(artifact="sim-instant")))
    artifact.replica_id = "floor"
    first = pb.GenerateChunk(token_ids=[5], sut_arrival_ns=1, sut_first_token_ns=2, replica_id="floor")
    final = pb.GenerateChunk(
        token_ids=list(range(6, 5 + OUTPUT_TOKENS)),
        finish_reason=pb.FINISH_REASON_LENGTH,
        sut_last_token_ns=3,
        n_tokens=OUTPUT_TOKENS,
        replica_id="floor",
    )

    class Floor(pb_grpc.InferenceServicer):
        async def GetArtifact(self, request: Any, context: Any) -> Any:
            return artifact

        async def Generate(self, request: Any, context: Any) -> AsyncIterator[Any]:
            yield first
            yield final

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.aio.server(options=list(SERVER_OPTIONS))
    pb_grpc.add_InferenceServicer_to_server(Floor(), server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    await checker.set("lpuperf.v1.Inference", health_pb2.HealthCheckResponse.SERVING)
    tmp = Path(f"{port_file}.tmp")
    tmp.write_text(str(port))
    tmp.replace(port_file)  # whole or absent: the spawner polls this file
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.grpc_floor", description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args(argv)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(args.port_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
