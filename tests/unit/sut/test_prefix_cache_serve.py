"""The prefix cache behind a real gRPC server: cached prompt tokens in the final chunk, the SUT's metrics, and
``lpuperf serve``'s flags (bad values: one line, exit 2)."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from sut._metrics import PREFIX_CACHE_METRICS

DATASET = "synthetic:16:3"
SYSTEM = list(range(100, 164))  # four blocks of 16


def _prompt(user: int) -> list[int]:
    return SYSTEM + [1000 + user * 50 + k for k in range(30)]  # 94 tokens: five full blocks


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _final(address: str, ids: list[int]) -> pb.GenerateChunk:
    with grpc.insecure_channel(address) as ch:
        req = pb.GenerateRequest(input_ids=ids, max_new_tokens=8, eos_token_id=-1)
        return list(pb_grpc.InferenceStub(ch).Generate(req, timeout=30))[-1]


def _cache_samples(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        name + "".join(f"{{{k}={v}}}" for k, v in labels): value
        for (name, labels), value in samples.items()
        if name.startswith("lpuperf_sut_prefix_cache_")
    }


# capacity 80 = five blocks: user 0 fills them; user 1 adds its own fifth block and evicts user 0's (the LRU
# one: a prompt's tail goes first); user 0 again finds only the system prompt, and evicts user 1's tail.
EXPECTED_CACHED = [0, 64, 64]
EXPECTED_METRICS = {
    "lpuperf_sut_prefix_cache_hit_tokens_total": 128.0,
    "lpuperf_sut_prefix_cache_miss_tokens_total": 3 * 94 - 128.0,
    "lpuperf_sut_prefix_cache_lookups_total{result=hit}": 2.0,
    "lpuperf_sut_prefix_cache_lookups_total{result=miss}": 1.0,
    "lpuperf_sut_prefix_cache_inserted_blocks_total": 7.0,
    "lpuperf_sut_prefix_cache_evicted_blocks_total": 2.0,
    "lpuperf_sut_prefix_cache_used_tokens": 80.0,
    "lpuperf_sut_prefix_cache_capacity_tokens": 80.0,
    "lpuperf_sut_prefix_cache_block_tokens": 16.0,
}


def test_cached_tokens_reach_the_final_chunk_and_the_metrics() -> None:
    cfg = {"kind": "sim", "dataset": DATASET, "artifact": "sim-instant", "prefix_cache_tokens": 80}
    server = sut.start_embedded({**cfg, "prefix_block_tokens": 16}, metrics_port=0)
    try:
        assert server.metrics is not None
        before = _cache_samples(_scrape(server.metrics.port))
        assert before["lpuperf_sut_prefix_cache_hit_tokens_total"] == 0.0  # the series exist before traffic
        finals = [_final(server.address, _prompt(u)) for u in (0, 1, 0)]
        assert [f.cached_prompt_tokens for f in finals] == EXPECTED_CACHED
        assert all(f.finish_reason != pb.FINISH_REASON_TOOL_CALL for f in finals)
        assert _cache_samples(_scrape(server.metrics.port)) == EXPECTED_METRICS
        assert len({name.split("{")[0].removesuffix("_total") for name in EXPECTED_METRICS}) == len(
            PREFIX_CACHE_METRICS
        )
    finally:
        server.stop()


def test_no_cache_no_series_and_no_cached_tokens() -> None:
    server = sut.start_embedded({"kind": "sim", "dataset": DATASET, "artifact": "sim-instant"}, metrics_port=0)
    try:
        assert server.metrics is not None
        assert [_final(server.address, _prompt(0)).cached_prompt_tokens for _ in range(2)] == [0, 0]
        assert _cache_samples(_scrape(server.metrics.port)) == {}
    finally:
        server.stop()


def test_the_cache_works_with_the_timed_scheduler_too() -> None:
    cfg = {"kind": "sim", "dataset": DATASET, "prefix_cache_tokens": 80, "prefix_block_tokens": 16}
    server = sut.start_embedded({**cfg, "decode_step_s": 0.001, "prefill_base_s": 0.0}, metrics_port=0)
    try:
        assert [_final(server.address, _prompt(u)).cached_prompt_tokens for u in (0, 1, 0)] == EXPECTED_CACHED
        assert server.metrics is not None
        # The scrape reads the backend's totals; the last stream may end a moment before its handler returns.
        for _ in range(50):
            got = _cache_samples(_scrape(server.metrics.port))
            if got == EXPECTED_METRICS:
                break
            time.sleep(0.1)
        assert got == EXPECTED_METRICS
    finally:
        server.stop()


def _serve_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    # In-process through ``lpuperf``'s entry point (its parser reports a flag's bad type on one line too).
    from cli._main import main

    rc = main(["serve", "--port", "0", "--dataset", DATASET, *args])
    return rc, [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prefix-cache-tokens", "-1"], "--prefix-cache-tokens: expected tokens >= 0"),
        (["--prefix-cache-tokens", "32"], "--prefix-cache-tokens: 32 tokens hold no block of 64"),
        (["--prefix-cache-tokens", "256", "--prefix-block-tokens", "0"], "--prefix-block-tokens: expected a positive"),
        (["--prefix-block-tokens", "16"], "--prefix-block-tokens: expected together with --prefix-cache-tokens"),
        (["--prefix-cache-tokens", "lots"], "--prefix-cache-tokens"),
        (["--tool-call-rate", "1.5"], "--tool-call-rate: expected a share 0..1"),
        (["--tool-call-rate", "nan"], "--tool-call-rate"),
        (["--tool-call-tokens", "0"], "--tool-call-tokens: expected a positive"),
        (
            ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--prefix-cache-tokens", "256"],
            "prefix_cache",
        ),
        (["--config", '{"prefix_cache_tokens": 8}'], "prefix_cache"),
    ],
)
def test_bad_cache_and_tool_flags_are_one_line_errors(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, lines = _serve_error(args, capsys)
    assert rc == 2 and len(lines) == 1 and needle in lines[0], lines


def test_serve_flags_become_the_sim_config() -> None:
    cfg: dict[str, Any] = sut.backend_config_from_serve_args(
        ["--prefix-cache-tokens", "4096", "--prefix-block-tokens", "32", "--tool-call-rate", "0.2"]
    )
    assert cfg == {"prefix_cache_tokens": 4096, "prefix_block_tokens": 32, "tool_call_rate": 0.2}
    sim = sut.create_backend(cfg)
    assert sim.manifest.prefix_cache is not None and sim.manifest.prefix_cache.block_tokens == 32
    assert np.isclose(sim.manifest.tool_calls.rate, 0.2)  # type: ignore[union-attr]
