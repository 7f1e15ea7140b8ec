"""The requests a load shape builds itself (trace and session prompts): serialised GenerateRequests.

Apart from ``_load_shapes`` so that importing the package (and listing the shapes) does not import the
protobuf stubs and grpc with them.
"""

from __future__ import annotations

import numpy as np

from proto import inference_pb2
from scenarios import turn_tokens


def request_bytes(
    ids: np.ndarray,
    max_new_tokens: int,
    eos_token_id: int,
    *,
    fixed_length: bool = False,
    allow_tool_call: bool = False,
) -> bytes:
    """A serialised GenerateRequest without its request id (the client appends one per query).

    ``fixed_length``: exactly ``max_new_tokens`` (a trace replays the output lengths it recorded).
    """
    body: bytes = inference_pb2.GenerateRequest(
        input_ids=ids.tolist(),
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens if fixed_length else 0,
        eos_token_id=eos_token_id,
        allow_tool_call=allow_tool_call,
    ).SerializeToString()
    return body


def warm_token_tables() -> None:
    """Make the prompt-token tables now (scenarios builds them on first use), before any due time is set."""
    turn_tokens("", 0, 1)
