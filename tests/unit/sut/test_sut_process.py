"""``lpuperf serve`` as a real subprocess: start-up, SIGTERM drain, one-line errors, metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)
LPUPERF = str(Path(sys.executable).with_name("lpuperf"))


def _gen(address: str, idx: int, max_new: int = 1000) -> list[pb.GenerateChunk]:
    with grpc.insecure_channel(address) as ch:
        req = pb.GenerateRequest(input_ids=DS.input_ids[idx].tolist(), max_new_tokens=max_new, eos_token_id=-1)
        return list(pb_grpc.InferenceStub(ch).Generate(req, timeout=30))


def _serve_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    # In-process through ``python -m sut``'s entry point: every case fails before serving.
    from sut.__main__ import main

    rc = main(["serve", "--port", "0", "--dataset", DATASET, *args])
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def test_sigterm_drains_in_flight_and_refuses_new_work() -> None:
    server = sut.spawn_server(["--dataset", DATASET, "--decode-step-s", "0.01", "--grace", "20"])
    idx = max(range(len(DS)), key=lambda i: len(DS.reference_ids[i]))
    got: dict[str, Any] = {}

    def long_request() -> None:
        try:
            got["chunks"] = _gen(server.address, idx)
        except grpc.RpcError as exc:
            got["error"] = exc.code()

    worker = threading.Thread(target=long_request)
    try:
        worker.start()
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as err:
            _gen(server.address, 0, max_new=4)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        worker.join(timeout=30)
        assert not worker.is_alive() and "error" not in got
        tokens = [t for c in got["chunks"] for t in c.token_ids]
        assert tokens == DS.reference_ids[idx].tolist()  # the in-flight stream ran to the end
        assert server.proc.wait(timeout=30) == 0
        assert "draining (1 in flight" in server.stderr_tail()
    finally:
        server.kill()


def test_drain_grace_cuts_off_a_stream_that_overstays() -> None:
    # Planted fault for the drain path: a grace far shorter than the stream. The server must still exit.
    server = sut.spawn_server(["--dataset", DATASET, "--decode-step-s", "0.05", "--grace", "0.2"])
    got: dict[str, Any] = {}

    def long_request() -> None:
        try:
            got["chunks"] = _gen(server.address, 0)
        except grpc.RpcError as exc:
            got["error"] = exc.code()

    worker = threading.Thread(target=long_request)
    try:
        worker.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        assert time.monotonic() - t0 < 10
        worker.join(timeout=30)
        assert "error" in got  # cut off, and the client was told
    finally:
        server.kill()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--artifact", "sim-nope"], "artifact 'sim-nope'"),
        (["--fault", "bogus"], "--fault"),
        (["--chunk-size", "0"], "--chunk-size"),
        (["--artifact", "sim-ctx16k", "--enforced-context", "200000"], "enforced_context_tokens"),
        (["--dataset", "/nonexistent/data.jsonl"], "/nonexistent/data.jsonl"),
        (["--http-fault", "429"], "--http-fault"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_serve_options_are_one_line_errors(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, lines = _serve_error(args, capsys)
    assert rc == 2 and len(lines) == 1 and needle in lines[0], lines


def test_bad_manifest_file_names_the_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"artifact_id": "x", "backend": "sim", "model": "m", "precision": "fp32", "max_context_tokens": -1}'
    )
    rc, lines = _serve_error(["--artifact", str(bad)], capsys)
    assert rc == 2 and len(lines) == 1 and str(bad) in lines[0] and "max_context_tokens" in lines[0], lines


def test_spawn_failure_raises_with_the_childs_stderr() -> None:
    with pytest.raises(sut.SutStartError) as err:
        sut.spawn_server(["--dataset", DATASET, "--artifact", "sim-nope"], timeout_s=60)
    assert "artifact 'sim-nope'" in str(err.value)


def test_manifest_file_artifact_and_port_file(tmp_path: Path) -> None:
    manifest = sut.ArtifactManifest(
        artifact_id="from-file",
        backend="sim",
        model="m",
        precision="bf16",
        max_context_tokens=2048,
        max_batch=8,
        timing=sut.TimingModel(prefill_base_s=0, prefill_per_token_s=0, decode_step_s=0),
        chunk_size=16,
    )
    path = tmp_path / "m.json"
    path.write_text(manifest.model_dump_json())
    port_file = tmp_path / "sub" / "port"
    proc = subprocess.Popen(
        [LPUPERF, "serve", "--port", "0", "--port-file", str(port_file), "--artifact", str(path), "--dataset", DATASET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("lpuperf serve: listening on 127.0.0.1:") and "from-file" in line
        port = int(port_file.read_text().strip())
        address = f"127.0.0.1:{port}"
        assert sut.wait_serving(address, 30)
        with grpc.insecure_channel(address) as ch:
            art = pb_grpc.InferenceStub(ch).GetArtifact(pb.GetArtifactRequest(), timeout=10)
        assert art.artifact_id == "from-file" and art.precision == "bf16" and art.max_context_tokens == 2048
        # The sim replays the dataset, so its EOS is the dataset's whatever the file said.
        assert art.eos_token_id == DS.eos_token_id and art.checksum.startswith("sha256:")
        chunks = _gen(address, 1)
        # The first token goes alone (TTFT); later tokens go one message per backend hand-over.
        assert len(chunks[0].token_ids) == 1 and len(chunks) >= 2
        assert [t for c in chunks for t in c.token_ids] == DS.reference_ids[1].tolist()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _scrape(port: int) -> dict[str, list[Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {fam.name: fam.samples for fam in text_string_to_metric_families(text)}


def test_metrics_are_exposed_and_move() -> None:
    server = sut.start_embedded({"kind": "sim", "dataset": DATASET, "artifact": "sim-instant"}, metrics_port=0)
    try:
        assert server.metrics is not None
        before = _scrape(server.metrics.port)
        info = before["lpuperf_sut_artifact_info"][0]
        assert info.labels["artifact_id"] == "sim-instant" and info.labels["target"] == "sim-lpu"
        for name in ("lpuperf_sut_inflight_requests", "lpuperf_sut_active_batch_size", "lpuperf_sut_queue_depth"):
            assert name in before
        n_tokens = sum(len(_gen_tokens(server.address, i)) for i in range(3))
        with pytest.raises(grpc.RpcError), grpc.insecure_channel(server.address) as ch:
            list(pb_grpc.InferenceStub(ch).Generate(pb.GenerateRequest(max_new_tokens=3), timeout=10))
        # A refused request's status leaves the server (context.abort) before its handler's book-keeping
        # runs, so on a loaded machine the first scrape can be a moment early: poll, bounded (10 s).
        want = {"OK": 3.0, "INVALID_ARGUMENT": 1.0}
        for _ in range(100):
            after = _scrape(server.metrics.port)
            samples = after["lpuperf_sut_requests"]
            by_status = {s.labels["status"]: s.value for s in samples if s.name.endswith("_total")}
            if by_status == want:
                break
            time.sleep(0.1)
        assert by_status == want
        tokens = [s.value for s in after["lpuperf_sut_tokens_emitted"] if s.name.endswith("_total")]
        assert tokens == [float(n_tokens)]
        count = [s.value for s in after["lpuperf_sut_prefill_seconds"] if s.name.endswith("_count")]
        assert count == [3.0]
    finally:
        server.stop()


def _gen_tokens(address: str, idx: int) -> list[int]:
    return [t for c in _gen(address, idx) for t in c.token_ids]


def test_busy_port_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        rc, lines = _serve_error(["--port", str(port)], capsys)
    assert rc == 2 and len(lines) == 1 and f"--port: cannot listen on 127.0.0.1:{port}" in lines[0], lines


def test_serve_flags_map_to_backend_configs() -> None:
    import argparse

    from sut._cli import add_parser, backend_config_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())

    def cfg(*argv: str) -> dict[str, Any]:
        return backend_config_from_args(parser.parse_args(["serve", *argv]))

    # Generic options; the backend's own model maps them (precision int8 is the sim-int8 artifact).
    assert cfg("--precision", "int8") == {"kind": "sim", "precision": "int8"}
    assert sut.SimConfig.model_validate(cfg("--precision", "int8")).artifact == "sim-int8"
    assert cfg("--artifact", "sim-fp32", "--precision", "bf16") == {
        "kind": "sim",
        "artifact": "sim-fp32",
        "precision": "bf16",
    }
    hf = sut.backends.parse_config(cfg("--backend", "transformers", "--artifact", "/m.gguf"))
    assert hf.model_path == "/m.gguf"  # type: ignore[attr-defined]
    faulty = cfg("--fault", "mid_sequence_eos", "--enforced-context", "100", "--decode-step-s", "0.5")
    assert faulty["faults"] == {"mid_sequence_eos": True}
    assert faulty["enforced_context_tokens"] == 100 and faulty["decode_step_s"] == 0.5
    # --config is merged last and may choose the backend; the openai flags come through its registry hook.
    relay = cfg("--config", '{"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}', "--model", "m")
    assert relay["kind"] == "openai" and relay["model"] == "m" and relay["base_url"] == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ('{"bogus": 1}', "field 'bogus'"),
        ('{"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "decode_step_s": 1}', "field 'decode_step_s'"),
        ('{"kind": "nope"}', "unknown backend kind 'nope'"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "expected a JSON object or a JSON file"),
    ],
)
def test_config_json_is_validated_by_the_backends_model(
    config: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, lines = _serve_error(["--config", config], capsys)
    assert rc == 2 and len(lines) == 1 and needle in lines[0], lines


def test_inline_api_key_is_refused_and_never_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "sk-test-DO-NOT-LEAK-1234567890"
    cfg = f'{{"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "{secret}"}}'
    rc, lines = _serve_error(["--config", cfg], capsys)
    assert rc == 2 and len(lines) == 1 and "api_key_env" in lines[0], lines
    assert secret not in lines[0]


def test_serve_args_become_a_backend_config() -> None:
    from common import UsageError

    assert sut.backend_config_from_serve_args(["--dataset", DATASET, "--decode-step-s=0.002"]) == {
        "dataset": DATASET,
        "decode_step_s": 0.002,
    }
    assert sut.backend_config_from_serve_args(["--backend", "transformers"]) == {"kind": "transformers"}
    for argv, needle in (
        (["--http", "8000"], "--http is not a backend option"),
        (["--decode-step-s", "fast"], "--serve-arg"),
        (["--nope"], "unrecognized serve argument '--nope'"),
        (["--fault", "x_y"], "--fault: unknown fault 'x_y'"),
    ):
        with pytest.raises(UsageError, match=needle):
            sut.backend_config_from_serve_args(argv)


def test_spawn_leaves_no_temp_dir_and_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    """The SUT child of a parent killed with SIGKILL gets SIGTERM (PR_SET_PDEATHSIG) and exits."""
    script = (
        "import sys, tempfile, sut\n"
        "made = []\n"
        "orig = tempfile.mkdtemp\n"
        "tempfile.mkdtemp = lambda **kw: made.append(orig(**kw)) or made[-1]\n"
        f"s = sut.spawn_server(['--dataset', '{DATASET}', '--artifact', 'sim-instant'], timeout_s=120)\n"
        "print(s.pid, made[0], flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid_text, tmpdir = parent.stdout.readline().split()
        child = int(pid_text)
        assert not Path(tmpdir).exists()  # removed once the port was known
        parent.kill()
        parent.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        parent.kill()


def test_spawning_beside_busy_grpc_threads_runs_no_fork_handler() -> None:
    """A fleet spawns its next replica while grpc threads serve the last one's health checks and traffic.

    Spawning through fork() (a ``preexec_fn``) ran grpc's fork handlers in that busy parent, and under
    load the child could abort before exec (SIGABRT, "wakeup_fd_->Wakeup()"). grpc notes every fork it
    sees while its threads are busy; spawning with vfork gives it none to see.
    """
    script = (
        "import threading, grpc, sut\n"
        "from proto import inference_pb2 as pb, inference_pb2_grpc as pb_grpc\n"
        f"args = ['--dataset', '{DATASET}', '--artifact', 'sim-instant']\n"
        "first = sut.spawn_server(args, timeout_s=120)\n"
        "stop = threading.Event()\n"
        "def traffic():\n"
        "    with grpc.insecure_channel(first.address) as ch:\n"
        "        stub = pb_grpc.InferenceStub(ch)\n"
        "        for _ in range(100_000):\n"
        "            if stop.is_set():\n"
        "                break\n"
        "            list(stub.Generate(pb.GenerateRequest(input_ids=[1, 2], max_new_tokens=4), timeout=30))\n"
        "t = threading.Thread(target=traffic)\n"
        "t.start()\n"
        "try:\n"
        "    for _ in range(4):\n"
        "        sut.spawn_server(args, timeout_s=120).terminate()\n"
        "finally:\n"
        "    stop.set()\n"
        "    t.join(60)\n"
        "    first.terminate()\n"
        "print('spawned', flush=True)\n"
    )
    env = {**os.environ, "GRPC_VERBOSITY": "info"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0 and "spawned" in out.stdout, out.stderr[-2000:]
    assert "fork() handlers" not in out.stderr, out.stderr[-2000:]


def _alive(pid: int) -> bool:
    import os

    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
