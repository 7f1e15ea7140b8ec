"""Service definition (``inference.proto``, package ``lpuperf.v1``) and its generated stubs.

The stubs are generated with ``make proto`` and committed; ``tests/unit/proto`` fails when they
drift from the .proto file.
"""

from pathlib import Path

from proto import inference_pb2, inference_pb2_grpc

PROTO_FILE = Path(__file__).with_name("inference.proto")

__all__ = ["PROTO_FILE", "inference_pb2", "inference_pb2_grpc"]
