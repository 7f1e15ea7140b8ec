"""Run directories for the history tests, written the way the harness writes them (per-query records as
queries.npz, a RunResult as results.json, the SUT's manifest as artifact.json), with figures chosen by
the test."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from loadgen_harness import QUERIES_FILE, QUERY_RECORD_DTYPE, Percentiles, RunResult


def manifest(build_id: str, name: str = "lpu-llm", decode_step_s: float = 0.01) -> dict[str, Any]:
    return {
        "artifact_id": name,
        "backend": "sim",
        "model": "embedded-sim",
        "precision": "fp32",
        "max_context_tokens": 4096,
        "timing": {"prefill_base_s": 0.004, "prefill_per_token_s": 2e-05, "decode_step_s": decode_step_s},
        "toolchain_version": "lpc 3.1",
        "target": "sim-lpu",
        "build_id": build_id,
        "build": {"compiler": "lpc 3.1", "flags": "-O3"},
    }


def query_records(n: int, slower: float, seed: int) -> np.ndarray:
    """Per-query records of a Server run at 20 QPS: TTFT ~40 ms, TPOT ~10 ms, both scaled by ``slower``."""
    rng = np.random.default_rng(seed)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    issue = 1_000_000_000 + np.arange(n, dtype=np.int64) * 50_000_000
    ttft_ns = (rng.gamma(4.0, 10.0, n) * slower * 1e6).astype(np.int64)
    tpot_ns = (rng.normal(10.0, 1.0, n).clip(5.0) * slower * 1e6).astype(np.int64)
    ntok = rng.integers(16, 48, n)
    rec["sample_index"] = np.arange(n) % 50
    rec["issue_ns"] = issue
    rec["first_token_ns"] = issue + ttft_ns
    rec["done_ns"] = rec["last_msg_ns"] = issue + ttft_ns + tpot_ns * (ntok - 1)
    rec["n_tokens"] = rec["n_streamed"] = rec["n_chunks"] = ntok
    rec["first_chunk_tokens"] = 1
    rec["status"] = 0
    rec["stream_matches_output"] = True
    rec["max_gap_ns"] = tpot_ns
    return rec


def _percentiles(ns: np.ndarray) -> Percentiles:
    # "higher": a recorded value at or above the rank, as LoadGen reports percentiles.
    p50, p90, p99 = (float(np.percentile(ns, q, method="higher")) / 1e6 for q in (50, 90, 99))
    return Percentiles(p50=p50, p90=p90, p99=p99)


def write_run(
    out: Path,
    run_id: str,
    artifact: dict[str, Any],
    slower: float = 1.0,
    scenario: str = "Server",
    valid: bool = True,
    age_s: float = 0.0,
    seed: int = 0,
    n_queries: int = 200,
    **over: Any,
) -> Path:
    """OUT/<run-id>/<scenario>/performance: queries.npz and a results.json whose figures are the records'.

    Runs of one ``seed`` and ``slower`` have identical records (an unchanged build). ``age_s`` back-dates
    results.json (the store takes a run's time from it), so runs keep the order the test means.
    """
    d = out / run_id / scenario / "performance"
    d.mkdir(parents=True, exist_ok=True)
    rec = query_records(n_queries, slower, seed)
    np.savez(d / QUERIES_FILE, records=rec)
    window_s = float(rec["done_ns"].max() - rec["issue_ns"].min()) / 1e9
    res = RunResult(
        run_id=run_id,
        scenario=scenario,
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=valid,
        loadgen_valid=valid,
        scheduled_qps=20.0,
        completed_qps=n_queries / window_s,
        tokens_per_second=float(rec["n_tokens"].sum()) / window_s,
        ttft_ms=_percentiles(rec["first_token_ns"] - rec["issue_ns"]),
        tpot_ms=_percentiles((rec["done_ns"] - rec["first_token_ns"]) / (rec["n_tokens"] - 1)),
        latency_ms=_percentiles(rec["done_ns"] - rec["issue_ns"]),
        n_queries=n_queries,
        duration_s=window_s,
        artifact=artifact,
        harness_version="lpuperf 0.1.0, mlcommons-loadgen 6.0.17",
        log_dir=str(d),
        **over,
    )
    path = d / "results.json"
    path.write_text(res.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (d / "artifact.json").write_text(json.dumps(artifact, indent=2) + "\n", encoding="utf-8")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return d
