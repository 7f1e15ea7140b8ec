"""Harness Prometheus metrics, exposed only when ``--metrics-port`` is given.

When disabled the bridge holds ``None`` and pays one ``is not None`` test per query. When enabled
the bridge reports once per issue batch and once per completed query (never per token); the
achieved QPS gauge is computed from the completion counter by a collector at scrape time.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info

from common import ExporterSecurity, MetricsHttpServer, serve_registry

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TPOT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1)


class HarnessMetrics:
    """The contract's ``lpuperf_harness_*`` metrics on a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.registry = r
        self.issued_total = Counter(
            "lpuperf_harness_queries_issued", "Samples issued (by LoadGen, or by a load shape beside it)", registry=r
        )
        self.completed_total = Counter("lpuperf_harness_queries_completed", "Samples completed", registry=r)
        self.errors_total = Counter(
            "lpuperf_harness_query_errors", "Failed samples by gRPC status", ["status"], registry=r
        )
        self.inflight = Gauge("lpuperf_harness_inflight_queries", "Samples issued and not completed", registry=r)
        self.ttft = Histogram(
            "lpuperf_harness_ttft_seconds", "Time to first token", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.tpot = Histogram(
            "lpuperf_harness_tpot_seconds", "Time per output token", buckets=_TPOT_BUCKETS, registry=r
        )
        self.e2e = Histogram(
            "lpuperf_harness_e2e_latency_seconds", "Issue to completion", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.output_tokens = Counter("lpuperf_harness_output_tokens", "Tokens reported to LoadGen", registry=r)
        self.target_qps = Gauge("lpuperf_harness_target_qps", "Scheduled QPS (Server, or a rate load)", registry=r)
        self.achieved_qps = Gauge("lpuperf_harness_achieved_qps", "Completed samples/s since run start", registry=r)
        self.run_info = Info("lpuperf_harness_run", "The run being measured", registry=r)
        self.run_state = Enum(
            "lpuperf_harness_run_state", "Run state", states=["idle", "running", "finished", "failed"], registry=r
        )
        self.run_state.state("idle")
        self._t0 = time.monotonic()
        self._done = 0
        self.achieved_qps.set_function(self._achieved)
        self.server: MetricsHttpServer | None = None

    def _achieved(self) -> float:
        return self._done / max(time.monotonic() - self._t0, 1e-9)

    @classmethod
    def start(cls, port: int, addr: str = "127.0.0.1", security: ExporterSecurity | None = None) -> HarnessMetrics:
        """Serve the metrics on ``addr:port``: HTTPS and basic/bearer auth per ``security`` (default plain HTTP)."""
        m = cls()
        m.server = serve_registry(m.registry, port, addr, security, what="metrics")
        return m

    def run_started(self, scenario: str, benchmark: str, mode: str, preset: str, target_qps: float | None) -> None:
        self.run_info.info({"scenario": scenario, "benchmark": benchmark, "mode": mode, "preset": preset})
        self.target_qps.set(target_qps or 0.0)
        self._t0 = time.monotonic()
        self._done = 0
        self.run_state.state("running")

    def run_finished(self, failed: bool) -> None:
        self.run_state.state("failed" if failed else "finished")

    # ---- hot path: once per issue batch / once per completed sample ----

    def issued(self, n: int) -> None:
        self.issued_total.inc(n)
        self.inflight.inc(n)

    def completed(self, issue_ns: int, first_ns: int, done_ns: int, n_tokens: int) -> None:
        """One completed sample; plain ints (harness clock, ns) so no numpy scalar math on the hot path."""
        self._done += 1
        self.completed_total.inc()
        self.inflight.dec()
        self.output_tokens.inc(n_tokens)
        self.e2e.observe((done_ns - issue_ns) / 1e9)
        if first_ns >= 0:
            self.ttft.observe((first_ns - issue_ns) / 1e9)
            if n_tokens > 1:
                self.tpot.observe((done_ns - first_ns) / 1e9 / (n_tokens - 1))

    def failed(self, status: str) -> None:
        self._done += 1
        self.completed_total.inc()
        self.inflight.dec()
        self.errors_total.labels(status=status).inc()

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
