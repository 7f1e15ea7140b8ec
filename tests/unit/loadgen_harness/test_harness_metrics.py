"""Harness Prometheus metrics: the contract's names, per-completion updates, the HTTP endpoint."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import generate_latest

from loadgen_harness._metrics import HarnessMetrics

CONTRACT = (
    "lpuperf_harness_queries_issued_total",
    "lpuperf_harness_queries_completed_total",
    "lpuperf_harness_query_errors_total",
    "lpuperf_harness_inflight_queries",
    "lpuperf_harness_ttft_seconds_bucket",
    "lpuperf_harness_tpot_seconds_bucket",
    "lpuperf_harness_e2e_latency_seconds_bucket",
    "lpuperf_harness_output_tokens_total",
    "lpuperf_harness_target_qps",
    "lpuperf_harness_achieved_qps",
    "lpuperf_harness_run_info",
    "lpuperf_harness_run_state",
)


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_updates_per_completion_and_failure() -> None:
    m = HarnessMetrics()
    m.run_started("Server", "embedded", "performance", "quick", 12.0)
    m.issued(3)
    m.completed(1_000_000, 3_000_000, 13_000_000, 11)
    m.failed("UNAVAILABLE")
    text = generate_latest(m.registry).decode()
    for name in CONTRACT:
        assert name in text, name
    assert _value(text, "lpuperf_harness_queries_issued_total") == 3
    assert _value(text, "lpuperf_harness_queries_completed_total") == 2
    assert _value(text, "lpuperf_harness_inflight_queries") == 1
    assert _value(text, "lpuperf_harness_output_tokens_total") == 11
    assert _value(text, "lpuperf_harness_ttft_seconds_sum") == 0.002
    assert abs(_value(text, "lpuperf_harness_tpot_seconds_sum") - 0.001) < 1e-12
    assert 'lpuperf_harness_query_errors_total{status="UNAVAILABLE"} 1.0' in text
    assert 'lpuperf_harness_run_state{lpuperf_harness_run_state="running"} 1.0' in text
    assert 'scenario="Server"' in text
    m.run_finished(failed=True)
    assert 'lpuperf_harness_run_state{lpuperf_harness_run_state="failed"} 1.0' in generate_latest(m.registry).decode()


def test_http_endpoint_serves_and_stops() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = HarnessMetrics.start(port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "lpuperf_harness_run_state" in body
    finally:
        m.stop()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
        raise AssertionError("metrics endpoint still serving after stop()")
    except OSError:
        pass
