"""Reasoning in the per-query records: what the bridge counts per message, and the figures over them.

* ``reasoning_stats`` over records with known answers (tokens, TTFA, queries cut inside their reasoning),
  None for a model without reasoning, old queries.npz files read with no reasoning;
* the real bridge against a real grpc.aio server on 127.0.0.1 whose stream splits reasoning and answer
  across messages: the first answer token's arrival and the reasoning count land in the records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from loadgen_harness import QUERY_RECORD_DTYPE, load_query_records
from loadgen_harness._records import QueryRecords, reasoning_stats
from proto import inference_pb2

MS = 1_000_000


def _records(n_reasoning: list[int], answer_after_ms: list[int], n_tokens: int = 100) -> np.ndarray:
    n = len(n_reasoning)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    rec["issue_ns"] = np.arange(n) * 10 * MS
    rec["first_token_ns"] = rec["issue_ns"] + 5 * MS
    rec["done_ns"] = rec["issue_ns"] + 500 * MS
    rec["n_tokens"] = n_tokens
    rec["status"] = 0
    rec["n_reasoning"] = n_reasoning
    rec["first_answer_ns"] = [
        i + a * MS if a >= 0 else -1 for i, a in zip(rec["issue_ns"], answer_after_ms, strict=True)
    ]
    return rec


def test_reasoning_figures_over_successful_queries() -> None:
    rec = _records([80, 60, 100, 70, 0], [300, 200, -1, 100, 5])
    rec["status"][4] = 14  # a failed query counts in none of the figures
    stats = reasoning_stats(rec)
    assert stats is not None
    assert stats.n_queries == 4 and stats.n_with_reasoning == 4
    assert stats.n_without_answer == 1  # the third ended inside its reasoning (all 100 tokens reasoning)
    assert stats.reasoning_tokens.mean == pytest.approx(77.5) and stats.reasoning_tokens.max == 100
    assert stats.answer_tokens.mean == pytest.approx((20 + 40 + 0 + 30) / 4)
    assert stats.reasoning_fraction == pytest.approx(310 / 400)
    # TTFA over the three answered queries {100, 200, 300} ms ("higher" percentiles, as LoadGen's)
    assert (stats.ttfa_ms.p50, stats.ttfa_ms.p99) == (200.0, 300.0)


def test_no_reasoning_means_no_figures_and_old_files_read_as_none(tmp_path: Path) -> None:
    assert reasoning_stats(_records([0, 0], [5, 5])) is None
    names = QUERY_RECORD_DTYPE.names or ()
    old_names = names[: names.index("n_reasoning")]  # a file written before the reasoning columns
    old_dtype = np.dtype([(n, QUERY_RECORD_DTYPE.fields[n][0]) for n in old_names])  # type: ignore[index]
    old = np.zeros(3, dtype=old_dtype)
    np.savez(tmp_path / "queries.npz", records=old)
    rec = load_query_records(tmp_path)
    assert (rec["n_reasoning"] == 0).all() and (rec["first_answer_ns"] == -1).all()


def test_new_rows_start_with_no_reasoning() -> None:
    store = QueryRecords(8)
    chunk, j = store.slot_ref(3, 100)
    assert chunk.n_reasoning[j] == 0 and chunk.first_answer_ns[j] == -1


# ---- the bridge against a real server ----

# (tokens, of which reasoning, pause before the message)
_STREAM = [([1, 2, 3, 4, 5], 5, 0.0), ([6, 7, 8, 9], 2, 0.3), ([10, 11], 0, 0.05)]


def _generate(
    request: inference_pb2.GenerateRequest, context: grpc.ServicerContext
) -> Iterator[inference_pb2.GenerateChunk]:
    for i, (ids, reasoning, pause) in enumerate(_STREAM):
        time.sleep(pause)
        yield inference_pb2.GenerateChunk(token_ids=ids, reasoning_tokens=reasoning, sut_arrival_ns=1 if i == 0 else 0)
    yield inference_pb2.GenerateChunk(
        finish_reason=inference_pb2.FINISH_REASON_EOS, n_tokens=11, n_reasoning_tokens=7, replica_id="r"
    )


@pytest.fixture
def reasoning_server() -> Iterator[str]:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "lpuperf.v1.Inference",
        {
            "Generate": grpc.unary_stream_rpc_method_handler(
                _generate,
                request_deserializer=inference_pb2.GenerateRequest.FromString,
                response_serializer=inference_pb2.GenerateChunk.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait(timeout=30)


def test_the_bridge_records_when_the_answer_began_and_how_much_was_reasoning(reasoning_server: str) -> None:
    from loadgen_harness._bridge import Bridge, serialise_requests

    requests = serialise_requests([np.array([1, 2, 3], dtype=np.int32)], None, [16], 0)
    bridge = Bridge(reasoning_server, requests, offline=False, expected_queries=8)
    bridge.abandon()  # no LoadGen test runs here: nothing may reach LoadGen
    try:
        bridge._loop.call_soon_threadsafe(bridge._dispatch, [(1, 0)], 0)
        deadline = time.monotonic() + 60
        while bridge.completed < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bridge.completed == 1 and bridge.errors == 0, bridge.errors_by_status
    finally:
        bridge.close()
    rec = bridge.records.to_array()
    assert rec["n_reasoning"][0] == 7  # the SUT's own count on the final chunk
    assert rec["n_tokens"][0] == 11
    ttft = rec["first_token_ns"][0] - rec["issue_ns"][0]
    ttfa = rec["first_answer_ns"][0] - rec["issue_ns"][0]
    # The answer began in the second message, sent 0.3 s after the first (a loose bound: a loaded box).
    assert ttfa >= ttft + 250 * MS, (ttft, ttfa)
    stats = bridge.records.reasoning_stats()
    assert stats is not None and stats.answer_tokens.mean == 4.0
