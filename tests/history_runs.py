"""Run directories for the history tests, written the way the harness writes them (a RunResult as
results.json, the SUT's manifest as artifact.json), with figures chosen by the test."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from loadgen_harness import Percentiles, RunResult


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


def write_run(
    out: Path,
    run_id: str,
    artifact: dict[str, Any],
    slower: float = 1.0,
    scenario: str = "Server",
    valid: bool = True,
    age_s: float = 0.0,
    **over: Any,
) -> Path:
    """OUT/<run-id>/<scenario>/performance with results.json; latencies scaled by ``slower``.

    ``age_s`` back-dates results.json (the store takes a run's time from it), so runs written in one
    test keep the order the test means.
    """
    d = out / run_id / scenario / "performance"
    d.mkdir(parents=True, exist_ok=True)
    res = RunResult(
        run_id=run_id,
        scenario=scenario,
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=valid,
        loadgen_valid=valid,
        scheduled_qps=20.0,
        completed_qps=19.8 / slower,
        tokens_per_second=600.0 / slower,
        ttft_ms=Percentiles(p50=40.0 * slower, p90=60.0 * slower, p99=80.0 * slower),
        tpot_ms=Percentiles(p50=10.0 * slower, p90=12.0 * slower, p99=15.0 * slower),
        latency_ms=Percentiles(p50=400.0 * slower, p90=500.0 * slower, p99=600.0 * slower),
        n_queries=200,
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
