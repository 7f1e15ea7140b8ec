"""Telemetry sampling against real loopback HTTP servers that serve recorded exposition text (vLLM, DCGM,
an unknown exporter): name mapping, raw series kept, the run's clock, auth, bounded memory, a dying target."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import ScrapeTarget, Telemetry, TelemetryConfig, TelemetrySampler

# Shaped as vLLM 0.x and NVIDIA's dcgm-exporter expose them (written here, not copied from a server).
VLLM_TEXT = """\
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} {waiting}
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m"} 7.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="m"} 0.25
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="m"} {preempt}
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 3.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 4.0
vllm:time_to_first_token_seconds_count{model_name="m"} 4.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 0.3
# HELP some_unknown_thing A metric no mapping knows.
# TYPE some_unknown_thing gauge
some_unknown_thing{x="1"} 42.0
"""
DCGM_TEXT = """\
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",modelName="H100"} 300.0
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-b",modelName="H100"} 100.0
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-a"} {mj}
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a"} 80
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b"} 40
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a"} 1024
"""


class _Exposition:
    """A loopback HTTP server answering /metrics with a text that changes per scrape; optional auth."""

    def __init__(self, render: object, auth: str | None = None) -> None:
        self.n = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if auth is not None and self.headers.get("Authorization") != auth:
                    self.send_response(401)
                    self.end_headers()
                    return
                outer.n += 1
                body = render(outer.n).encode()  # type: ignore[operator]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def vllm() -> Iterator[_Exposition]:
    srv = _Exposition(lambda n: VLLM_TEXT.replace("{waiting}", str(n)).replace("{preempt}", str(2 * n)))
    yield srv
    srv.close()


def _sample(targets: list[ScrapeTarget], seconds: float, interval_s: float = 0.1, **cfg: object) -> tuple:
    t0 = time.monotonic_ns()
    sampler = TelemetrySampler(targets, TelemetryConfig(interval_s=interval_s, **cfg), t0).start()  # type: ignore[arg-type]
    time.sleep(seconds)
    warnings = sampler.stop()
    return sampler.telemetry(), warnings, (time.monotonic_ns() - t0) / 1e9


def test_vllm_names_map_to_canonical_and_unknown_metrics_stay_raw(vllm: _Exposition, tmp_path: Path) -> None:
    tel, warnings, elapsed = _sample([ScrapeTarget(url=vllm.url)], 0.5)
    assert warnings == []
    by = {s.canonical: s for s in tel.canonical()}
    assert {"queue_depth", "running", "kv_cache_usage", "preemptions"} <= set(by)
    assert all(s.source == "vllm" for s in by.values())
    q = by["queue_depth"]
    # The n-th scrape served waiting=n: the series counts up 1, 2, 3 ... on strictly rising run times.
    assert q.values.tolist() == list(range(1, q.values.size + 1))
    assert np.all(np.diff(q.t_s) > 0) and q.t_s[0] >= 0 and q.t_s[-1] <= elapsed
    assert by["kv_cache_usage"].values[0] == pytest.approx(0.25)
    t_rate, rate = by["preemptions"].rate()
    assert rate.size and np.all(rate > 0) and set(t_rate.tolist()) <= set(q.t_s.tolist())
    assert "some_unknown_thing" in tel.series_name  # kept raw
    assert not any(n.endswith("_bucket") for n in tel.series_name)  # buckets are left out; sum/count kept
    assert "vllm:time_to_first_token_seconds_count" in tel.series_name
    tel.save(tmp_path)
    back = Telemetry.load(tmp_path)
    assert back.series_name == tel.series_name and np.array_equal(back.value, tel.value)
    assert [s.canonical for s in back.canonical()] == [s.canonical for s in tel.canonical()]


def test_dcgm_power_sums_gpus_and_converts_units() -> None:
    srv = _Exposition(lambda n: DCGM_TEXT.replace("{mj}", str(1000.0 * n)))
    try:
        tel, _, _ = _sample([ScrapeTarget(url=srv.url)], 0.4)
    finally:
        srv.close()
    by = {s.canonical: s for s in tel.canonical()}
    assert all(s.source == "dcgm" for s in by.values())
    assert by["power_watts"].values[0] == pytest.approx(400.0)  # two GPUs summed
    assert by["gpu_utilization_pct"].values[0] == pytest.approx(120.0)
    assert by["gpu_memory_used_bytes"].values[0] == pytest.approx(1024 * 1024 * 1024)
    assert np.diff(by["energy_joules"].values) == pytest.approx(np.ones(by["energy_joules"].values.size - 1))  # mJ->J


def test_bearer_and_basic_auth(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    srv = _Exposition(lambda n: "up 1\n", auth="Bearer s3cret-token")
    try:
        tel, warnings, _ = _sample([ScrapeTarget(url=srv.url, token_file=token)], 0.25)
        assert warnings == [] and "up" in tel.series_name
        # Planted fault: no credentials -> every scrape refused, a warning naming the target and HTTP 401.
        tel, warnings, _ = _sample([ScrapeTarget(url=srv.url)], 0.25)
        assert tel.series_name == [] and any("HTTP 401" in w for w in warnings)
    finally:
        srv.close()
    basic = tmp_path / "basic"
    basic.write_text("ann:pw")
    srv = _Exposition(lambda n: "up 1\n", auth="Basic " + base64.b64encode(b"ann:pw").decode())
    try:
        tel, warnings, _ = _sample([ScrapeTarget(url=srv.url, basic_auth_file=basic)], 0.25)
        assert warnings == [] and "up" in tel.series_name
    finally:
        srv.close()


def test_a_target_that_dies_is_a_warning_with_its_time(vllm: _Exposition) -> None:
    # shutdown() waits out serve_forever's 0.5 s poll: the target is gone between 0.3 and ~0.8 s (later when busy).
    threading.Timer(0.3, vllm.close).start()
    tel, warnings, _ = _sample([ScrapeTarget(url=vllm.url)], 2.0)
    assert tel.scrape_ok.any() and not tel.scrape_ok[-1]
    died = [w for w in warnings if "stopped answering at" in w]
    assert len(died) == 1 and vllm.url.split("//")[1].split("/")[0] in died[0]
    t_died = float(died[0].split("stopped answering at ")[1].split(" s")[0])
    assert 0.2 <= t_died <= 2.0
    q = next(s for s in tel.canonical() if s.canonical == "queue_depth")
    assert q.t_s[-1] <= t_died + 0.05  # its series end where it died


def test_memory_is_bounded_keeping_known_series(vllm: _Exposition) -> None:
    tel, warnings, _ = _sample([ScrapeTarget(url=vllm.url)], 2.0, interval_s=0.05, max_points=100)
    assert tel.t_s.size <= 200  # twice the share at most, whatever the run's length
    assert any("later scrapes kept only the known" in w and "none after 200" in w for w in warnings)
    n_unknown = int((tel.series == tel.series_name.index("some_unknown_thing")).sum())
    n_queue = next(s for s in tel.canonical() if s.canonical == "queue_depth").t_s.size
    assert n_queue > n_unknown  # known series went on after the cap, the raw one stopped


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        ScrapeTarget(url="ftp://x/metrics")
    with pytest.raises(ValueError):
        TelemetryConfig(interval_s=0)


def test_exposition_reader_parses_each_series_once_and_agrees_with_the_library() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from loadgen_harness._scrape_read import ExpositionReader, SeriesTable

    def text(n: int) -> str:
        return (
            DCGM_TEXT.replace("{mj}", str(n))
            + '# TYPE stamped gauge\nstamped{a="x y"} 5 1700000000000\n'
            + '# TYPE esc gauge\nesc{path="C:\\\\dir \\"q\\""} 1\n'
        )

    reader = ExpositionReader(SeriesTable())
    for n in (1, 2):
        ids, values = reader.read(text(n))
        items = reader.table.items()
        got = sorted(str((items[i][0], sorted(items[i][1].items()), v)) for i, v in zip(ids, values, strict=True))
        lib = sorted(
            str((s.name, sorted(s.labels.items()), float(s.value)))
            for f in text_string_to_metric_families(text(n))
            for s in f.samples
        )
        assert got == lib
    names = [name for name, _ in reader.table.items()]
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total" in names  # the counter's name as the parser gives it
    assert len(names) == len(set(map(str, reader.table.items())))  # the second scrape added no series
