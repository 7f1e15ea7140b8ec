"""find-peak's queueing estimate (Erlang C) against closed-form M/M/1 and M/M/2 values."""

from __future__ import annotations

import math

import pytest

from scenarios import get_benchmark
from workflows._find_peak import benchmark_limits_ms, erlang_c, erlang_rate_for_wait, estimate_peak


def test_erlang_c_matches_closed_forms() -> None:
    assert erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(4, 0.0) == 0.0 and erlang_c(4, 4.0) == 1.0
    # Large c stays finite (log-space sums).
    assert 0.0 < erlang_c(500, 480.0) < 1.0


def test_rate_for_wait_hits_the_quantile_on_mm1() -> None:
    service, wait = 0.1, 0.5
    lam = erlang_rate_for_wait(1, service, wait, 0.99)
    mu = 1 / service
    # P(W > t) = rho * exp(-(mu - lambda) t) for M/M/1.
    assert (lam / mu) * math.exp(-(mu - lam) * wait) == pytest.approx(0.01, rel=1e-3)
    assert 0 < lam < mu


def test_estimate_rises_with_budget_and_stays_below_the_bound() -> None:
    tight = estimate_peak(offline_qps=100.0, service_s=0.08, unloaded_ttft_s=0.01, ttft_limit_s=0.1)
    loose = estimate_peak(offline_qps=100.0, service_s=0.08, unloaded_ttft_s=0.01, ttft_limit_s=2.0)
    assert tight.parallelism == pytest.approx(8.0)
    assert 0 < tight.erlang_qps < loose.erlang_qps < 100.0 < loose.upper_bound_qps
    # A generous TTFT budget lets the queue run close to the throughput bound.
    assert loose.erlang_qps > 0.9 * 100.0


def test_benchmark_limits_come_from_the_profile() -> None:
    prof = get_benchmark("llama2-70b-interactive")
    assert benchmark_limits_ms("llama2-70b-interactive") == (prof.ttft_ms, prof.tpot_ms)
    assert benchmark_limits_ms("embedded") == (get_benchmark("embedded").ttft_ms, get_benchmark("embedded").tpot_ms)
    assert benchmark_limits_ms("no-such-benchmark") == (None, None)
