"""gRPC latency holds while the HTTP front on the same event loop is flooded with hostile clients.

One 15 MiB prompt, one 256 KiB text prompt (tokenized on the worker thread) and hundreds of clients
sending headers a byte at a time come from a child process; meanwhile this process measures gRPC
time to first token. Before the limits existed the 15 MiB prompt held the loop for ~38 s and a 2 MB
one pushed gRPC TTFT from 26 ms to 3.4 s. Bounds are loose: the box running this may be busy.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from sut._http import HttpLimits, start_http_front

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)
CLIENT = Path(__file__).with_name("_flood_client.py")
HEADER_TIMEOUT_S = 2.0
N_SLOW = 300


def _ttft(stub: pb_grpc.InferenceStub, i: int) -> float:
    req = pb.GenerateRequest(input_ids=DS.input_ids[i % len(DS)].tolist(), max_new_tokens=8, eos_token_id=-1)
    t0 = time.perf_counter()
    stream = stub.Generate(req, timeout=30)
    next(stream)
    ttft = time.perf_counter() - t0
    assert sum(len(c.token_ids) for c in stream) + 1 == 8  # the rest arrives too
    return ttft


def test_grpc_ttft_holds_while_the_http_front_is_flooded() -> None:
    # A short-step artifact: TTFT is ~ one prefill, so a blocked loop shows up at once.
    server = sut.start_embedded(
        {"kind": "sim", "dataset": DATASET, "decode_step_s": 0.001, "prefill_base_s": 0.001, "prefill_per_token_s": 0}
    )
    limits = HttpLimits(header_timeout_s=HEADER_TIMEOUT_S, max_connections=N_SLOW + 50)
    front = asyncio.run_coroutine_threadsafe(
        start_http_front(server.backend, "127.0.0.1", 0, limits=limits), server.loop
    ).result(timeout=30)
    child: subprocess.Popen[str] | None = None
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.InferenceStub(channel)
            baseline = max(_ttft(stub, i) for i in range(5))
            spec = {"slow": N_SLOW, "tick_s": 0.05, "big_mb": 15, "mid_kib": 256, "limit_s": 15.0}
            child = subprocess.Popen(
                [sys.executable, str(CLIENT), front.host, str(front.port), json.dumps(spec)],
                stdout=subprocess.PIPE,
                text=True,
            )
            ttfts: list[float] = []
            deadline = time.monotonic() + 40.0
            while child.poll() is None and time.monotonic() < deadline:
                ttfts.append(_ttft(stub, len(ttfts)))
                time.sleep(0.05)
            out, _ = child.communicate(timeout=30)
            report = json.loads(out)
        health = httpx.get(f"http://{front.address}/health", timeout=10).json()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        asyncio.run_coroutine_threadsafe(front.stop(), server.loop).result(timeout=30)
        server.stop()

    assert len(ttfts) >= 10, report  # gRPC was measured throughout the flood
    assert max(ttfts) < 1.0, (baseline, sorted(ttfts)[-5:])
    assert report["big"]["status"].startswith("HTTP/1.1 413") and report["big"]["seconds"] < 5.0
    # The 256 KiB prompt was read and tokenized (off the loop), then refused for its length.
    assert report["mid"]["status"].startswith("HTTP/1.1 400")
    slow = report["slow"]
    assert slow["opened"] == slow["closed"] == N_SLOW
    assert HEADER_TIMEOUT_S * 0.9 < slow["max_close_s"] < HEADER_TIMEOUT_S + 5.0
    assert health["responses_by_status"] == {"400": 1, "413": 1}
    assert health["connections_refused"] == 0
