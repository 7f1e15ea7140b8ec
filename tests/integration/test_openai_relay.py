"""The openai relay backend against ``lpuperf serve --http`` running as a separate process on loopback.

Every upstream here is a real ``lpuperf serve`` subprocess (sim backend behind the HTTP front); the relay
runs either in this process (backend API) or as a second ``lpuperf serve --backend openai`` process
driven over gRPC and by a short LoadGen run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from loadgen_harness import load_query_records
from proto import inference_pb2, inference_pb2_grpc
from scenarios import resolve_dataset
from sut import GenerateRequest, GenerationEnd, UpstreamError
from sut._openai import OpenAIBackend, OpenAIConfig

pytestmark = pytest.mark.integration

DATASET = "synthetic:16:3"
LPUPERF = str(Path(sys.executable).with_name("lpuperf"))
PLANTED_KEY = "sk-lpuperf-PLANTED-7f3a9c2e5b1d8046"
KEY_ENV = "LPUPERF_TEST_UPSTREAM_KEY"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    grpc_address: str
    http_port: int | None
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1"

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"http://127.0.0.1:{self.http_port}/health", timeout=5).json())


def _serve(tmp: Path, name: str, args: list[str], env: dict[str, str] | None = None, http: bool = True) -> Served:
    port_file = tmp / f"{name}.port"
    log = tmp / f"{name}.log"
    http_port = _free_port() if http else None
    cmd = [LPUPERF, "serve", "--port", "0", "--port-file", str(port_file), *args]
    if http_port is not None:
        cmd += ["--http", str(http_port)]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited {proc.returncode}: {log.read_text()[-2000:]}")
        text = port_file.read_text().strip() if port_file.is_file() else ""
        if text:
            address = text if ":" in text else f"127.0.0.1:{text}"
            served = Served(proc, address, http_port, log)
            if http_port is None:
                return served
            try:
                if served.health()["status"] == "ok":
                    return served
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{name} did not come up in 60 s: {log.read_text()[-2000:]}")


def _stop(served: Served) -> None:
    served.proc.terminate()
    try:
        served.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait(timeout=5)


@pytest.fixture
def sim_front(tmp_path: Path) -> Iterator[Served]:
    served = _serve(tmp_path, "front", ["--backend", "sim", "--artifact", "sim-instant", "--dataset", DATASET])
    yield served
    _stop(served)


def _relay(base_url: str, **fields: Any) -> OpenAIBackend:
    cfg = OpenAIConfig.model_validate({"kind": "openai", "base_url": base_url, "dataset": DATASET, **fields})
    return OpenAIBackend(cfg, env={})


async def _collect(backend: OpenAIBackend, i: int, max_new: int = 1000) -> tuple[list[int], GenerationEnd]:
    ds = resolve_dataset(DATASET)
    req = GenerateRequest(
        request_id=f"q{i}", input_ids=ds.input_ids[i], max_new_tokens=max_new, prompt_text=ds.prompts[i]
    )
    ids: list[int] = []
    end: GenerationEnd | None = None
    async for item in backend.generate(req):
        if isinstance(item, GenerationEnd):
            end = item
        else:
            ids.extend(int(t) for t in item)
    assert end is not None
    return ids, end


def test_streaming_ids_and_usage_match_the_sim_reference(sim_front: Served) -> None:
    ds = resolve_dataset(DATASET)

    async def main() -> None:
        for fields, method in (
            ({}, "server"),
            ({"request_token_ids": False}, "tokenizer dataset:synthetic"),
            ({"api": "chat"}, "server"),
            ({"api": "chat", "request_token_ids": False}, "tokenizer dataset:synthetic"),
            ({"prompt": "ids", "request_token_ids": False}, "tokenizer dataset:synthetic"),
        ):
            relay = _relay(sim_front.base_url, **fields)
            await relay.start()
            try:
                assert relay.manifest.model == "sim-instant"  # discovered through GET /v1/models
                for i in range(3):
                    ids, end = await _collect(relay, i)
                    assert ids == ds.reference_ids[i].tolist(), fields
                    assert end.n_tokens == len(ids)
                    assert end.info["ids"] == method
                    assert end.finish_reason == "eos"
                ids, end = await _collect(relay, 4, max_new=7)
                assert ids == ds.reference_ids[4][:7].tolist() and end.finish_reason == "length"
            finally:
                await relay.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_n_tokens_is_upstream_usage_and_429_503_are_per_query_errors(tmp_path: Path) -> None:
    # The sim over-reports n_tokens by one: the relay must pass on the server's usage, not recount.
    # Generation requests 3 and 4 hit the planted 503 and 429; 1, 2 and 5 succeed.
    front = _serve(
        tmp_path,
        "faulty",
        [
            "--backend",
            "sim",
            "--artifact",
            "sim-instant",
            "--dataset",
            DATASET,
            "--fault",
            "n_tokens_off_by_one",
            "--http-fault",
            "503@3",
            "--http-fault",
            "429@4",
        ],
    )

    async def main() -> list[str]:
        relay = _relay(front.base_url, model="sim-instant")
        await relay.start()
        statuses: list[str] = []
        try:
            for i in (0, 1):
                ids, end = await _collect(relay, i)
                assert end.n_tokens == len(ids) + 1
            for i in (2, 3):
                with pytest.raises(UpstreamError) as err:
                    await _collect(relay, i)
                statuses.append(err.value.status)
                assert str(err.value).startswith(f"upstream {err.value.status}: ")
            ids, end = await _collect(relay, 4)  # the front recovers; the relay holds no state
            assert end.n_tokens == len(ids) + 1
        finally:
            await relay.stop()
        return statuses

    try:
        assert asyncio.run(asyncio.wait_for(main(), 60)) == ["503", "429"]
        health = front.health()
        assert health["requests_received"] == 5  # no retries
        assert health["responses_by_status"] == {"200": 3, "429": 1, "503": 1}
    finally:
        _stop(front)


def test_slow_upstream_is_a_timeout_error_not_a_retry(tmp_path: Path) -> None:
    front = _serve(
        tmp_path,
        "slow",
        [
            "--backend",
            "sim",
            "--artifact",
            "sim-instant",
            "--dataset",
            DATASET,
            "--grace",
            "0",
            "--http-fault",
            "slow:1.5",
        ],
    )

    async def main() -> tuple[UpstreamError, float]:
        relay = _relay(front.base_url, model="sim-instant", timeout_s=0.3)
        await relay.start()
        try:
            t0 = time.monotonic()
            with pytest.raises(UpstreamError) as err:
                await _collect(relay, 0)
            return err.value, time.monotonic() - t0
        finally:
            await relay.stop()

    try:
        err, elapsed = asyncio.run(asyncio.wait_for(main(), 30))
        assert err.status == "timeout" and "ReadTimeout" in str(err)
        assert 0.25 < elapsed < 1.4  # gave up at the read timeout, well before the stall ended
        assert front.health()["requests_received"] == 1
    finally:
        _stop(front)


def test_missing_key_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GROQ_API_KEY", KEY_ENV)}
    cases = [
        (["--preset", "groq"], "GROQ_API_KEY"),
        (["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env", KEY_ENV], KEY_ENV),
    ]
    for args, var in cases:
        proc = subprocess.run(
            [LPUPERF, "serve", "--backend", "openai", "--port", "0", "--dataset", DATASET, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and var in lines[0], proc.stderr


def _generate(address: str, ds_index: int, max_new: int = 1000) -> tuple[list[int], list[Any]]:
    ds = resolve_dataset(DATASET)
    req = inference_pb2.GenerateRequest(
        request_id=f"e2e-{ds_index}",
        input_ids=ds.input_ids[ds_index].tolist(),
        prompt_text=ds.prompts[ds_index],
        max_new_tokens=max_new,
        eos_token_id=-1,
    )
    with grpc.insecure_channel(address) as ch:
        chunks = list(inference_pb2_grpc.InferenceStub(ch).Generate(req, timeout=30))
    return [t for c in chunks for t in c.token_ids], chunks


def test_grpc_sut_relaying_to_http_front_end_to_end_without_leaking_the_key(tmp_path: Path) -> None:
    ds = resolve_dataset(DATASET)
    front = _serve(
        tmp_path,
        "front",
        f"--backend sim --artifact sim-instant --dataset {DATASET} --http-fault 503@5 --http-fault 429@7".split(),
    )
    env = dict(os.environ, **{KEY_ENV: PLANTED_KEY})
    relay = _serve(
        tmp_path,
        "relay",
        ["--backend", "openai", "--base-url", front.base_url, "--api-key-env", KEY_ENV, "--dataset", DATASET],
        env=env,
        http=False,
    )
    out = tmp_path / "results"
    texts: list[str] = []
    try:
        with grpc.insecure_channel(relay.grpc_address) as ch:
            manifest = inference_pb2_grpc.InferenceStub(ch).GetArtifact(inference_pb2.GetArtifactRequest(), timeout=10)
        assert (manifest.backend, manifest.precision, manifest.target) == ("openai", "remote", front.base_url[7:-3])
        texts.append(str(manifest))
        for i in range(4):
            ids, chunks = _generate(relay.grpc_address, i)
            assert ids == ds.reference_ids[i].tolist()
            assert chunks[-1].n_tokens == len(ids)
            assert len(chunks[0].token_ids) == 1
        with pytest.raises(grpc.RpcError) as err:
            _generate(relay.grpc_address, 4)  # the front's 5th generation request: planted 503
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "upstream 503" in (err.value.details() or "")
        texts.append(err.value.details() or "")
        run_args = f"--sut {relay.grpc_address} --scenario SingleStream --dataset {DATASET} --duration 1"
        run_args += f" --min-query-count 8 --out {out} --run-id relay"
        run = subprocess.run(
            [LPUPERF, "run", *run_args.split()],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        texts += [run.stdout, run.stderr]
        assert run.returncode == 1, run.stderr  # not valid: some queries failed
        results = json.loads((out / "relay" / "SingleStream" / "performance" / "results.json").read_text())
        assert results["n_queries"] >= 8 and results["artifact"]["backend"] == "openai"
        # Every 5th upstream request is a 503, every 7th a 429 (one 503 went to the direct call above): each
        # is a per-query error reported by its status, none retried away.
        sent = front.health()["responses_by_status"]
        n_429, n_503 = sent["429"], sent["503"] - 1
        assert n_429 >= 1 and results["errors_by_status"] == {"RESOURCE_EXHAUSTED": n_429, "UNAVAILABLE": n_503}
        assert front.health()["requests_with_auth"] == front.health()["requests_received"] > 5  # the key was sent
        rec = load_query_records(out / "relay" / "SingleStream" / "performance")
        ok = rec[rec["status"] == 0]
        assert ok.size and bool(np.all(ok["stream_matches_output"]))
        assert int(np.sum(rec["status"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])) == n_429
    finally:
        _stop(relay)
        _stop(front)
    texts += [relay.log.read_text(errors="replace"), front.log.read_text(errors="replace")]
    texts += [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix != ".npz"]
    texts += [p.read_bytes().decode("latin-1") for p in out.rglob("*.npz")]
    assert len(texts) > 8
    for text in texts:
        assert PLANTED_KEY not in text


def test_run_spawns_the_relay_sut_itself_from_its_flags(sim_front: Served, tmp_path: Path) -> None:
    """`lpuperf run --backend openai --base-url URL`: the harness starts the relay SUT from one JSON config."""
    out = tmp_path / "results"
    env = dict(os.environ, **{KEY_ENV: PLANTED_KEY})
    argv = ["run", "--backend", "openai", "--base-url", sim_front.base_url, "--api-key-env", KEY_ENV]
    argv += ["--scenario", "Offline", "--dataset", DATASET, "--duration", "1", "--out", str(out), "--run-id", "spawned"]
    run = subprocess.run([LPUPERF, *argv], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode in (0, 1), run.stderr
    made = out / "spawned" / "Offline" / "performance" / "results.json"
    assert made.is_file(), run.stdout + run.stderr
    results = json.loads(made.read_text())
    assert results["artifact"]["backend"] == "openai" and results["n_queries"] >= 1 and results["n_errors"] == 0
    assert sim_front.health()["requests_with_auth"] >= results["n_queries"]  # the key came from the environment
    assert PLANTED_KEY not in run.stdout + run.stderr


@pytest.mark.parametrize("model", [[], ["--model", "sim-instant"]], ids=["no-model", "model"])
def test_run_with_only_the_advertised_flags_is_error_free(sim_front: Served, tmp_path: Path, model: list[str]) -> None:
    """`lpuperf run --backend openai --base-url URL [--model M]` as `run --help` shows it: no key, no preset.

    The spawned relay once got `--preset ''` on its command line and refused to start; its config now
    travels as one JSON document.
    """
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", KEY_ENV)}
    argv = ["run", "--backend", "openai", "--base-url", sim_front.base_url, *model]
    argv += ["--scenario", "Offline", "--dataset", DATASET, "--duration", "1", "--out", str(out), "--run-id", "plain"]
    run = subprocess.run([LPUPERF, *argv], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    assert "invalid choice" not in run.stderr
    made = out / "plain" / "Offline" / "performance" / "results.json"
    assert made.is_file(), run.stdout + run.stderr
    results = json.loads(made.read_text())
    assert results["state"] == "complete" and results["loadgen_finished"] is True
    assert results["artifact"]["backend"] == "openai" and results["n_queries"] >= 1 and results["n_errors"] == 0
    assert "results: " in run.stdout
