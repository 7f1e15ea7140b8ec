"""``lpuperf serve --prefix-cache-tokens``: real SUT processes, the cache seen from every side.

One sim SUT with the cache, its HTTP front and its metrics; a relay SUT (``--backend openai``) in front of
that HTTP front. Shared-prefix prompts over gRPC, over the HTTP front and through the relay: the cached
prompt tokens reach every client, the SUT's counters add up to exactly what the clients were told, the
manifest states the settings, and a timed sim answers a cached prompt sooner (SUT clock, loose bound).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from tests.integration.test_openai_relay import DATASET, Served, _free_port, _serve, _stop

pytestmark = pytest.mark.integration

DS = resolve_dataset(DATASET)
BLOCK = 16
SYSTEM = DS.input_ids[14][:160].tolist()  # ten blocks shared by every prompt below


def _prompt(user: int, n: int = 40) -> list[int]:
    return SYSTEM + DS.input_ids[user][:n].tolist()


def _final(address: str, ids: list[int], **kw: object) -> tuple[pb.GenerateChunk, pb.GenerateChunk]:
    with grpc.insecure_channel(address) as ch:
        req = pb.GenerateRequest(input_ids=ids, max_new_tokens=16, eos_token_id=-1, **kw)  # type: ignore[arg-type]
        chunks = list(pb_grpc.InferenceStub(ch).Generate(req, timeout=60))
    return chunks[0], chunks[-1]


def _counters(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        s.name + "".join(f"{{{v}}}" for v in s.labels.values()): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name.startswith("lpuperf_sut_prefix_cache_")
    }


def _manifest(address: str) -> dict[str, object]:
    with grpc.insecure_channel(address) as ch:
        art = pb_grpc.InferenceStub(ch).GetArtifact(pb.GetArtifactRequest(), timeout=30)
    return dict(json.loads(art.manifest_json))


def test_cached_tokens_reach_grpc_http_and_relay_clients_and_the_counters_add_up(tmp_path: Path) -> None:
    metrics_port = _free_port()
    flags = ["--prefix-cache-tokens", "4096", "--prefix-block-tokens", str(BLOCK), "--metrics-port", str(metrics_port)]
    sim = _serve(tmp_path, "sim", ["--artifact", "sim-instant", "--dataset", DATASET, *flags])
    relay: Served | None = None
    try:
        assert _manifest(sim.grpc_address)["prefix_cache"] == {"capacity_tokens": 4096, "block_tokens": BLOCK}
        told = []  # every cached count a client was told, and the prompt's length
        for user in (0, 1, 0):
            _, final = _final(sim.grpc_address, _prompt(user))
            told.append((final.cached_prompt_tokens, len(_prompt(user))))
        assert [c for c, _ in told] == [0, 160, 192]  # the system prompt; then user 0's own two blocks too
        body = {"prompt": _prompt(2), "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}}
        with httpx.stream("POST", sim.base_url + "/completions", json=body, timeout=30) as resp:
            lines = [ln for ln in resp.iter_lines() if ln.startswith("data: {")]
        usage = json.loads(lines[-1][6:])["usage"]
        told.append((usage["prompt_tokens_details"]["cached_tokens"], usage["prompt_tokens"]))
        assert told[-1] == (160, len(_prompt(2)))
        relay_args = ["--backend", "openai", "--base-url", sim.base_url, "--dataset", DATASET]
        relay = _serve(tmp_path, "relay", relay_args, http=False)
        _, final = _final(relay.grpc_address, _prompt(2))  # through the relay: the sim's count, passed on
        told.append((final.cached_prompt_tokens, len(_prompt(2))))
        assert told[-1][0] == 192
        hit = sum(c for c, _ in told)
        want = {
            "lpuperf_sut_prefix_cache_hit_tokens_total": float(hit),
            "lpuperf_sut_prefix_cache_miss_tokens_total": float(sum(n for _, n in told) - hit),
            "lpuperf_sut_prefix_cache_lookups_total{hit}": 4.0,
            "lpuperf_sut_prefix_cache_lookups_total{miss}": 1.0,
        }
        for _ in range(50):  # the last stream's book-keeping may trail its final chunk by a moment
            got = {k: v for k, v in _counters(metrics_port).items() if k in want}
            if got == want:
                break
            time.sleep(0.1)
        assert got == want
    finally:
        if relay is not None:
            _stop(relay)
        _stop(sim)


def test_a_timed_sim_answers_a_cached_prompt_sooner(tmp_path: Path) -> None:
    # 10 ms per prompt token: the 200-token prompt's prefill is 2 s uncached, 0.4 s once its system prompt is.
    timing = ["--prefill-base-s", "0", "--prefill-per-token-s", "0.01", "--decode-step-s", "0.001"]
    flags = ["--prefix-cache-tokens", "4096", "--prefix-block-tokens", str(BLOCK)]
    sim = _serve(tmp_path, "timed", ["--dataset", DATASET, *timing, *flags], http=False)
    try:
        ttft_s = []
        for user in (0, 1):
            first, final = _final(sim.grpc_address, _prompt(user))
            ttft_s.append((first.sut_first_token_ns - first.sut_arrival_ns) / 1e9)
        assert final.cached_prompt_tokens == 160
        assert ttft_s[0] >= 1.9  # never sooner than the model says (absolute deadlines)
        assert ttft_s[1] < ttft_s[0] / 2, ttft_s  # 0.4 s modelled; loose for a busy machine
    finally:
        _stop(sim)
