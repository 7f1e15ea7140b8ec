"""A load run exposes the harness's Prometheus metrics as a LoadGen run does: scraped while it lingers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadgen_harness import load_results

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_a_rate_load_is_scraped_with_its_scenario_target_and_counts(tmp_path: Path) -> None:
    port = _free_port()
    argv = [sys.executable, "-m", "cli", "run", "--load", "rate:40:constant", "--duration", "2"]
    argv += ["--metrics-port", str(port), "--metrics-linger", "8", "--max-dispatch-lag-ms", "5000"]
    argv += ["--out", str(tmp_path), "--run-id", "m", "--no-record"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                samples = _samples(port)
            except OSError:
                time.sleep(0.2)
                continue
            state = samples.get("lpuperf_harness_run_state", {})
            if any(dict(k).get("lpuperf_harness_run_state") == "finished" and v == 1 for k, v in state.items()):
                finished = samples
                break
            time.sleep(0.2)
    finally:
        _out, err = proc.communicate(timeout=60)
    assert finished is not None, err[-2000:]
    res = load_results(tmp_path / "m" / "Rate" / "performance" / "results.json")
    info = finished["lpuperf_harness_run_info"]
    assert [dict(k)["scenario"] for k in info] == ["Rate"]
    assert finished["lpuperf_harness_target_qps"][()] == 40.0
    assert finished["lpuperf_harness_queries_issued_total"][()] == res.n_queries == 80
    assert finished["lpuperf_harness_queries_completed_total"][()] == res.n_queries
    assert finished["lpuperf_harness_ttft_seconds_count"][()] == res.n_queries - res.n_errors
