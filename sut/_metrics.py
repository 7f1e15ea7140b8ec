"""Prometheus metrics of a SUT, on a registry of its own so several servers can share a process.

Updated once per request (and gauges are read at scrape time), never per token.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sut._artifact import ArtifactManifest

if TYPE_CHECKING:
    from common import ExporterSecurity, MetricsHttpServer
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
        # Access control (only non-zero when `lpuperf serve` runs with TLS or a token). Labels are bounded:
        # endpoint grpc|http|metrics, reason missing|invalid; no client name or credential ever becomes one.
        self.auth_failures = Counter(
            "lpuperf_sut_auth_failures",
            "Requests refused for a missing or invalid token or credentials",
            ["endpoint", "reason"],
            registry=r,
        )
        self.tls_handshakes = Counter("lpuperf_sut_tls_handshakes", "gRPC TLS handshakes started", registry=r)
        self.tls_sessions = Counter(
            "lpuperf_sut_tls_sessions", "gRPC TLS connections that completed the handshake and made an RPC", registry=r
        )
        self.tls_failures = Gauge(
            "lpuperf_sut_tls_handshake_failures",
            "gRPC TLS handshakes that led to no RPC: failed verification on either side, a missing client "
            "certificate, or a client gone before its first RPC",
            registry=r,
        )
        self.tls_failures.set_function(self._tls_failures)
        self._tls_lock = threading.Lock()  # handshakes are counted on grpc's threads, sessions on the loop
        self._n_handshakes = 0
        self._n_sessions = 0
        self._http: MetricsHttpServer | None = None
        self.port = 0
        self.scheme = "http"

    def bind(self, server: SutServer) -> None:
        """Read live gauges from the server and its backend at scrape time."""
        backend = server.backend
        self.inflight.set_function(lambda: float(server.inflight))
        self.active_batch.set_function(lambda: float(backend.active_batch()))
        self.queue_depth.set_function(lambda: float(backend.queue_depth()))

    def _tls_failures(self) -> float:
        with self._tls_lock:
            return float(max(0, self._n_handshakes - self._n_sessions))

    def auth_refused(self, endpoint: str, reason: str) -> None:
        self.auth_failures.labels(endpoint=endpoint, reason=reason).inc()

    def tls_handshake(self) -> None:
        with self._tls_lock:
            self._n_handshakes += 1
        self.tls_handshakes.inc()

    def tls_session(self) -> None:
        with self._tls_lock:
            self._n_sessions += 1
        self.tls_sessions.inc()

    def request(self, code: str) -> None:
        self.requests.labels(status=code).inc()

    def finished(self, code: str, arrival_ns: int, first_ns: int, end_ns: int, n_tokens: int) -> None:
        self.requests.labels(status=code).inc()
        if n_tokens:
            self.tokens.inc(n_tokens)
        if first_ns:
            self.prefill.observe(max(0, first_ns - arrival_ns) / 1e9)
            self.decode.observe(max(0, end_ns - first_ns) / 1e9)

    def serve(self, port: int, addr: str = "127.0.0.1", security: ExporterSecurity | None = None) -> int:
        """Start the exporter on ``port`` (0: a free one), HTTPS and authenticated per ``security``."""
        from common import serve_registry

        self._http = serve_registry(
            self.registry,
            port,
            addr,
            security,
            what="--metrics-port",
            on_refused=lambda reason: self.auth_refused("metrics", reason),
        )
        self.port, self.scheme = self._http.port, self._http.scheme
        return self.port

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
