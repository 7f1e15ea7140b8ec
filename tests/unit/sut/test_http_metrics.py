"""SUT metrics count the HTTP front's traffic too, labelled front="http", next to the gRPC front's.

A real ``lpuperf serve --http --metrics-port`` process: streaming and non-streaming OpenAI requests,
a refused one and a gRPC request, then the metrics text as Prometheus scrapes it.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset

DATASET = "synthetic:12:5"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _get(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_http_front_traffic_is_counted_by_front() -> None:
    http_port, metrics_port = _free_port(), _free_port()
    ds = resolve_dataset(DATASET)
    server = sut.spawn_server(
        [
            "--artifact",
            "sim-instant",
            "--dataset",
            DATASET,
            "--http",
            str(http_port),
            "--metrics-port",
            str(metrics_port),
        ]
    )
    try:
        before = _samples(metrics_port)
        # The planted fault: HTTP traffic left these at zero while the gRPC front's moved.
        assert _get(before, "lpuperf_sut_tokens_emitted_total", front="http") == 0.0
        assert _get(before, "lpuperf_sut_inflight_requests", front="http") == 0.0
        streamed = 0
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30.0) as client:
            for i in range(2):
                payload: dict[str, Any] = {"prompt": ds.prompts[i], "max_tokens": 1000, "stream": True}
                payload["return_token_ids"] = True
                with client.stream("POST", "/v1/completions", json=payload) as resp:
                    assert resp.status_code == 200
                    for line in resp.iter_lines():
                        if line.startswith("data: {"):
                            event = json.loads(line[6:])
                            streamed += sum(len(c.get("token_ids") or []) for c in event["choices"])
            full = client.post("/v1/completions", json={"prompt": ds.prompts[2], "max_tokens": 1000})
            assert full.status_code == 200
            streamed += full.json()["usage"]["completion_tokens"]
            bad = client.post("/v1/completions", json={"prompt": ds.prompts[0], "max_tokens": 0})
            assert bad.status_code == 400
        with grpc.insecure_channel(server.address) as ch:
            chunks = list(
                pb_grpc.InferenceStub(ch).Generate(
                    pb.GenerateRequest(input_ids=ds.input_ids[3].tolist(), max_new_tokens=1000), timeout=30
                )
            )
        grpc_tokens = sum(len(c.token_ids) for c in chunks)
        after = _samples(metrics_port)
        assert streamed > 0 and grpc_tokens > 0
        assert _get(after, "lpuperf_sut_tokens_emitted_total", front="http") == float(streamed)
        assert _get(after, "lpuperf_sut_tokens_emitted_total", front="grpc") == float(grpc_tokens)
        assert _get(after, "lpuperf_sut_requests_total", front="http", status="OK") == 3.0
        assert _get(after, "lpuperf_sut_requests_total", front="http", status="400") == 1.0
        assert _get(after, "lpuperf_sut_requests_total", front="grpc", status="OK") == 1.0
        assert _get(after, "lpuperf_sut_prefill_seconds_count", front="http") == 3.0
        assert _get(after, "lpuperf_sut_decode_seconds_count", front="grpc") == 1.0
        assert _get(after, "lpuperf_sut_inflight_requests", front="http") == 0.0
    finally:
        server.terminate()
