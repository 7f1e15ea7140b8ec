"""Overload shows as queueing and latency, never as client-side errors.

grpc core sheds calls that arrived faster than the server's handler loop takes them (a backlog of
1,000 with random early drop up to 3,000, 30 s at most); the client then sees ``CANCELLED`` for
streams the SUT never saw. The SUT raises those limits (``sut._server``), and these tests hold it:
a burst of 4,000 streams on one connection completes, and a Server run at twice the sim's capacity
queues (TTFT grows by hundreds of milliseconds) with zero failed queries.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.measuring_path import burst_statuses
from loadgen_harness import RunConfig, load_query_records, run_benchmark
from scenarios import resolve_dataset

pytestmark = pytest.mark.integration

DATASET = "synthetic:64:7"
BURST = 4000


def _manifest(tmp: Path, name: str, decode_step_s: float, max_batch: int) -> Path:
    from sut import ArtifactManifest, TimingModel

    m = ArtifactManifest(
        artifact_id=name,
        backend="sim",
        model="embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=max_batch,
        timing=TimingModel(prefill_base_s=0.0, prefill_per_token_s=0.0, decode_step_s=decode_step_s),
        target="sim-lpu",
    )
    p = tmp / f"{name}.json"
    p.write_text(m.model_dump_json())
    return p


def _spawn(manifest: Path) -> Any:
    import sut

    return sut.spawn_server(["--artifact", str(manifest), "--dataset", DATASET])


def test_burst_of_4000_streams_on_one_connection_completes(tmp_path: Path) -> None:
    from loadgen_harness._bridge import serialise_requests

    ds = resolve_dataset(DATASET)
    requests = serialise_requests(ds.input_ids, ds.prompts, [16] * len(ds), ds.eos_token_id)
    with _spawn(_manifest(tmp_path, "instant", 0.0, 4096)) as server:
        codes = asyncio.run(burst_statuses(server.address, requests, BURST))  # what bench.measuring_path reports
    assert codes == {"OK": BURST}


def test_server_at_twice_capacity_queues_without_errors(tmp_path: Path) -> None:
    # 4 sequences, one token each per 5 ms step, answers of at most 8 tokens: ~100-150 QPS.
    from sut import ArtifactManifest, analytic_capacity_qps

    path = _manifest(tmp_path, "tiny", 0.005, 4)
    capacity = analytic_capacity_qps(
        ArtifactManifest.model_validate_json(path.read_text()), resolve_dataset(DATASET), 8
    )
    with _spawn(path) as server:
        res = run_benchmark(
            RunConfig(
                scenario="Server",
                sut=server.address,
                dataset=DATASET,
                out_dir=tmp_path,
                run_id="overload",
                qps=2 * capacity,
                duration_s=2.0,
                max_new_tokens=8,
            )
        )
    assert res.n_errors == 0, res.errors_by_status
    assert res.errors_by_status == {}
    rec = load_query_records(res.log_dir)
    assert rec.size == res.n_queries > 0
    assert (rec["status"] == 0).all()
    assert (rec["done_ns"] >= 0).all()
    # Queueing, not loss: the last queries waited far longer for their first token than the first ones.
    ttft_ms = (rec["first_token_ns"] - rec["issue_ns"]) / 1e6
    order = np.argsort(rec["issue_ns"])
    k = max(1, rec.size // 10)
    assert float(np.median(ttft_ms[order[-k:]])) > 200.0 + float(np.median(ttft_ms[order[:k]]))
    assert res.valid is False


def _server_run(
    address: str, out: Path, run_id: str, qps: float, duration_s: float, max_new_tokens: int, limit: int
) -> Any:
    cfg = RunConfig(scenario="Server", sut=address, dataset=DATASET, out_dir=out, run_id=run_id, qps=qps)
    return run_benchmark(
        cfg.model_copy(
            update={
                "duration_s": duration_s,
                "max_new_tokens": max_new_tokens,
                "max_in_flight": limit,
                "metrics_linger_s": 0,
            }
        )
    )


def test_a_hopeless_server_run_stops_early_at_its_in_flight_limit(tmp_path: Path) -> None:
    # 2 sequences, 40 ms a token, up to 64 tokens: a few QPS at most, asked for 400 QPS over 120 s.
    # Before the in-flight limit the harness held every outstanding query until LoadGen's schedule ran
    # out, and then waited for the SUT to answer them all: memory grew without bound for minutes.
    limit = 200
    t0 = time.monotonic()
    with _spawn(_manifest(tmp_path, "hopeless", 0.04, 2)) as server:
        res = _server_run(
            server.address, tmp_path, "hopeless", qps=400, duration_s=120.0, max_new_tokens=64, limit=limit
        )
    took_s = time.monotonic() - t0
    assert took_s < 60, f"the run took {took_s:.0f} s: it did not stop at its limit"
    assert res.overload is not None and res.valid is False
    assert res.overload.limit == limit and res.overload.outstanding > limit
    assert res.overload.planned_queries == 48_000 and res.overload.completed_fraction is not None
    assert res.overload.completed_fraction < 0.01
    reason = res.validity_reasons[0]
    assert reason.startswith("overloaded: the SUT completed") and f"limit {limit}" in reason, reason
    assert res.settings["harness_max_in_flight"] == limit
    assert res.settings.get("effective_max_async_queries") == limit  # LoadGen's own limit is the same
    # Memory stays bounded: nothing beyond the limit (and the few LoadGen issued as it crossed) was issued.
    assert res.n_queries <= limit + 16
    rec = load_query_records(res.log_dir)
    assert rec.size == res.n_queries and (rec["done_ns"] >= 0).all()  # every issued query was completed
    assert res.errors_by_status.get("OVERLOADED", 0) > 0
    assert int((rec["status"] == 0).sum()) == res.overload.completed_ok


def test_a_run_within_capacity_never_stops_for_overload(tmp_path: Path) -> None:
    with _spawn(_manifest(tmp_path, "roomy", 0.001, 64)) as server:
        res = _server_run(server.address, tmp_path, "roomy", qps=20, duration_s=2.0, max_new_tokens=8, limit=64)
    assert res.overload is None and res.n_errors == 0
    assert not any(r.startswith("overloaded") for r in res.validity_reasons)
