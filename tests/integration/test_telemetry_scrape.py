"""Scraping real exporters during real runs, all on loopback.

* ``lpuperf run --sut`` against a real ``lpuperf serve --metrics-port`` (HTTPS, bearer token), its
  exporter found with ``--scrape-replica-port https:PORT``, with ``--scrape`` naming a real Debian
  ``prometheus-node-exporter`` (its textfile collector on a tmp dir) and a target that dies mid-run: the run completes, results.json carries the energy of
  the sim's power model and a warning with the time the target stopped; telemetry.npz holds the SUT's
  queue depth, the node's CPU and the textfile's unknown metric raw.
* ``lpuperf run --scrape`` with the embedded SUT: its own exporter is scraped without being named, and
  the energy equals the power model applied to the SUT's own busy-time counter over the window.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import Telemetry, load_query_records, measured_window_s
from tests.tls_pki import make_pki

pytestmark = pytest.mark.integration

NODE_EXPORTER = shutil.which("prometheus-node-exporter")
SUT_ARGS = ["--backend", "sim", "--artifact", "sim-fp32", "--dataset", "embedded", "--max-batch", "8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout_s: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def _proc(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def _node_exporter(tmp: Path) -> Iterator[str]:
    assert NODE_EXPORTER is not None
    textfiles = tmp / "textfiles"
    textfiles.mkdir()
    (textfiles / "lab.prom").write_text("# TYPE lab_rack_inlet_celsius gauge\nlab_rack_inlet_celsius 23.5\n")
    port = _free_port()
    argv = [
        NODE_EXPORTER,
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.meminfo",
        "--collector.netdev",
        "--collector.textfile",
        f"--collector.textfile.directory={textfiles}",
    ]
    with _proc(argv, tmp / "node-exporter.log"):
        url = f"http://127.0.0.1:{port}/metrics"
        _wait_http(url)
        yield url


class _Dying:
    """An exporter on loopback that answers until ``die_after_s`` from its first scrape, then is gone."""

    def __init__(self, die_after_s: float) -> None:
        first: list[float] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                first.append(time.monotonic())
                body = b"# TYPE doomed_gauge gauge\ndoomed_gauge 1\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if len(first) == 1:
                    threading.Timer(die_after_s, outer.close).start()

            def log_message(self, *args: object) -> None:
                pass

        outer = self
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.server.shutdown()
            self.server.server_close()


def _lpuperf(args: list[str], timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout_s)


def _run_dir(out: Path, run_id: str) -> Path:
    return out / run_id / "Server" / "performance"


@pytest.mark.skipif(NODE_EXPORTER is None, reason="no prometheus-node-exporter (Debian package; .ci/run installs it)")
def test_run_scrapes_serve_node_exporter_and_survives_a_dying_target(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    token = tmp_path / "metrics.token"
    token.write_text("scrape-me-please\n")
    token.chmod(0o600)
    port_file = tmp_path / "sut.port"
    metrics_port = _free_port()
    serve = [
        *(sys.executable, "-m", "cli", "serve", "--port", "0", "--port-file", str(port_file), *SUT_ARGS),
        *("--metrics-port", str(metrics_port), "--metrics-token-file", str(token)),
        *("--metrics-tls-cert", str(pki.server.cert), "--metrics-tls-key", str(pki.server.key)),
    ]
    dying = _Dying(die_after_s=2.0)
    with _node_exporter(tmp_path) as node_url, _proc(serve, tmp_path / "serve.log") as sut_proc:
        deadline = time.monotonic() + 90
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert sut_proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sut_metrics = f"https://127.0.0.1:{metrics_port}/metrics"
        res = _lpuperf(
            [
                *("run", "--sut", f"127.0.0.1:{port_file.read_text().strip()}", "--qps", "20", "--duration", "6"),
                *("--max-new-tokens", "32", "--out", str(tmp_path / "out"), "--run-id", "scraped"),
                *("--metrics-linger", "0", "--scrape-interval", "0.5"),
                *("--scrape", f"{node_url},{dying.url}", "--scrape-replica-port", f"https:{metrics_port}"),
                *("--scrape-token-file", str(token), "--scrape-ca-file", str(pki.ca)),
            ]
        )
        dying.close()
    assert res.returncode in (0, 1), res.stderr  # VALID or INVALID: a run, not an error
    d = _run_dir(tmp_path / "out", "scraped")
    result = json.loads((d / "results.json").read_text())
    assert result["state"] == "complete" and result["n_queries"] > 50
    died = [w for w in result["warnings"] if "stopped answering at" in w]
    assert len(died) == 1 and dying.url.split("/")[2] in died[0], result["warnings"]
    # The node exporter ignores the bearer token and the CA; the SUT's exporter needed both. All answered.
    assert not any(node_url.split("/")[2] in w or str(metrics_port) in w for w in result["warnings"])
    energy = result["energy"]
    assert energy["source"] == "sim" and energy["replicas"] == 1 and energy["joules"] > 0
    assert energy["n_queries"] == result["successful"]["n_queries"]
    # The sim's chips never draw less than idle nor more than busy: 8 chips at 90..300 W each (sim-fp32).
    assert 8 * 90 * 0.95 <= energy["average_watts"] <= 8 * 300 * 1.05
    assert "energy:" in res.stdout and "J/token" in res.stdout
    tel = Telemetry.load(d)
    canon = {(s.target.split("/")[2], s.canonical) for s in tel.canonical()}
    sut_host, node_host = sut_metrics.split("/")[2], node_url.split("/")[2]
    assert {(sut_host, "queue_depth"), (sut_host, "power_watts"), (sut_host, "energy_joules")} <= canon
    assert {(node_host, "cpu_busy_seconds"), (node_host, "memory_available_bytes")} <= canon
    assert "lab_rack_inlet_celsius" in tel.series_name  # unknown, kept raw
    assert tel.replica_ids[tel.targets.index(sut_metrics)]  # the replica's exporter carries its id
    lab = tel.series_name.index("lab_rack_inlet_celsius")
    assert np.all(tel.value[tel.series == lab] == 23.5)


def test_embedded_sut_exporter_is_scraped_and_energy_matches_its_busy_time(tmp_path: Path) -> None:
    res = _lpuperf(
        [
            *("run", "--qps", "15", "--duration", "4", "--out", str(tmp_path / "out"), "--run-id", "own"),
            *("--metrics-linger", "0", "--scrape", "--scrape-interval", "0.5", "--max-new-tokens", "32"),
        ]
    )
    assert res.returncode in (0, 1), res.stderr
    d = _run_dir(tmp_path / "out", "own")
    result = json.loads((d / "results.json").read_text())
    assert result["warnings"] == [] or not any("telemetry" in w for w in result["warnings"])
    tel = Telemetry.load(d)
    assert len(tel.targets) == 1 and tel.targets[0].startswith("http://127.0.0.1:")
    energy = result["energy"]
    # Recompute from the raw busy-time counter: joules = chips * (idle * window + (busy - idle) * busy_s).
    busy_id = tel.series_name.index("lpuperf_sut_busy_seconds_total")
    t, busy = tel.t_s[tel.series == busy_id], tel.value[tel.series == busy_id]
    window = measured_window_s(load_query_records(d))  # first issue to last completion, the records' clock
    assert window is not None
    w0, w1 = window
    assert w1 - w0 == pytest.approx(energy["window_s"], abs=1e-6)
    busy_s = float(np.interp(w1, t, busy) - np.interp(w0, t, busy))
    power = result["artifact"]["power"]
    expected = power["chips"] * (
        power["idle_watts_per_chip"] * (w1 - w0)
        + (power["busy_watts_per_chip"] - power["idle_watts_per_chip"]) * busy_s
    )
    # Both sides interpolate between the same scrapes; only the idle term's linearity differs: within 1 %.
    assert energy["joules"] == pytest.approx(expected, rel=0.01)
    assert energy["output_tokens"] > 0 and energy["joules_per_token"] == pytest.approx(
        energy["joules"] / energy["output_tokens"], rel=1e-6
    )


class _Hanging:
    """A target that accepts connections and never answers (a hung exporter): every scrape times out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/metrics"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = self.sock.accept()
                self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        for c in self.held:
            c.close()
        self.sock.close()


def test_ctrl_c_with_a_hung_target_ends_within_seconds_leaving_telemetry(tmp_path: Path) -> None:
    import os
    import signal

    hung = _Hanging()
    out = tmp_path / "out"
    argv = [
        *(sys.executable, "-m", "cli", "run", "--qps", "15", "--duration", "120", "--max-new-tokens", "32"),
        *("--out", str(out), "--run-id", "stopped", "--metrics-linger", "0", "--no-record"),
        *("--scrape", f"sut,{hung.url}", "--scrape-interval", "0.5"),
    ]
    # A background shell (CI) starts children with SIGINT ignored, and that survives exec: restore it, as a
    # terminal's Ctrl-C would find it.
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        d = _run_dir(out, "stopped")
        deadline = time.monotonic() + 120
        while not (d / "artifact.json").is_file():  # written once the SUT answered; queries follow
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(4.0)  # a few scrapes of each, the hung one timing out (2 s each)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        text, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        hung.close()
    assert proc.returncode == 130, text.decode(errors="replace")
    assert took < 12, f"exited {took:.1f} s after SIGINT"
    result = json.loads((d / "results.json").read_text())
    assert result["state"] == "interrupted"
    assert any(hung.url.split("/")[2] in w and "failed a scrape" in w for w in result["warnings"])
    tel = Telemetry.load(d)
    assert len(tel.targets) == 2 and tel.targets[0] == hung.url  # named targets first, the SUT's own after
    assert not tel.scrape_ok[tel.scrape_target == 0].any() and tel.scrape_ok[tel.scrape_target == 1].all()
    assert result["energy"] is not None and result["energy"]["joules"] > 0
    assert not [p for p in d.iterdir() if p.name.endswith((".tmp", ".tmp.npz"))]
