"""A real Prometheus server scrapes a real SUT (``lpuperf serve --metrics-port``) and a real harness run
(``lpuperf run --metrics-port``) on loopback every second while a Server scenario runs; the test then
asks Prometheus's HTTP API what it saw.

Tolerance for TTFT p99: the harness exports TTFT as a histogram and ``histogram_quantile`` can only
place p99 inside the bucket that holds it, interpolating linearly between the bucket's edges. With
the same observations as LoadGen, the estimate therefore sits less than one bucket width from
LoadGen's exact p99. The allowed error is the width of the bucket that holds LoadGen's p99 (read from
the ``le`` labels Prometheus returns). The harness's timestamps differ from LoadGen's by well under a
millisecond, and the last scrape may miss the final second of completions (checked: at least 85 % of
the run's queries must be in the scraped histogram); neither moves p99 by a bucket width. A wrong
metric (end-to-end latency exported as TTFT, or ms as s) lands more than a width away.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
RUN_S = 15  # LoadGen min duration of the Server run
QPS = 20.0
# max_batch 8 and 32-token outputs (about 0.33 s each on the sim's 10 ms decode step) give a capacity
# of about 24 QPS: at 20 QPS the SUT is ~85 % busy, so requests queue for a batch slot now and then.
SUT_ARGS = ["--backend", "sim", "--artifact", "sim-fp32", "--dataset", "embedded", "--max-batch", "8"]
MAX_NEW_TOKENS = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PromApi:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr, time=f"{at:.3f}")
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1s")
        result: list[dict[str, Any]] = data["result"]
        return result


def _wait(what: str, check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, AssertionError, KeyError, ValueError):
            if check():
                return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@contextlib.contextmanager
def prometheus_server(
    tmp: Path, targets: dict[str, str], scrape_configs: list[dict[str, Any]] | None = None
) -> Iterator[PromApi]:
    assert PROMETHEUS is not None
    plain = [{"job_name": job, "static_configs": [{"targets": [t]}]} for job, t in targets.items()]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": plain + (scrape_configs or []),
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    port = _free_port()
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = PromApi(f"http://127.0.0.1:{port}")
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text(errors="replace")[-2000:]
            with urllib.request.urlopen(f"{api.base}/-/ready", timeout=2) as r:
                return bool(r.status == 200)

        _wait("Prometheus to be ready", ready, 30)
        yield api
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def _values(series: list[dict[str, Any]]) -> list[float]:
    return [float(v) for s in series for _, v in s["values"] if not math.isnan(float(v))]


@pytest.mark.skipif(
    PROMETHEUS is None, reason="no `prometheus` binary (Debian package 'prometheus'; .ci/run installs it)"
)
def test_prometheus_scrapes_sut_and_harness_during_a_server_run(tmp_path: Path) -> None:
    from loadgen_harness import load_results
    from sut import spawn_server

    sut_metrics, harness_metrics = _free_port(), _free_port()
    with spawn_server([*SUT_ARGS, "--metrics-port", str(sut_metrics)]) as sut_proc:
        targets = {"sut": f"127.0.0.1:{sut_metrics}", "harness": f"127.0.0.1:{harness_metrics}"}
        with prometheus_server(tmp_path, targets) as prom:
            _wait(
                "the SUT target to be up",
                lambda: prom.query('up{job="sut"} == 1', time.time()),
                20,
            )
            t_start = time.time()
            argv = [sys.executable, "-m", "cli", "run", "--scenario", "Server"]
            argv += ["--sut", sut_proc.address]
            argv += ["--qps", str(QPS), "--duration", str(RUN_S), "--max-new-tokens", str(MAX_NEW_TOKENS)]
            argv += ["--metrics-port", str(harness_metrics), "--out", str(tmp_path / "out"), "--run-id", "scrape"]
            run = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=RUN_S + 90,
            )
            t_end = time.time()
            run_dir = tmp_path / "out" / "scrape" / "Server" / "performance"
            assert (run_dir / "results.json").is_file(), run.stdout + run.stderr
            res = load_results(run_dir)
            assert res.n_errors == 0 and res.n_queries >= 0.8 * QPS * RUN_S, run.stdout
            time.sleep(1.5)  # let the last scrape land in the TSDB

            # 1. The completed-queries rate is non-zero during the run, and about the completed QPS.
            rate = _values(
                prom.query_range("rate(lpuperf_harness_queries_completed_total[3s])", t_start + 4, t_end - 2)
            )
            assert len(rate) >= RUN_S // 2, f"too few rate points during the run: {rate}"
            assert max(rate) > 0
            median = sorted(rate)[len(rate) // 2]
            assert res.completed_qps is not None and 0.5 * res.completed_qps <= median <= 1.5 * res.completed_qps

            # The scraped histogram must hold (nearly) the whole run for its p99 to be LoadGen's p99.
            (count,) = prom.query("max_over_time(lpuperf_harness_ttft_seconds_count[2m])", t_end + 1)
            assert float(count["value"][1]) >= 0.85 * res.n_queries

            # 2. histogram_quantile(0.99) of TTFT vs LoadGen's own p99, within one bucket width.
            buckets = prom.query("max_over_time(lpuperf_harness_ttft_seconds_bucket[2m])", t_end + 1)
            edges = sorted(float(b["metric"]["le"]) for b in buckets if b["metric"]["le"] != "+Inf")
            (est,) = prom.query(
                "histogram_quantile(0.99, sum by (le) (max_over_time(lpuperf_harness_ttft_seconds_bucket[2m])))",
                t_end + 1,
            )
            estimate_s = float(est["value"][1])
            assert res.ttft_ms.p99 is not None
            loadgen_s = res.ttft_ms.p99 / 1e3
            upper = next(e for e in edges if e >= loadgen_s)
            lower = max([0.0, *(e for e in edges if e < loadgen_s)])
            tolerance = upper - lower
            assert abs(estimate_s - loadgen_s) <= tolerance, (
                f"Prometheus TTFT p99 {estimate_s * 1e3:.1f} ms vs LoadGen {loadgen_s * 1e3:.1f} ms: "
                f"more than the bucket width {tolerance * 1e3:.1f} ms ({lower}..{upper} s) apart"
            )

            # 3. Queue depth was observed: a series with samples during the run, and queueing happened.
            depth = prom.query_range("lpuperf_sut_queue_depth", t_start, t_end)
            assert depth and len(_values(depth)) >= RUN_S // 2
            assert max(_values(depth)) > 0, "the SUT never had a request waiting for a batch slot"

            # The other contract series were scraped as well (bounded labels only).
            for name in ("lpuperf_sut_active_batch_size", "lpuperf_sut_artifact_info", "lpuperf_harness_run_info"):
                assert prom.query_range(name, t_start, t_end), name
            statuses = {s["metric"]["status"] for s in prom.query("lpuperf_sut_requests_total", t_end + 1)}
            assert statuses == {"OK"}


@contextlib.contextmanager
def prometheus_with(tmp: Path, scrape_configs: list[dict[str, Any]]) -> Iterator[PromApi]:
    """A real Prometheus with full scrape configs (TLS, authorization, basic_auth)."""
    with prometheus_server(tmp, {}, scrape_configs) as api:
        yield api


@pytest.mark.skipif(
    PROMETHEUS is None, reason="no `prometheus` binary (Debian package 'prometheus'; .ci/run installs it)"
)
def test_prometheus_scrapes_tls_and_authenticated_metrics_endpoints(tmp_path: Path) -> None:
    """The SUT's exporter over HTTPS with a bearer token and the harness's over HTTPS with basic auth, scraped
    as docker/prometheus/prometheus.yml shows (tls_config, authorization, basic_auth); a wrong token and an
    untrusted CA are refused (up == 0) and the refused token is counted in the SUT's own metrics."""
    from common import ExporterSecurity
    from loadgen_harness._metrics import HarnessMetrics
    from sut import spawn_server
    from tests.tls_pki import make_pki

    pki = make_pki(tmp_path / "pki")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "sut-token").write_text("scrape-token-0c4d7e\n", encoding="utf-8")
    (secrets / "wrong-token").write_text("scrape-token-wrong\n", encoding="utf-8")
    (secrets / "basic").write_text("prometheus:harness-pa55-9e1b\n", encoding="utf-8")
    (secrets / "password").write_text("harness-pa55-9e1b\n", encoding="utf-8")
    # gRPC stays plaintext here (spawn_server's readiness probe); the metrics endpoint alone is HTTPS.
    tls = ["--metrics-tls-cert", str(pki.server.cert), "--metrics-tls-key", str(pki.server.key)]
    sut_port = _free_port()
    sut_args = [*SUT_ARGS, "--metrics-port", str(sut_port), *tls, "--metrics-token-file", str(secrets / "sut-token")]
    harness = HarnessMetrics.start(
        0,
        security=ExporterSecurity(tls_cert=pki.server.cert, tls_key=pki.server.key, basic_auth_file=secrets / "basic"),
    )
    harness.run_started("Server", "embedded", "performance", "quick", 1.0)
    assert harness.server is not None
    harness_port = harness.server.port

    def job(name: str, port: int, **extra: Any) -> dict[str, Any]:
        return {"job_name": name, "scheme": "https", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **extra}

    ca = {"tls_config": {"ca_file": str(pki.ca)}}
    scrape_configs = [
        job("sut", sut_port, **ca, authorization={"type": "Bearer", "credentials_file": str(secrets / "sut-token")}),
        job(
            "harness",
            harness_port,
            **ca,
            basic_auth={"username": "prometheus", "password_file": str(secrets / "password")},
        ),
        # Planted faults: a wrong token, and a CA that did not sign the exporter's certificate.
        job("wrong-token", sut_port, **ca, authorization={"credentials_file": str(secrets / "wrong-token")}),
        job(
            "untrusted",
            harness_port,
            tls_config={"ca_file": str(pki.other_ca)},
            basic_auth={"username": "prometheus", "password_file": str(secrets / "password")},
        ),
    ]
    try:
        with spawn_server(sut_args), prometheus_with(tmp_path, scrape_configs) as prom:

            def up(job_name: str) -> float:
                (sample,) = prom.query(f'up{{job="{job_name}"}}', time.time())
                return float(sample["value"][1])

            _wait("both exporters scraped over TLS with auth", lambda: up("sut") == 1 and up("harness") == 1, 30)
            _wait("the planted faults to be scraped", lambda: up("wrong-token") == 0 and up("untrusted") == 0, 30)
            assert prom.query('lpuperf_sut_artifact_info{job="sut"}', time.time())
            assert prom.query('lpuperf_harness_run_info{job="harness"}', time.time())

            def refused_counted() -> bool:
                got = prom.query(
                    'lpuperf_sut_auth_failures_total{job="sut",endpoint="metrics",reason="invalid"} > 0', time.time()
                )
                return bool(got)

            _wait("the wrong token to be counted by the SUT", refused_counted, 30)
    finally:
        harness.stop()
