"""``lpuperf run --transport openai-http``: the harness streams straight to an OpenAI-compatible front.

Against the instant sim behind ``lpuperf serve --http``: every answered sample is the sim's reference
output, id for id (EOS included), the counts are the server's, no SUT process is spawned, failures carry
the relay's statuses, and a planted API key reaches the front but no output.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import decode_tokens, load_query_records, read_accuracy_log_entries
from scenarios import resolve_dataset
from tests.integration.test_openai_relay import DATASET, LPUPERF, Served, _serve, _stop

pytestmark = pytest.mark.integration

KEY_ENV = "LPUPERF_TEST_DIRECT_KEY"
PLANTED_KEY = "sk-lpuperf-DIRECT-4c1e9b7a2d5f3086"


def _run(front: Served, tmp: Path, run_id: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp / "results"
    argv = ["run", "--transport", "openai-http", "--base-url", front.base_url, "--api-key-env", KEY_ENV]
    argv += ["--dataset", DATASET, "--out", str(out), "--run-id", run_id, "--no-record", *extra]
    env = dict(os.environ, **{KEY_ENV: PLANTED_KEY})
    run = subprocess.run([LPUPERF, *argv], capture_output=True, text=True, timeout=240, env=env)
    found = list((out / run_id).glob("*/*/results.json"))
    assert found, run.stdout + run.stderr
    assert PLANTED_KEY not in run.stdout + run.stderr
    return run, found[0].parent


def test_direct_runs_return_the_reference_ids_with_the_servers_counts(tmp_path: Path) -> None:
    front = _serve(tmp_path, "front", ["--backend", "sim", "--artifact", "sim-instant", "--dataset", DATASET])
    try:
        run, log_dir = _run(front, tmp_path, "acc", "--scenario", "Offline", "--mode", "accuracy")
        results = json.loads((log_dir / "results.json").read_text())
        assert results["n_errors"] == 0 and results["artifact"]["backend"] == "openai", run.stdout
        assert "127.0.0.1" in results["sut_address"]
        ds = resolve_dataset(DATASET)
        entries = read_accuracy_log_entries(log_dir / "mlperf_log_accuracy.json")
        assert len(entries) == len(ds)
        for e in entries:
            ids = decode_tokens(e["data"]).tolist()
            assert ids == ds.reference_ids[int(str(e["qsl_idx"]))].tolist()  # EOS and all, nothing re-tokenized
        recs = load_query_records(log_dir)
        assert np.all(recs["n_tokens"] == recs["n_streamed"]) and np.all(recs["stream_matches_output"])
        assert np.all(recs["sut_arrival_ns"] <= 0)  # no SUT clock on a direct run
        served = front.health()
        assert served["requests_with_auth"] >= len(ds)  # the key went to the front, and nowhere else
        _, perf_dir = _run(front, tmp_path, "perf", "--scenario", "Server", "--qps", "40", "--duration", "2")
        perf_res = json.loads((perf_dir / "results.json").read_text())
        assert perf_res["n_errors"] == 0 and perf_res["n_queries"] >= 40 and perf_res["ttft_ms"]["p50"] > 0
    finally:
        _stop(front)


def test_upstream_failures_are_per_query_statuses_like_the_relays(tmp_path: Path) -> None:
    args = ["--backend", "sim", "--artifact", "sim-instant", "--dataset", DATASET]
    front = _serve(tmp_path, "faulty", [*args, "--http-fault", "503@3", "--http-fault", "429@4"])
    try:
        _, log_dir = _run(front, tmp_path, "faults", "--scenario", "Offline")
        results = json.loads((log_dir / "results.json").read_text())
        by_status = results["errors_by_status"]
        assert by_status.get("RESOURCE_EXHAUSTED", 0) >= 1 and by_status.get("UNAVAILABLE", 0) >= 1, by_status
        assert results["n_errors"] == sum(by_status.values()) < results["n_queries"]
    finally:
        _stop(front)


def test_transport_flag_refuses_a_sut(tmp_path: Path) -> None:
    run = subprocess.run(
        [LPUPERF, "run", "--transport", "openai-http", "--base-url", "http://127.0.0.1:9/v1", "--sut", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "--transport openai-http" in run.stderr
