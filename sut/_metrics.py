"""Prometheus metrics of a SUT, on a registry of its own so several servers can share a process.

Updated once per request (and gauges are read at scrape time), never per token.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sut._artifact import ArtifactManifest

if TYPE_CHECKING:
    from sut._server import SutServer

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SutMetrics:
    """The contract's ``lpuperf_sut_*`` metrics for one server."""

    def __init__(self, manifest: ArtifactManifest) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lpuperf_sut_requests", "Generate requests by final gRPC status", ["status"], registry=r
        )
        self.inflight = Gauge("lpuperf_sut_inflight_requests", "Generate streams in progress", registry=r)
        self.active_batch = Gauge("lpuperf_sut_active_batch_size", "Sequences decoding in the batch", registry=r)
        self.queue_depth = Gauge("lpuperf_sut_queue_depth", "Requests waiting for a batch slot", registry=r)
        self.prefill = Histogram(
            "lpuperf_sut_prefill_seconds",
            "Arrival to first token emitted (queueing + prefill), SUT clock",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decode = Histogram(
            "lpuperf_sut_decode_seconds",
            "First token to last token emitted, SUT clock",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("lpuperf_sut_tokens_emitted", "Output tokens streamed to clients", registry=r)
        self.info = Gauge(
            "lpuperf_sut_artifact_info",
            "The served artifact (value is always 1)",
            ["artifact_id", "model", "precision", "backend", "target"],
            registry=r,
        )
        self.info.labels(
            artifact_id=manifest.artifact_id,
            model=manifest.model,
            precision=manifest.precision,
            backend=manifest.backend,
            target=manifest.target,
        ).set(1)
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        self.port = 0

    def bind(self, server: SutServer) -> None:
        """Read live gauges from the server and its backend at scrape time."""
        backend = server.backend
        self.inflight.set_function(lambda: float(server.inflight))
        self.active_batch.set_function(lambda: float(backend.active_batch()))
        self.queue_depth.set_function(lambda: float(backend.queue_depth()))

    def request(self, code: str) -> None:
        self.requests.labels(status=code).inc()

    def finished(self, code: str, arrival_ns: int, first_ns: int, end_ns: int, n_tokens: int) -> None:
        self.requests.labels(status=code).inc()
        if n_tokens:
            self.tokens.inc(n_tokens)
        if first_ns:
            self.prefill.observe(max(0, first_ns - arrival_ns) / 1e9)
            self.decode.observe(max(0, end_ns - first_ns) / 1e9)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Start the HTTP exporter on ``port`` (0: a free one); returns the bound port."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._http, self._http_thread = server, thread
        self.port = int(server.server_address[1])
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
