"""A TLS + token run always exits, whatever grpc does when its channels close.

The bearer token used to ride on grpc's call credentials: a Python plugin that grpc's own threads call
with a grpc lock held, while closing the channel takes that lock with the GIL held. Now and then the
two met (a run that finished, wrote LoadGen's logs and never exited: 2 of 7 CLI runs on a loaded box,
1 in ~200 in-process runs here). The token now goes as plain per-call metadata, and every step that
closes grpc objects runs after results.json is written, under a native watchdog.

* 30 ``lpuperf run`` processes in a row, Offline and Server, against ``lpuperf serve`` with TLS and a
  token: each must exit on its own within a bound, with results.json written and no watchdog stacks.
* No channel the harness opens carries a Python auth plugin, and the token still authenticates.
* A channel close that blocks in C while holding the GIL (planted) still ends the run: results.json
  first, then exit within the teardown limit, the stacks kept for a bug report.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tls_pki import Pki, make_pki

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "lpuperf-exit-token-5e0c1a9b7d"
DATASET = "synthetic:64:7"
RUNS = 30
# A run of about a second: a healthy one exits in a few seconds even on a loaded 2-core box; a hang never does.
RUN_EXIT_TIMEOUT_S = 120.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LPUPERF_TOKEN", "LPUPERF_AUTH_TOKEN")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def secured_sut(tmp_path_factory: pytest.TempPathFactory, pki: Pki, token_file: Path) -> Iterator[str]:
    """``lpuperf serve`` with TLS and a token on the instant sim; yields its address."""
    tmp = tmp_path_factory.mktemp("serve")
    port_file = tmp / "port"
    argv = [
        *(sys.executable, "-m", "cli", "serve", "--port", "0", "--port-file", str(port_file)),
        *("--artifact", "sim-instant", "--dataset", DATASET),
        *("--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key)),
        *("--auth-token-file", str(token_file)),
    ]
    with open(tmp / "serve.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.monotonic() + 90
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert proc.poll() is None, (tmp / "serve.log").read_text(errors="replace")
            assert time.monotonic() < deadline, "lpuperf serve did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _run_args(scenario: str) -> list[str]:
    if scenario == "Offline":  # expected QPS above what the instant SUT does: one burst, about a second
        return ["--scenario", "Offline", "--qps", "2000", "--duration", "0.5"]
    return ["--scenario", "Server", "--qps", "200", "--duration", "1"]


def test_thirty_tls_token_runs_in_a_row_all_exit(tmp_path: Path, pki: Pki, token_file: Path, secured_sut: str) -> None:
    from loadgen_harness import load_results

    took: list[float] = []
    for i in range(RUNS):
        scenario = ("Offline", "Server")[i % 2]
        out = tmp_path / "out"
        argv = [
            *(sys.executable, "-m", "cli", "run", "--sut", secured_sut),
            *("--tls-ca", str(pki.ca), "--token-file", str(token_file)),
            *("--dataset", DATASET, "--max-new-tokens", "16", "--out", str(out), "--run-id", f"r{i}", "--no-record"),
            *_run_args(scenario),
        ]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_EXIT_TIMEOUT_S, env=_env())
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {i + 1} of {RUNS} ({scenario}) did not exit within {RUN_EXIT_TIMEOUT_S:.0f} s")
        took.append(time.monotonic() - t0)
        log_dir = out / f"r{i}" / scenario / "performance"
        assert proc.returncode in (0, 1), f"run {i + 1} ({scenario}) exited {proc.returncode}: {proc.stderr[-2000:]}"
        assert not (log_dir / "shutdown_stacks.txt").exists(), f"run {i + 1}: the shutdown watchdog had to fire"
        res = load_results(log_dir)
        assert res.n_queries > 0 and res.n_errors == 0, (i, res.errors_by_status)
        assert "Traceback" not in proc.stderr
    print(f"{RUNS} TLS + token runs: exit after {min(took):.1f}-{max(took):.1f} s")


def test_no_channel_carries_a_python_auth_plugin_and_the_token_still_authenticates(
    pki: Pki, token_file: Path, secured_sut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from loadgen_harness import TransportSecurity, fetch_artifact, open_aio_channel
    from loadgen_harness._transport import open_channel

    def refused(*_a: object, **_k: object) -> None:
        raise AssertionError("a Python call-credentials plugin was built (grpc runs it on its own threads)")

    monkeypatch.setattr(grpc, "access_token_call_credentials", refused)
    monkeypatch.setattr(grpc, "metadata_call_credentials", refused)
    security = TransportSecurity(tls_ca=pki.ca, token_file=token_file)
    artifact = fetch_artifact(secured_sut, transport=security)  # GetArtifact needs the token
    assert artifact.get("artifact_id") == "sim-instant"
    with open_channel(secured_sut, security) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING

    async def generate_without_and_with_token() -> tuple[grpc.StatusCode, int]:
        from proto import inference_pb2

        channel, metadata = open_aio_channel(secured_sut, security)
        assert metadata is not None and metadata[0][0] == "authorization"
        request = inference_pb2.GenerateRequest(input_ids=[1, 2, 3], max_new_tokens=4, request_id="x")
        call = channel.unary_stream(
            "/lpuperf.v1.Inference/Generate",
            request_serializer=inference_pb2.GenerateRequest.SerializeToString,
            response_deserializer=inference_pb2.GenerateChunk.FromString,
        )
        try:
            refused_code = grpc.StatusCode.OK
            try:
                async for _ in call(request, timeout=10):
                    pass
            except grpc.aio.AioRpcError as exc:
                refused_code = exc.code()
            chunks = [chunk async for chunk in call(request, timeout=10, metadata=metadata)]
            return refused_code, len(chunks)
        finally:
            await channel.close()

    refused_code, n_chunks = asyncio.run(generate_without_and_with_token())
    assert refused_code == grpc.StatusCode.UNAUTHENTICATED  # the token is what lets a call through
    assert n_chunks > 0


_STUCK_CLOSE = """
import ctypes, sys
from pathlib import Path

import grpc.aio._channel

import loadgen_harness._run as run_module
from loadgen_harness import RunConfig, TransportSecurity, run_benchmark

run_module._TEARDOWN_LIMIT_S = 3.0


async def close_that_never_returns(self, grace=None):
    ctypes.PyDLL(None).sleep(600)  # blocks in C holding the GIL, as grpc's channel close did


grpc.aio._channel.Channel.close = close_that_never_returns
sut, ca, token, out = sys.argv[1:5]
run_benchmark(RunConfig(scenario="Offline", sut=sut, dataset="synthetic:64:7", qps=2000, duration_s=0.5,
    max_new_tokens=16, out_dir=Path(out), run_id="stuck",
    transport=TransportSecurity(tls_ca=Path(ca), token_file=Path(token))))
print("returned", flush=True)
"""


def test_a_channel_close_that_never_returns_still_ends_the_run(
    tmp_path: Path, pki: Pki, token_file: Path, secured_sut: str
) -> None:
    from loadgen_harness import load_results

    t0 = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc = subprocess.run(
            [sys.executable, "-c", _STUCK_CLOSE, secured_sut, str(pki.ca), str(token_file), str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=RUN_EXIT_TIMEOUT_S,
            env=_env(),
            cwd=ROOT,
        )
    assert time.monotonic() - t0 < RUN_EXIT_TIMEOUT_S, "the process did not end"
    log_dir = tmp_path / "stuck" / "Offline" / "performance"
    assert proc.returncode == 1 and "returned" not in proc.stdout, (proc.returncode, proc.stderr[-2000:])
    res = load_results(log_dir)  # written before anything was closed
    assert res.n_queries > 0 and res.n_errors == 0
    assert "close_that_never_returns" in (log_dir / "shutdown_stacks.txt").read_text()


@pytest.mark.parametrize(
    "load",
    ["concurrency:4", "rate:100:constant", "sessions:synthetic:sessions=4,turns=2,think_time_s=0,concurrency=2"],
)
def test_load_shapes_run_over_tls_and_a_token(
    tmp_path: Path, pki: Pki, token_file: Path, secured_sut: str, load: str
) -> None:
    """A load shape beside LoadGen uses the run's channel: TLS and the token as every LoadGen run does."""
    from loadgen_harness import load_results

    out = tmp_path / "out"
    argv = [
        *(sys.executable, "-m", "cli", "run", "--sut", secured_sut, "--load", load, "--duration", "1.5"),
        *("--tls-ca", str(pki.ca), "--token-file", str(token_file), "--max-dispatch-lag-ms", "5000"),
        *("--dataset", DATASET, "--max-new-tokens", "16", "--out", str(out), "--run-id", "l", "--no-record"),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_EXIT_TIMEOUT_S, env=_env())
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    (res_file,) = out.glob("l/*/performance/results.json")
    res = load_results(res_file)
    assert res.load is not None and res.n_queries > 0
    assert res.n_errors == 0, res.errors_by_status  # no UNAUTHENTICATED, no TLS failure
    # Without the token the same load is refused at the first call, as a LoadGen run is.
    bad = subprocess.run(
        [a for a in argv if a not in ("--token-file", str(token_file))] + ["--run-id", "bad"],
        capture_output=True,
        text=True,
        timeout=RUN_EXIT_TIMEOUT_S,
        env=_env(),
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
