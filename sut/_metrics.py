"""Prometheus metrics of a SUT, on a registry of its own so several servers can share a process.

Updated once per request (and gauges are read at scrape time), never per token.

Traffic metrics carry a ``front`` label: ``grpc`` (``lpuperf.v1.Inference``, what the harness drives)
or ``http`` (the OpenAI-compatible front that GuideLLM, AIPerf or ``vllm bench serve`` drive). Their
``status`` is the final gRPC status name on the gRPC front and the HTTP status code on the HTTP
front, ``OK`` for a success on either, so ``status!="OK"`` selects the failures of both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sut._artifact import ArtifactManifest, PowerModel
from sut._backend import PrefixCacheStats, ReportsBusyTime, ReportsPrefixCache

if TYPE_CHECKING:
    from common import ExporterSecurity, MetricsHttpServer
    from sut._http import HttpFront
    from sut._server import SutServer

Front = Literal["grpc", "http"]
PREFIX_CACHE_METRICS = (
    "lpuperf_sut_prefix_cache_hit_tokens",
    "lpuperf_sut_prefix_cache_miss_tokens",
    "lpuperf_sut_prefix_cache_lookups",
    "lpuperf_sut_prefix_cache_inserted_blocks",
    "lpuperf_sut_prefix_cache_evicted_blocks",
    "lpuperf_sut_prefix_cache_used_tokens",
    "lpuperf_sut_prefix_cache_capacity_tokens",
    "lpuperf_sut_prefix_cache_block_tokens",
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SutMetrics:
    """The contract's ``lpuperf_sut_*`` metrics for one server."""

    def __init__(self, manifest: ArtifactManifest) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "lpuperf_sut_requests",
            "Generation requests by front and final status (gRPC status name, or HTTP status code; OK on success)",
            ["front", "status"],
            registry=r,
        )
        self.inflight = Gauge(
            "lpuperf_sut_inflight_requests", "Generation requests in progress, by front", ["front"], registry=r
        )
        self.active_batch = Gauge("lpuperf_sut_active_batch_size", "Sequences decoding in the batch", registry=r)
        self.queue_depth = Gauge("lpuperf_sut_queue_depth", "Requests waiting for a batch slot", registry=r)
        self.prefill = Histogram(
            "lpuperf_sut_prefill_seconds",
            "Arrival to first token emitted (queueing + prefill), SUT clock, by front",
            ["front"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decode = Histogram(
            "lpuperf_sut_decode_seconds",
            "First token to last token emitted, SUT clock, by front",
            ["front"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "lpuperf_sut_tokens_emitted", "Output tokens streamed to clients, by front", ["front"], registry=r
        )
        # The gRPC front's series exist from the start (zero until traffic); the HTTP front's once it is bound.
        self._front_series("grpc")
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

    def _front_series(self, front: Front) -> None:
        self.tokens.labels(front=front)
        self.prefill.labels(front=front)
        self.decode.labels(front=front)

    def bind(self, server: SutServer) -> None:
        """Read live gauges from the server and its backend at scrape time."""
        backend = server.backend
        self.inflight.labels(front="grpc").set_function(lambda: float(server.inflight))
        self.active_batch.set_function(lambda: float(backend.active_batch()))
        self.queue_depth.set_function(lambda: float(backend.queue_depth()))
        if isinstance(backend, ReportsPrefixCache) and backend.prefix_cache_stats() is not None:
            self.registry.register(_PrefixCacheCollector(backend))
        power = backend.manifest.power
        if power is not None and isinstance(backend, ReportsBusyTime):
            self.registry.register(PowerCollector(power, backend))

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

    def bind_http(self, front: HttpFront) -> None:
        """Count the HTTP front's traffic too: its in-flight gauge is read from the front at scrape time."""
        self._front_series("http")
        self.inflight.labels(front="http").set_function(lambda: float(front.inflight))

    def request(self, code: str, front: Front = "grpc") -> None:
        self.requests.labels(front=front, status=code).inc()

    def generated(self, front: Front, arrival_ns: int, first_ns: int, end_ns: int, n_tokens: int) -> None:
        """Tokens and prefill/decode times of one request (its status is counted by ``request``)."""
        if n_tokens:
            self.tokens.labels(front=front).inc(n_tokens)
        if first_ns:
            self.prefill.labels(front=front).observe(max(0, first_ns - arrival_ns) / 1e9)
            self.decode.labels(front=front).observe(max(0, end_ns - first_ns) / 1e9)

    def finished(
        self, code: str, arrival_ns: int, first_ns: int, end_ns: int, n_tokens: int, front: Front = "grpc"
    ) -> None:
        self.request(code, front)
        self.generated(front, arrival_ns, first_ns, end_ns, n_tokens)

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


class _PrefixCacheCollector(Collector):
    """The backend's prefix-cache totals, read at scrape time (both fronts' requests; nothing per request).

    Hit and miss tokens add up to every prompt token admitted, so the token hit rate is
    ``hit / (hit + miss)``; ``lookups{result}`` counts requests with and without a cached block.
    """

    def __init__(self, backend: ReportsPrefixCache) -> None:
        self._backend = backend

    def collect(self) -> list[Metric]:
        st = self._backend.prefix_cache_stats()
        return [] if st is None else _prefix_cache_families(st)

    def describe(self) -> list[Metric]:
        return []  # families are built per scrape; nothing to check at registration


def _prefix_cache_families(st: PrefixCacheStats) -> list[Metric]:
    hit, miss, lookups, inserted, evicted, used, capacity, block = PREFIX_CACHE_METRICS
    families: list[Metric] = [
        CounterMetricFamily(hit, "Prompt tokens served from the prefix cache (their prefill skipped)", st.hit_tokens),
        CounterMetricFamily(miss, "Prompt tokens prefilled (not in the prefix cache)", st.miss_tokens),
        CounterMetricFamily(inserted, "Prompt blocks added to the prefix cache", st.inserted_blocks),
        CounterMetricFamily(
            evicted, "Prompt blocks evicted from the prefix cache (least recently used)", st.evicted_blocks
        ),
        GaugeMetricFamily(used, "Tokens held in the prefix cache (whole blocks)", st.used_tokens),
        GaugeMetricFamily(capacity, "Capacity of the prefix cache in tokens (whole blocks)", st.capacity_tokens),
        GaugeMetricFamily(block, "Block size of the prefix cache in tokens", st.block_tokens),
    ]
    by_result = CounterMetricFamily(
        lookups, "Requests whose prompt found at least one cached block (hit) or none (miss)", labels=["result"]
    )
    by_result.add_metric(["hit"], st.lookups_hit)
    by_result.add_metric(["miss"], st.lookups_miss)
    families.insert(2, by_result)
    return families


POWER_METRICS = ("lpuperf_sut_power_watts", "lpuperf_sut_energy_joules", "lpuperf_sut_busy_seconds")


class PowerCollector(Collector):
    """The artifact's power model applied to the backend's busy time, read at scrape time (nothing per step).

    Energy since the backend was bound: ``chips * (idle * elapsed + (busy - idle) * busy_s)``. The power
    gauge is the average since the previous scrape (the first scrape: since binding), so a scraper that
    samples every second sees each second's draw rather than one instant inside or between steps.
    """

    def __init__(
        self, power: PowerModel, backend: ReportsBusyTime, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._power = power
        self._backend = backend
        self._clock = clock
        self._t0 = clock()
        self._busy0 = backend.busy_seconds()
        self._last = (self._t0, 0.0)  # (when, joules) at the previous scrape
        self._lock = threading.Lock()  # two scrapers at once each get a consistent (time, joules) pair

    def joules(self, now: float) -> tuple[float, float]:
        """(joules since binding, busy seconds since binding) at ``now``."""
        elapsed = max(now - self._t0, 0.0)
        busy = min(max(self._backend.busy_seconds() - self._busy0, 0.0), elapsed)
        p = self._power
        return p.chips * (
            p.idle_watts_per_chip * elapsed + (p.busy_watts_per_chip - p.idle_watts_per_chip) * busy
        ), busy

    def collect(self) -> list[Metric]:
        with self._lock:
            now = self._clock()
            joules, busy = self.joules(now)
            t_prev, j_prev = self._last
            if now - t_prev > 1e-3:
                watts = (joules - j_prev) / (now - t_prev)
                self._last = (now, joules)
            else:  # two scrapes in the same millisecond: the idle draw rather than a ratio of two tiny numbers
                watts = self._power.replica_watts(0.0)
        name_w, name_j, name_b = POWER_METRICS
        return [
            GaugeMetricFamily(
                name_w, "Average power of the replica's chips since the previous scrape (power model)", watts
            ),
            CounterMetricFamily(name_j, "Energy of the replica's chips since the server started (power model)", joules),
            CounterMetricFamily(name_b, "Seconds the chips spent in prefill or decode steps", busy),
        ]

    def describe(self) -> list[Metric]:
        return []
